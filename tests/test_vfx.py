"""images/vfx.py: EXR and DPX through OpenImageIO, encoded for display.

Real files, written by OpenImageIO itself: half-float EXR plates, 10-bit DPX scans. The tests
that need OpenImageIO skip where the ``[vfx]`` extra is not installed (Python 3.6, where it has
no wheel); those of its absence run everywhere, with the import made to fail.
"""

import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

import azureclassification
from pixstor_azure.ground import pixstor
from pixstor_azure.ground import setting_registry as registry
from pixstor_azure.ground.errors import ImageError, SettingsError
from pixstor_azure.ground.pixstor import PluginStatus
from pixstor_azure.ground.settings import Settings
from pixstor_azure.images import signature, vfx
from tests import sequencefactory
from tests.sources import answered
from tests.wording import assert_problem


@pytest.fixture
def oiio():
    return pytest.importorskip("OpenImageIO")


@pytest.fixture
def np():
    return pytest.importorskip("numpy")


def linear(np, image):
    """An 8-bit sRGB Pillow image as scene-linear float32 light (the sRGB curve undone)."""
    code = np.asarray(image, dtype=np.float32) / 255.0
    return np.where(code <= 0.04045, code / 12.92, ((code + 0.055) / 1.055) ** 2.4)


def write(oiio, np, path, pixels, kind="half", channels=None, **attributes):
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, kind)
    if channels:
        spec.channelnames = tuple(channels)
    for name, value in attributes.items():
        spec.attribute(name.replace("__", ":"), value)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    assert out.write_image(np.ascontiguousarray(pixels)), oiio.geterror()
    out.close()
    return str(path)


def plate(shot=3, frame=40, size=(384, 216)):
    """A frame of a generated shot: an 8-bit sRGB picture with things in it."""
    return sequencefactory.frame_image(sequencefactory.SHOTS[shot], frame, size)


def colours(image):
    return {colour for _, colour in image.getcolors()}


def mean_difference(a, b):
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def test_a_half_float_exr_plate_and_its_jpeg_proxy_look_alike(oiio, np, tmp_path):
    picture = plate()
    exr = write(oiio, np, tmp_path / "plate.1040.exr", linear(np, picture))
    proxy = tmp_path / "plate.1040.jpg"
    picture.save(proxy, quality=90)

    decoded = vfx.decode(exr)
    with Image.open(proxy) as jpeg:
        jpeg = jpeg.convert("RGB")

    assert decoded.mode == "RGB" and decoded.size == picture.size
    assert mean_difference(decoded, picture) < 0.6  # half floats keep 8-bit sRGB exactly
    assert mean_difference(decoded, jpeg) < 2.0
    # ... and near-identical for the sequences' signature: each reuses the other's answers.
    ours, theirs = signature.of(decoded), signature.of(jpeg)
    assert signature.change(ours, theirs) <= registry.SEQUENCE_THRESHOLD.default
    assert signature.moved(ours, theirs) <= registry.SEQUENCE_BOX_THRESHOLD.default


def test_the_plate_read_as_code_values_would_not_look_alike(oiio, np, tmp_path):
    """What the display encoding is for: linear light sent as it is is a dark picture."""
    picture = plate()
    light = linear(np, picture)
    raw = Image.fromarray((np.clip(light, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")
    decoded = vfx.decode(write(oiio, np, tmp_path / "plate.exr", light))
    assert mean_difference(raw, picture) > 20
    assert signature.change(signature.of(raw), signature.of(decoded)) > 0.5


@pytest.mark.parametrize(
    ("light", "code"),
    [
        (0.0, 0),
        (0.0031308, 10),  # where the curve's two parts meet (0.04045 x 255)
        (0.18, 118),  # mid grey
        (0.5, 188),
        (1.0, 255),
        (4.0, 255),  # highlights brighter than white: clipped
        (-0.5, 0),
        (float("nan"), 0),
        (float("inf"), 255),
    ],
)
def test_scene_linear_light_gets_the_srgb_transfer(oiio, np, tmp_path, light, code):
    pixels = np.full((4, 6, 3), light, dtype=np.float32)
    decoded = vfx.decode(write(oiio, np, tmp_path / "grey.exr", pixels, kind="float"))
    assert colours(decoded) == {(code, code, code)}


def test_only_the_colour_channels_are_shown(oiio, np, tmp_path):
    """An EXR's channels in any order, with alpha and depth: R, G and B are what is shown."""
    pixels = np.zeros((4, 4, 5), dtype=np.float32)
    pixels[:, :, 0] = 0.0  # A: a matte that would blacken the picture if laid over black
    pixels[:, :, 1] = 1.0  # B
    pixels[:, :, 2] = 0.18  # G
    pixels[:, :, 3] = 0.0  # R
    pixels[:, :, 4] = 1000.0  # Z
    path = write(oiio, np, tmp_path / "aov.exr", pixels, channels=("A", "B", "G", "R", "Z"))
    assert colours(vfx.decode(path)) == {(0, 118, 255)}


def test_a_grey_exr_is_shown_grey(oiio, np, tmp_path):
    pixels = np.full((4, 4, 1), 0.18, dtype=np.float32)
    path = write(oiio, np, tmp_path / "luma.exr", pixels, channels=("Y",))
    assert colours(vfx.decode(path)) == {(118, 118, 118)}


def test_a_layer_s_colour_channels_are_shown_together(oiio, np, tmp_path):
    """A render's layers: the colour of one layer, never R of one and G and B of another."""
    names = ("Z", "albedo.R", "beauty.B", "beauty.G", "beauty.R")
    pixels = np.zeros((4, 4, 5), dtype=np.float32)
    pixels[:, :, 0] = 1000.0
    pixels[:, :, 1] = 1.0  # albedo.R
    pixels[:, :, 2] = 1.0  # beauty.B
    pixels[:, :, 3] = 0.18  # beauty.G
    path = write(oiio, np, tmp_path / "layers.exr", pixels, channels=names)
    assert colours(vfx.decode(path)) == {(0, 118, 255)}


def test_a_dpx_scan_is_sent_as_its_code_values(oiio, np, tmp_path):
    codes = np.zeros((2, 3, 3), dtype=np.uint16)
    codes[0, :, :] = 445 * 64  # 10-bit 445 (a log scan's mid grey), in 16 bits
    codes[1, :, :] = 1023 * 64
    path = write(oiio, np, tmp_path / "scan.0001.dpx", codes, kind="uint16", oiio__BitsPerSample=10)
    decoded = vfx.decode(path)
    assert decoded.getpixel((0, 0)) == (111, 111, 111)  # 445 / 1023 x 255
    assert decoded.getpixel((0, 1)) == (255, 255, 255)


def test_a_dpx_of_linear_light_gets_the_srgb_transfer(oiio, np, tmp_path):
    codes = np.full((2, 2, 3), round(0.18 * 65535), dtype=np.uint16)
    path = write(
        oiio,
        np,
        tmp_path / "linear.dpx",
        codes,
        kind="uint16",
        oiio__BitsPerSample=16,
        dpx__Transfer="Linear",
    )
    assert colours(vfx.decode(path)) == {(118, 118, 118)}


def test_a_damaged_exr_is_an_image_error(oiio, np, tmp_path):
    whole = write(oiio, np, tmp_path / "whole.exr", np.full((64, 64, 3), 0.5, np.float32))
    data = Path(whole).read_bytes()
    broken = tmp_path / "broken.exr"
    broken.write_bytes(b"v/1\x01" + bytes(200))  # the magic number, then nothing of a header
    truncated = tmp_path / "truncated.exr"
    truncated.write_bytes(data[: len(data) // 2])
    for path in (broken, truncated):
        with pytest.raises(ImageError):
            vfx.decode(str(path))


# ------------------------------------------------------------------ OpenColorIO


@pytest.fixture
def config(tmp_path):
    """OpenColorIO's built-in CG config, written out as a config file."""
    ocio = pytest.importorskip("PyOpenColorIO")
    path = tmp_path / "config.ocio"
    path.write_text(ocio.Config.CreateFromBuiltinConfig("ocio://default").serialize())
    return str(path)


def test_a_view_without_tone_mapping_matches_the_srgb_transfer(
    oiio, np, tmp_path, config, monkeypatch
):
    picture = plate()
    light = linear(np, picture)
    plain = vfx.decode(write(oiio, np, tmp_path / "a.exr", light))
    monkeypatch.setenv("PIXSTOR_AZURE_OCIO_CONFIG", config)
    monkeypatch.setenv("PIXSTOR_AZURE_OCIO_DISPLAY", "sRGB - Display")
    monkeypatch.setenv("PIXSTOR_AZURE_OCIO_VIEW", "Un-tone-mapped")
    tagged = write(oiio, np, tmp_path / "b.exr", light, oiio__ColorSpace="lin_rec709_scene")
    assert mean_difference(vfx.decode(tagged), plain) < 0.6


def test_the_default_view_tone_maps_highlights(oiio, np, tmp_path, config, monkeypatch):
    pixels = np.full((2, 2, 3), 1.0, dtype=np.float32)
    path = write(oiio, np, tmp_path / "white.exr", pixels, kind="float")
    assert vfx.decode(path).getpixel((0, 0)) == (255, 255, 255)
    monkeypatch.setenv("PIXSTOR_AZURE_OCIO_CONFIG", config)
    shown = vfx.decode(path).getpixel((0, 0))
    assert 150 < shown[0] < 245  # the ACES SDR view keeps headroom above diffuse white


@pytest.mark.parametrize(
    ("name", "value", "named", "key"),
    [
        (
            "PIXSTOR_AZURE_OCIO_CONFIG",
            "{tmp}/missing.ocio",
            "PIXSTOR_AZURE_OCIO_CONFIG",
            "vfx.NOT_A_CONFIG",
        ),
        ("PIXSTOR_AZURE_OCIO_DISPLAY", "Cinema", "PIXSTOR_AZURE_OCIO_DISPLAY", "vfx.NO_DISPLAY"),
        ("PIXSTOR_AZURE_OCIO_VIEW", "Film", "PIXSTOR_AZURE_OCIO_VIEW", "vfx.NO_VIEW"),
    ],
)
def test_a_config_that_cannot_be_used_is_a_settings_error(
    oiio, np, tmp_path, config, monkeypatch, name, value, named, key
):
    path = write(oiio, np, tmp_path / "a.exr", np.zeros((2, 2, 3), np.float32))
    monkeypatch.setenv("PIXSTOR_AZURE_OCIO_CONFIG", config)
    monkeypatch.setenv(name, value.format(tmp=tmp_path))
    with pytest.raises(SettingsError) as caught:
        vfx.decode(path)
    assert_problem(caught.value, named, key)


# ------------------------------------------------------------------ without the extra


def test_openimageio_chosen_without_the_extra_is_a_settings_error_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "OpenImageIO", None)  # as if not installed: ImportError
    settings = Settings({"PIXSTOR_AZURE_VFX_DECODER": "openimageio"})
    with pytest.raises(SettingsError) as caught:
        vfx.chosen(settings, with_pixstor=True)
    assert_problem(
        caught.value, "PIXSTOR_AZURE_VFX_DECODER", "vfx.NO_OPENIMAGEIO", extra="pixstor-azure[vfx]"
    )


def test_an_ocio_config_without_opencolorio_is_a_settings_error_naming_the_extra(
    oiio, np, tmp_path, monkeypatch
):
    path = write(oiio, np, tmp_path / "a.exr", np.zeros((2, 2, 3), np.float32))
    monkeypatch.setitem(sys.modules, "PyOpenColorIO", None)
    monkeypatch.setenv("PIXSTOR_AZURE_OCIO_CONFIG", str(tmp_path / "config.ocio"))
    with pytest.raises(SettingsError) as caught:
        vfx.decode(path)
    assert_problem(
        caught.value, "PIXSTOR_AZURE_OCIO_CONFIG", "vfx.NO_OPENCOLORIO", extra="pixstor-azure[vfx]"
    )


@pytest.mark.parametrize(
    ("decoder", "with_pixstor", "installed", "expected"),
    [
        ("auto", True, True, False),  # PixStor's loader, where it is
        ("auto", False, True, True),  # the tool, with the extra
        ("auto", False, False, False),  # the tool without it: EXR and DPX are not taken
        ("pixstor", False, True, False),
        ("openimageio", True, True, True),
    ],
)
def test_which_decoder_is_chosen(monkeypatch, decoder, with_pixstor, installed, expected):
    if installed:
        pytest.importorskip("OpenImageIO")
    else:
        monkeypatch.setitem(sys.modules, "OpenImageIO", None)
        monkeypatch.setattr(vfx.Found, "__init__", _not_found)
    settings = Settings({"PIXSTOR_AZURE_VFX_DECODER": decoder})
    assert vfx.chosen(settings, with_pixstor) is expected


def _not_found(self):
    self.openimageio = False


# ------------------------------------------------------------------ through a plugin


def test_an_exr_plate_and_its_jpeg_proxy_get_the_same_classes(
    oiio, np, tmp_path, fake_classifier, store, monkeypatch
):
    """Outside PixStor (no loader of its own), the plugin reads the plate through OpenImageIO."""
    monkeypatch.setattr(pixstor, "load_image", None)
    monkeypatch.setenv("CUSTOM_VISION_CLASSIFY_THRESHOLD", "0.01")
    picture = plate(shot=5, frame=3)  # two things on a wall: blue and red
    (tmp_path / "plates").mkdir()
    exr = write(oiio, np, tmp_path / "plates" / "plate.1003.exr", linear(np, picture))
    proxy = tmp_path / "proxies" / "plate.1003.jpg"
    proxy.parent.mkdir()
    picture.save(proxy, quality=90)
    plugin = azureclassification.AzureClassificationPlugin()
    assert plugin.handles(ext=".exr")
    assert plugin.process("plate", exr) == PluginStatus.SUCCESS
    assert plugin.process("proxy", str(proxy)) == PluginStatus.SUCCESS
    classes = answered(store.read("plate", "image"))
    assert classes == answered(store.read("proxy", "image"))
    assert set(classes["azure_classes"]) >= {"blue", "red"}
