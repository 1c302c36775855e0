"""Draw boxes and their labels onto a picture, so a person can check detections by eye.

Not used by the plugins themselves: it is for administrators and for the README. The boxes are
``common.boxes.Box`` values (fractions of the image as displayed), so ``draw_file`` turns the
file upright by its EXIF orientation, through the same decoding the plugins use, before drawing.
"""

import os
from typing import Dict, Iterable, List, Tuple, Union

from PIL import Image, ImageDraw, ImageFont

from ..ground.boxes import Box
from ..images import prepare

# Distinct, saturated colours that stay visible on most photographs; one per tag, in order.
COLORS = (
    (255, 56, 56),
    (255, 178, 29),
    (72, 249, 10),
    (0, 194, 255),
    (255, 55, 199),
    (146, 204, 23),
    (132, 56, 255),
    (0, 255, 214),
)


def draw_boxes(image: Image.Image, boxes: Iterable[Box]) -> Image.Image:
    """An RGB copy of ``image`` (upright, as displayed) with each box outlined and labelled.

    Each box is labelled "tag 0.93" on a filled background, above the box, or just inside it
    when the box touches the top of the picture. Lines and letters grow with the picture so
    they stay readable on a 40 MP frame and do not swamp a thumbnail.
    """
    # to_rgb lays transparency on white, as the picture was sent; convert() copies even RGB.
    out = prepare.to_rgb(image).convert("RGB")
    boxes = list(boxes)
    if not boxes:
        return out
    width, height = out.size
    line = max(2, round(max(width, height) / 200))
    font = _font(max(10, round(max(width, height) / 40)))
    pad = max(1, line // 2 + 1)
    draw = ImageDraw.Draw(out)
    colors = _colors_by_tag(boxes)
    # Least probable first, so the most probable box and label end up on top.
    for box in sorted(boxes, key=lambda b: b.probability):
        color = colors[box.tag.lower()]
        left, top, right, bottom = box.pixels(width, height)
        # Box.pixels gives right and bottom exclusive; rectangle() draws both ends.
        right, bottom = max(left, right - 1), max(top, bottom - 1)
        draw.rectangle((left, top, right, bottom), outline=color, width=line)
        _label(draw, out.size, f"{box.tag} {box.probability:.2f}", (left, top), color, font, pad)
    return out


def draw_file(
    path: Union[str, os.PathLike],
    boxes: Iterable[Box],
    out_path: Union[str, os.PathLike],
    max_edge: int = 2048,
) -> None:
    """Draw ``boxes`` on the picture at ``path`` as displayed and save it to ``out_path``.

    The picture is decoded as the plugins decode it (EXIF orientation applied, at most
    ``max_edge`` pixels on its long side): the boxes are fractions, so any size shows them right.
    The output format follows ``out_path``'s extension. Raises ``ImageError`` for a file that is
    not a readable picture.
    """
    picture = prepare.load(path, max_edge).image
    draw_boxes(picture, boxes).save(out_path, quality=90)


def _colors_by_tag(boxes: List[Box]) -> Dict[str, Tuple[int, int, int]]:
    """Tags (compared case-insensitively, as the labels field does) to colours, most probable
    tag first, so the same picture always gets the same colours."""
    colors: Dict[str, Tuple[int, int, int]] = {}
    for box in sorted(boxes, key=lambda b: -b.probability):
        colors.setdefault(box.tag.lower(), COLORS[len(colors) % len(COLORS)])
    return colors


def _font(size: int):
    try:
        # Pillow >= 10.1 scales its built-in font; older ones only have a fixed bitmap font.
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        # TypeError: no size argument (Pillow < 10.1); ImportError/OSError: no FreeType.
        return ImageFont.load_default()


def _label(
    draw: ImageDraw.ImageDraw,
    size: Tuple[int, int],
    text: str,
    corner: Tuple[int, int],
    color: Tuple[int, int, int],
    font,
    pad: int,
) -> None:
    text = _drawable(text, font)
    text_left, text_top, text_right, text_bottom = _text_box(draw, text, font)
    label_w = text_right - text_left + 2 * pad
    label_h = text_bottom - text_top + 2 * pad
    left, top = corner
    left = max(0, min(left, size[0] - label_w))  # keep a label near the right edge whole
    top = top - label_h if top >= label_h else top  # inside the box at the top of the frame
    draw.rectangle((left, top, left + label_w - 1, top + label_h - 1), fill=color)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    draw.text((left + pad - text_left, top + pad - text_top), text, fill=ink, font=font)


def _text_box(draw: ImageDraw.ImageDraw, text: str, font) -> Tuple[int, int, int, int]:
    if hasattr(draw, "textbbox"):  # Pillow >= 8.0
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        return round(left), round(top), round(right), round(bottom)
    # Pillow < 8.0; removed in 10.0, so the types of the Pillow mypy reads lack it
    width, height = draw.textsize(text, font=font)  # type: ignore[attr-defined]
    return (0, 0, width, height)


def _drawable(text: str, font) -> str:
    """``text`` as the font can draw it: the bitmap fallback font knows Latin-1 only and raises
    on anything else, where FreeType fonts draw a placeholder glyph by themselves."""
    if isinstance(font, ImageFont.ImageFont):
        return text.encode("latin-1", "replace").decode("latin-1")
    return text
