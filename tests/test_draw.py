"""common/draw.py: boxes and labels drawn on a copy of a picture, for checking by eye."""

from typing import Tuple

import pytest
from PIL import Image, ImageChops, ImageFont, ImageOps

from pixstor_azure.ground.boxes import Box
from pixstor_azure.ground.errors import ImageError
from pixstor_azure.tool import draw
from tests import imagefactory

GREY = (128, 128, 128)
SIZE = (400, 300)
# (100, 120) to (300, 240) in pixels of SIZE, far from the top so the label sits above it.
BOX = Box("logo", 0.93, 0.25, 0.4, 0.5, 0.4)


def grey(size=SIZE, mode="RGB", color=GREY) -> Image.Image:
    return Image.new(mode, size, color)


def changed(before: Image.Image, after: Image.Image, xy: Tuple[int, int]) -> bool:
    return before.convert("RGB").getpixel(xy) != after.getpixel(xy)


def test_returns_an_rgb_copy_of_the_same_size_and_leaves_the_original_alone():
    image = grey()
    before = image.tobytes()

    out = draw.draw_boxes(image, [BOX])

    assert out is not image
    assert out.size == SIZE and out.mode == "RGB"
    assert image.tobytes() == before
    assert ImageChops.difference(out, image).getbbox() is not None  # something was drawn


def test_pixels_change_along_every_edge_and_nowhere_far_from_the_box():
    image = grey()

    out = draw.draw_boxes(image, [BOX])

    left, top, right, bottom = BOX.pixels(*SIZE)
    assert (left, top, right, bottom) == (100, 120, 300, 240)
    for y in range(top, bottom):  # the whole height of both sides
        assert changed(image, out, (left, y)) and changed(image, out, (right - 1, y))
    for x in range(left, right):  # the whole width of top and bottom
        assert changed(image, out, (x, top)) and changed(image, out, (x, bottom - 1))
    # Just outside the box on three sides, and well inside it: untouched.
    for xy in [(left - 3, 200), (right + 2, 200), (200, bottom + 2), (200, 180), (150, 150)]:
        assert not changed(image, out, xy), xy
    # Nothing changed left, right or below the box, nor above its label.
    diff = ImageChops.difference(out, image).getbbox()
    assert diff is not None
    assert diff[0] >= left and diff[2] <= right and diff[3] <= bottom
    assert top - 40 < diff[1] < top  # the label, a line of text high, above the box


def test_label_sits_on_a_filled_background_above_the_box():
    out = draw.draw_boxes(grey(), [BOX])

    label = out.crop((100, 100, 140, 120))  # just above the box's top-left corner
    colors = {c for _, c in label.getcolors(maxcolors=10_000)}
    assert draw.COLORS[0] in colors  # the background, in the box's colour
    assert len(colors) > 1  # with letters on it


def test_label_goes_inside_a_box_at_the_top_edge():
    box = Box("logo", 0.93, 0.25, 0.0, 0.5, 0.5)  # (100, 0) to (300, 150)
    image = grey()

    out = draw.draw_boxes(image, [box])

    # Below the top line (2 px) and right of the left line, the label fills part of the box.
    inside = out.crop((103, 3, 130, 10))
    assert draw.COLORS[0] in {c for _, c in inside.getcolors(maxcolors=10_000)}
    assert not changed(image, out, (200, 100))  # the rest of the box is untouched


def line_width(out: Image.Image, image: Image.Image, x: int, y: int) -> int:
    """How many pixels from ``x`` rightwards on row ``y`` were changed."""
    width = 0
    while changed(image, out, (x + width, y)):
        width += 1
    return width


def test_lines_grow_with_the_picture():
    small, large = grey((200, 150)), grey((4000, 3000))

    thin = line_width(draw.draw_boxes(small, [BOX]), small, 50, 100)
    thick = line_width(draw.draw_boxes(large, [BOX]), large, 1000, 2000)

    assert 2 <= thin < thick
    assert 10 <= thick <= 40


def test_each_tag_has_its_own_colour_and_the_most_probable_is_on_top():
    first = Box("logo", 0.9, 0.1, 0.5, 0.3, 0.3)
    second = Box("product", 0.6, 0.5, 0.5, 0.3, 0.3)
    overlapping = Box("product", 0.4, 0.1, 0.5, 0.3, 0.3)  # same place as first, less probable

    out = draw.draw_boxes(grey(), [second, overlapping, first])

    assert out.getpixel((200, 200)) == draw.COLORS[1]  # second's left edge
    assert out.getpixel((40, 200)) == draw.COLORS[0]  # first drawn over overlapping


@pytest.mark.parametrize(
    ("mode", "color"),
    [("L", 128), ("RGBA", (0, 0, 0, 0)), ("P", 3), ("CMYK", (0, 0, 0, 127)), ("I;16", 30000)],
)
def test_any_mode_comes_out_rgb(mode, color):
    image = grey(mode=mode, color=color)

    out = draw.draw_boxes(image, [BOX])

    assert out.mode == "RGB" and out.size == SIZE
    assert out.getpixel((100, 200)) == draw.COLORS[0]


def test_transparency_is_shown_on_white():
    out = draw.draw_boxes(grey(mode="RGBA", color=(0, 0, 0, 0)), [BOX])

    assert out.getpixel((5, 295)) == (255, 255, 255)


def test_no_boxes_is_a_plain_copy():
    image = grey()

    out = draw.draw_boxes(image, [])

    assert out is not image
    assert ImageChops.difference(out, image).getbbox() is None


def test_boxes_at_the_frame_edges_and_empty_boxes_are_drawn_without_error():
    edges = [
        Box("whole", 0.9, 0.0, 0.0, 1.0, 1.0),
        Box("corner", 0.8, 0.95, 0.95, 0.05, 0.05),
        Box("nothing", 0.7, 0.5, 0.5, 0.0, 0.0),
        Box("right edge label that is much too long to fit", 0.6, 0.9, 0.5, 0.1, 0.2),
    ]
    image = grey()

    out = draw.draw_boxes(image, edges)

    assert out.size == SIZE
    assert changed(image, out, (0, 150)) and changed(image, out, (399, 150))


@pytest.mark.parametrize("tag", ["ロゴ", "café ☕", ""])
def test_any_tag_text_is_drawn(tag):
    out = draw.draw_boxes(grey(), [Box(tag, 0.93, 0.25, 0.4, 0.5, 0.4)])
    assert out.getpixel((100, 200)) == draw.COLORS[0]


def test_falls_back_to_the_fixed_font_of_old_pillow(monkeypatch):
    """Before Pillow 10.1, load_default() took no size; its bitmap font knows Latin-1 only."""
    # Pillow >= 10.1 names the bitmap font; before that, load_default() is that font.
    bitmap = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    asked = []

    def old_load_default(*args, **kwargs):
        asked.append(kwargs)
        if args or kwargs:
            raise TypeError("load_default() got an unexpected keyword argument 'size'")
        return bitmap

    monkeypatch.setattr(ImageFont, "load_default", old_load_default)
    image = grey()

    out = draw.draw_boxes(image, [Box("ロゴ café", 0.93, 0.25, 0.4, 0.5, 0.4)])

    assert asked == [{"size": 10}, {}]
    assert changed(image, out, (110, 110))  # the label is there
    assert out.getpixel((100, 200)) == draw.COLORS[0]


def test_draw_file_draws_on_the_picture_as_displayed(tmp_path):
    size, rect = (400, 300), (40, 150, 120, 270)
    path = imagefactory.jpeg_exif_rotated(tmp_path, 6, size=size, rect=rect)
    box = Box.from_fractions("red", 0.97, *imagefactory.displayed_rect(size, rect, 6))
    out_path = tmp_path / "checked.png"

    assert draw.draw_file(path, [box], out_path) is None

    with Image.open(path) as original:
        shown = ImageOps.exif_transpose(original).convert("RGB")
    with Image.open(out_path) as out:
        out.load()
    assert out.size == shown.size == (300, 400)  # upright, as a viewer shows it
    left, top, right, bottom = box.pixels(*out.size)
    for xy in [(left, (top + bottom) // 2), (right - 1, (top + bottom) // 2),
               ((left + right) // 2, top), ((left + right) // 2, bottom - 1)]:  # fmt: skip
        assert out.getpixel(xy) == draw.COLORS[0], xy
    # The red rectangle of the file is inside the outline, untouched in its middle.
    middle = ((left + right) // 2, (top + bottom) // 2)
    assert out.getpixel(middle) == shown.getpixel(middle)
    assert out.getpixel(middle)[0] > 200 and out.getpixel(middle)[1] < 80


def test_draw_file_writes_the_format_of_its_name(tmp_path):
    path = imagefactory.jpeg(tmp_path, size=(640, 480))

    draw.draw_file(path, [BOX], tmp_path / "checked.jpg")

    with Image.open(tmp_path / "checked.jpg") as out:
        assert out.format == "JPEG" and out.size == (640, 480)


def test_draw_file_refuses_what_is_not_a_picture(tmp_path):
    with pytest.raises(ImageError):
        draw.draw_file(imagefactory.text_file_png(tmp_path), [BOX], tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
