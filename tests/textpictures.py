"""Pictures with known text, for measuring an OCR engine: tests/test_localread.py and bench/ocr.py.

Each picture holds a few lines of sign, slate and label text in one font at one size, turned
by up to 10 degrees, on a plain background or on a photograph (images/), and is saved as a
JPEG. What was written is returned with it, line by line in reading order, so that what an
engine reads can be scored: ``cer`` is the character error rate, the edit distance between the
text read and the text written (lines joined by one space, runs of spaces as one) divided by
the length of the text written.

The fonts are the TrueType fonts found on this machine (DejaVu and Liberation, from Debian's
fonts-dejavu-core and fonts-liberation) and the 5x7 dot-matrix font of ``imagefactory``, drawn
the same by every Pillow. Everything is drawn from a seed: the same call gives the same
picture.
"""

import random
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from PIL import Image, ImageDraw, ImageFont, ImageOps

from tests import imagefactory

_BICUBIC = getattr(Image, "Resampling", Image).BICUBIC
_NEAREST = getattr(Image, "Resampling", Image).NEAREST

FONT_FOLDERS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts"))
# Regular, bold, serif, monospace and narrow faces, in the order preferred.
FONT_FILES = (
    "dejavu/DejaVuSans.ttf",
    "liberation/LiberationSerif-Regular.ttf",
    "dejavu/DejaVuSans-Bold.ttf",
    "liberation/LiberationSans-Regular.ttf",
    "dejavu/DejaVuSerif.ttf",
    "liberation/LiberationMono-Regular.ttf",
    "liberation/LiberationSansNarrow-Bold.ttf",
    "dejavu/DejaVuSansCondensed.ttf",
)
DOT_MATRIX = "5x7 dot matrix"  # imagefactory.FONT_5X7: capitals, digits and a few signs

# What signs, slates and labels say: capitals and small letters, digits and punctuation.
PHRASES = (
    "SCENE 42 TAKE 7",
    "Roll A013 Camera B",
    "Fire exit keep clear",
    "Platform 9 to Edinburgh 14:35",
    "Best before 12/2027 Lot 4471",
    "Open daily 9am to 5pm",
    "No parking at any time",
    "Stage door and deliveries",
    "PRODUCTION PIXSTOR",
    "Director J. Q. Carter",
    "Mind the step",
    "Exit 3 Car park level 2",
    "Studio 5 Quiet please",
    "Keep refrigerated below 5C",
    "Batch 88-B Made in Leeds",
    "Gate closes at 22:00",
    "Reel 12 of 14",
    "Sound check 10:30",
)
# The capitals and digits the dot-matrix font draws (imagefactory.FONT_5X7).
DOT_PHRASES = (
    "SCENE 42 TAKE 7",
    "ROLL A013 CAM B",
    "PROD PIXSTOR",
    "DIR J Q C",
    "REEL 12 OF 14",
    "GATE 22 00",
)


class Picture(NamedTuple):
    path: Path
    lines: Tuple[str, ...]  # as written, in reading order
    font: str
    height: int  # the font's size in pixels: what a text height of N px means here
    angle: float  # degrees, counter-clockwise
    background: str  # "plain" or "photo"
    quality: int  # JPEG quality


def fonts() -> List[str]:
    """The TrueType fonts of ``FONT_FILES`` on this machine, as paths."""
    found = []
    for name in FONT_FILES:
        for folder in FONT_FOLDERS:
            path = folder / name
            if path.is_file():
                found.append(str(path))
                break
    return found


def font_name(font: str) -> str:
    return font if font == DOT_MATRIX else Path(font).stem


def picture(
    folder: Union[str, Path],
    seed: int,
    height: int,
    font: str,
    angle: float = 0.0,
    background: str = "plain",
    quality: int = 80,
    size: Tuple[int, int] = (1024, 768),
    lines: int = 3,
) -> Picture:
    """A JPEG of ``lines`` lines of text ``height`` px high in ``font``, turned by ``angle``."""
    rng = random.Random(seed)
    pool = DOT_PHRASES if font == DOT_MATRIX else PHRASES
    written = _fitting(rng, pool, lines, font, height, size)
    layer = _text_layer(written, font, height)
    turned = layer.rotate(angle, resample=_BICUBIC, expand=True)
    canvas, ink = _background(rng, background, size, turned.size)
    left = rng.randint(0, max(0, size[0] - turned.width))
    top = rng.randint(0, max(0, size[1] - turned.height))
    if background == "photo":
        ink = _contrasting(canvas.crop((left, top, left + turned.width, top + turned.height)))
    canvas.paste(ink, (left, top), turned)
    name = f"text-{seed}-{font_name(font)}-{height}px-{background}.jpg"
    path = Path(folder) / name
    canvas.save(path, "JPEG", quality=quality)
    return Picture(path, tuple(written), font_name(font), height, angle, background, quality)


def _fitting(
    rng: random.Random,
    pool: Sequence[str],
    count: int,
    font: str,
    height: int,
    size: Tuple[int, int],
) -> List[str]:
    """``count`` phrases of ``pool`` that fit the picture's width at this size (at least
    one word of one, for the largest sizes)."""
    width = size[0] * 0.8
    chosen = rng.sample(list(pool), min(count, len(pool)))
    kept = []
    for phrase in chosen:
        words = phrase.split()
        while len(words) > 1 and _width(" ".join(words), font, height) > width:
            words.pop()
        kept.append(" ".join(words))
    rows = max(1, int(size[1] * 0.8 // (height * 1.5)))
    return kept[:rows]


def _width(text: str, font: str, height: int) -> int:
    if font == DOT_MATRIX:
        return len(text) * 6 * _dot(height)
    face = ImageFont.truetype(font, height)
    if hasattr(face, "getbbox"):  # Pillow 8 and later
        return face.getbbox(text)[2]
    return face.getsize(text)[0]


def _dot(height: int) -> int:
    """The dot-matrix font's dot size for text ``height`` px high: its capitals (7 dots) as
    high as a TrueType font's of that size (about 0.7 of it)."""
    return max(1, round(height / 10))


def _text_layer(lines: Sequence[str], font: str, height: int) -> Image.Image:
    """The lines as a mask (text 255 on 0), a line and a half apart, with a margin."""
    step = round(height * 1.5)
    width = max(_width(line, font, height) for line in lines) + 2 * height
    layer = Image.new("L", (width, step * len(lines) + height), 0)
    if font == DOT_MATRIX:
        dot = _dot(height)
        for row, line in enumerate(lines):
            for column, char in enumerate(line):
                cell = imagefactory.glyph_cell(char if char in imagefactory.FONT_5X7 else " ", dot)
                layer.paste(cell, (height + column * 6 * dot, height // 2 + row * step))
        return layer
    draw = ImageDraw.Draw(layer)
    face = ImageFont.truetype(font, height)
    for row, line in enumerate(lines):
        draw.text((height, height // 2 + row * step), line, fill=255, font=face)
    return layer


def _background(
    rng: random.Random, kind: str, size: Tuple[int, int], text: Tuple[int, int]
) -> Tuple[Image.Image, Tuple[int, int, int]]:
    """The canvas and the ink: light or dark paper, or a crop of the sample photographs."""
    if kind == "plain":
        if rng.random() < 0.5:
            return Image.new("RGB", size, (236, 232, 222)), (24, 24, 32)
        return Image.new("RGB", size, (30, 52, 40)), (240, 240, 232)
    mosaic = imagefactory.photo_mosaic((size[0] * 2, size[1] * 2), 2, 2)
    left, top = rng.randint(0, size[0]), rng.randint(0, size[1])
    return mosaic.crop((left, top, left + size[0], top + size[1])), (0, 0, 0)


def _contrasting(area: Image.Image) -> Tuple[int, int, int]:
    """Near-white ink on a dark area, near-black on a light one."""
    mean = ImageOps.grayscale(area).resize((1, 1), _BICUBIC).getpixel((0, 0))
    return (250, 250, 245) if mean < 128 else (10, 10, 16)


def read_text(lines: Sequence[str]) -> str:
    """Lines as one text: joined by one space, runs of spaces as one."""
    return " ".join(" ".join(lines).split())


def distance(a: str, b: str) -> int:
    """The Levenshtein distance between ``a`` and ``b``."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(read: Sequence[str], written: Sequence[str]) -> float:
    """The character error rate of ``read`` against ``written`` (0: exact; 1: all wrong)."""
    truth = read_text(written)
    return distance(read_text(read), truth) / max(1, len(truth))


def pooled_cer(results: Sequence[Tuple[Sequence[str], Sequence[str]]]) -> float:
    """The character error rate over many pictures: all their edits over all their text."""
    edits = sum(distance(read_text(r), read_text(w)) for r, w in results)
    return edits / max(1, sum(len(read_text(w)) for _, w in results))


def corpus(
    folder: Union[str, Path],
    heights: Sequence[int],
    seed: int = 20261206,
    size: Tuple[int, int] = (1024, 768),
    fonts_used: Optional[Sequence[str]] = None,
) -> List[Picture]:
    """One picture per height and font, each with its own angle (-10 to 10 degrees),
    background (plain or photographic, in turn) and JPEG quality (60 to 90)."""
    rng = random.Random(seed)
    faces = [*(fonts_used if fonts_used is not None else fonts()), DOT_MATRIX]
    made = []
    for height in heights:
        for n, font in enumerate(faces):
            background = "photo" if (n + height) % 2 else "plain"
            angle = round(rng.uniform(-10.0, 10.0), 1)
            quality = rng.randint(60, 90)
            made.append(
                picture(
                    folder,
                    rng.randint(0, 10**9),
                    height,
                    font,
                    angle,
                    background,
                    quality,
                    size,
                )
            )
    return made
