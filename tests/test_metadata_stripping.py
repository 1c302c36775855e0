"""What leaves the building is pixels only: no EXIF, XMP, IPTC, comment, text chunk or trailer.

Every file here carries real metadata of its format, written byte for byte by
tests/imagefactory.py: an EXIF block with a GPS position, a body serial number and an artist;
XMP naming the master the picture was made from (``DerivedFrom="/mnt/stills/..."``); IPTC
by-line and caption; comments; PNG text chunks and a private chunk; WebP EXIF and XMP
chunks; TIFF tags; GIF comment and application extensions; and data appended after the end
of the image; and colour profiles whose free text (description, copyright, maker, model)
names the artist, the master and the camera. Each test checks the bytes that would be (or
were) sent: none of ``imagefactory.SECRETS`` is in them, their structure holds only what the
pixels need, no colour profile goes with them, and a file sent as it is decodes to exactly its
own pixels; a wide-gamut picture goes in sRGB, its colours kept.
"""

import importlib
import io
import struct
from types import SimpleNamespace
from typing import List, Tuple

import pytest
import responses
from PIL import Image, ImageChops

from pixstor_azure.ground import pixstor
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.images import prepare, scrub
from tests import imagefactory as factory
from tests.conftest import ENDPOINT, KEY, PROJECT, recording

LIMITS = [prepare.CUSTOM_VISION, prepare.VISION_40, prepare.VISION_32]
LIMIT_IDS = ["custom_vision", "vision_40", "vision_32"]


def icc() -> bytes:
    """An sRGB profile in all but its words: sRGB's primaries and curve, and free text naming
    the artist, the master and the camera."""
    return factory.icc_profile(factory.SRGB, gamma=None)


def has_cms() -> bool:
    try:
        from PIL import ImageCms  # noqa: F401
    except ImportError:
        return False
    return True


needs_cms = pytest.mark.skipif(not has_cms(), reason="this Pillow has no littleCMS")


MAKERS = {
    "jpeg": lambda d: factory.jpeg_with_metadata(d, icc=icc()),
    "jpeg-rotated": lambda d: factory.jpeg_with_metadata(d, orientation=6, icc=icc()),
    "camera": lambda d: factory.camera_jpeg(d, (900, 600)),
    "png": lambda d: factory.png_with_metadata(d, icc=icc()),
    "webp": lambda d: factory.webp_with_metadata(d, icc=icc()),
    "tiff": factory.tiff_with_metadata,
    "gif": factory.gif_with_metadata,
}


def secrets_in(data: bytes) -> List[bytes]:
    return [secret for secret in factory.SECRETS if secret in data]


def pixels(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def same_pixels(a: bytes, b: bytes) -> bool:
    return ImageChops.difference(pixels(a), pixels(b)).getbbox() is None


# --------------------------------------------------------------------------- what the bytes hold


def jpeg_segments(data: bytes) -> Tuple[List[Tuple[int, bytes]], int]:
    """(marker, payload) of every segment, and where the last scan's data ends (after EOI)."""
    assert data[:2] == b"\xff\xd8"
    segments, pos = [], 2
    while True:
        marker = data[pos + 1]
        if marker == 0xD9:
            return segments, pos + 2
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
        if marker == 0xDA:  # skip the entropy-coded data to the next real marker
            while not (data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1


def png_chunks(data: bytes) -> Tuple[List[Tuple[bytes, bytes]], int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while True:
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            return chunks, pos


def riff_chunks(data: bytes) -> List[Tuple[bytes, bytes]]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8  # nothing after the container
    chunks, pos = [], 12
    while pos < len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return chunks


JPEG_KEPT = {0xC0, 0xC1, 0xC2, 0xC4, 0xDA, 0xDB, 0xDD, 0xE0, 0xEE}


def assert_pixels_only(data: bytes, fmt: str) -> None:
    """Only what the pixels need, no colour profile, and nothing after the end of the image."""
    assert not secrets_in(data)
    assert Image.open(io.BytesIO(data)).info.get("icc_profile") is None
    if fmt == "JPEG":
        segments, end = jpeg_segments(data)
        assert end == len(data)
        assert {marker for marker, _ in segments} <= JPEG_KEPT
        for marker, payload in segments:
            if marker == 0xE0:
                assert payload[:5] == b"JFIF\0" and payload[12:14] == b"\0\0"  # no thumbnail
    elif fmt == "PNG":
        chunks, end = png_chunks(data)
        assert end == len(data)
        kinds = {kind for kind, _ in chunks}
        assert kinds <= {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"sRGB", b"gAMA"}
    elif fmt == "WEBP":
        chunks = riff_chunks(data)
        assert {kind for kind, _ in chunks} <= {b"VP8X", b"VP8 ", b"VP8L", b"ALPH"}
        for kind, body in chunks:
            if kind == b"VP8X":
                assert not body[0] & 0x2C  # no colour profile, EXIF or XMP announced
    else:
        raise AssertionError(f"{fmt} is not sent as it is by this suite")


# --------------------------------------------------------------------------- prepare


@pytest.mark.parametrize("limits", LIMITS, ids=LIMIT_IDS)
@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_no_metadata_is_left_in_what_is_prepared(tmp_path, kind, limits):
    path = MAKERS[kind](tmp_path)
    held = secrets_in(path.read_bytes())
    assert len(held) >= 3, held  # the file really carries what this test is about

    prepared = prepare.prepare(path, limits, 2048)

    assert not secrets_in(prepared.data)
    if prepared.as_is:
        assert_pixels_only(prepared.data, prepared.format)
        assert same_pixels(prepared.data, path.read_bytes())  # losslessly: the same pixels
    else:
        assert prepared.format == "JPEG"
        assert_pixels_only(prepared.data, "JPEG")


@pytest.mark.parametrize(
    ("kind", "limits", "fmt"),
    [
        ("jpeg", prepare.CUSTOM_VISION, "JPEG"),
        ("camera", prepare.VISION_32, "JPEG"),
        ("png", prepare.CUSTOM_VISION, "PNG"),
        ("webp", prepare.VISION_40, "WEBP"),
    ],
)
def test_an_upright_file_within_limits_goes_losslessly(tmp_path, kind, limits, fmt):
    path = MAKERS[kind](tmp_path)

    prepared = prepare.prepare(path, limits, 2048)

    assert prepared.as_is and prepared.format == fmt
    assert len(prepared.data) < len(path.read_bytes())
    assert same_pixels(prepared.data, path.read_bytes())


@needs_cms
@pytest.mark.parametrize(
    ("kind", "limits"),
    [
        ("jpeg", prepare.VISION_40),  # as it is
        ("jpeg-rotated", prepare.VISION_40),  # re-encoded upright
        ("png", prepare.VISION_40),
        ("webp", prepare.VISION_40),
        ("webp", prepare.CUSTOM_VISION),  # re-encoded: Custom Vision takes no WebP
    ],
)
def test_no_colour_profile_leaves_and_an_srgb_one_costs_no_re_encoding(tmp_path, kind, limits):
    path = MAKERS[kind](tmp_path)
    with Image.open(path) as stored:
        assert stored.info.get("icc_profile") == icc()  # the file carries one

    prepared = prepare.prepare(path, limits, 2048)

    assert Image.open(io.BytesIO(prepared.data)).info.get("icc_profile") is None
    assert factory.PROFILE_NOTE.encode("ascii") not in prepared.data
    if kind != "jpeg-rotated" and limits.formats >= {"WEBP"}:
        # sRGB in all but its words: the picture goes as it is, its pixels untouched.
        assert prepared.as_is and same_pixels(prepared.data, path.read_bytes())


WIDE = (90, 150, 110)  # Adobe RGB (1998) numbers, well inside sRGB's gamut


@needs_cms
@pytest.mark.parametrize("limits", [prepare.CUSTOM_VISION, prepare.VISION_40], ids=LIMIT_IDS[:2])
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_a_wide_gamut_picture_goes_in_srgb_without_its_profile(tmp_path, fmt, limits):
    expected = factory.adobe_to_srgb(WIDE)  # from the primaries, not from littleCMS
    assert max(abs(a - b) for a, b in zip(WIDE, expected)) > 40  # its numbers alone are wrong
    path = factory.flat_with_profile(tmp_path, WIDE, factory.icc_profile(), fmt)
    with Image.open(path) as stored:
        assert stored.info.get("icc_profile") == factory.icc_profile()

    prepared = prepare.prepare(path, limits, 2048)

    sent = Image.open(io.BytesIO(prepared.data))
    assert sent.info.get("icc_profile") is None and not prepared.as_is
    assert factory.PROFILE_NOTE.encode("ascii") not in prepared.data
    centre = sent.convert("RGB").getpixel((sent.width // 2, sent.height // 2))
    assert all(abs(c - e) <= 3 for c, e in zip(centre, expected)), (centre, expected)


@needs_cms
def test_a_wide_gamut_picture_reduced_goes_in_srgb(tmp_path):
    path = factory.flat_with_profile(
        tmp_path, WIDE, factory.icc_profile(), "JPEG", size=(3000, 2000)
    )

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, 1024)

    sent = Image.open(io.BytesIO(prepared.data))
    assert sent.size == (1024, 683) and sent.info.get("icc_profile") is None
    centre = sent.convert("RGB").getpixel((512, 341))
    expected = factory.adobe_to_srgb(WIDE)
    assert all(abs(c - e) <= 3 for c, e in zip(centre, expected)), (centre, expected)


# --------------------------------------------------------------------------- every path


def test_a_reduced_picture_carries_nothing_of_the_file(tmp_path):
    path = factory.camera_jpeg(tmp_path, (2400, 1600))

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, 1024)

    assert not prepared.as_is and (prepared.width, prepared.height) == (1024, 683)
    assert_pixels_only(prepared.data, "JPEG")
    assert Image.open(io.BytesIO(prepared.data)).getexif().get(factory.EXIF_ORIENTATION) is None


def test_a_picture_brought_up_to_the_minimum_side_carries_nothing(tmp_path):
    path = factory.png_with_metadata(tmp_path, size=(40, 30), icc=icc())

    prepared = prepare.prepare(path, prepare.VISION_40, 2048, 16)

    assert (prepared.width, prepared.height) == (67, 50)
    assert_pixels_only(prepared.data, "JPEG")


def test_a_picture_shrunk_under_the_byte_limit_carries_nothing(tmp_path):
    path = factory.camera_jpeg(tmp_path, (600, 400), grain=80)
    limits = prepare.Limits("Small", frozenset({"JPEG"}), max_bytes=20_000, max_side=10000)

    prepared = prepare.prepare(path, limits, 2048)

    assert prepared.width < 600 and len(prepared.data) <= 20_000
    assert_pixels_only(prepared.data, "JPEG")


def test_what_pixstors_loader_decodes_goes_without_its_metadata(tmp_path, monkeypatch):
    source = factory.jpeg_with_metadata(tmp_path / "source", icc=icc())
    opened = Image.open(source)
    assert opened.info.get("comment") or opened.info.get("exif")  # Pillow kept them in info
    monkeypatch.setattr(pixstor, "load_image", lambda name: SimpleNamespace(image=opened))

    prepared = prepare.prepare(factory.pixstor_only(tmp_path), prepare.VISION_40, 2048)

    assert not prepared.as_is
    assert_pixels_only(prepared.data, "JPEG")


def can_save_all(fmt: str) -> bool:
    Image.init()
    return fmt in Image.SAVE_ALL


@pytest.mark.skipif(not can_save_all("MPO"), reason="this Pillow cannot write MPO files (< 9.3)")
def test_an_mpo_goes_as_its_first_picture_alone(tmp_path):
    path = tmp_path / "phone.jpg"
    first = Image.new("RGB", (640, 480), (200, 10, 10))
    second = Image.new("RGB", (320, 240), (10, 10, 200))
    first.save(path, "MPO", save_all=True, append_images=[second])
    with Image.open(path) as stored:
        assert stored.format == "MPO" and stored.n_frames == 2

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, 2048)

    assert prepared.as_is and prepared.format == "JPEG"
    assert_pixels_only(prepared.data, "JPEG")
    assert len(prepared.data) < len(path.read_bytes())
    assert getattr(Image.open(io.BytesIO(prepared.data)), "n_frames", 1) == 1


def test_a_file_replaced_after_decoding_is_not_sent_in_its_new_form(tmp_path):
    path = factory.jpeg_with_metadata(tmp_path, name="photo.jpg")
    decoded = prepare.load(path, 2048)
    replacement = factory.jpeg_with_metadata(tmp_path, size=(320, 240), name="new.jpg")
    replacement.replace(path)  # a new inode under the same name, before anything is sent

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, 2048)

    assert (prepared.width, prepared.height) == (320, 240)  # the new file, decoded anew
    assert decoded.display_size == (640, 480)
    assert_pixels_only(prepared.data, prepared.format)


# --------------------------------------------------------------------------- through the plugins

PLUGINS = {
    "azureclassification": (
        "AzureClassificationPlugin",
        f"{ENDPOINT}/customvision/v3.0/Prediction/{PROJECT}/classify/iterations/M/image/nostore",
        "customvision-classify-nostore-200.handmade.json",
        {"CUSTOM_VISION_CLASSIFY_PROJECT": PROJECT, "CUSTOM_VISION_CLASSIFY_ITERATION": "M"},
    ),
    "azureobjectdetection": (
        "AzureObjectDetectionPlugin",
        f"{ENDPOINT}/customvision/v3.0/Prediction/{PROJECT}/detect/iterations/M/image/nostore",
        "customvision-detect-nostore-200.handmade.json",
        {"CUSTOM_VISION_DETECT_PROJECT": PROJECT, "CUSTOM_VISION_DETECT_ITERATION": "M"},
    ),
    "azurevision": (
        "AzureVisionPlugin",
        f"{ENDPOINT}/computervision/imageanalysis:analyze",
        "imageanalysis-analyze-200.json",
        {},
    ),
}


@pytest.fixture(params=sorted(PLUGINS))
def plugin_and_calls(request, monkeypatch):
    """Each plugin in turn, with every request it makes answered and kept."""
    name = request.param
    class_name, url, answer, settings = PLUGINS[name]
    for setting, value in {
        "CUSTOM_VISION_ENDPOINT": ENDPOINT,
        "CUSTOM_VISION_KEY": KEY,
        "AZURE_VISION_ENDPOINT": ENDPOINT,
        "AZURE_VISION_KEY": KEY,
        **settings,
    }.items():
        monkeypatch.setenv(setting, value)
    body = recording(answer)["body"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, url, json=body, status=200)
        plugin = getattr(importlib.import_module(name), class_name)()
        yield plugin, mock.calls


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_the_bytes_each_plugin_sends_carry_no_metadata(tmp_path, plugin_and_calls, kind):
    plugin, calls = plugin_and_calls
    path = MAKERS[kind](tmp_path)

    status = plugin.process("item-1", str(path))

    assert status in (PluginStatus.SUCCESS, PluginStatus.SKIPPED)  # SKIPPED: nothing found
    (call,) = calls
    sent = call.request.body
    assert not secrets_in(sent)
    fmt = Image.open(io.BytesIO(sent)).format
    assert_pixels_only(sent, fmt)
    if fmt != "JPEG" or kind in ("jpeg", "camera"):  # sent as it is: its own pixels
        assert same_pixels(sent, path.read_bytes())


@needs_cms
def test_each_plugin_sends_a_wide_gamut_picture_in_srgb(tmp_path, plugin_and_calls):
    plugin, calls = plugin_and_calls
    path = factory.flat_with_profile(tmp_path, WIDE, factory.icc_profile(), "PNG")

    plugin.process("item-1", str(path))

    (call,) = calls
    sent = Image.open(io.BytesIO(call.request.body))
    assert sent.info.get("icc_profile") is None
    centre = sent.convert("RGB").getpixel((sent.width // 2, sent.height // 2))
    expected = factory.adobe_to_srgb(WIDE)
    assert all(abs(c - e) <= 3 for c, e in zip(centre, expected)), (centre, expected)


# --------------------------------------------------------------------------- scrub on its own


def test_a_progressive_jpeg_keeps_every_scan(tmp_path):
    buffer = io.BytesIO()
    factory.photo_mosaic((400, 300)).save(buffer, "JPEG", quality=90, progressive=True)
    data = factory.insert_jpeg_segments(
        buffer.getvalue(), factory.jpeg_segment(0xFE, factory.COMMENT.encode("ascii"))
    )

    clean = scrub.pixels_only(data, "JPEG")

    assert clean is not None and clean.format == "JPEG"
    assert sum(1 for marker, _ in jpeg_segments(clean.data)[0] if marker == 0xDA) > 1
    assert not secrets_in(clean.data) and same_pixels(clean.data, data)


@pytest.mark.parametrize(
    "broken",
    [
        lambda d: d[: len(d) // 2],  # cut inside the scan: no end marker to be found
        lambda d: d[:2] + b"\xff\xf3\x00\x04ab" + d[2:],  # a marker scrub does not know
        lambda d: d[:2] + b"\x00" + d[2:],  # not a marker where one must be
    ],
    ids=["truncated", "unknown-marker", "garbage"],
)
def test_a_jpeg_scrub_cannot_be_sure_of_is_left_to_re_encoding(tmp_path, broken):
    data = factory.jpeg(tmp_path, size=(300, 200)).read_bytes()

    assert scrub.pixels_only(broken(data), "JPEG") is None


def test_a_tiff_with_only_pixels_goes_as_it_is_and_one_with_tags_does_not(tmp_path):
    plain = tmp_path / "plain.tif"
    Image.new("RGB", (120, 80), (200, 40, 40)).save(plain, "TIFF")
    tagged = factory.tiff_with_metadata(tmp_path)

    assert scrub.pixels_only(plain.read_bytes(), "TIFF") == scrub.Clean(plain.read_bytes(), "TIFF")
    assert scrub.pixels_only(tagged.read_bytes(), "TIFF") is None
    assert scrub.pixels_only(plain.read_bytes() + factory.TRAILER, "TIFF") is None


def test_a_bmp_with_bytes_after_its_pixels_is_re_encoded(tmp_path):
    path = factory.bmp(tmp_path, size=(300, 200))
    path.write_bytes(path.read_bytes() + factory.TRAILER)

    prepared = prepare.prepare(path, prepare.CUSTOM_VISION, 2048)

    assert not prepared.as_is and prepared.format == "JPEG"
    assert not secrets_in(prepared.data)


def test_formats_scrub_does_not_know_are_left_to_re_encoding():
    assert scrub.pixels_only(b"\0\0\1\0", "ICO") is None
    assert scrub.pixels_only(b"anything", None) is None
