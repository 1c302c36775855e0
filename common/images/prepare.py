"""Image preparation: path -> bytes a service accepts.

A file is decoded once per process however many plugins ask for it (``load`` keeps the last
few), at no more than the largest size this process sends (JPEG draft mode: libjpeg decodes a
24 MP photo at half or a quarter of its size), brought down to that size by whole-factor
``reduce()`` and an area filter, then turned upright by its EXIF orientation and made RGB.
``prepare`` encodes it for one service's limits, once per size and quality whichever services
ask, or sends the file's own coded pixels when they already fit, with every metadata block
taken out (``scrub``): what leaves is pixels only, in sRGB (``colour``), without a profile.

The file is opened by ``source`` (a regular file, never blocking, within its size limit, the
file its digest was taken of) and decoded from that open file; each decode first reserves
the memory it will hold (``memory``), and a PNG's oversized chunks are never loaded.
"""

import contextlib
import io
import logging
import math
import os
import struct
import threading
import warnings
import zlib
from collections import OrderedDict
from typing import IO, Dict, Iterator, NamedTuple, Optional, Tuple, Union, cast

from PIL import Image

from ..ground import pixstor, runtime
from ..ground.errors import FileProblem, ImageError
from ..ground.setting_registry import CV_MAX_LONG_EDGE, IMAGE_MEMORY_MB, MAX_LONG_EDGE, MIN_SIDE
from ..ground.settings import Settings
from . import colour, memory, scrub, source, vfx

log = logging.getLogger(__name__)

_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow 9.1 moved these into enums
_TRANSPOSE = getattr(Image, "Transpose", Image)
_ORIENTATION = 0x0112
_ROTATED = {5, 6, 7, 8}  # orientations that swap width and height
# What each EXIF orientation needs to be upright, as ImageOps.exif_transpose does it.
_UPRIGHT = {
    2: _TRANSPOSE.FLIP_LEFT_RIGHT,
    3: _TRANSPOSE.ROTATE_180,
    4: _TRANSPOSE.FLIP_TOP_BOTTOM,
    5: _TRANSPOSE.TRANSPOSE,
    6: _TRANSPOSE.ROTATE_270,
    7: _TRANSPOSE.TRANSVERSE,
    8: _TRANSPOSE.ROTATE_90,
}
# JPEG qualities tried in turn until the bytes fit. Quality 80 sends a 24 MP photograph's
# 2048 px image in under 5 % of the file's bytes, and a slate's 9 px lettering reads the same
# at every step as at quality 90 (tests/test_images.py reads the letters back at each). Azure
# AI Vision takes 20 MB and Custom Vision 4 MB: at the long edges used in practice, a picture
# goes at the first step.
QUALITIES = (80, 70, 60, 50)
_SHRINK_QUALITY = 60
# Pillow's ways of saying a file is damaged, depending on format and version (past
# Image.open too: a truncated GIF's later frames, a TIFF's bad next-IFD offset).
_CORRUPT = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    MemoryError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)

# What is wrong with a picture, in the words of its SKIPPED line.
TOO_SMALL = FileProblem("{size} is too small to analyse ({setting} is {min_edge} px)")
BOMB = FileProblem("refused as a possible decompression bomb ({why})")
CORRUPT = FileProblem("corrupt or truncated image data ({why})")
NO_PIXELS = FileProblem("the image has no pixels")
NOT_PILLOWS = FileProblem("not an image Pillow can read")
NOT_PIXSTORS = FileProblem("not an image Pillow or PixStor can read ({why})")
TOO_THIN = FileProblem("{size} is too long and thin for {service} (at most {max_aspect:g}:1)")
OUTSIDE_LIMITS = FileProblem(
    "{size} cannot be brought within {service}'s limits ({min_side} to {max_side} px a side)"
)
TOO_MANY_BYTES = FileProblem("cannot be encoded under {service}'s {max_bytes} byte limit")


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

_AS_IS_MAX_BYTES = max(lim.max_bytes for lim in (CUSTOM_VISION, VISION_40, VISION_32))


class PreparedImage(NamedTuple):
    """The bytes to send, and the geometry needed to map results back onto the file."""

    data: bytes
    format: str
    width: int  # of the image sent
    height: int
    display_width: int  # of the file as displayed (EXIF orientation applied), full size
    display_height: int
    as_is: bool  # the file's own coded pixels, with only its metadata taken out


class Decoded:
    """A file decoded once: upright, RGB or L in sRGB, no larger than the edge it was decoded
    for.

    It also keeps what was made from it for the plugins: the image at each size sent, each
    encoding, each service's prepared image, and the file's bytes without metadata.
    """

    # The pixels are sRGB's, and nothing else of the file is kept: no profile goes with them.
    icc = None  # type: Optional[bytes]

    def __init__(
        self,
        path: str,
        identity: source.Stamp,
        format: Optional[str],
        file_size: int,
        display_size: Tuple[int, int],
        image: Image.Image,
        untouched: bool,
        full: bool,
    ) -> None:
        self.path = path
        self.identity = identity  # what fstat said of the file these pixels are of
        self.format = format
        self.file_size = file_size
        self.display_size = display_size
        self.image = image
        self.untouched = untouched  # pixels as stored in the file: no rotation, conversion...
        self.full = full  # decoded at the file's own size
        self.sized: Dict[Tuple[int, int], Image.Image] = {}
        self.encoded: Dict[Tuple[int, int, int], bytes] = {}
        self.prepared: Dict[Tuple[Limits, int], PreparedImage] = {}
        self.clean: object = _NOT_YET

    def covers(self, edge: int) -> bool:
        """Whether an image with ``edge`` pixels on its long side can be made from this one."""
        return self.full or max(self.image.size) >= edge


_NOT_YET = object()


# Decoded files kept by default: PixStor calls the plugins one file at a time.
DEFAULT_DECODED = 3


class DecodedFiles:
    """The last few files this process decoded (or found broken), for the other plugins."""

    def __init__(self, size: int = DEFAULT_DECODED) -> None:
        self.size = size
        self.entries = OrderedDict()  # type: OrderedDict
        self.largest_edge = 0  # the longest edge any caller asked for: what files decode at
        self.lock = threading.Lock()


def _decoded() -> DecodedFiles:
    return runtime.current().get(DecodedFiles)


class PillowMemory:
    """Lets Pillow keep the memory of one image for the next (``PIXSTOR_AZURE_IMAGE_MEMORY_MB``).

    Pillow gives every freed image block back to the system by default, and takes fresh
    zeroed pages for the next picture: on virtual machines that costs a third of preparing a
    photograph (bench/run.py, with and without). This keeps up to the setting's worth of
    blocks for reuse. Pillow's setting is the process's: it is raised here, never lowered, so
    an administrator's ``PILLOW_BLOCKS_MAX`` and other plugins' choices stay.
    """

    def __init__(self) -> None:
        megabytes = Settings.load().get(IMAGE_MEMORY_MB)
        blocks = megabytes * (1 << 20) // Image.core.get_block_size()
        if Image.core.get_blocks_max() < blocks:
            Image.core.set_blocks_max(blocks)


def prepare(
    path: Union[str, os.PathLike], limits: Limits, max_edge: int, min_edge: int = 1
) -> PreparedImage:
    """The image at ``path`` made acceptable to ``limits``; raises ImageError when it cannot be.

    ``max_edge`` caps the long side sent; images whose short side is under
    ``min_edge`` are refused as too small to be worth a call.
    """
    decoded = _source(path, max_edge)
    if min(decoded.display_size) < min_edge:
        shown = _size(decoded.display_size)
        raise TOO_SMALL.error(size=shown, setting=MIN_SIDE.name, min_edge=min_edge)
    files = _decoded()
    key = (limits, max_edge)
    with files.lock:
        prepared = decoded.prepared.get(key)
    if prepared is None:
        size = _target(decoded.display_size, limits, max_edge)
        if not decoded.covers(max(size)):
            # Brought up to a service's minimum beyond what was decoded: decode more.
            decoded = _source(path, max(size), record=False)
        prepared = _encode(decoded, limits, size)
        with files.lock:
            decoded.prepared[key] = prepared
    return prepared


def load(path: Union[str, os.PathLike], max_edge: int) -> Decoded:
    """The file at ``path`` decoded: upright, RGB or L, at most ``max_edge`` on its long side."""
    decoded = _source(path, max_edge)
    if max(decoded.image.size) <= max_edge:
        return decoded
    width, height = decoded.display_size
    scale = max_edge / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return Decoded(
        decoded.path,
        decoded.identity,
        decoded.format,
        decoded.file_size,
        decoded.display_size,
        _sized(decoded, size),
        untouched=False,
        full=False,
    )


def set_cache_size(size: int) -> None:
    """How many decoded files to keep: at least the number of files worked on at once."""
    files = _decoded()
    with files.lock:
        files.size = max(1, size)


def clear_cache() -> None:
    """Forget decoded files, and the edges asked for so far."""
    files = _decoded()
    with files.lock:
        files.entries.clear()
        files.largest_edge = 0


def _source(path: Union[str, os.PathLike], edge: int, record: bool = True) -> Decoded:
    """The decoded file, from the cache when it holds enough of it.

    The file is decoded at the longest edge any caller of this process has asked for, so that
    the plugins sharing a process (Custom Vision at one size, Vision at another) decode each
    file once, whatever order they come in after the first. It is known by what ``fstat``
    says of it once opened (whatever name reaches it), and decoded from that open file: the
    pixels are those of the file its key names. A file that changed while it was decoded is
    not kept. A file decoded (or found broken) before is known again by ``stat`` alone: the
    same stamp is the same file, which passed ``source``'s checks when it was opened.
    """
    path = os.fspath(path)
    files = _decoded()
    with files.lock:
        if record:
            files.largest_edge = max(files.largest_edge, edge)
        wanted = max(edge, files.largest_edge)
    try:
        found: Optional[os.stat_result] = os.stat(path)
    except OSError:
        found = None  # opening it says why
    entry = None if found is None else _entry(files, source.stamp_of(found), path)
    if entry is not None and (isinstance(entry, ImageError) or entry.covers(edge)):
        return _found(entry)
    with source.open_picture(path, found) as opened:
        key = opened.stamp
        entry = _entry(files, key, path)
        if entry is not None and (isinstance(entry, ImageError) or entry.covers(edge)):
            return _found(entry)
        runtime.current().get(PillowMemory)
        try:
            entry = _decode(opened, path, wanted)
        except memory.NoRoom:
            raise  # the file is not at fault: it is tried again next time
        except ImageError as exc:
            entry = exc
        steady = source.stamp_of(os.fstat(opened.file.fileno())) == key
    if steady:
        with files.lock:
            files.entries[key] = entry
            files.entries.move_to_end(key)
            while len(files.entries) > files.size:
                files.entries.popitem(last=False)
    return _found(entry)


def _entry(files: DecodedFiles, key: source.Stamp, path: str) -> Union[Decoded, ImageError, None]:
    """The decoded file (or its error) kept under ``key``; a kept one must be the file first
    opened at ``path`` in this file's budget (``source.same_file``)."""
    with files.lock:
        entry = files.entries.get(key)
        if entry is not None:
            files.entries.move_to_end(key)
    if entry is not None:
        source.same_file(path, key)
    return entry


def _found(entry: Union[Decoded, ImageError]) -> Decoded:
    if isinstance(entry, ImageError):
        raise ImageError(str(entry))  # a broken file is tried once, not once per plugin
    return entry


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Around Pillow's calls only: its errors on a damaged file, as one ImageError."""
    try:
        yield
    except Image.UnidentifiedImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise BOMB.error(why=exc) from None
    except _CORRUPT as exc:
        raise CORRUPT.error(why=_short(exc)) from None


def _decode(opened: source.Opened, path: str, edge: int) -> Decoded:
    with warnings.catch_warnings():
        # Pillow warns from 89 MP and refuses from 179 MP: the refusal is the guard we
        # keep; a warning per large scan would only fill PixStor's log.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with _reading():
                fp: IO[bytes] = opened.file
                if opened.format == "PNG":
                    # A raw io file: Pillow reads it like any other (its types name typing.IO)
                    fp = cast(IO[bytes], source.png_skimmed(opened.file))
                im = Image.open(fp)
        except Image.UnidentifiedImageError:
            return _decode_with_fallback(path, opened.stamp, edge)
        with im:
            return _decode_open(im, path, opened.stamp, edge)


def _decode_open(im: Image.Image, path: str, identity: source.Stamp, edge: int) -> Decoded:
    stored = im.size
    if min(stored) < 1:
        raise NO_PIXELS.error()
    fmt = im.format
    with _reading():
        frames = getattr(im, "n_frames", 1)
        if frames > 1:
            im.seek(0)  # animations are judged by their first frame
    scale = min(1.0, edge / max(stored))
    size = (max(1, round(stored[0] * scale)), max(1, round(stored[1] * scale)))
    if scale < 1.0 and fmt in ("JPEG", "MPO"):  # MPO: a camera or phone JPEG with extras
        with _reading():
            im.draft(im.mode, (math.ceil(stored[0] * scale), math.ceil(stored[1] * scale)))
    with memory.DecodeMemory.current().reserve(_decode_bytes(im, size)):
        orientation = _orientation(im)  # a PNG's EXIF may come after its pixels: it loads them
        display = (stored[1], stored[0]) if orientation in _ROTATED else stored
        with _reading():
            im.load()
        image = _small_srgb(im, size)
        if orientation in _UPRIGHT:
            image = image.transpose(_UPRIGHT[orientation])  # after the reduction: fewer pixels
        # An MPO's first picture is a JPEG of its own: scrub sends it alone.
        single = frames == 1 or fmt == "MPO"
        untouched = orientation == 1 and single and image is im and im.size == stored
        if image is im:
            image = im.copy()  # detach from the file, which the caller closes
    image.info = {}  # EXIF, XMP, comments...: nothing of the file's goes into an encoding
    return Decoded(path, identity, fmt, identity.size, display, image, untouched, scale == 1.0)


def _decode_bytes(im: Image.Image, size: Tuple[int, int]) -> int:
    """About what decoding ``im`` (opened, drafted) to ``size`` holds at its height: its pixels
    as Pillow keeps them, and the copies made of them before they are reduced."""
    mode = im.mode
    kept = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    copies = 0
    if mode.startswith("I;16") or mode in ("1", "P", "PA"):
        copies = 12 if alpha else 4  # made RGB (or 32-bit) first: see _small_rgb
    elif im.size == size and mode not in ("RGB", "L"):
        copies = 12 if alpha else 4  # not reduced: converted at its full size
    return im.width * im.height * (kept + copies)


def _small_srgb(im: Image.Image, size: Tuple[int, int]) -> Image.Image:
    """``_small_rgb`` in sRGB: the file's colour profile put into the reduced pixels; a CMYK
    picture with its own profile is converted by it, not by Pillow's plain formula."""
    icc = im.info.get("icc_profile")
    if icc and im.mode == "CMYK" and colour.space(icc) == "CMYK":
        converted = colour.to_srgb(_resample(im, size), icc)
        if converted.mode == "RGB":
            return converted
    return colour.to_srgb(_small_rgb(im, size), icc)


def _small_rgb(im: Image.Image, size: Tuple[int, int]) -> Image.Image:
    """``im`` reduced to ``size`` and made RGB or L, converting before or after the reduction
    whichever gives the same picture for less work."""
    mode = im.mode
    if mode in ("P", "PA", "1"):  # a palette cannot be averaged: colours first
        return _resample(to_rgb(im), size)
    if mode.startswith("I;16"):
        # 16 bits a channel: reduced as 32-bit integers, then scaled to 8 bits.
        return _to_eight_bits(_resample(im.convert("I"), size), 0, 65535)
    if mode == "I":
        top = 65535 if (_extrema(im)[1] or 0) > 255 else 255
        return _to_eight_bits(_resample(im, size), 0, top)
    if mode == "F":
        low, high = _extrema(im)
        return _to_eight_bits(_resample(im, size), low, high)
    # RGB and L are returned as they are when already small; the rest (CMYK, YCbCr, LAB,
    # alpha...) converts per pixel, so on the reduced image.
    return to_rgb(_resample(im, size))


def _extrema(im: Image.Image) -> Tuple[float, float]:
    """The lowest and highest value of a one-band image (Pillow types all modes' at once)."""
    return cast(Tuple[float, float], im.getextrema())


def _to_eight_bits(im: Image.Image, low: float, high: float) -> Image.Image:
    gain = 255 / ((high - low) or 1.0)
    offset = -low * gain
    # v * gain + offset, not (v - low) * gain: Pillow 7's point() takes only that form.
    return im.point(lambda v: v * gain + offset).convert("L")


def _resample(im: Image.Image, size: Tuple[int, int]) -> Image.Image:
    """``im`` at ``size``.

    Down: whole factors by ``reduce()`` (an exact area average, for a fraction of a filter's
    cost), then the rest by an area (box) filter; after draft decoding the rest is a factor
    under 2, where a wider filter costs more than the decode and reads no better (see
    bench/run.py and the slate test). Up (to a service's minimum side): Lanczos.
    """
    if im.size == size:
        return im
    if size[0] > im.width or size[1] > im.height:
        return im.resize(size, _RESAMPLING.LANCZOS)
    factor = (_factor(im.width, size[0]), _factor(im.height, size[1]))
    if max(factor) > 1:
        im = im.reduce(factor)
    if im.size != size:
        im = im.resize(size, _RESAMPLING.BOX)
    return im


def _factor(have: int, want: int) -> int:
    """The largest whole factor ``reduce()`` can take a side of ``have`` pixels down by and
    keep at least ``want``: it rounds up, so 1365 px (a 2048 px picture's height) halves to
    683 exactly, where ``have // want`` would leave the whole height to a filter that costs
    twice as much (bench/run.py, three plugins)."""
    return have if want <= 1 else max(1, (have - 1) // (want - 1))


def _decode_with_fallback(path: str, identity: source.Stamp, edge: int) -> Decoded:
    with_pixstor = pixstor.load_image is not None
    if os.path.splitext(path)[1].lower() in vfx.EXTENSIONS and vfx.chosen(
        Settings.load(), with_pixstor
    ):
        im = vfx.decode(path)  # EXR, DPX: OpenImageIO, encoded for display
    elif not with_pixstor:
        raise NOT_PILLOWS.error() from None
    else:
        try:
            im = pixstor.load_image(path).image
            im.load()
        except Exception as exc:  # PixStor's loader (ImageMagick and others) raises anything
            raise NOT_PIXSTORS.error(why=_short(exc)) from None
    orientation = _orientation(im)
    stored = im.size
    display = (stored[1], stored[0]) if orientation in _ROTATED else stored
    scale = min(1.0, edge / max(stored))
    size = (max(1, round(stored[0] * scale)), max(1, round(stored[1] * scale)))
    image = _small_srgb(im, size)
    if orientation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[orientation])
    if image is im:
        image = im.copy()
    image.info = {}
    return Decoded(path, identity, None, identity.size, display, image, False, scale == 1.0)


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION, 1))
    except _CORRUPT:  # a broken EXIF block must not cost us the picture
        return 1
    return value if 1 <= value <= 8 else 1


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB or L, with transparency laid on white and deep images brought to 8 bits."""
    mode = im.mode
    if mode in ("RGB", "L"):
        return im
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        top = 65535 if mode.startswith("I;16") or (_extrema(im)[1] or 0) > 255 else 255
        return im.convert("I").point(lambda v: v * (255 / top)).convert("L")
    if mode == "F":
        low, high = _extrema(im)
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


def _target(display: Tuple[int, int], limits: Limits, max_edge: int) -> Tuple[int, int]:
    """The size to send at, or ImageError when the service cannot take the picture.

    The geometry is judged on the file's own size, not a reduced copy: rounding a long strip
    down to a few pixels must not decide whether it fits.
    """
    width, height = display
    long_side, short_side = max(width, height), min(width, height)
    if limits.max_aspect and long_side / short_side > limits.max_aspect:
        size, service = _size(display), limits.service
        raise TOO_THIN.error(size=size, service=service, max_aspect=limits.max_aspect)
    scale = min(1.0, max_edge / long_side, limits.max_side / long_side)
    if short_side * scale < limits.min_side:
        # The service's minimum wins over the preferred long edge.
        scale = limits.min_side / short_side
        if long_side * scale > limits.max_side:
            raise OUTSIDE_LIMITS.error(
                size=_size(display),
                service=limits.service,
                min_side=limits.min_side,
                max_side=limits.max_side,
            )
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def _encode(decoded: Decoded, limits: Limits, size: Tuple[int, int]) -> PreparedImage:
    if size == decoded.display_size and decoded.untouched:
        clean = _clean(decoded)
        if (
            clean is not None
            and clean.format in limits.formats
            and len(clean.data) <= limits.max_bytes
        ):
            return _prepared(decoded, clean.data, clean.format, size, as_is=True)
    image = _sized(decoded, size)
    for quality in QUALITIES:
        data = _encoded(decoded, image, quality)
        if len(data) <= limits.max_bytes:
            return _prepared(decoded, data, "JPEG", image.size, as_is=False)
    while min(image.size) * 0.75 >= limits.min_side:
        # Truncate, not round: round(2 * 0.75) is 2, and the loop would never end.
        image = _resample(image, (int(image.width * 0.75), int(image.height * 0.75)))
        data = _jpeg(image, _SHRINK_QUALITY)
        if len(data) <= limits.max_bytes:
            return _prepared(decoded, data, "JPEG", image.size, as_is=False)
    raise TOO_MANY_BYTES.error(service=limits.service, max_bytes=limits.max_bytes)


def _sized(decoded: Decoded, size: Tuple[int, int]) -> Image.Image:
    """The decoded image at ``size``, made once for every service sent that size."""
    files = _decoded()
    with files.lock:
        image = decoded.sized.get(size)
    if image is None:
        image = _resample(decoded.image, size)
        with files.lock:
            decoded.sized[size] = image
    return image


def _encoded(decoded: Decoded, image: Image.Image, quality: int) -> bytes:
    """``image`` as a JPEG, encoded once for every service that takes these bytes."""
    files = _decoded()
    key = (image.width, image.height, quality)
    with files.lock:
        data = decoded.encoded.get(key)
    if data is None:
        data = _jpeg(image, quality)
        with files.lock:
            decoded.encoded[key] = data
    return data


def _jpeg(image: Image.Image, quality: int) -> bytes:
    # No optimize=True: a second pass over the data doubles the cost for a few per cent.
    # Nothing but the pixels goes in: they are sRGB, which a picture without a profile is.
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _clean(decoded: Decoded) -> Optional[scrub.Clean]:
    """The file's own bytes without metadata (None when that cannot be done losslessly)."""
    files = _decoded()
    with files.lock:
        clean = decoded.clean
    if clean is _NOT_YET:
        data = _file_bytes(decoded)
        clean = scrub.pixels_only(data, decoded.format) if data is not None else None
        with files.lock:
            decoded.clean = clean
    return clean  # type: ignore


def _file_bytes(decoded: Decoded) -> Optional[bytes]:
    """The bytes of the file that was decoded; None if it has changed since, or is too big."""
    if decoded.file_size > _AS_IS_MAX_BYTES:
        return None
    try:
        with source.open_picture(decoded.path) as opened:
            if opened.stamp != decoded.identity:
                return None  # replaced or rewritten since: send the pixels decoded instead
            return opened.file.read()
    except (OSError, ImageError):
        return None


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
        " (its own pixels, metadata taken out)" if as_is else "",
    )
    return prepared


def _size(size: Tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]} px"


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__).splitlines()[0][:200]


def edge_settings(settings: Settings, custom_vision: bool = False) -> Tuple[int, int]:
    """(max_edge, min_edge) for ``prepare``.

    ``PIXSTOR_AZURE_MAX_LONG_EDGE`` serves every service; Custom Vision, whose models see a
    few hundred pixels, has its own ``CUSTOM_VISION_MAX_LONG_EDGE``, by default the smaller of
    1024 and the general one.
    """
    general = settings.get(MAX_LONG_EDGE)
    min_edge = settings.get(MIN_SIDE)
    if not custom_vision:
        return general, min_edge
    return settings.get(CV_MAX_LONG_EDGE, min(CV_MAX_LONG_EDGE.default, general)), min_edge
