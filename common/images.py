"""Image preparation: path -> bytes a service accepts.

A file is decoded once per process however many plugins ask for it (``load`` keeps the last
few), at no more than the resolution the services are sent (JPEG draft mode, so a 40 MP photo
is decoded at a quarter of its size), turned upright by its EXIF orientation and made RGB.
``prepare`` then encodes it for one service's limits, or sends the file as it is when it
already fits and needs nothing done.
"""

import io
import logging
import math
import os
import struct
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple, Optional, Tuple, Union

from PIL import Image, ImageOps

from . import pixstor, runtime
from .errors import ImageError
from .settings import Settings

log = logging.getLogger(__name__)

_LANCZOS = getattr(Image, "Resampling", Image).LANCZOS
_ORIENTATION = 0x0112
_ROTATED = {5, 6, 7, 8}  # orientations that swap width and height


class Limits(NamedTuple):
    """What one service accepts. Sizes in pixels, counts in bytes."""

    service: str
    formats: frozenset
    max_bytes: int
    max_side: int
    min_side: int = 1
    max_aspect: Optional[float] = None


CUSTOM_VISION = Limits(
    "Custom Vision",
    frozenset({"JPEG", "PNG", "BMP", "GIF"}),
    max_bytes=4_000_000,
    max_side=10240,
    max_aspect=25.0,
)
VISION_40 = Limits(
    "Azure AI Vision 4.0",
    frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF", "MPO"}),
    max_bytes=20_000_000,
    max_side=15999,
    min_side=50,
)
VISION_32 = Limits(
    "Azure AI Vision 3.2",
    frozenset({"JPEG", "PNG", "GIF", "BMP"}),
    max_bytes=4_000_000,
    max_side=15999,
    min_side=50,
)


class PreparedImage(NamedTuple):
    """The bytes to send, and the geometry needed to map results back onto the file."""

    data: bytes
    format: str
    width: int  # of the image sent
    height: int
    display_width: int  # of the file as displayed (EXIF orientation applied), full size
    display_height: int
    as_is: bool  # the file's own bytes, untouched


class Decoded:
    """A file decoded once: upright, RGB or L, no larger than ``max_edge`` on its long side."""

    def __init__(
        self,
        path: str,
        format: Optional[str],
        file_size: int,
        display_size: Tuple[int, int],
        image: Image.Image,
        untouched: bool,
        raw: Optional[bytes],
    ) -> None:
        self.path = path
        self.format = format
        self.file_size = file_size
        self.display_size = display_size
        self.image = image
        self.untouched = untouched  # pixels as stored in the file: no rotation, conversion...
        self.raw = raw  # the file's bytes, kept when small enough to be sent as they are
        self.prepared = {}  # type: Dict[Limits, PreparedImage]


_AS_IS_MAX_BYTES = max(lim.max_bytes for lim in (CUSTOM_VISION, VISION_40, VISION_32))


class DecodedFiles:
    """The last few files this process decoded (or found broken), for the other plugins."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.entries = OrderedDict()  # type: OrderedDict
        self.lock = threading.Lock()


def _decoded() -> DecodedFiles:
    return runtime.current().get(DecodedFiles)


def prepare(
    path: Union[str, os.PathLike], limits: Limits, max_edge: int, min_edge: int = 1
) -> PreparedImage:
    """The image at ``path`` made acceptable to ``limits``; raises ImageError when it cannot be.

    ``max_edge`` caps the long side sent; images whose short side is under
    ``min_edge`` are refused as too small to be worth a call.
    """
    decoded = load(path, max_edge)
    if min(decoded.display_size) < min_edge:
        raise ImageError(
            f"{_size(decoded.display_size)} is too small to analyse "
            f"(PIXSTOR_AZURE_MIN_SIDE is {min_edge} px)"
        )
    files = _decoded()
    with files.lock:
        prepared = decoded.prepared.get(limits)
    if prepared is None:
        prepared = _encode(decoded, limits, max_edge)
        with files.lock:
            decoded.prepared[limits] = prepared
    return prepared


def load(path: Union[str, os.PathLike], max_edge: int) -> Decoded:
    path = os.fspath(path)
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise ImageError(f"cannot read the file ({exc.strerror or exc})") from None
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, max_edge)
    files = _decoded()
    with files.lock:
        entry = files.entries.get(key)
        if entry is not None:
            files.entries.move_to_end(key)
    if entry is None:
        try:
            entry = _decode(path, stat.st_size, max_edge)
        except ImageError as exc:
            entry = exc  # a broken file is tried once, not once per plugin
        with files.lock:
            files.entries[key] = entry
            while len(files.entries) > files.size:
                files.entries.popitem(last=False)
    if isinstance(entry, ImageError):
        raise ImageError(str(entry))
    return entry


def set_cache_size(size: int) -> None:
    """How many decoded files to keep: at least the number of files worked on at once."""
    files = _decoded()
    with files.lock:
        files.size = max(1, size)


def clear_cache() -> None:
    files = _decoded()
    with files.lock:
        files.entries.clear()


def _decode(path: str, file_size: int, max_edge: int) -> Decoded:
    try:
        # A file small enough to be sent as it is is read once, and decoded from memory.
        raw = Path(path).read_bytes() if file_size <= _AS_IS_MAX_BYTES else None
        with warnings.catch_warnings():
            # Pillow warns from 89 MP and refuses from 179 MP: the refusal is the guard we
            # keep; a warning per large scan would only fill PixStor's log.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw) if raw is not None else path) as im:
                return _decode_open(im, path, file_size, max_edge, raw)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"refused as a possible decompression bomb ({exc})") from None
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        return _decode_with_fallback(path, file_size, max_edge)
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        MemoryError,
        IndexError,
        KeyError,
        TypeError,
        struct.error,
    ) as exc:
        # Pillow reports corrupt data with any of these, depending on format and version
        # (past Image.open too: a truncated GIF's later frames, a TIFF's bad next-IFD offset).
        raise ImageError(f"corrupt or truncated image data ({_short(exc)})") from None


def _decode_open(
    im: Image.Image, path: str, file_size: int, max_edge: int, raw: Optional[bytes]
) -> Decoded:
    stored = im.size
    if min(stored) < 1:
        raise ImageError("the image has no pixels")
    orientation = _orientation(im)
    display = (stored[1], stored[0]) if orientation in _ROTATED else stored
    fmt = im.format
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        im.seek(0)  # animations are judged by their first frame
    scale = min(1.0, max_edge / max(stored))
    if scale < 1.0 and fmt in ("JPEG", "MPO"):  # MPO: a camera or phone JPEG with extras
        im.draft(im.mode, (math.ceil(stored[0] * scale), math.ceil(stored[1] * scale)))
    im.load()
    image = ImageOps.exif_transpose(im) if orientation != 1 else im
    converted = to_rgb(image)
    image = _fit_edge(converted, max_edge)
    untouched = orientation == 1 and frames == 1 and image is im and im.size == stored
    if image is im:
        image = im.copy()  # detach from the file, which the caller closes
    return Decoded(path, fmt, file_size, display, image, untouched, raw if untouched else None)


def _decode_with_fallback(path: str, file_size: int, max_edge: int) -> Decoded:
    if pixstor.load_image is None:
        raise ImageError("not an image Pillow can read") from None
    try:
        im = pixstor.load_image(path).image
        im.load()
    except Exception as exc:
        raise ImageError(f"not an image Pillow or PixStor can read ({_short(exc)})") from None
    upright = ImageOps.exif_transpose(im)
    image = _fit_edge(to_rgb(upright), max_edge)
    return Decoded(path, None, file_size, upright.size, image, untouched=False, raw=None)


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not cost us the picture
        return 1
    return value if 1 <= value <= 8 else 1


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB or L, with transparency laid on white and deep images brought to 8 bits."""
    mode = im.mode
    if mode in ("RGB", "L"):
        return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        top = 65535 if mode.startswith("I;16") or (im.getextrema()[1] or 0) > 255 else 255
        return im.convert("I").point(lambda v: v * (255 / top)).convert("L")
    if mode == "F":
        low, high = im.getextrema()
        span = (high - low) or 1.0
        return im.point(lambda v: (v - low) * (255 / span)).convert("L")
    if mode == "1":
        return im.convert("L")
    if mode == "P" and "transparency" not in im.info:
        return im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa", "P"):
        rgba = im.convert("RGBA")
        # White, not black: logos and line art are mostly dark on transparent.
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX...


def _fit_edge(im: Image.Image, max_edge: int) -> Image.Image:
    if max(im.size) <= max_edge:
        return im
    scale = max_edge / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, _LANCZOS, reducing_gap=3.0)


def _encode(decoded: Decoded, limits: Limits, max_edge: int) -> PreparedImage:
    # The geometry is judged on the file's own size, not the reduced copy: rounding a long
    # strip down to a few pixels must not decide whether it fits.
    width, height = decoded.display_size
    long_side, short_side = max(width, height), min(width, height)
    if limits.max_aspect and long_side / short_side > limits.max_aspect:
        raise ImageError(
            f"{_size(decoded.display_size)} is too long and thin for {limits.service} "
            f"(at most {limits.max_aspect:g}:1)"
        )
    scale = min(1.0, max_edge / long_side, limits.max_side / long_side)
    if short_side * scale < limits.min_side:
        # The service's minimum wins over the preferred long edge.
        scale = limits.min_side / short_side
        if long_side * scale > limits.max_side:
            raise ImageError(
                f"{_size(decoded.display_size)} cannot be brought within {limits.service}'s "
                f"limits ({limits.min_side} to {limits.max_side} px a side)"
            )
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if (
        scale == 1.0
        and decoded.raw is not None
        and decoded.format in limits.formats
        and len(decoded.raw) <= limits.max_bytes
    ):
        return _prepared(decoded, decoded.raw, decoded.format, size, as_is=True)
    image = decoded.image
    if image.size != size:
        image = image.resize(size, _LANCZOS)
    for quality in (90, 80, 70, 60):
        data = _jpeg(image, quality)
        if len(data) <= limits.max_bytes:
            return _prepared(decoded, data, "JPEG", image.size, as_is=False)
    while min(image.size) * 0.75 >= limits.min_side:
        # Truncate, not round: round(2 * 0.75) is 2, and the loop would never end.
        image = image.resize((int(image.width * 0.75), int(image.height * 0.75)), _LANCZOS)
        data = _jpeg(image, 70)
        if len(data) <= limits.max_bytes:
            return _prepared(decoded, data, "JPEG", image.size, as_is=False)
    raise ImageError(f"cannot be encoded under {limits.service}'s {limits.max_bytes} byte limit")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _prepared(
    decoded: Decoded, data: bytes, fmt: str, size: Tuple[int, int], as_is: bool
) -> PreparedImage:
    prepared = PreparedImage(data, fmt, size[0], size[1], *decoded.display_size, as_is=as_is)
    log.debug(
        "%s: %s %s, %d bytes -> %s %s, %d bytes%s",
        decoded.path,
        _size(decoded.display_size),
        decoded.format,
        decoded.file_size,
        _size(size),
        fmt,
        len(data),
        " (as it is)" if as_is else "",
    )
    return prepared


def _size(size: Tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]} px"


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]


def edge_settings(settings: Settings) -> Tuple[int, int]:
    """(max_edge, min_edge) for ``prepare``, shared by every plugin."""
    return (
        settings.integer("PIXSTOR_AZURE_MAX_LONG_EDGE", 2048, 64, 16000),
        settings.integer("PIXSTOR_AZURE_MIN_SIDE", 16, 1, 1000),
    )
