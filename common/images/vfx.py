"""EXR and DPX through OpenImageIO (``pixstor-azure[vfx]``), encoded for display.

Inside PixStor its own loader decodes EXR and DPX; where it is absent (the command-line tool),
or where ``PIXSTOR_AZURE_VFX_DECODER`` is ``openimageio``, this module does. A service judges
a picture as a person sees it on a screen, so the pixels it is sent must be display-encoded:

* EXR holds scene-linear light. It is encoded with the sRGB transfer (IEC 61966-2-1), or,
  when ``PIXSTOR_AZURE_OCIO_CONFIG`` names an OpenColorIO config, through a view of that
  config, from the colour space the file names when the config knows it, else from the
  config's ``scene_linear`` role. A half-float plate and the sRGB JPEG proxy made from it then
  come out near-identical (``tests/test_vfx.py``).
* DPX holds code values: log (a film scan), or video. They are sent as they are, unless the
  header says the light is linear (``dpx:Transfer`` Linear); with a config, a colour space the
  file names and the config knows is shown through the view like an EXR.

Only the colour channels are shown (R, G and B, or the first channel of a grey picture): alpha
is not laid over anything, as a compositor's viewer shows a plate. Values outside 0 to 1 are
clipped after the encoding, and NaN and infinities, which renders can hold, count as black and
white. OpenImageIO, numpy and OpenColorIO are imported only when a file needs them.
"""

import importlib.util
import os
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple

from PIL import Image

from ..ground import runtime
from ..ground.errors import ImageError, Problem
from ..ground.setting_registry import OCIO_CONFIG, OCIO_DISPLAY, OCIO_VIEW, VFX_DECODER
from ..ground.settings import Settings

EXTRA = "pixstor-azure[vfx]"
EXTENSIONS = frozenset({".exr", ".dpx"})
MIME_TYPES = frozenset({"image/x-exr", "image/x-dpx", "image/aces"})
# The errors OpenImageIO's and OpenColorIO's Python bindings raise on a bad file or config
# (their own exception classes derive from these).
_LIBRARY_ERRORS = (RuntimeError, ValueError, TypeError, OSError, IndexError)

# What is wrong with PIXSTOR_AZURE_VFX_DECODER and PIXSTOR_AZURE_OCIO_..., in their words.
NO_OPENIMAGEIO = Problem(
    "needs OpenImageIO and numpy, which cannot be imported on this Python ({reason}): install "
    "them with pip install '{extra}' (Python 3.8 and later), or leave EXR and DPX to PixStor's "
    "loader"
)
NO_OPENCOLORIO = Problem(
    "is set, but OpenColorIO cannot be imported on this Python ({reason}): install it with pip "
    "install '{extra}', or unset it for the sRGB transfer"
)
NOT_A_CONFIG = Problem("cannot be read as an OpenColorIO config ({reason})")
NO_DISPLAY = Problem("names no display of {config}; it has: {displays}")
NO_VIEW = Problem("names no view of the display {display}; it has: {views}")
CANNOT_SHOW = Problem("cannot show {source} on {display}, {view} ({reason})")


class Libraries(NamedTuple):
    oiio: Any
    numpy: Any


class Found:
    """Whether OpenImageIO is installed, looked up once per process without importing it:
    ``handles`` asks for every file PixStor indexes."""

    def __init__(self) -> None:
        self.openimageio = importlib.util.find_spec("OpenImageIO") is not None


def available() -> bool:
    """Whether OpenImageIO is installed here (it may still fail to load: ``libraries``)."""
    return runtime.current().get(Found).openimageio


def chosen(settings: Settings, with_pixstor: bool) -> bool:
    """Whether this module decodes EXR and DPX with these settings, PixStor's loader being
    there (``with_pixstor``) or not; a SettingsError naming the extra when
    ``PIXSTOR_AZURE_VFX_DECODER`` is openimageio and OpenImageIO cannot be used."""
    decoder = settings.get(VFX_DECODER)
    if decoder == "openimageio":
        libraries(VFX_DECODER.name)
        return True
    if decoder == "pixstor":
        return False
    return not with_pixstor and available()


def libraries(setting: str = VFX_DECODER.name) -> Libraries:
    """OpenImageIO and numpy, or a SettingsError on ``setting`` saying how to get them."""
    try:
        import numpy
        import OpenImageIO as oiio
    except (ImportError, OSError) as exc:  # OSError: a shared library that does not load
        raise NO_OPENIMAGEIO.error(setting, reason=_first_line(exc), extra=EXTRA) from None
    return Libraries(oiio, numpy)


def decode(path: str) -> Image.Image:
    """The EXR or DPX at ``path`` as an 8-bit RGB Pillow image for display, at its own size.

    ImageError when it cannot be read; SettingsError when OpenImageIO (or OpenColorIO, with a
    config set) is missing, or the config, display or view cannot be used.
    """
    settings = Settings.load()
    libs = libraries()
    view = settings.built(("ocio-view",), lambda: _view(settings))
    light, space = _read(libs, path)
    np = libs.numpy
    light = np.nan_to_num(light, nan=0.0, posinf=1.0, neginf=0.0)
    if view is not None and (space.linear or view.knows(space.name)):
        encoded = view.apply(light, space)
    elif space.linear:
        encoded = srgb_encode(np, light)
    else:
        encoded = light
    eight = (np.clip(encoded, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(eight), "RGB")


def srgb_encode(np: Any, light: Any) -> Any:
    """Linear light (0 to 1) to sRGB code values (0 to 1), IEC 61966-2-1's two-part curve."""
    low = light * 12.92
    high = 1.055 * np.power(np.maximum(light, 0.0031308), 1.0 / 2.4) - 0.055
    return np.where(light <= 0.0031308, low, high)


class Space(NamedTuple):
    """What a file says of its colours."""

    name: str  # the colour space it names ("" for none)
    linear: bool  # scene-linear light (EXR; a DPX whose transfer is Linear)


def _read(libs: Libraries, path: str) -> Tuple[Any, Space]:
    """The file's colour channels as float32 (height, width, 3), and its colour space."""
    oiio = libs.oiio
    try:
        reader = oiio.ImageInput.open(path)
    except _LIBRARY_ERRORS as exc:
        raise ImageError(f"not a picture OpenImageIO can read ({_first_line(exc)})") from None
    if reader is None:
        raise ImageError(f"not a picture OpenImageIO can read ({_oiio_error(oiio)})")
    try:
        spec = reader.spec()
        if spec.width < 1 or spec.height < 1 or spec.nchannels < 1:
            raise ImageError("the image has no pixels")
        channels = _colour_channels(spec.channelnames)
        first, last = min(channels), max(channels) + 1
        try:
            pixels = reader.read_image(0, 0, first, last, "float")
        except _LIBRARY_ERRORS as exc:
            raise ImageError(f"corrupt or truncated image data ({_first_line(exc)})") from None
        if pixels is None:
            raise ImageError(f"corrupt or truncated image data ({_oiio_error(oiio)})")
        space = _space(spec, reader.format_name())
    finally:
        reader.close()
    np = libs.numpy
    pixels = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, last - first)
    picked = [c - first for c in channels]
    if len(set(picked)) == 1:
        return np.repeat(pixels[:, :, picked[:1]], 3, axis=2), space
    return pixels[:, :, picked], space


def _colour_channels(names: Sequence[str]) -> Tuple[int, int, int]:
    """The indices of R, G and B: those without a layer name, else those of the first layer
    that has all three (``beauty.R``...); else the first channels that are not alpha or
    depth, a grey picture's one channel three times."""
    layers: Dict[str, Dict[str, int]] = {}
    for index, name in enumerate(names):
        layer, _, channel = name.rpartition(".")
        if channel.upper() in ("R", "G", "B"):
            layers.setdefault(layer, {}).setdefault(channel.upper(), index)
    complete = [layer for layer, found in layers.items() if len(found) == 3]
    if complete:
        found = layers["" if "" in complete else complete[0]]
        return (found["R"], found["G"], found["B"])
    plain = [i for i, n in enumerate(names) if n.rpartition(".")[2].upper() not in ("A", "Z")]
    plain = plain or [0]
    if len(plain) < 3:
        return (plain[0], plain[0], plain[0])
    return (plain[0], plain[1], plain[2])


def _space(spec: Any, format_name: str) -> Space:
    name = spec.get_string_attribute("oiio:ColorSpace") or ""
    if format_name == "openexr":
        return Space(name, True)
    transfer = spec.get_string_attribute("dpx:Transfer") or ""
    return Space(name, transfer.lower() == "linear" or name.lower().startswith("lin"))


class View:
    """An OpenColorIO config's display and view, with one processor per source colour space."""

    def __init__(self, ocio: Any, config: Any, display: str, view: str) -> None:
        self.ocio = ocio
        self.config = config
        self.display = display
        self.view = view
        self.processors: Dict[str, Any] = {}

    def knows(self, name: str) -> bool:
        return bool(name) and self.config.getColorSpace(name) is not None

    def apply(self, light: Any, space: Space) -> Any:
        """``light`` (float32, height x width x 3) shown through the view, from ``space``."""
        source = space.name if self.knows(space.name) else self.ocio.ROLE_SCENE_LINEAR
        processor = self.processors.get(source)
        if processor is None:
            transform = self.ocio.DisplayViewTransform(
                src=source, display=self.display, view=self.view
            )
            try:
                processor = self.config.getProcessor(transform).getDefaultCPUProcessor()
            except (*_LIBRARY_ERRORS, self.ocio.Exception) as exc:
                raise CANNOT_SHOW.error(
                    OCIO_CONFIG.name,
                    source=source,
                    display=self.display,
                    view=self.view,
                    reason=_first_line(exc),
                ) from None
            self.processors[source] = processor
        shown = light.copy()  # OpenColorIO works in place
        processor.applyRGB(shown)
        return shown


def _view(settings: Settings) -> Optional[View]:
    """The view ``PIXSTOR_AZURE_OCIO_...`` set, or None for the sRGB transfer."""
    where = settings.get(OCIO_CONFIG, "")
    if not where:
        return None
    try:
        import PyOpenColorIO as ocio
    except (ImportError, OSError) as exc:
        raise NO_OPENCOLORIO.error(OCIO_CONFIG.name, reason=_first_line(exc), extra=EXTRA) from None
    if not where.startswith("ocio://"):  # OpenColorIO's own built-in configs
        where = os.path.expanduser(where)
    try:
        config = ocio.Config.CreateFromFile(where)
    except (*_LIBRARY_ERRORS, ocio.Exception, ocio.ExceptionMissingFile) as exc:
        raise NOT_A_CONFIG.error(OCIO_CONFIG.name, reason=_first_line(exc)) from None
    display = settings.get(OCIO_DISPLAY, "") or config.getDefaultDisplay()
    if display not in config.getDisplays():
        raise NO_DISPLAY.error(
            OCIO_DISPLAY.name,
            config=OCIO_CONFIG.name,
            displays=", ".join(config.getDisplays()),
        )
    view = settings.get(OCIO_VIEW, "") or config.getDefaultView(display)
    if view not in config.getViews(display):
        raise NO_VIEW.error(
            OCIO_VIEW.name, display=display, views=", ".join(config.getViews(display))
        )
    return View(ocio, config, display, view)


def _oiio_error(oiio: Any) -> str:
    return _first_line(oiio.geterror() or "no reason given")


def _first_line(what: object) -> str:
    return (str(what).strip() or type(what).__name__).splitlines()[0][:200]
