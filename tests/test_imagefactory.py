"""The test image factory writes what it claims to write."""

import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFile, ImageOps, UnidentifiedImageError

from tests import imagefactory as factory

MiB = 1 << 20


def _near(actual, expected, tolerance=12):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


def _red_bbox(im: Image.Image):
    """Bounding box of the clearly red pixels of an RGB image."""
    r, g, b = im.convert("RGB").split()
    high = r.point(lambda v: 255 if v > 200 else 0)
    low_g = g.point(lambda v: 255 if v < 80 else 0)
    low_b = b.point(lambda v: 255 if v < 80 else 0)
    return ImageChops.multiply(ImageChops.multiply(high, low_g), low_b).getbbox()


# --------------------------------------------------------------------------- EXIF rotation

CASES = [
    ((400, 300), (40, 30, 160, 120)),  # the defaults
    ((320, 240), (16, 48, 96, 200)),  # asymmetric, so swapped axes would show
]


@pytest.mark.parametrize("size, rect", CASES)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_displayed_rect_matches_exif_transpose(tmp_path, orientation, size, rect):
    path = factory.jpeg_exif_rotated(tmp_path, orientation=orientation, size=size, rect=rect)
    with Image.open(path) as im:
        assert im.format == "JPEG"
        assert im.size == size  # stored pixels, not rotated
        assert im.getexif()[factory.EXIF_ORIENTATION] == orientation
        assert _red_bbox(im) is not None
        shown = ImageOps.exif_transpose(im)

    dw, dh = shown.size
    assert (dw, dh) == (size if orientation <= 4 else size[::-1])
    left, top, width, height = factory.displayed_rect(size, rect, orientation)
    expected = (left * dw, top * dh, (left + width) * dw, (top + height) * dh)
    actual = _red_bbox(shown)
    assert actual is not None
    assert _near(actual, expected, tolerance=2), (actual, expected)


def test_displayed_rect_identity_values():
    assert factory.displayed_rect((400, 300), (40, 30, 160, 120), 1) == pytest.approx(
        (0.1, 0.1, 0.3, 0.3)
    )
    # Orientation 6 (rotate 90 clockwise): stored top-left ends up top-right.
    assert factory.displayed_rect((400, 200), (0, 0, 100, 50), 6) == pytest.approx(
        (0.75, 0.0, 0.25, 0.25)
    )


@pytest.mark.parametrize("orientation", [0, 9])
def test_bad_orientation_rejected(tmp_path, orientation):
    with pytest.raises(ValueError):
        factory.displayed_rect((10, 10), (0, 0, 5, 5), orientation)
    with pytest.raises(ValueError):
        factory.jpeg_exif_rotated(tmp_path, orientation=orientation)


def test_custom_colour(tmp_path):
    path = factory.jpeg_exif_rotated(tmp_path, orientation=1, color=(0, 0, 255))
    with Image.open(path) as im:
        assert _near(im.getpixel((100, 75)), (0, 0, 255))
        assert _near(im.getpixel((300, 250)), factory.GREY)


# --------------------------------------------------------------------------- unusual modes


def test_cmyk_jpeg(tmp_path):
    with Image.open(factory.cmyk_jpeg(tmp_path)) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "CMYK", (300, 200))
        assert _near(im.getpixel((30, 30)), (255, 0, 0, 0))
        assert _near(im.getpixel((270, 30)), (0, 255, 255, 0))
        assert _near(im.getpixel((150, 190)), (0, 0, 0, 255))
    with Image.open(factory.cmyk_jpeg(tmp_path, size=(64, 48))) as im:
        assert im.size == (64, 48)


def test_tiff_16bit(tmp_path):
    with Image.open(factory.tiff_16bit(tmp_path)) as im:
        assert (im.format, im.mode, im.size) == ("TIFF", "I;16", (300, 200))
        assert im.getextrema() == (0, 65535)
        row = [im.getpixel((x, 100)) for x in range(300)]
        assert row == sorted(row)
        assert row[0] == 0 and row[-1] == 65535
        assert 32000 < row[150] < 33500
        # The same on every row.
        assert [im.getpixel((x, 0)) for x in range(300)] == row


def test_png_alpha(tmp_path):
    with Image.open(factory.png_alpha(tmp_path)) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGBA", (300, 200))
        assert im.getchannel("A").getextrema() == (0, 255)
        assert im.getpixel((0, 0)) == (0, 0, 0, 0)
        assert im.getpixel((150, 100)) == (255, 140, 0, 255)


def test_gif_single_frame(tmp_path):
    with Image.open(factory.gif_palette(tmp_path)) as im:
        assert (im.format, im.mode, im.size) == ("GIF", "P", (300, 200))
        assert getattr(im, "n_frames", 1) == 1
        assert not getattr(im, "is_animated", False)
        assert im.convert("RGB").getpixel((150, 100)) == (255, 0, 0)


def test_gif_animated(tmp_path):
    path = factory.gif_palette(tmp_path, size=(120, 80), frames=3)
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("GIF", "P", (120, 80))
        assert im.is_animated
        assert im.n_frames == 3
        assert im.convert("RGB").getpixel((60, 40)) == (255, 0, 0)
        for frame in (1, 2):
            im.seek(frame)
            # Pillow hands out later GIF frames as RGB/RGBA, not P.
            assert im.convert("RGB").getpixel((60, 40)) == (0, 0, 255)


def test_gif_rejects_zero_frames(tmp_path):
    with pytest.raises(ValueError):
        factory.gif_palette(tmp_path, frames=0)


# --------------------------------------------------------------------------- ordinary formats


@pytest.mark.parametrize(
    "maker, fmt",
    [(factory.bmp, "BMP"), (factory.webp, "WEBP"), (factory.png, "PNG"), (factory.jpeg, "JPEG")],
)
def test_ordinary_formats(tmp_path, maker, fmt):
    for size in [(300, 200), (41, 97)]:
        with Image.open(maker(tmp_path, size=size)) as im:
            assert (im.format, im.mode, im.size) == (fmt, "RGB", size)
            im.load()
            assert len(im.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 2  # not a flat fill


def test_png_colour(tmp_path):
    with Image.open(factory.png(tmp_path, color=(10, 200, 30))) as im:
        assert im.getpixel((0, 0)) == (10, 200, 30)
        assert im.getpixel((100, 60)) == (245, 55, 225)


def test_jpeg_name_colour_and_quality(tmp_path):
    low = factory.jpeg(tmp_path, size=(400, 300), name="low.jpg", quality=20)
    high = factory.jpeg(tmp_path, size=(400, 300), name="high.jpg", quality=95)
    assert (low.name, high.name) == ("low.jpg", "high.jpg")
    assert low.stat().st_size < high.stat().st_size
    with Image.open(factory.jpeg(tmp_path)) as im:
        assert _near(im.getpixel((5, 5)), (0, 128, 0))


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    return factory.jpeg_40mp(tmp_path_factory.mktemp("big"))


def test_jpeg_40mp(big_jpeg):
    assert big_jpeg.stat().st_size > 4 * MiB
    with Image.open(big_jpeg) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (7728, 5152))
        assert not im.info.get("progressive") and not im.info.get("progression")
        im.load()  # decodes completely


# --------------------------------------------------------------------------- extreme sizes


def test_tiny(tmp_path):
    with Image.open(factory.tiny(tmp_path)) as im:
        assert (im.format, im.size) == ("PNG", (1, 1))


def test_strip(tmp_path):
    with Image.open(factory.strip(tmp_path)) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (60000, 50))
        im.load()


# --------------------------------------------------------------------------- broken or hostile


def test_truncated_jpeg(tmp_path, monkeypatch):
    path = factory.truncated_jpeg(tmp_path)
    assert 100_000 < path.stat().st_size < 1 * MiB
    assert not path.read_bytes().endswith(b"\xff\xd9")  # the end-of-image marker is gone
    with Image.open(path) as im:  # the header is intact
        assert (im.format, im.size) == ("JPEG", (640, 480))
        with pytest.raises(OSError):
            im.load()
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with Image.open(path) as im:
        im.load()


def test_random_bytes_jpg(tmp_path):
    path = factory.random_bytes_jpg(tmp_path)
    assert path.name == "noise.jpg"
    assert path.stat().st_size == 4096
    assert factory.random_bytes_jpg(tmp_path / "again").read_bytes() == path.read_bytes()
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)


def test_text_file_png(tmp_path):
    path = factory.text_file_png(tmp_path)
    assert path.name == "notes.png"
    assert "not an image" in path.read_text(encoding="utf-8")
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)


def _png_chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        yield kind, body
        pos += 12 + length


def test_decompression_bomb(tmp_path, monkeypatch):
    path = factory.decompression_bomb(tmp_path)
    assert path.stat().st_size < 1 * MiB
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)

    # Pillow accepts it as a PNG once the limit is lifted.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "L", (20000, 20000))
        im.verify()

    # The data really is 20000 rows of (filter 0, 20000 black pixels): inflate it in
    # slices, so memory stays small; zlib checks the Adler-32 at the end.
    chunks = list(_png_chunks(path.read_bytes()))
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (20000, 20000, 8, 0, 0, 0, 0)
    inflater = zlib.decompressobj()
    pending = b"".join(body for kind, body in chunks if kind == b"IDAT")
    total = 0
    zeros = bytes(16 * MiB)
    while pending:
        out = inflater.decompress(pending, len(zeros))
        pending = inflater.unconsumed_tail
        assert out == zeros[: len(out)]
        total += len(out)
    assert inflater.eof
    assert total == 20000 * (1 + 20000)


def test_svg(tmp_path):
    path = factory.svg(tmp_path)
    assert path.suffix == ".svg"
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)


# --------------------------------------------------------------------------- all of them

FAST = [name for name in factory.__all__ if name not in ("displayed_rect", "jpeg_40mp")]


@pytest.mark.parametrize("name", FAST)
def test_returns_path_in_folder_and_is_deterministic(tmp_path, name):
    maker = getattr(factory, name)
    first = maker(tmp_path / "one" / "nested")  # missing folders are created
    second = maker(str(tmp_path / "two"))  # a str is accepted too
    assert isinstance(first, Path) and first.is_file()
    assert first.parent == tmp_path / "one" / "nested"
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()


# --------------------------------------------------------------------------- camera-like files


def test_exif_block_reads_back_as_a_camera_wrote_it(tmp_path):
    path = factory.camera_jpeg(tmp_path, size=(300, 200), orientation=6)
    with Image.open(path) as im:
        assert (im.format, im.size) == ("JPEG", (300, 200))
        exif = im.getexif()
        assert exif[factory.EXIF_ORIENTATION] == 6
        assert exif[0x013B] == factory.ARTIST  # Artist
        assert exif[0x010F] == "PixCam"  # Make
        assert 0x8825 in exif and 0x8769 in exif  # GPS and EXIF sub-directories
    data = path.read_bytes()
    assert factory.SERIAL.encode() in data and factory.GPS_BYTES in data


def test_camera_jpeg_is_a_grainy_photograph(tmp_path):
    path = factory.camera_jpeg(tmp_path, size=(600, 400))
    with Image.open(path) as im:
        im.load()
        assert im.mode == "RGB"
        # Real detail and grain: many colours, not a flat fill or a smooth gradient.
        assert len(im.getcolors(maxcolors=1 << 20) or range(1 << 20)) > 20000
    assert factory.camera_jpeg(tmp_path / "again", size=(600, 400)).read_bytes() == (
        path.read_bytes()
    )


def test_with_orientation_changes_the_tag_only(tmp_path):
    upright = factory.camera_jpeg(tmp_path, size=(300, 200))
    turned = factory.with_orientation(upright, 8, tmp_path / "turned.jpg")
    a, b = upright.read_bytes(), turned.read_bytes()
    assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1
    with Image.open(turned) as im:
        assert im.getexif()[factory.EXIF_ORIENTATION] == 8


def test_tiff_48bit_is_16_bits_a_channel(tmp_path):
    path = factory.tiff_48bit(tmp_path, size=(120, 80))
    data = path.read_bytes()
    assert len(data) > 120 * 80 * 6
    with Image.open(path) as im:
        assert (im.format, im.size) == ("TIFF", (120, 80))
        assert im.tag_v2[258] == (16, 16, 16)  # bits per sample
        im.load()  # Pillow reads it (as 8-bit RGB)
        assert im.mode == "RGB"


@pytest.mark.parametrize(
    ("maker", "fmt", "least"),
    [
        (factory.jpeg_with_metadata, "JPEG", 7),
        (factory.png_with_metadata, "PNG", 5),
        (factory.webp_with_metadata, "WEBP", 5),
        (factory.tiff_with_metadata, "TIFF", 3),
        (factory.gif_with_metadata, "GIF", 3),
    ],
)
def test_files_with_metadata_open_and_carry_it(tmp_path, maker, fmt, least):
    path = maker(tmp_path)
    data = path.read_bytes()
    assert sum(secret in data for secret in factory.SECRETS) >= least
    with Image.open(path) as im:
        assert im.format == fmt
        im.load()


def test_jpeg_with_metadata_holds_each_segment(tmp_path):
    data = factory.jpeg_with_metadata(tmp_path, icc=b"\0" * 200).read_bytes()
    for marker in (b"\xff\xe1", b"\xff\xed", b"\xff\xfe", b"\xff\xe2"):
        assert marker in data
    assert b'xmpMM:DerivedFrom="' + factory.MASTER_PATH.encode() in data
    assert data.endswith(factory.TRAILER)


def test_the_slate_draws_each_letter_of_the_font(tmp_path):
    for char, rows in factory.FONT_5X7.items():
        cell = factory.glyph_cell(char, 1)
        assert cell.size == (6, 9)
        dots = [cell.getpixel((x, y)) == 255 for y in range(7) for x in range(5)]
        assert dots == [bit == "1" for row in rows for bit in row], char
    master = factory.slate_master((1536, 1024), grain=0, scale=2)
    (char, box), *_ = factory.slate_cells(factory.SLATE_ORIGIN, 2)
    assert char == factory.SLATE_LINES[0][0]
    low, high = master.crop(box).convert("L").getextrema()
    assert low <= 40 and high >= 225  # white lettering on the dark board
    assert len(set(factory.FONT_5X7.values())) == len(factory.FONT_5X7)  # no two letters alike
