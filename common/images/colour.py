"""Pixels in sRGB, and no colour profile: what a picture's profile says is put into its pixels.

A profile sent with a picture goes out whole, its free text with it (description, copyright,
the device's maker and model: a grading suite's or a photographer's words). So no profile
leaves. A picture whose profile describes other colours than sRGB's (a wide-gamut Adobe RGB,
Display P3 or ProPhoto picture, a printer's CMYK) has its pixels converted to sRGB, which a
service assumes of pixels that come without a profile; one whose profile is sRGB in all but its
words keeps its pixels as they are, and may go as it is (``scrub`` takes the profile out).

The conversion is littleCMS's (Pillow's ``ImageCms``), relative colorimetric with black point
compensation, as editors convert for a screen. A Pillow built without littleCMS sends the
pixels as they are, and says so once.
"""

import collections
import hashlib
import io
import logging
import threading
from typing import Any, Optional

from PIL import Image

from ..ground import runtime
from ..ground.logonce import log_once

try:
    from PIL import ImageCms
except ImportError:  # a Pillow built without littleCMS
    ImageCms = None  # type: ignore

log = logging.getLogger(__name__)

_RELATIVE_COLORIMETRIC = 1  # type: Any
# littleCMS's flags: no one-pixel cache (a transform is shared by threads), black point
# compensation (a profile's black is sRGB's black).
_FLAGS = 0x0040 | 0x2000  # type: Any
# The colour spaces a profile's header names (bytes 16 to 20), and the mode Pillow gives
# pixels described by each.
_SPACES = {b"RGB ": "RGB", b"GRAY": "L", b"CMYK": "CMYK"}
_KEEP = 32  # transforms kept: a process meets few distinct profiles
# Colours an sRGB-like profile must leave as they are, to within one step.
_STEPS = (0, 51, 102, 153, 204, 255)


def space(icc: bytes) -> str:
    """The mode of the pixels an ICC profile describes ("RGB", "L", "CMYK"; "" for others)."""
    return _SPACES.get(icc[16:20], "")


class Profiles:
    """The transform to sRGB of each profile met, None for those that need none."""

    def __init__(self) -> None:
        self.known = collections.OrderedDict()  # type: collections.OrderedDict
        self.lock = threading.Lock()
        self.srgb = None  # type: Any

    def transform(self, icc: bytes, mode: str) -> Any:
        """The transform from ``icc`` (for pixels of ``mode``) to sRGB RGB; None when the
        pixels are sRGB already, or the profile cannot be read (they are sent as they are)."""
        key = (hashlib.sha256(icc).digest(), mode)
        with self.lock:
            if key in self.known:
                self.known.move_to_end(key)
                return self.known[key]
        try:
            found = self._build(icc, mode)
        except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
            log.debug("a colour profile littleCMS cannot use; pixels sent as they are: %s", exc)
            found = None
        with self.lock:
            self.known[key] = found
            while len(self.known) > _KEEP:
                self.known.popitem(last=False)
        return found

    def _build(self, icc: bytes, mode: str) -> Any:
        if self.srgb is None:
            self.srgb = ImageCms.createProfile("sRGB")
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(
            source, self.srgb, mode, "RGB", _RELATIVE_COLORIMETRIC, _FLAGS
        )
        return None if _keeps_colours(transform, mode) else transform


def _keeps_colours(transform: Any, mode: str) -> bool:
    """Whether ``transform`` leaves colours as they are (a profile that is sRGB's in all but
    its words): tried on a cube of colours, or a ramp of greys."""
    if mode == "CMYK":
        return False
    if mode == "L":
        sample = Image.frombytes("L", (256, 1), bytes(range(256)))
        wanted = Image.merge("RGB", (sample, sample, sample))
    else:
        cube = bytes(v for r in _STEPS for g in _STEPS for b in _STEPS for v in (r, g, b))
        sample = wanted = Image.frombytes("RGB", (len(_STEPS) ** 3, 1), cube)
    got = transform.apply(sample)
    return max(abs(a - b) for a, b in zip(got.tobytes(), wanted.tobytes())) <= 1


def to_srgb(image: Image.Image, icc: Optional[bytes]) -> Image.Image:
    """``image`` (RGB, L or CMYK) in sRGB, as RGB or L: the same image when ``icc`` is not
    for its mode, or the pixels are sRGB already."""
    if not icc or space(icc) != image.mode:
        return image
    if ImageCms is None:
        log_once(
            log,
            logging.WARNING,
            "this Pillow has no littleCMS (PIL.ImageCms): pictures with a colour profile are "
            "sent in their own numbers, unconverted, and wide-gamut colours look dull",
        )
        return image
    transform = runtime.current().get(Profiles).transform(icc, image.mode)
    if transform is None:
        return image
    converted = transform.apply(image)
    converted.info = {}  # apply() labels it with littleCMS's sRGB profile: none goes out
    return converted.convert("L") if image.mode == "L" else converted
