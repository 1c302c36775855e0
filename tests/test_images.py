"""common.images: what reaches a service is upright RGB within its limits, or the file as it is.

Every image comes from tests/imagefactory.py (or is built here with Pillow); each test decodes
what would be sent and checks its pixels and size, not only that nothing raised.
"""

import io
import os
import random
import re
import statistics
import struct
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import List, Tuple

import pytest
from PIL import Image, ImageChops, ImageStat, JpegImagePlugin

from pixstor_azure.ground import budget, pixstor
from pixstor_azure.ground.errors import ImageError, SettingsError
from pixstor_azure.images import memory, prepare
from tests import imagefactory as factory
from tests.wording import assert_is

LIMITS = [prepare.CUSTOM_VISION, prepare.VISION_40, prepare.VISION_32]
_BICUBIC = getattr(Image, "Resampling", Image).BICUBIC
_LANCZOS = getattr(Image, "Resampling", Image).LANCZOS
LIMIT_IDS = ["custom_vision", "vision_40", "vision_32"]
MAX_EDGE = 2048

RED = (255, 0, 0)
WHITE = (255, 255, 255)


def body(prepared: prepare.PreparedImage) -> Image.Image:
    """The image a service would decode from the bytes sent."""
    im = Image.open(io.BytesIO(prepared.data))
    im.load()
    assert im.format == prepared.format
    assert im.size == (prepared.width, prepared.height)
    return im


def without_segment(data: bytes, marker: int) -> bytes:
    """A JPEG's bytes with every segment of ``marker`` (before the first scan) cut out."""
    out, pos = bytearray(data[:2]), 2
    while data[pos + 1] != 0xDA:
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if data[pos + 1] != marker:
            out += data[pos : pos + 2 + length]
        pos += 2 + length
    return bytes(out + data[pos:])


def near(actual, expected, tolerance=24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


def rgb_at(im: Image.Image, fx: float, fy: float) -> tuple:
    """The RGB pixel at a fraction of the width and height."""
    x = min(im.width - 1, int(im.width * fx))
    y = min(im.height - 1, int(im.height * fy))
    return im.convert("RGB").getpixel((x, y))


def red_bbox(im: Image.Image):
    """Bounding box of the clearly red pixels."""
    r, g, b = im.convert("RGB").split()
    high = r.point(lambda v: 255 if v > 200 else 0)
    low_g = g.point(lambda v: 255 if v < 80 else 0)
    low_b = b.point(lambda v: 255 if v < 80 else 0)
    return ImageChops.multiply(ImageChops.multiply(high, low_g), low_b).getbbox()


@pytest.fixture
def opens(monkeypatch):
    """Every PIL.Image.open call made through common.images, in order."""
    calls = []
    real_open = prepare.Image.open

    def counting_open(fp, *args, **kwargs):
        calls.append(fp)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(prepare.Image, "open", counting_open)
    return calls


@pytest.fixture(scope="module")
def photo_40mp(tmp_path_factory):
    return factory.jpeg_40mp(tmp_path_factory.mktemp("big"))


# --------------------------------------------------------------------------- as it is


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
@pytest.mark.parametrize(
    ("make", "fmt"), [(factory.jpeg, "JPEG"), (factory.png, "PNG")], ids=["jpeg", "png"]
)
def test_small_file_within_limits_is_sent_byte_identical(tmp_path, make, fmt, limits):
    path = make(tmp_path, size=(300, 200))

    prepared = prepare.prepare(path, limits, MAX_EDGE, 16)

    assert prepared.as_is
    assert prepared.data == path.read_bytes()
    assert prepared.format == fmt
    assert (prepared.width, prepared.height) == (300, 200)
    assert (prepared.display_width, prepared.display_height) == (300, 200)


# --------------------------------------------------------------------------- EXIF orientation

STORED = (400, 300)
RECT = (40, 30, 200, 90)  # asymmetric: each orientation puts it somewhere else


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_before_sending(tmp_path, orientation):
    path = factory.jpeg_exif_rotated(tmp_path, orientation=orientation, size=STORED, rect=RECT)

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)

    upright = STORED if orientation <= 4 else STORED[::-1]
    assert (prepared.display_width, prepared.display_height) == upright
    assert (prepared.width, prepared.height) == upright
    if orientation == 1:
        # Upright already: the file's own coded pixels go, only the EXIF block is taken out.
        assert prepared.as_is
        assert prepared.data == without_segment(path.read_bytes(), 0xE1)
    else:
        assert not prepared.as_is and prepared.format == "JPEG"
    sent = body(prepared)
    if orientation != 1:
        # Re-encoded upright: no orientation tag left to make the service turn it again.
        assert sent.getexif().get(factory.EXIF_ORIENTATION, 1) == 1
    left, top, width, height = factory.displayed_rect(STORED, RECT, orientation)
    box = red_bbox(sent)
    assert box is not None
    found = (
        box[0] / sent.width,
        box[1] / sent.height,
        (box[2] - box[0]) / sent.width,
        (box[3] - box[1]) / sent.height,
    )
    assert found == pytest.approx((left, top, width, height), abs=0.02)


# --------------------------------------------------------------------------- colour modes


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
def test_cmyk_comes_out_in_the_right_rgb_colours(tmp_path, limits):
    path = factory.cmyk_jpeg(tmp_path, size=(300, 200))

    prepared = prepare.prepare(path, limits, MAX_EDGE)

    assert not prepared.as_is and prepared.format == "JPEG"
    sent = body(prepared)
    assert sent.mode == "RGB"
    assert near(rgb_at(sent, 0.25, 0.3), (0, 255, 255))  # cyan half
    assert near(rgb_at(sent, 0.75, 0.3), (255, 0, 0))  # magenta + yellow half
    assert near(rgb_at(sent, 0.5, 0.9), (0, 0, 0))  # the black bar


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
def test_16_bit_tiff_is_scaled_to_8_bits_not_clipped(tmp_path, limits):
    path = factory.tiff_16bit(tmp_path, size=(300, 200))
    with Image.open(path) as stored:
        assert stored.mode == "I;16"  # the factory wrote what this test is about

    prepared = prepare.prepare(path, limits, MAX_EDGE)

    assert not prepared.as_is and prepared.format == "JPEG"
    sent = body(prepared)
    assert sent.size == (300, 200)
    level = [sent.convert("L").getpixel((x, 100)) for x in (2, 75, 150, 225, 297)]
    # A clipped conversion would show 255 from the first few columns on.
    assert level[0] <= 6
    assert 58 <= level[1] <= 70
    assert 121 <= level[2] <= 134
    assert 185 <= level[3] <= 198
    assert level[4] >= 249


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
def test_transparent_background_becomes_white(tmp_path, limits):
    path = factory.png_alpha(tmp_path, size=(300, 200))

    prepared = prepare.prepare(path, limits, MAX_EDGE)

    assert not prepared.as_is and prepared.format == "JPEG"
    sent = body(prepared)
    assert sent.mode == "RGB"
    for corner in ((0.02, 0.02), (0.98, 0.02), (0.02, 0.98), (0.98, 0.98)):
        assert near(rgb_at(sent, *corner), WHITE, 8), corner  # not the stored (0, 0, 0, 0)
    assert near(rgb_at(sent, 0.5, 0.5), (255, 140, 0))


def test_animated_gif_is_judged_by_its_first_frame(tmp_path):
    path = factory.gif_palette(tmp_path, size=(300, 200), frames=3)
    with Image.open(path) as stored:
        assert stored.n_frames == 3

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)

    assert not prepared.as_is and prepared.format == "JPEG"
    sent = body(prepared)
    assert sent.size == (300, 200)
    for point in ((0.5, 0.5), (0.9, 0.9), (0.1, 0.9)):
        assert near(rgb_at(sent, *point), RED), point  # later frames are blue


# --------------------------------------------------------------------------- formats


def _rgb_tiff(folder: Path) -> Path:
    path = folder / "plain.tif"
    with Image.open(factory.png(folder, size=(300, 200), color=(200, 40, 40))) as im:
        im.save(path, "TIFF")
    return path


def _palette_gif(folder: Path) -> Path:
    return factory.gif_palette(folder, size=(300, 200))


@pytest.mark.parametrize(
    ("make", "colour"),
    [
        (_palette_gif, RED),  # GIF is accepted, but a palette image is made RGB
        (lambda folder: factory.webp(folder, size=(300, 200)), (0, 160, 160)),
        (lambda folder: factory.tiff_16bit(folder, size=(300, 200)), None),
        (_rgb_tiff, (200, 40, 40)),
    ],
    ids=["palette-gif", "webp", "tiff-16bit", "tiff-rgb"],
)
def test_what_custom_vision_does_not_take_becomes_jpeg(tmp_path, make, colour):
    path = make(tmp_path)

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)

    assert not prepared.as_is
    assert prepared.format == "JPEG"
    sent = body(prepared)
    assert sent.size == (300, 200)
    if colour is not None:
        assert near(rgb_at(sent, 0.9, 0.1), colour)  # the background, off the rectangle


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
def test_rgb_bmp_is_accepted_everywhere_as_it_is(tmp_path, limits):
    path = factory.bmp(tmp_path, size=(300, 200))

    prepared = prepare.prepare(path, limits, MAX_EDGE)

    assert prepared.as_is and prepared.format == "BMP"
    assert prepared.data == path.read_bytes()


@pytest.mark.parametrize(
    ("make", "fmt"),
    [(lambda folder: factory.webp(folder, size=(300, 200)), "WEBP"), (_rgb_tiff, "TIFF")],
    ids=["webp", "tiff"],
)
def test_webp_and_tiff_go_as_they_are_to_vision_40_only(tmp_path, make, fmt):
    path = make(tmp_path)

    v40 = prepare.prepare(path, prepare.VISION_40, MAX_EDGE)
    v32 = prepare.prepare(path, prepare.VISION_32, MAX_EDGE)

    assert v40.as_is and v40.format == fmt and v40.data == path.read_bytes()
    assert not v32.as_is and v32.format == "JPEG"
    assert body(v32).size == (300, 200)


# --------------------------------------------------------------------------- large images


def test_40_mp_jpeg_is_drafted_and_fits_custom_vision(photo_40mp, monkeypatch):
    drafts, loads = [], []
    real_draft = JpegImagePlugin.JpegImageFile.draft
    real_load = JpegImagePlugin.JpegImageFile.load

    def spy_draft(self, mode, size, *args, **kwargs):
        result = real_draft(self, mode, size, *args, **kwargs)
        drafts.append((tuple(size), self.size))
        return result

    def spy_load(self, *args, **kwargs):
        loads.append(self.size)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy_draft)
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy_load)

    prepared = prepare.prepare(photo_40mp, prepare.CUSTOM_VISION, MAX_EDGE, 16)

    assert photo_40mp.stat().st_size > 4_000_000  # too big to go as it is
    assert len(prepared.data) <= 4_000_000
    assert not prepared.as_is and prepared.format == "JPEG"
    assert (prepared.display_width, prepared.display_height) == (7728, 5152)
    assert (prepared.width, prepared.height) == (2048, 1365)
    # Draft asked for at least the size sent; libjpeg decoded at 1/2 scale (a quarter of the
    # pixels), and no load ever saw the full 7728x5152.
    assert len(drafts) == 1
    asked, decoded_at = drafts[0]
    assert asked[0] >= 2048 and asked[1] >= 1365
    assert decoded_at == (3864, 2576)
    assert loads and all(size == (3864, 2576) for size in loads)
    sent = body(prepared)
    assert near(rgb_at(sent, 0.75, 0.4), (30, 60, 160), 30)  # the blue rectangle
    assert near(rgb_at(sent, 0.3, 0.45), (220, 180, 40), 30)  # the yellow ellipse


def can_save_all(fmt: str) -> bool:
    Image.init()  # registers every format plugin, MPO among them
    return fmt in Image.SAVE_ALL  # the second picture needs save_all


@pytest.mark.skipif(not can_save_all("MPO"), reason="this Pillow cannot write MPO files (< 9.3)")
def test_mpo_is_drafted_like_jpeg(tmp_path, monkeypatch):
    # Many phone and camera photos carry a second picture (MPF) and open as MPO.
    path = tmp_path / "camera.jpg"
    first = Image.new("RGB", (4000, 3000), (200, 10, 10))
    first.save(path, "MPO", save_all=True, append_images=[Image.new("RGB", (400, 300), RED)])
    with Image.open(path) as stored:
        assert stored.format == "MPO" and stored.n_frames == 2
    loads = []
    real_load = JpegImagePlugin.JpegImageFile.load

    def spy_load(self, *args, **kwargs):
        loads.append(self.size)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy_load)

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, 1000)

    assert (prepared.width, prepared.height) == (1000, 750)
    assert loads and all(w <= 1000 and h <= 750 for w, h in loads)
    assert near(rgb_at(body(prepared), 0.5, 0.5), (200, 10, 10))


MAKERS = {
    "jpeg": lambda d: factory.jpeg(d, size=(300, 200)),
    "png": lambda d: factory.png(d, size=(300, 200)),
    "bmp": lambda d: factory.bmp(d, size=(300, 200)),
    "webp": lambda d: factory.webp(d, size=(300, 200)),
    "tiff-16bit": lambda d: factory.tiff_16bit(d, size=(300, 200)),
    "tiff-rgb": _rgb_tiff,
    "cmyk": lambda d: factory.cmyk_jpeg(d, size=(300, 200)),
    "alpha": lambda d: factory.png_alpha(d, size=(300, 200)),
    "gif": lambda d: factory.gif_palette(d, size=(300, 200)),
    "animated-gif": lambda d: factory.gif_palette(d, size=(300, 200), frames=3),
    "exif-rotated": lambda d: factory.jpeg_exif_rotated(d, orientation=6, size=(300, 200)),
}


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_max_edge_is_respected_for_every_format(tmp_path, kind, limits):
    path = MAKERS[kind](tmp_path)

    prepared = prepare.prepare(path, limits, 120)

    expected = (80, 120) if kind == "exif-rotated" else (120, 80)
    assert (prepared.width, prepared.height) == expected
    assert not prepared.as_is and prepared.format == "JPEG"
    assert body(prepared).size == expected
    upright = (200, 300) if kind == "exif-rotated" else (300, 200)
    assert (prepared.display_width, prepared.display_height) == upright


# --------------------------------------------------------------------------- decode once


def test_three_plugins_on_one_file_decode_it_once(tmp_path, opens):
    path = factory.jpeg(tmp_path, size=(640, 480))

    first = prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE, 16)
    v40 = prepare.prepare(path, prepare.VISION_40, MAX_EDGE, 16)
    v32 = prepare.prepare(path, prepare.VISION_32, MAX_EDGE, 16)
    again = prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE, 16)

    assert len(opens) == 1
    assert again is first
    for prepared in (first, v40, v32):
        assert prepared.data == path.read_bytes()


def test_a_broken_file_is_tried_once_for_three_plugins(tmp_path, opens):
    path = factory.truncated_jpeg(tmp_path)

    messages = set()
    for limits in (prepare.CUSTOM_VISION, prepare.CUSTOM_VISION, prepare.VISION_40):
        with pytest.raises(ImageError) as caught:
            prepare.prepare(path, limits, MAX_EDGE, 16)
        messages.add(str(caught.value))

    assert len(opens) == 1
    assert len(messages) == 1
    assert_is(messages.pop(), "prepare.CORRUPT")


def test_a_changed_file_is_decoded_again(tmp_path, opens):
    path = factory.jpeg(tmp_path, size=(640, 480), color=(0, 128, 0))
    before = prepare.prepare(path, prepare.CUSTOM_VISION, 320)
    stat = path.stat()

    factory.jpeg(tmp_path, size=(640, 480), color=(0, 0, 200))  # same name, new content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    after = prepare.prepare(path, prepare.CUSTOM_VISION, 320)

    assert len(opens) == 2
    assert near(rgb_at(body(before), 0.9, 0.1), (0, 128, 0))
    assert near(rgb_at(body(after), 0.9, 0.1), (0, 0, 200))


def test_a_touched_file_is_decoded_again_even_with_the_same_bytes(tmp_path, opens):
    path = factory.jpeg(tmp_path, size=(640, 480))
    prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)
    stat = path.stat()

    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)
    prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)

    assert len(opens) == 2


def test_clear_cache_forgets_decoded_files(tmp_path, opens):
    path = factory.jpeg(tmp_path, size=(640, 480))

    prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)
    prepare.clear_cache()
    prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)

    assert len(opens) == 2


# --------------------------------------------------------------------------- small and thin


def test_tiny_image_is_refused_by_min_edge(tmp_path):
    path = factory.tiny(tmp_path)

    with pytest.raises(ImageError) as caught:
        prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE, 16)
    assert_is(caught.value, "prepare.TOO_SMALL", size="1x1 px", min_edge=16)


def test_small_image_is_upscaled_for_vision_but_sent_as_is_to_custom_vision(tmp_path):
    path = factory.png(tmp_path, size=(40, 30), color=(0, 0, 255))

    v40 = prepare.prepare(path, prepare.VISION_40, MAX_EDGE, 16)
    v32 = prepare.prepare(path, prepare.VISION_32, MAX_EDGE, 16)
    cv = prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE, 16)

    for prepared in (v40, v32):
        assert not prepared.as_is and prepared.format == "JPEG"
        assert min(prepared.width, prepared.height) >= 50
        assert (prepared.width, prepared.height) == (67, 50)
        sent = body(prepared)
        assert near(rgb_at(sent, 0.95, 0.05), (0, 0, 255))
    assert cv.as_is and cv.data == path.read_bytes()
    assert (cv.width, cv.height) == (40, 30)


@pytest.fixture(scope="module")
def strip_png(tmp_path_factory):
    return factory.strip(tmp_path_factory.mktemp("strip"))


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        (prepare.CUSTOM_VISION, ("prepare.TOO_THIN", dict(max_aspect=25))),
        (prepare.VISION_40, ("prepare.OUTSIDE_LIMITS", dict(min_side=50, max_side=15999))),
        (prepare.VISION_32, ("prepare.OUTSIDE_LIMITS", dict(min_side=50, max_side=15999))),
    ],
    ids=LIMIT_IDS,
)
def test_60000_by_50_strip_is_refused(strip_png, limits, says):
    with pytest.raises(ImageError) as caught:
        prepare.prepare(strip_png, limits, MAX_EDGE, 16)

    key, known = says
    assert_is(caught.value, key, size="60000x50 px", service=limits.service, **known)


def test_a_strip_that_fits_at_its_own_size_is_judged_at_its_own_size(tmp_path):
    # 15000x47: reduced to the 2048 px long edge it would be 2048x6, and 6 px scaled up to
    # the 50 px minimum would overflow 15999; from the file's own size it fits.
    path = tmp_path / "strip.png"
    Image.new("RGB", (15000, 47), (200, 30, 30)).save(path)

    prepared = prepare.prepare(path, prepare.VISION_40, MAX_EDGE, 16)

    assert (prepared.width, prepared.height) == (15957, 50)
    assert Image.open(io.BytesIO(prepared.data)).size == (15957, 50)


# --------------------------------------------------------------------------- hostile files


@pytest.mark.parametrize(
    ("make", "says", "their_words"),
    [
        (factory.decompression_bomb, "prepare.BOMB", "decompression bomb DOS attack"),
        (factory.truncated_jpeg, "prepare.CORRUPT", "image file is truncated"),
        (factory.random_bytes_jpg, "source.NO_FORMAT", ""),
        (factory.text_file_png, "source.NO_FORMAT", ""),
        (factory.svg, "source.NO_FORMAT", ""),
    ],
    ids=["bomb", "truncated", "random-bytes", "text", "svg"],
)
def test_hostile_files_end_in_a_clear_image_error(tmp_path, make, says, their_words):
    path = make(tmp_path)

    with pytest.raises(ImageError) as caught:
        prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)

    assert_is(caught.value, says)
    assert their_words in str(caught.value)  # Pillow's own, where it said why
    assert caught.value.status == "SKIPPED"


def test_a_missing_file_is_an_image_error(tmp_path):
    with pytest.raises(ImageError) as caught:
        prepare.prepare(tmp_path / "gone.jpg", prepare.CUSTOM_VISION, MAX_EDGE)
    assert_is(caught.value, "source.UNREADABLE", why="No such file or directory")


def within(seconds, work, unblock=None):
    """``work()``'s result (or error), failing the test if it has not returned within
    ``seconds``; ``unblock`` then frees the thread, so that it does not outlive the test."""
    outcome = {}

    def run():
        try:
            outcome["result"] = work()
        except BaseException as exc:  # handed to the test's thread as it is
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if unblock is not None:
            unblock()
        thread.join(seconds)
        pytest.fail(f"still running after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def writer_of(fifo: Path):
    """Opens the FIFO's other end and closes it: a reader blocked on it then sees its end."""
    return lambda: os.close(os.open(str(fifo), os.O_WRONLY | os.O_NONBLOCK))


def test_a_fifo_named_like_a_picture_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "x.jpg"
    os.mkfifo(str(fifo))

    with pytest.raises(ImageError) as caught:
        within(5, lambda: prepare.prepare(fifo, prepare.CUSTOM_VISION, MAX_EDGE), writer_of(fifo))
    assert_is(caught.value, "source.NOT_REGULAR", what=" (a FIFO)")


def dev_zero(folder: Path) -> Path:
    """/dev/zero linked as a picture: it reads zeros for ever."""
    path = folder / "zero.jpg"
    path.symlink_to("/dev/zero")
    return path


def folder_jpg(folder: Path) -> Path:
    path = folder / "folder.jpg"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "what"),
    [(dev_zero, "a character device"), (folder_jpg, "a folder")],
    ids=["dev-zero", "folder"],
)
def test_devices_and_folders_named_like_pictures_are_refused_unread(tmp_path, make, what):
    path = make(tmp_path)

    with pytest.raises(ImageError) as caught:
        within(5, lambda: prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE))

    assert_is(caught.value, "source.NOT_REGULAR", what=f" ({what})")


def test_a_file_larger_than_the_size_limit_is_refused_unread(tmp_path, monkeypatch, opens):
    monkeypatch.setenv("PIXSTOR_AZURE_MAX_FILE_MB", "1")
    path = factory.camera_jpeg(tmp_path, (2400, 1800))  # about 1.5 MB
    assert path.stat().st_size > 1 << 20
    opens.clear()  # the factory's own

    with pytest.raises(ImageError) as caught:
        prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)

    assert_is(caught.value, "source.TOO_LARGE", setting="PIXSTOR_AZURE_MAX_FILE_MB", largest=1)
    assert re.match(r"1\.\d MB, ", str(caught.value))
    assert opens == []


def test_the_first_bytes_decide_whatever_the_name_says(tmp_path):
    misnamed = tmp_path / "really-a-png.jpg"
    factory.png(tmp_path, size=(300, 200)).rename(misnamed)

    prepared = prepare.prepare(misnamed, prepare.CUSTOM_VISION, MAX_EDGE)

    assert prepared.as_is and prepared.format == "PNG"


def test_a_text_chunk_larger_than_pillow_takes_is_skipped_and_the_picture_decoded(tmp_path):
    # Pillow reads a tEXt chunk whole before it counts it, and refuses 64 MB of text.
    path = factory.png_with_text_chunk(tmp_path, megabytes=70)

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)

    assert (prepared.width, prepared.height) == (64, 48)
    assert near(rgb_at(body(prepared), 0.5, 0.5), (30, 120, 200), 4)
    assert b"xxxxxxxx" not in prepared.data


def test_a_picture_larger_than_the_whole_decode_budget_is_decoded_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_DECODE_MEMORY_MB", "16")
    path = factory.png_16bit(tmp_path, size=(3000, 2000))  # 6 MP: about 34 MB to decode

    prepared = prepare.prepare(path, prepare.VISION_40, MAX_EDGE)

    assert (prepared.width, prepared.height) == (2048, 1365)
    room = memory.DecodeMemory.current()
    assert room.used == 0 and room.limit == 16 << 20


def test_a_decode_waits_for_room_no_longer_than_the_files_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_DECODE_MEMORY_MB", "16")
    path = factory.png(tmp_path, size=(600, 400))
    room = memory.DecodeMemory.current()
    started = time.monotonic()

    def in_a_file():
        with budget.limit(0.5):
            return prepare.prepare(path, prepare.VISION_40, MAX_EDGE)

    with room.reserve(16 << 20), pytest.raises(ImageError) as caught:  # another's decode
        within(10, in_a_file)

    assert 0.4 < time.monotonic() - started < 5
    assert str(caught.value) == (
        "waited all of the file's time budget (PIXSTOR_AZURE_FILE_TIMEOUT, 0.5 s) for room to "
        "decode it: other pictures held PIXSTOR_AZURE_DECODE_MEMORY_MB (16 MB)"
    )
    assert room.used == 0
    assert within(10, in_a_file).width == 600  # room again: the same file goes


def test_a_decode_waits_for_room_and_goes_when_it_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_DECODE_MEMORY_MB", "16")
    path = factory.png(tmp_path, size=(600, 400))
    room = memory.DecodeMemory.current()
    done = threading.Event()
    results = []

    def in_a_file():
        with budget.limit(60):
            results.append(prepare.prepare(path, prepare.VISION_40, MAX_EDGE))
        done.set()

    with room.reserve(16 << 20):
        threading.Thread(target=in_a_file, daemon=True).start()
        assert not done.wait(0.3)  # no room: it waits
    assert done.wait(10) and results[0].width == 600


def test_every_truncation_of_an_animated_gif_is_an_image_error_or_an_image(tmp_path):
    # Cut inside a later frame, Pillow raises struct.error while counting frames.
    data = factory.gif_palette(tmp_path, size=(300, 200), frames=3).read_bytes()
    path = tmp_path / "cut.gif"
    outcomes = set()
    for length in range(1, len(data)):
        path.write_bytes(data[:length])
        prepare.clear_cache()
        try:
            prepared = prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)
        except ImageError:
            outcomes.add("refused")
        else:
            assert prepared.format == "JPEG"
            outcomes.add("sent")
    assert outcomes == {"refused", "sent"}


def test_tiff_with_a_broken_next_frame_pointer_is_an_image_error(tmp_path):
    data = bytearray(factory.tiff_16bit(tmp_path, size=(300, 200)).read_bytes())
    assert data[:4] == b"II*\x00"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    struct.pack_into("<I", data, ifd + 2 + 12 * entries, 5000)  # "next IFD" into the pixels
    path = tmp_path / "broken.tif"
    path.write_bytes(bytes(data))

    with pytest.raises(ImageError) as caught:
        prepare.prepare(path, prepare.VISION_40, MAX_EDGE)
    assert_is(caught.value, "prepare.CORRUPT")


# --------------------------------------------------------------------------- PixStor's loader


def test_pixstor_loader_reads_what_pillow_cannot(tmp_path, monkeypatch):
    path = factory.pixstor_only(tmp_path)
    asked = []

    def load_image(name):
        asked.append(name)
        return SimpleNamespace(image=Image.new("RGB", (640, 400), (10, 200, 30)))

    monkeypatch.setattr(pixstor, "load_image", load_image)

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, 320)

    assert asked == [str(path)]
    assert not prepared.as_is and prepared.format == "JPEG"
    assert (prepared.width, prepared.height) == (320, 200)
    assert (prepared.display_width, prepared.display_height) == (640, 400)
    assert near(rgb_at(body(prepared), 0.5, 0.5), (10, 200, 30))


def test_pixstor_loader_image_is_turned_upright(tmp_path, monkeypatch):
    rotated = factory.jpeg_exif_rotated(tmp_path / "src", orientation=6, size=STORED, rect=RECT)
    monkeypatch.setattr(
        pixstor, "load_image", lambda name: SimpleNamespace(image=Image.open(rotated))
    )

    prepared = prepare.prepare(factory.pixstor_only(tmp_path), prepare.CUSTOM_VISION, MAX_EDGE)

    assert (prepared.display_width, prepared.display_height) == (300, 400)
    assert (prepared.width, prepared.height) == (300, 400)
    box = red_bbox(body(prepared))
    left, top, _, _ = factory.displayed_rect(STORED, RECT, 6)
    assert box is not None
    assert (box[0] / 300, box[1] / 400) == pytest.approx((left, top), abs=0.02)


def test_pixstor_loader_failing_is_an_image_error(tmp_path, monkeypatch):
    def load_image(name):
        raise RuntimeError("ImageMagick: no decode delegate")

    monkeypatch.setattr(pixstor, "load_image", load_image)

    with pytest.raises(ImageError) as caught:
        prepare.prepare(factory.pixstor_only(tmp_path), prepare.CUSTOM_VISION, MAX_EDGE)
    assert_is(caught.value, "prepare.NOT_PIXSTORS", why="ImageMagick: no decode delegate")


def test_pixstor_loader_is_given_only_files_whose_first_bytes_it_reads(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(pixstor, "load_image", asked.append)

    for path in (factory.random_bytes_jpg(tmp_path), factory.text_file_png(tmp_path)):
        with pytest.raises(ImageError) as caught:
            prepare.prepare(path, prepare.CUSTOM_VISION, MAX_EDGE)
        assert_is(caught.value, "source.NO_FORMAT")

    assert asked == []


def test_without_pixstor_an_unreadable_file_is_an_image_error(tmp_path, monkeypatch):
    monkeypatch.setattr(pixstor, "load_image", None)
    monkeypatch.setenv("PIXSTOR_AZURE_VFX_DECODER", "pixstor")  # OpenImageIO aside (test_vfx)

    with pytest.raises(ImageError) as caught:
        prepare.prepare(factory.pixstor_only(tmp_path), prepare.CUSTOM_VISION, MAX_EDGE)
    assert_is(caught.value, "prepare.NOT_PILLOWS")


# --------------------------------------------------------------------------- byte limits


def _noisy_jpeg(folder: Path, size=(300, 200)) -> Path:
    n = size[0] * size[1] * 3
    noise = random.Random(7).getrandbits(n * 8).to_bytes(n, "little")
    path = folder / "noisy.jpg"
    Image.frombytes("RGB", size, noise).save(path, "JPEG", quality=95)
    return path


def test_image_is_shrunk_until_it_fits_the_byte_limit(tmp_path):
    path = _noisy_jpeg(tmp_path)
    limits = prepare.Limits("Small", frozenset({"JPEG"}), max_bytes=15_000, max_side=10000)
    assert path.stat().st_size > 15_000

    prepared = prepare.prepare(path, limits, MAX_EDGE)

    assert len(prepared.data) <= 15_000
    assert prepared.format == "JPEG" and not prepared.as_is
    assert prepared.width < 300 and prepared.height < 200
    assert prepared.width / prepared.height == pytest.approx(1.5, abs=0.05)
    assert body(prepared).size == (prepared.width, prepared.height)


def test_image_that_cannot_fit_the_byte_limit_is_an_image_error(tmp_path, monkeypatch):
    encodes = []
    real_jpeg = prepare._jpeg

    def counting_jpeg(image, quality, *rest):
        encodes.append(image.size)
        assert len(encodes) < 100, "the shrinking loop does not end"
        return real_jpeg(image, quality, *rest)

    monkeypatch.setattr(prepare, "_jpeg", counting_jpeg)
    limits = prepare.Limits("Tiny", frozenset({"JPEG"}), max_bytes=100, max_side=10000)

    with pytest.raises(ImageError) as caught:
        prepare.prepare(factory.png(tmp_path, size=(300, 200)), limits, MAX_EDGE)
    assert_is(caught.value, "prepare.TOO_MANY_BYTES", service="Tiny", max_bytes=100)

    assert min(encodes[-1]) == 1  # shrunk as far as it goes before giving up


# --------------------------------------------------------------------------- geometry when reduced

BIG = (3000, 1998)  # reduced to 1000 px: exactly a third, so edges land on whole pixels
BIG_RECT = (300, 198, 1350, 900)  # asymmetric: each orientation puts it somewhere else


@pytest.mark.parametrize("orientation", range(1, 9))
def test_boxes_stay_exact_after_exif_orientation_and_reduction(tmp_path, orientation):
    # Draft decode at half size, area reduction to 1000 px, then the turn: the red rectangle
    # must land where the file shows it, to the pixel.
    path = factory.jpeg_exif_rotated(tmp_path, orientation=orientation, size=BIG, rect=BIG_RECT)

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, 1000)

    upright = (1000, 666) if orientation <= 4 else (666, 1000)
    assert (prepared.width, prepared.height) == upright
    sent = body(prepared)
    box = red_bbox(sent)
    assert box is not None
    left, top, width, height = factory.displayed_rect(BIG, BIG_RECT, orientation)
    expected = (
        left * sent.width,
        top * sent.height,
        (left + width) * sent.width,
        (top + height) * sent.height,
    )
    assert box == pytest.approx(expected, abs=1.0)


# --------------------------------------------------------------------------- small lettering
#
# A clapperboard in a film still: letters 28 px high on a 3072x2048 master, 9 px once sent at
# 1024 px (as a 24 MP still's are at 2048). Each letter is read back by comparing it, brought
# back to the master's grid the same way for every image, with every letter of the font: the
# closest must be the right one, by a clear margin.

SLATE_SIZE = (3072, 2048)
SLATE_EDGE = 1024
SLATE_INK = 234  # the lettering and the board, as grey levels
SLATE_BOARD = 30


@pytest.fixture(scope="module")
def slate(tmp_path_factory):
    return factory.slate_jpeg(tmp_path_factory.mktemp("slate"), SLATE_SIZE)


def read_slate(sent: Image.Image) -> Tuple[List[Tuple[str, str]], float]:
    """(letters misread as (right, read), median margin) of the slate's lettering in ``sent``.

    The margin of a letter is how much further its second-best match is than its best, as a
    share of the best: 0 means it could as well be another letter.
    """
    cells = list(factory.slate_cells())
    x0, y0 = min(b[0] for _, b in cells), min(b[1] for _, b in cells)
    x1, y1 = max(b[2] for _, b in cells), max(b[3] for _, b in cells)
    fx, fy = sent.width / SLATE_SIZE[0], sent.height / SLATE_SIZE[1]
    board = sent.convert("L").resize(
        (x1 - x0, y1 - y0), _BICUBIC, box=(x0 * fx, y0 * fy, x1 * fx, y1 * fy)
    )
    grey = [SLATE_BOARD + (SLATE_INK - SLATE_BOARD) * v // 255 for v in range(256)]
    glyphs = {c: factory.glyph_cell(c).point(grey) for c in factory.FONT_5X7}
    misread, margins = [], []
    for char, (left, top, right, bottom) in cells:
        cell = board.crop((left - x0, top - y0, right - x0, bottom - y0))
        scores = sorted(
            (ImageStat.Stat(ImageChops.difference(cell, glyph)).sum[0], c)
            for c, glyph in glyphs.items()
        )
        if scores[0][1] != char:
            misread.append((char, scores[0][1]))
        margins.append((scores[1][0] - scores[0][0]) / max(1.0, scores[0][0]))
    return misread, statistics.median(margins)


def ideal_margin(size: Tuple[int, int]) -> float:
    """The margin of the master reduced straight to ``size`` (Lanczos, no JPEG): the best any
    preparation can do at that size."""
    misread, margin = read_slate(factory.slate_master(SLATE_SIZE).resize(size, _LANCZOS))
    assert not misread
    return margin


def test_small_lettering_reads_as_well_as_the_ideal_at_the_quality_vision_gets(slate):
    prepared = prepare.prepare(slate, prepare.VISION_40, SLATE_EDGE)

    assert (prepared.width, prepared.height) == (1024, 683)
    misread, margin = read_slate(body(prepared))
    assert misread == []
    assert margin >= 0.8 * ideal_margin((1024, 683))


def test_every_step_of_the_quality_ladder_keeps_the_lettering(slate):
    reduced = prepare.load(slate, SLATE_EDGE).image
    best = ideal_margin(reduced.size)

    for quality in prepare.QUALITIES:
        misread, margin = read_slate(Image.open(io.BytesIO(prepare._jpeg(reduced, quality))))
        assert misread == [], quality
        assert margin >= 0.6 * best, quality


def test_the_lettering_check_sees_letters_that_are_lost(slate):
    # Sent at a third of the size, the letters are 3 px high: the check must say so.
    prepared = prepare.prepare(slate, prepare.VISION_40, 340)

    misread, margin = read_slate(body(prepared))
    assert len(misread) >= 5
    assert margin < 0.5 * ideal_margin((1024, 683))


# --------------------------------------------------------------------------- the long edges


@pytest.mark.parametrize(
    ("general", "custom", "expected"),
    [
        (None, None, (2048, 1024)),  # the defaults
        ("800", None, (800, 800)),  # the general edge caps Custom Vision's default
        ("4096", None, (4096, 1024)),  # more for read does not mean more for Custom Vision
        (None, "2048", (2048, 2048)),  # set on its own, it is what it says
    ],
)
def test_custom_vision_has_a_long_edge_of_its_own(monkeypatch, general, custom, expected):
    from pixstor_azure.ground.settings import Settings

    if general:
        monkeypatch.setenv("PIXSTOR_AZURE_MAX_LONG_EDGE", general)
    if custom:
        monkeypatch.setenv("CUSTOM_VISION_MAX_LONG_EDGE", custom)
    settings = Settings.load()

    vision = prepare.edge_settings(settings)
    custom_vision = prepare.edge_settings(settings, custom_vision=True)

    assert (vision[0], custom_vision[0]) == expected
    assert vision[1] == custom_vision[1] == 16


def test_three_plugins_at_two_edges_decode_a_file_once_from_the_second_file_on(tmp_path, opens):
    first = factory.jpeg(tmp_path / "a", size=(3000, 2000))
    second = factory.jpeg(tmp_path / "b", size=(3000, 2000))

    for path in (first, second):  # classification, detection, vision: PixStor's order
        cv = prepare.prepare(path, prepare.CUSTOM_VISION, 1024)
        again = prepare.prepare(path, prepare.CUSTOM_VISION, 1024)
        v40 = prepare.prepare(path, prepare.VISION_40, 2048)

    assert len(opens) == 3  # the first file twice (1024, then 2048), the second once
    assert again is cv and (cv.width, v40.width) == (1024, 2048)
    assert near(rgb_at(body(cv), 0.9, 0.1), (0, 128, 0))


@pytest.mark.parametrize(
    ("have", "want"), [((2048, 1365), (1024, 683)), ((2001, 1001), (1001, 501)), ((9, 9), (3, 3))]
)
def test_a_reduction_that_reduce_lands_on_needs_no_filter(monkeypatch, have, want):
    # reduce() rounds up: 1365 px halves to 683, the height Custom Vision's 1024 px copy of a
    # 2048 px picture has; a filter over the whole image would cost twice as much.
    filtered = []
    real_resize = Image.Image.resize
    monkeypatch.setattr(
        Image.Image, "resize", lambda im, *a, **k: filtered.append(a) or real_resize(im, *a, **k)
    )
    im = Image.new("RGB", have, (0, 128, 0))

    reduced = prepare._resample(im, want)

    assert reduced.size == want and filtered == []
    assert reduced.getpixel((want[0] - 1, want[1] - 1)) == (0, 128, 0)  # the last, partial block


def test_the_same_bytes_serve_every_service_that_takes_them(tmp_path, monkeypatch):
    encodes = []
    real_jpeg = prepare._jpeg
    monkeypatch.setattr(
        prepare, "_jpeg", lambda image, *rest: encodes.append(image.size) or real_jpeg(image, *rest)
    )
    path = factory.jpeg(tmp_path, size=(3000, 2000))

    cv = prepare.prepare(path, prepare.CUSTOM_VISION, 2048)
    v40 = prepare.prepare(path, prepare.VISION_40, 2048)
    v32 = prepare.prepare(path, prepare.VISION_32, 2048)

    assert encodes == [(2048, 1365)]
    assert cv.data is v40.data is v32.data


def test_pillow_may_keep_an_images_memory_for_the_next(tmp_path, monkeypatch):
    core = prepare.Image.core
    blocks = core.get_blocks_max() + 4  # more than it keeps now, whatever ran before
    asked = []  # type: List[int]
    monkeypatch.setattr(core, "set_blocks_max", asked.append)
    monkeypatch.setenv(
        "PIXSTOR_AZURE_IMAGE_MEMORY_MB", str(blocks * core.get_block_size() // (1 << 20))
    )

    prepare.prepare(factory.jpeg(tmp_path, size=(300, 200)), prepare.VISION_40, MAX_EDGE)

    assert asked == [blocks]


def test_pillows_memory_setting_is_never_lowered(tmp_path, monkeypatch):
    asked = []  # type: List[int]
    monkeypatch.setattr(prepare.Image.core, "set_blocks_max", asked.append)
    monkeypatch.setenv("PIXSTOR_AZURE_IMAGE_MEMORY_MB", "0")

    prepare.prepare(factory.jpeg(tmp_path, size=(300, 200)), prepare.VISION_40, MAX_EDGE)

    assert asked == []


def test_a_bad_memory_setting_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSTOR_AZURE_IMAGE_MEMORY_MB", "lots")

    with pytest.raises(SettingsError, match="PIXSTOR_AZURE_IMAGE_MEMORY_MB"):
        prepare.prepare(factory.jpeg(tmp_path, size=(300, 200)), prepare.VISION_40, MAX_EDGE)


@pytest.mark.parametrize("bug", [TypeError, KeyError, IndexError, ValueError])
def test_a_bug_of_ours_is_not_reported_as_a_damaged_file(tmp_path, monkeypatch, bug):
    # Pillow raises these on damaged files, so they count as damage around its calls only:
    # raised by our own code after the decode, they must surface as what they are.
    def broken(im, size):
        raise bug("a bug in our own code")

    monkeypatch.setattr(prepare, "_small_rgb", broken)

    with pytest.raises(bug, match="a bug in our own code"):
        prepare.prepare(factory.jpeg(tmp_path, size=(640, 480)), prepare.VISION_40, 320)
