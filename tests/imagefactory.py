"""Write real image files (and a few deliberately broken ones) for the tests.

Every function takes the folder to write into, writes exactly one file there
and returns its path.  The folder is created if it does not exist.  Nothing
here uses unseeded randomness, so the same call always writes the same file
(Pillow and zlib versions permitting).

Only the standard library and Pillow are used: numpy is not available in CI.
"""

import os
import random
import struct
import sys
import zlib
from array import array
from pathlib import Path
from typing import Tuple, Union

from PIL import Image, ImageChops, ImageDraw

# Pillow 9.1 moved these constants into enums; the old names serve Pillow 7 and 8.
_ADAPTIVE = getattr(Image, "Palette", Image).ADAPTIVE
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
_FLIP_LEFT_RIGHT = getattr(Image, "Transpose", Image).FLIP_LEFT_RIGHT

__all__ = [
    "bmp",
    "cmyk_jpeg",
    "decompression_bomb",
    "displayed_rect",
    "gif_palette",
    "jpeg",
    "jpeg_40mp",
    "jpeg_exif_rotated",
    "png",
    "png_alpha",
    "random_bytes_jpg",
    "strip",
    "svg",
    "text_file_png",
    "tiff_16bit",
    "tiny",
    "truncated_jpeg",
    "webp",
]

GREY = (128, 128, 128)
EXIF_ORIENTATION = 0x0112

_SEED = 20240531


def _folder(folder: Union[str, os.PathLike]) -> Path:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _noise(size: Tuple[int, int], seed: int, amplitude: int = 255) -> Image.Image:
    """Seeded RGB noise; each channel spans 128 +/- amplitude/2 (clamped to 0..255)."""
    w, h = size
    n = w * h * 3
    data = random.Random(seed).getrandbits(n * 8).to_bytes(n, "little")
    im = Image.frombytes("RGB", size, data)
    if amplitude < 255:
        lo = 128 - amplitude // 2
        im = im.point(lambda v: lo + v * amplitude // 255)
    return im


def _scene(size: Tuple[int, int], color: Tuple[int, int, int]) -> Image.Image:
    """A solid colour with a horizontal grey gradient band and a contrasting rectangle."""
    w, h = size
    im = Image.new("RGB", size, color)
    band_h = max(1, h // 5)
    gradient = Image.linear_gradient("L").rotate(90).resize((w, band_h))
    im.paste(Image.merge("RGB", (gradient, gradient, gradient)), (0, h - band_h))
    contrast = tuple(255 - c for c in color)
    im.paste(contrast, (w // 4, h // 5, max(w // 4 + 1, w // 2), max(h // 5 + 1, h // 2)))
    return im


# --------------------------------------------------------------------------- EXIF rotation


def jpeg_exif_rotated(
    folder: Union[str, os.PathLike],
    orientation: int = 6,
    size: Tuple[int, int] = (400, 300),
    rect: Tuple[int, int, int, int] = (40, 30, 160, 120),
    color: Tuple[int, int, int] = (255, 0, 0),
) -> Path:
    """A JPEG of ``size`` stored pixels: ``rect`` filled with ``color`` on mid-grey,
    tagged with EXIF Orientation ``orientation``.

    ``rect`` is (left, top, right, bottom) in stored pixel coordinates, right and
    bottom exclusive (Pillow box convention).  Saved at quality 95 without chroma
    subsampling so the rectangle's edges stay sharp.
    """
    if orientation not in range(1, 9):
        raise ValueError(f"EXIF orientation must be 1..8, not {orientation!r}")
    im = Image.new("RGB", size, GREY)
    im.paste(color, rect)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = _folder(folder) / f"rotated_o{orientation}.jpg"
    im.save(path, "JPEG", quality=95, subsampling=0, exif=exif)
    return path


def displayed_rect(
    size: Tuple[int, int], rect: Tuple[int, int, int, int], orientation: int
) -> Tuple[float, float, float, float]:
    """Where ``rect`` (stored pixel box in an image of stored ``size``) appears once the
    image is displayed according to EXIF ``orientation`` (as ``ImageOps.exif_transpose``
    does), as fractions (left, top, width, height) of the displayed image."""
    w, h = size
    left, top, right, bottom = rect
    lf, tf, rf, bf = left / w, top / h, right / w, bottom / h
    rw, rh = rf - lf, bf - tf
    if orientation == 1:  # as stored
        return (lf, tf, rw, rh)
    if orientation == 2:  # mirrored left-right
        return (1 - rf, tf, rw, rh)
    if orientation == 3:  # rotated 180
        return (1 - rf, 1 - bf, rw, rh)
    if orientation == 4:  # mirrored top-bottom
        return (lf, 1 - bf, rw, rh)
    # The remaining orientations swap the axes: displayed x comes from stored y.
    if orientation == 5:  # transpose: (x, y) -> (y, x)
        return (tf, lf, rh, rw)
    if orientation == 6:  # rotate 90 clockwise: (x, y) -> (h - y, x)
        return (1 - bf, lf, rh, rw)
    if orientation == 7:  # transverse: (x, y) -> (h - y, w - x)
        return (1 - bf, 1 - rf, rh, rw)
    if orientation == 8:  # rotate 90 counter-clockwise: (x, y) -> (y, w - x)
        return (tf, 1 - rf, rh, rw)
    raise ValueError(f"EXIF orientation must be 1..8, not {orientation!r}")


# --------------------------------------------------------------------------- unusual modes


def cmyk_jpeg(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """A CMYK JPEG: left half cyan, right half magenta+yellow (red), a black bar below."""
    w, h = size
    im = Image.new("CMYK", size, (255, 0, 0, 0))  # cyan
    im.paste((0, 255, 255, 0), (w // 2, 0, w, h))  # magenta + yellow = red
    im.paste((0, 0, 0, 255), (0, h * 3 // 4, w, h))  # key (black) bar
    path = _folder(folder) / "cmyk.jpg"
    im.save(path, "JPEG", quality=90)
    return path


def tiff_16bit(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """A 16-bit grayscale ("I;16") TIFF: a left-to-right gradient from 0 to 65535."""
    w, h = size
    row = array("H", (x * 65535 // max(1, w - 1) for x in range(w)))
    if sys.byteorder == "big":
        row.byteswap()  # "I;16" is little-endian
    im = Image.frombytes("I;16", size, row.tobytes() * h)
    path = _folder(folder) / "gray16.tif"
    im.save(path, "TIFF")
    return path


def png_alpha(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """An RGBA PNG: fully transparent black (0, 0, 0, 0) background, opaque orange ellipse."""
    w, h = size
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((w // 4, h // 4, w * 3 // 4, h * 3 // 4), fill=(255, 140, 0, 255))
    path = _folder(folder) / "alpha.png"
    im.save(path, "PNG")
    return path


def gif_palette(
    folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200), frames: int = 1
) -> Path:
    """A palette ("P") GIF.  The first frame is red; with ``frames`` > 1 it is animated
    and every later frame is blue.  Each frame carries a small white square at a
    different place, so Pillow does not merge identical consecutive frames."""
    if frames < 1:
        raise ValueError("frames must be >= 1")
    w, h = size
    side = max(1, min(w, h) // 10)
    images = []
    for i in range(frames):
        rgb = Image.new("RGB", size, (255, 0, 0) if i == 0 else (0, 0, 255))
        x = (i * side) % max(1, w - side)
        rgb.paste((255, 255, 255), (x, 0, x + side, side))
        images.append(rgb.convert("P", palette=_ADAPTIVE, colors=4))
    name = "palette.gif" if frames == 1 else "animated.gif"
    path = _folder(folder) / name
    if frames == 1:
        images[0].save(path, "GIF")
    else:
        images[0].save(path, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


# --------------------------------------------------------------------------- ordinary formats


def bmp(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """An RGB BMP: yellow with a blue rectangle and a grey gradient band."""
    path = _folder(folder) / "plain.bmp"
    _scene(size, (255, 255, 0)).save(path, "BMP")
    return path


def webp(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """A lossy RGB WebP: teal with a rectangle and a grey gradient band."""
    path = _folder(folder) / "plain.webp"
    _scene(size, (0, 160, 160)).save(path, "WEBP", quality=85)
    return path


def png(
    folder: Union[str, os.PathLike],
    size: Tuple[int, int] = (300, 200),
    color: Tuple[int, int, int] = (0, 0, 255),
) -> Path:
    """An RGB PNG: ``color`` with a rectangle of the inverse colour and a grey gradient band."""
    path = _folder(folder) / "plain.png"
    _scene(size, color).save(path, "PNG")
    return path


def jpeg(
    folder: Union[str, os.PathLike],
    size: Tuple[int, int] = (300, 200),
    color: Tuple[int, int, int] = (0, 128, 0),
    name: str = "plain.jpg",
    quality: int = 90,
) -> Path:
    """A baseline RGB JPEG: ``color`` with a rectangle of the inverse colour and a gradient band."""
    path = _folder(folder) / name
    _scene(size, color).save(path, "JPEG", quality=quality)
    return path


def jpeg_40mp(folder: Union[str, os.PathLike]) -> Path:
    """A 7728x5152 (39.8 MP) baseline JPEG at quality 95, over 4 MiB on disk.

    Colour gradients and shapes with seeded noise added everywhere, so it does not
    compress away.  Takes a couple of seconds and about 150 MB of memory.
    """
    w, h = 7728, 5152
    red = Image.linear_gradient("L").rotate(90).resize((w, h), _BILINEAR)
    green = Image.linear_gradient("L").resize((w, h), _BILINEAR)
    blue = Image.radial_gradient("L").resize((w, h), _BILINEAR)
    im = Image.merge("RGB", (red, green, blue))
    del red, green, blue
    draw = ImageDraw.Draw(im)
    draw.ellipse((w // 10, h // 8, w // 2, h * 3 // 4), fill=(220, 180, 40))
    draw.rectangle((w * 6 // 10, h // 5, w * 9 // 10, h * 3 // 5), fill=(30, 60, 160))
    x0, y0 = w * 2 // 3, h * 2 // 3
    draw.ellipse((x0, y0, x0 + h // 4, y0 + h // 4), fill=(250, 250, 250))
    draw.line((0, h - 1, w - 1, 0), fill=(10, 10, 10), width=40)
    # Add zero-mean noise (128 +/- 6) band by band to keep memory use down.
    tile = _noise((512, 512), _SEED, amplitude=12)
    band = Image.new("RGB", (w, 512))
    for x in range(0, w, 512):
        band.paste(tile, (x, 0))
    for y in range(0, h, 512):
        box = (0, y, w, min(h, y + 512))
        part = im.crop(box)
        noisy = ImageChops.add(part, band.crop((0, 0, w, box[3] - y)), scale=1.0, offset=-128)
        im.paste(noisy, box)
    path = _folder(folder) / "large_40mp.jpg"
    im.save(path, "JPEG", quality=95, progressive=False)
    return path


# --------------------------------------------------------------------------- extreme sizes


def tiny(folder: Union[str, os.PathLike]) -> Path:
    """A 1x1 RGB PNG (one orange pixel)."""
    path = _folder(folder) / "tiny.png"
    Image.new("RGB", (1, 1), (255, 128, 0)).save(path, "PNG")
    return path


def strip(folder: Union[str, os.PathLike]) -> Path:
    """A 60000x50 RGB PNG: a horizontal colour gradient with a dark bar every 1000 px."""
    w, h = 60000, 50
    ramp = Image.linear_gradient("L").rotate(90).resize((w, h))
    reverse = ramp.transpose(_FLIP_LEFT_RIGHT)
    im = Image.merge("RGB", (ramp, Image.new("L", (w, h), 100), reverse))
    for x in range(0, w, 1000):
        im.paste((0, 0, 0), (x, 0, x + 20, h))
    path = _folder(folder) / "strip.png"
    im.save(path, "PNG", compress_level=1)
    return path


# --------------------------------------------------------------------------- broken or hostile


def truncated_jpeg(folder: Union[str, os.PathLike]) -> Path:
    """A valid noisy 640x480 JPEG (a few hundred KB) cut to 60% of its bytes.

    ``Image.open`` succeeds (the header is intact) but loading the pixels fails
    with ``OSError`` unless ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set.
    """
    im = _noise((640, 480), _SEED + 1)
    im.paste((255, 0, 0), (100, 100, 300, 250))
    path = _folder(folder) / "truncated.jpg"
    im.save(path, "JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def random_bytes_jpg(folder: Union[str, os.PathLike]) -> Path:
    """4096 bytes of seeded random data named ``noise.jpg``."""
    path = _folder(folder) / "noise.jpg"
    path.write_bytes(random.Random(_SEED + 2).getrandbits(4096 * 8).to_bytes(4096, "little"))
    return path


def text_file_png(folder: Union[str, os.PathLike]) -> Path:
    """A plain UTF-8 text file misleadingly named ``notes.png``."""
    path = _folder(folder) / "notes.png"
    path.write_text(
        "Meeting notes\n\n- This is not an image.\n- It only has a .png name.\n",
        encoding="utf-8",
    )
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def decompression_bomb(folder: Union[str, os.PathLike]) -> Path:
    """A genuine 20000x20000 8-bit grayscale PNG of all-black pixels, about 380 KiB.

    It declares 400 million pixels, more than twice ``Image.MAX_IMAGE_PIXELS``'s
    default, so ``Image.open`` raises ``DecompressionBombError``.  The IDAT is a
    complete, valid zlib stream for 20000 rows of (filter byte 0 + 20000 zero
    bytes) and would decode to a black image if allowed.

    The deflate data is built from one compressed 1 MiB block of zeros ended with
    a full flush (which resets the compressor's history, so the same block
    compresses to the same bytes every time) repeated as often as needed, then the
    remainder; the Adler-32 of n zero bytes is ((n mod 65521) << 16) | 1.  This
    writes the file in milliseconds instead of compressing 400 MB.
    """
    w = h = 20000
    total = h * (1 + w)  # each row: filter type 0, then w zero bytes
    block_size = 1 << 20
    full_blocks, remainder = divmod(total, block_size)

    raw = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, we add the zlib wrapper
    block = raw.compress(bytes(block_size)) + raw.flush(zlib.Z_FULL_FLUSH)
    tail = raw.compress(bytes(remainder)) + raw.flush(zlib.Z_FINISH)
    adler = ((total % 65521) << 16) | 1
    idat = b"\x78\xda" + block * full_blocks + tail + struct.pack(">I", adler)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grayscale, no interlace
    path = _folder(folder) / "bomb.png"
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_png_chunk(b"IHDR", ihdr))
        f.write(_png_chunk(b"IDAT", idat))
        f.write(_png_chunk(b"IEND", b""))
    return path


def svg(folder: Union[str, os.PathLike]) -> Path:
    """A tiny SVG drawing (a red circle on a white square)."""
    path = _folder(folder) / "vector.svg"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">\n'
        '  <rect width="64" height="64" fill="#ffffff"/>\n'
        '  <circle cx="32" cy="32" r="24" fill="#ff0000"/>\n'
        "</svg>\n",
        encoding="utf-8",
    )
    return path
