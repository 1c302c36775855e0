"""Write real image files (and a few deliberately broken ones) for the tests.

Every function takes the folder to write into, writes exactly one file there
and returns its path.  The folder is created if it does not exist.  Nothing
here uses unseeded randomness, so the same call always writes the same file
(Pillow and zlib versions permitting).

Only the standard library and Pillow are used: numpy is not available in CI.
"""

import functools
import io
import os
import random
import struct
import sys
import zlib
from array import array
from pathlib import Path
from typing import Tuple, Union

from PIL import Image, ImageChops, ImageDraw, ImageOps

# Pillow 9.1 moved these constants into enums; the old names serve Pillow 7 and 8.
_ADAPTIVE = getattr(Image, "Palette", Image).ADAPTIVE
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
_FLIP_LEFT_RIGHT = getattr(Image, "Transpose", Image).FLIP_LEFT_RIGHT

__all__ = [
    "bmp",
    "cmyk_jpeg",
    "decompression_bomb",
    "displayed_rect",
    "gif_palette",
    "jpeg",
    "jpeg_40mp",
    "jpeg_exif_rotated",
    "pixstor_only",
    "png",
    "png_alpha",
    "random_bytes_jpg",
    "strip",
    "svg",
    "text_file_png",
    "tiff_16bit",
    "tiny",
    "truncated_jpeg",
    "webp",
]

GREY = (128, 128, 128)
EXIF_ORIENTATION = 0x0112

_SEED = 20240531


def _folder(folder: Union[str, os.PathLike]) -> Path:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _noise(size: Tuple[int, int], seed: int, amplitude: int = 255) -> Image.Image:
    """Seeded RGB noise; each channel spans 128 +/- amplitude/2 (clamped to 0..255)."""
    w, h = size
    n = w * h * 3
    data = random.Random(seed).getrandbits(n * 8).to_bytes(n, "little")
    im = Image.frombytes("RGB", size, data)
    if amplitude < 255:
        lo = 128 - amplitude // 2
        im = im.point(lambda v: lo + v * amplitude // 255)
    return im


def _scene(size: Tuple[int, int], color: Tuple[int, int, int]) -> Image.Image:
    """A solid colour with a horizontal grey gradient band and a contrasting rectangle."""
    w, h = size
    im = Image.new("RGB", size, color)
    band_h = max(1, h // 5)
    gradient = Image.linear_gradient("L").rotate(90).resize((w, band_h))
    im.paste(Image.merge("RGB", (gradient, gradient, gradient)), (0, h - band_h))
    contrast = tuple(255 - c for c in color)
    im.paste(contrast, (w // 4, h // 5, max(w // 4 + 1, w // 2), max(h // 5 + 1, h // 2)))
    return im


# --------------------------------------------------------------------------- EXIF rotation


def jpeg_exif_rotated(
    folder: Union[str, os.PathLike],
    orientation: int = 6,
    size: Tuple[int, int] = (400, 300),
    rect: Tuple[int, int, int, int] = (40, 30, 160, 120),
    color: Tuple[int, int, int] = (255, 0, 0),
) -> Path:
    """A JPEG of ``size`` stored pixels: ``rect`` filled with ``color`` on mid-grey,
    tagged with EXIF Orientation ``orientation``.

    ``rect`` is (left, top, right, bottom) in stored pixel coordinates, right and
    bottom exclusive (Pillow box convention).  Saved at quality 95 without chroma
    subsampling so the rectangle's edges stay sharp.
    """
    if orientation not in range(1, 9):
        raise ValueError(f"EXIF orientation must be 1..8, not {orientation!r}")
    im = Image.new("RGB", size, GREY)
    im.paste(color, rect)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = _folder(folder) / f"rotated_o{orientation}.jpg"
    im.save(path, "JPEG", quality=95, subsampling=0, exif=exif)
    return path


def displayed_rect(
    size: Tuple[int, int], rect: Tuple[int, int, int, int], orientation: int
) -> Tuple[float, float, float, float]:
    """Where ``rect`` (stored pixel box in an image of stored ``size``) appears once the
    image is displayed according to EXIF ``orientation`` (as ``ImageOps.exif_transpose``
    does), as fractions (left, top, width, height) of the displayed image."""
    w, h = size
    left, top, right, bottom = rect
    lf, tf, rf, bf = left / w, top / h, right / w, bottom / h
    rw, rh = rf - lf, bf - tf
    if orientation == 1:  # as stored
        return (lf, tf, rw, rh)
    if orientation == 2:  # mirrored left-right
        return (1 - rf, tf, rw, rh)
    if orientation == 3:  # rotated 180
        return (1 - rf, 1 - bf, rw, rh)
    if orientation == 4:  # mirrored top-bottom
        return (lf, 1 - bf, rw, rh)
    # The remaining orientations swap the axes: displayed x comes from stored y.
    if orientation == 5:  # transpose: (x, y) -> (y, x)
        return (tf, lf, rh, rw)
    if orientation == 6:  # rotate 90 clockwise: (x, y) -> (h - y, x)
        return (1 - bf, lf, rh, rw)
    if orientation == 7:  # transverse: (x, y) -> (h - y, w - x)
        return (1 - bf, 1 - rf, rh, rw)
    if orientation == 8:  # rotate 90 counter-clockwise: (x, y) -> (y, w - x)
        return (tf, 1 - rf, rh, rw)
    raise ValueError(f"EXIF orientation must be 1..8, not {orientation!r}")


# --------------------------------------------------------------------------- unusual modes


def cmyk_jpeg(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """A CMYK JPEG: left half cyan, right half magenta+yellow (red), a black bar below."""
    w, h = size
    im = Image.new("CMYK", size, (255, 0, 0, 0))  # cyan
    im.paste((0, 255, 255, 0), (w // 2, 0, w, h))  # magenta + yellow = red
    im.paste((0, 0, 0, 255), (0, h * 3 // 4, w, h))  # key (black) bar
    path = _folder(folder) / "cmyk.jpg"
    im.save(path, "JPEG", quality=90)
    return path


def tiff_16bit(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """A 16-bit grayscale ("I;16") TIFF: a left-to-right gradient from 0 to 65535."""
    w, h = size
    row = array("H", (x * 65535 // max(1, w - 1) for x in range(w)))
    if sys.byteorder == "big":
        row.byteswap()  # "I;16" is little-endian
    im = Image.frombytes("I;16", size, row.tobytes() * h)
    path = _folder(folder) / "gray16.tif"
    im.save(path, "TIFF")
    return path


def png_alpha(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """An RGBA PNG: fully transparent black (0, 0, 0, 0) background, opaque orange ellipse."""
    w, h = size
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((w // 4, h // 4, w * 3 // 4, h * 3 // 4), fill=(255, 140, 0, 255))
    path = _folder(folder) / "alpha.png"
    im.save(path, "PNG")
    return path


def gif_palette(
    folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200), frames: int = 1
) -> Path:
    """A palette ("P") GIF.  The first frame is red; with ``frames`` > 1 it is animated
    and every later frame is blue.  Each frame carries a small white square at a
    different place, so Pillow does not merge identical consecutive frames."""
    if frames < 1:
        raise ValueError("frames must be >= 1")
    w, h = size
    side = max(1, min(w, h) // 10)
    images = []
    for i in range(frames):
        rgb = Image.new("RGB", size, (255, 0, 0) if i == 0 else (0, 0, 255))
        x = (i * side) % max(1, w - side)
        rgb.paste((255, 255, 255), (x, 0, x + side, side))
        images.append(rgb.convert("P", palette=_ADAPTIVE, colors=4))
    name = "palette.gif" if frames == 1 else "animated.gif"
    path = _folder(folder) / name
    if frames == 1:
        images[0].save(path, "GIF")
    else:
        images[0].save(path, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


# --------------------------------------------------------------------------- ordinary formats


def bmp(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """An RGB BMP: yellow with a blue rectangle and a grey gradient band."""
    path = _folder(folder) / "plain.bmp"
    _scene(size, (255, 255, 0)).save(path, "BMP")
    return path


def webp(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """A lossy RGB WebP: teal with a rectangle and a grey gradient band."""
    path = _folder(folder) / "plain.webp"
    _scene(size, (0, 160, 160)).save(path, "WEBP", quality=85)
    return path


def png(
    folder: Union[str, os.PathLike],
    size: Tuple[int, int] = (300, 200),
    color: Tuple[int, int, int] = (0, 0, 255),
) -> Path:
    """An RGB PNG: ``color`` with a rectangle of the inverse colour and a grey gradient band."""
    path = _folder(folder) / "plain.png"
    _scene(size, color).save(path, "PNG")
    return path


def jpeg(
    folder: Union[str, os.PathLike],
    size: Tuple[int, int] = (300, 200),
    color: Tuple[int, int, int] = (0, 128, 0),
    name: str = "plain.jpg",
    quality: int = 90,
) -> Path:
    """A baseline RGB JPEG: ``color`` with a rectangle of the inverse colour and a gradient band."""
    path = _folder(folder) / name
    _scene(size, color).save(path, "JPEG", quality=quality)
    return path


def jpeg_40mp(folder: Union[str, os.PathLike]) -> Path:
    """A 7728x5152 (39.8 MP) baseline JPEG at quality 95, over 4 MiB on disk.

    Colour gradients and shapes with seeded noise added everywhere, so it does not
    compress away.  Takes a couple of seconds and about 150 MB of memory.
    """
    w, h = 7728, 5152
    red = Image.linear_gradient("L").rotate(90).resize((w, h), _BILINEAR)
    green = Image.linear_gradient("L").resize((w, h), _BILINEAR)
    blue = Image.radial_gradient("L").resize((w, h), _BILINEAR)
    im = Image.merge("RGB", (red, green, blue))
    del red, green, blue
    draw = ImageDraw.Draw(im)
    draw.ellipse((w // 10, h // 8, w // 2, h * 3 // 4), fill=(220, 180, 40))
    draw.rectangle((w * 6 // 10, h // 5, w * 9 // 10, h * 3 // 5), fill=(30, 60, 160))
    x0, y0 = w * 2 // 3, h * 2 // 3
    draw.ellipse((x0, y0, x0 + h // 4, y0 + h // 4), fill=(250, 250, 250))
    draw.line((0, h - 1, w - 1, 0), fill=(10, 10, 10), width=40)
    # Add zero-mean noise (128 +/- 6) band by band to keep memory use down.
    tile = _noise((512, 512), _SEED, amplitude=12)
    band = Image.new("RGB", (w, 512))
    for x in range(0, w, 512):
        band.paste(tile, (x, 0))
    for y in range(0, h, 512):
        box = (0, y, w, min(h, y + 512))
        part = im.crop(box)
        noisy = ImageChops.add(part, band.crop((0, 0, w, box[3] - y)), scale=1.0, offset=-128)
        im.paste(noisy, box)
    path = _folder(folder) / "large_40mp.jpg"
    im.save(path, "JPEG", quality=95, progressive=False)
    return path


# --------------------------------------------------------------------------- extreme sizes


def tiny(folder: Union[str, os.PathLike]) -> Path:
    """A 1x1 RGB PNG (one orange pixel)."""
    path = _folder(folder) / "tiny.png"
    Image.new("RGB", (1, 1), (255, 128, 0)).save(path, "PNG")
    return path


def strip(folder: Union[str, os.PathLike]) -> Path:
    """A 60000x50 RGB PNG: a horizontal colour gradient with a dark bar every 1000 px."""
    w, h = 60000, 50
    ramp = Image.linear_gradient("L").rotate(90).resize((w, h))
    reverse = ramp.transpose(_FLIP_LEFT_RIGHT)
    im = Image.merge("RGB", (ramp, Image.new("L", (w, h), 100), reverse))
    for x in range(0, w, 1000):
        im.paste((0, 0, 0), (x, 0, x + 20, h))
    path = _folder(folder) / "strip.png"
    im.save(path, "PNG", compress_level=1)
    return path


# --------------------------------------------------------------------------- broken or hostile


def truncated_jpeg(folder: Union[str, os.PathLike]) -> Path:
    """A valid noisy 640x480 JPEG (a few hundred KB) cut to 60% of its bytes.

    ``Image.open`` succeeds (the header is intact) but loading the pixels fails
    with ``OSError`` unless ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set.
    """
    im = _noise((640, 480), _SEED + 1)
    im.paste((255, 0, 0), (100, 100, 300, 250))
    path = _folder(folder) / "truncated.jpg"
    im.save(path, "JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    return path


def random_bytes_jpg(folder: Union[str, os.PathLike]) -> Path:
    """4096 bytes of seeded random data named ``noise.jpg``."""
    path = _folder(folder) / "noise.jpg"
    path.write_bytes(random.Random(_SEED + 2).getrandbits(4096 * 8).to_bytes(4096, "little"))
    return path


def pixstor_only(folder: Union[str, os.PathLike]) -> Path:
    """A file only PixStor's loader could read: a DPX file's first bytes (its magic number)
    followed by seeded random data, named ``frame.dpx``."""
    path = _folder(folder) / "frame.dpx"
    noise = random.Random(_SEED + 3).getrandbits(4096 * 8).to_bytes(4096, "little")
    path.write_bytes(b"SDPX" + noise)
    return path


def text_file_png(folder: Union[str, os.PathLike]) -> Path:
    """A plain UTF-8 text file misleadingly named ``notes.png``."""
    path = _folder(folder) / "notes.png"
    path.write_text(
        "Meeting notes\n\n- This is not an image.\n- It only has a .png name.\n",
        encoding="utf-8",
    )
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def decompression_bomb(folder: Union[str, os.PathLike]) -> Path:
    """A genuine 20000x20000 8-bit grayscale PNG of all-black pixels, about 380 KiB.

    It declares 400 million pixels, more than twice ``Image.MAX_IMAGE_PIXELS``'s
    default, so ``Image.open`` raises ``DecompressionBombError``.  The IDAT is a
    complete, valid zlib stream for 20000 rows of (filter byte 0 + 20000 zero
    bytes) and would decode to a black image if allowed.

    The deflate data is built from one compressed 1 MiB block of zeros ended with
    a full flush (which resets the compressor's history, so the same block
    compresses to the same bytes every time) repeated as often as needed, then the
    remainder; the Adler-32 of n zero bytes is ((n mod 65521) << 16) | 1.  This
    writes the file in milliseconds instead of compressing 400 MB.
    """
    w = h = 20000
    total = h * (1 + w)  # each row: filter type 0, then w zero bytes
    block_size = 1 << 20
    full_blocks, remainder = divmod(total, block_size)

    raw = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, we add the zlib wrapper
    block = raw.compress(bytes(block_size)) + raw.flush(zlib.Z_FULL_FLUSH)
    tail = raw.compress(bytes(remainder)) + raw.flush(zlib.Z_FINISH)
    adler = ((total % 65521) << 16) | 1
    idat = b"\x78\xda" + block * full_blocks + tail + struct.pack(">I", adler)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grayscale, no interlace
    path = _folder(folder) / "bomb.png"
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_png_chunk(b"IHDR", ihdr))
        f.write(_png_chunk(b"IDAT", idat))
        f.write(_png_chunk(b"IEND", b""))
    return path


def svg(folder: Union[str, os.PathLike]) -> Path:
    """A tiny SVG drawing (a red circle on a white square)."""
    path = _folder(folder) / "vector.svg"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">\n'
        '  <rect width="64" height="64" fill="#ffffff"/>\n'
        '  <circle cx="32" cy="32" r="24" fill="#ff0000"/>\n'
        "</svg>\n",
        encoding="utf-8",
    )
    return path


# --------------------------------------------------------------------------- camera-like files
#
# The benchmark and the metadata tests need what cameras and editing tools really write:
# photographs at camera resolution with sensor-like grain, an EXIF block with a GPS position,
# serial numbers and an artist, XMP naming the master the picture came from, IPTC captions,
# comments and colour profiles. The sample photographs in images/ give the pixels; the
# metadata is written here byte by byte, so every Pillow version writes the same files.

SAMPLES = Path(__file__).resolve().parent.parent / "images"
SAMPLE_PHOTOS = ("coffee.jpg", "rocket.jpg", "astronaut.jpg", "cat.jpg")

# What the metadata below carries: none of it may ever reach a service.
ARTIST = "Jane Q. Cinematographer"
SERIAL = "SN-4242-0007"
MASTER_PATH = "/mnt/stills/reel_07/secret_frame.dpx"
IPTC_CAPTION = "Unreleased: the villain's reveal, reel 7"
COMMENT = "graded by Jane at /mnt/stills/reel_07"
PNG_TEXT = "Author: Jane Q. Cinematographer, source /mnt/stills/reel_07/secret_frame.dpx"
TRAILER = b"TRAILER:/mnt/stills/reel_07/secret_frame.dpx"
# 51 deg 30' 26.04" N, 0 deg 7' 39.12" W, as EXIF rationals: a byte pattern found nowhere else.
GPS_LATITUDE = ((51, 1), (30, 1), (2604, 100))
GPS_LONGITUDE = ((0, 1), (7, 1), (3912, 100))
GPS_BYTES = b"".join(struct.pack("<II", n, d) for n, d in GPS_LATITUDE)
SECRETS = (
    ARTIST.encode("ascii"),
    SERIAL.encode("ascii"),
    b"secret_frame.dpx",
    b"/mnt/stills",
    b"villain",
    b"PixCam",
    GPS_BYTES,
)


def photo_mosaic(size: Tuple[int, int], columns: int = 3, rows: int = 3) -> Image.Image:
    """The sample photographs of images/ tiled ``columns`` x ``rows`` and scaled to ``size``.

    Each tile is a real photograph, so at a fraction of the size (what is sent to a service)
    the picture has a photograph's detail, not a smooth upscale's.
    """
    w, h = size
    canvas = Image.new("RGB", size)
    for row in range(rows):
        for column in range(columns):
            name = SAMPLE_PHOTOS[(row * columns + column) % len(SAMPLE_PHOTOS)]
            box = (w * column // columns, h * row // rows)
            end = (w * (column + 1) // columns, h * (row + 1) // rows)
            with Image.open(SAMPLES / name) as photo:
                tile = ImageOps.fit(photo.convert("RGB"), (end[0] - box[0], end[1] - box[1]))
            canvas.paste(tile, box)
    return canvas


def add_grain(im: Image.Image, amplitude: int, seed: int = _SEED) -> Image.Image:
    """``im`` with seeded zero-mean noise of +/- ``amplitude`` / 2 added, band by band in place.

    Sensor noise is what makes a camera's files large; without it an upscaled photograph
    compresses to a fraction of a real one.
    """
    w, h = im.size
    tile = _noise((509, 509), seed, amplitude=amplitude)  # a prime size: no 8x8 alignment
    band = Image.new("RGB", (w, 509))
    for x in range(0, w, 509):
        band.paste(tile, (x, 0))
    for y in range(0, h, 509):
        box = (0, y, w, min(h, y + 509))
        part = im.crop(box)
        im.paste(ImageChops.add(part, band.crop((0, 0, w, box[3] - y)), 1.0, -128), box)
    return im


def _entry(tag: int, kind: int, count: int, payload: bytes) -> Tuple[int, int, int, bytes]:
    return (tag, kind, count, payload)


def _ascii(tag: int, text: str) -> Tuple[int, int, int, bytes]:
    data = text.encode("ascii") + b"\0"
    return _entry(tag, 2, len(data), data)


def _short(tag: int, value: int) -> Tuple[int, int, int, bytes]:
    return _entry(tag, 3, 1, struct.pack("<H", value))


def _long(tag: int, value: int) -> Tuple[int, int, int, bytes]:
    return _entry(tag, 4, 1, struct.pack("<I", value))


def _rationals(tag: int, values) -> Tuple[int, int, int, bytes]:
    return _entry(tag, 5, len(values), b"".join(struct.pack("<II", n, d) for n, d in values))


def _ifd(entries, offset: int) -> bytes:
    """One little-endian TIFF IFD written at ``offset``, its long values right after it."""
    data_at = offset + 2 + 12 * len(entries) + 4
    head, data = struct.pack("<H", len(entries)), b""
    for tag, kind, count, payload in sorted(entries):
        if len(payload) <= 4:
            value = payload.ljust(4, b"\0")
        else:
            value = struct.pack("<I", data_at + len(data))
            data += payload + b"\0" * (len(payload) % 2)
        head += struct.pack("<HHI", tag, kind, count) + value
    return head + struct.pack("<I", 0) + data


def exif_block(orientation: int = 1) -> bytes:
    """A camera's EXIF block (TIFF structure, little-endian): make, model, artist, software,
    orientation, and the EXIF and GPS sub-IFDs with the body serial number and a position.

    For a JPEG APP1 segment put ``b"Exif\\0\\0"`` in front; PNG's eXIf chunk and WebP's EXIF
    chunk take it as it is.
    """
    camera = [_ascii(0x9003, "2024:05:31 14:02:11"), _ascii(0xA431, SERIAL)]
    gps = [
        _entry(0x0000, 1, 4, bytes((2, 3, 0, 0))),
        _ascii(0x0001, "N"),
        _rationals(0x0002, GPS_LATITUDE),
        _ascii(0x0003, "W"),
        _rationals(0x0004, GPS_LONGITUDE),
    ]

    def first(exif_at: int, gps_at: int) -> list:
        return [
            _ascii(0x010F, "PixCam"),
            _ascii(0x0110, "PixCam PX-1 Pro"),
            _short(0x0112, orientation),
            _ascii(0x0131, "PixCam firmware 1.0.2"),
            _ascii(0x013B, ARTIST),
            _long(0x8769, exif_at),
            _long(0x8825, gps_at),
        ]

    ifd0_length = len(_ifd(first(0, 0), 8))
    exif_at = 8 + ifd0_length
    exif_ifd = _ifd(camera, exif_at)
    gps_at = exif_at + len(exif_ifd)
    return (
        b"II*\0"
        + struct.pack("<I", 8)
        + _ifd(first(exif_at, gps_at), 8)
        + exif_ifd
        + _ifd(gps, gps_at)
    )


def xmp_packet() -> bytes:
    """An XMP packet as editing tools write it, naming the master the picture was made from."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        f' xmpMM:DerivedFrom="{MASTER_PATH}">'
        f"<dc:creator><rdf:Seq><rdf:li>{ARTIST}</rdf:li></rdf:Seq></dc:creator>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def iptc_block() -> bytes:
    """A Photoshop image resource block (JPEG APP13) holding IPTC by-line and caption."""

    def dataset(number: int, text: str) -> bytes:
        value = text.encode("utf-8")
        return struct.pack(">BBBH", 0x1C, 2, number, len(value)) + value

    iptc = dataset(80, ARTIST) + dataset(120, IPTC_CAPTION)
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(iptc))
    return b"Photoshop 3.0\0" + resource + iptc + b"\0" * (len(iptc) % 2)


@functools.lru_cache(maxsize=None)
def icc_srgb() -> bytes:
    """An sRGB ICC profile made by Pillow's littleCMS (ImportError when Pillow has none).

    Made once: littleCMS stamps each profile with the second it was made, so two made across
    a second's turn differ, and a test comparing the file's profile with a new one would fail.
    """
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    """One JPEG marker segment: 0xFF, ``marker``, the length, ``payload``."""
    if len(payload) > 65533:
        raise ValueError("a JPEG segment holds at most 65533 bytes")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def insert_jpeg_segments(data: bytes, segments: bytes) -> bytes:
    """``data`` (a JPEG) with ``segments`` put right after its JFIF header (or SOI)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    at = 2
    if data[2:4] == b"\xff\xe0":  # APP0 (JFIF) stays first, as cameras and editors keep it
        at = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:at] + segments + data[at:]


def _jpeg_bytes(im: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def camera_jpeg(
    folder: Union[str, os.PathLike],
    size: Tuple[int, int] = (6000, 4000),
    orientation: int = 1,
    quality: int = 95,
    grain: int = 10,
    name: str = "",
) -> Path:
    """A photograph as a camera writes it: ``size`` pixels (24 MP by default, about 6.5 MB)
    of the sample photographs (2 x 2) with sensor-like grain, quality 95 with 4:2:2 chroma,
    and an EXIF block with make, model, serial number, artist, GPS position and EXIF
    ``orientation``.

    The defaults were chosen to behave like the camera files of issue 10: about 6 MB for
    24 MP, and a 2048 px re-encoding at quality 90 about 7 % of the file.
    The pixels are stored as the sensor saw them: ``orientation`` only changes the tag.
    """
    if orientation not in range(1, 9):
        raise ValueError(f"EXIF orientation must be 1..8, not {orientation!r}")
    im = add_grain(photo_mosaic(size, 2, 2), grain)
    data = _jpeg_bytes(im, quality=quality, subsampling=1)
    del im
    data = insert_jpeg_segments(data, jpeg_segment(0xE1, b"Exif\0\0" + exif_block(orientation)))
    path = _folder(folder) / (name or f"camera_{size[0]}x{size[1]}_o{orientation}.jpg")
    path.write_bytes(data)
    return path


def with_orientation(path: Union[str, os.PathLike], orientation: int, out: Path) -> Path:
    """A copy of ``path`` (a JPEG whose EXIF block comes from ``exif_block``) whose EXIF
    orientation is ``orientation``: the same pixels, the same bytes but one."""
    data = Path(path).read_bytes()
    old, new = exif_block(_orientation_of(data)), exif_block(orientation)
    if data.count(old) != 1:
        raise ValueError(f"{path} does not hold exif_block()'s EXIF")
    out.write_bytes(data.replace(old, new))
    return out


def _orientation_of(data: bytes) -> int:
    for orientation in range(1, 9):
        if exif_block(orientation) in data:
            return orientation
    raise ValueError("no EXIF block of exif_block() in the file")


def tiff_48bit(
    folder: Union[str, os.PathLike], size: Tuple[int, int] = (6000, 4000), grain: int = 10
) -> Path:
    """An uncompressed 16-bit-per-channel RGB TIFF (a scan or a raw converter's output),
    written by hand: Pillow cannot write 16-bit RGB. 24 MP by default, 144 MB.

    Each 8-bit value v of the grainy photo mosaic becomes v * 257, so the 16-bit image scales
    back to the same 8-bit one.
    """
    w, h = size
    eight = add_grain(photo_mosaic(size, 2, 2), grain).tobytes()
    sixteen = bytearray(len(eight) * 2)
    sixteen[0::2] = eight  # little-endian v * 257 is the byte v twice
    sixteen[1::2] = eight
    del eight
    rows = 64
    stride = w * 6
    strips = [(y, min(rows, h - y)) for y in range(0, h, rows)]

    def directory(offsets) -> bytes:
        counts = [n * stride for _, n in strips]
        return _ifd(
            [
                _long(256, w),
                _long(257, h),
                _entry(258, 3, 3, struct.pack("<HHH", 16, 16, 16)),
                _short(259, 1),  # uncompressed
                _short(262, 2),  # RGB
                _entry(273, 4, len(strips), struct.pack(f"<{len(strips)}I", *offsets)),
                _short(277, 3),
                _long(278, rows),
                _entry(279, 4, len(strips), struct.pack(f"<{len(strips)}I", *counts)),
                _short(284, 1),
            ],
            8,
        )

    # Header, then the directory, then the strips: the directory's size is known before
    # the strips' offsets are.
    first_strip = 8 + len(directory([0] * len(strips)))
    path = _folder(folder) / f"scan_{w}x{h}_48bit.tif"
    with open(path, "wb") as f:
        f.write(b"II*\0" + struct.pack("<I", 8))
        f.write(directory([first_strip + y * stride for y, _ in strips]))
        f.write(sixteen)
    return path


# --------------------------------------------------------------------------- small lettering
#
# A clapperboard's lettering is what Azure AI Vision's read must still see once the picture is
# reduced and compressed. Its glyphs come from the 5x7 font below, drawn as blocks of
# ``GLYPH_SCALE`` pixels, so every Pillow version draws the same letters and a test can tell
# each letter from the others by its shape alone.

FONT_5X7 = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "B": ("11110", "10001", "10001", "11110", "10001", "10001", "11110"),
    "C": ("01110", "10001", "10000", "10000", "10000", "10001", "01110"),
    "D": ("11100", "10010", "10001", "10001", "10001", "10010", "11100"),
    "E": ("11111", "10000", "10000", "11110", "10000", "10000", "11111"),
    "F": ("11111", "10000", "10000", "11110", "10000", "10000", "10000"),
    "G": ("01110", "10001", "10000", "10111", "10001", "10001", "01111"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "I": ("01110", "00100", "00100", "00100", "00100", "00100", "01110"),
    "J": ("00111", "00010", "00010", "00010", "00010", "10010", "01100"),
    "K": ("10001", "10010", "10100", "11000", "10100", "10010", "10001"),
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "M": ("10001", "11011", "10101", "10101", "10001", "10001", "10001"),
    "N": ("10001", "10001", "11001", "10101", "10011", "10001", "10001"),
    "O": ("01110", "10001", "10001", "10001", "10001", "10001", "01110"),
    "P": ("11110", "10001", "10001", "11110", "10000", "10000", "10000"),
    "Q": ("01110", "10001", "10001", "10001", "10101", "10010", "01101"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "U": ("10001", "10001", "10001", "10001", "10001", "10001", "01110"),
    "V": ("10001", "10001", "10001", "10001", "10001", "01010", "00100"),
    "W": ("10001", "10001", "10001", "10101", "10101", "10101", "01010"),
    "X": ("10001", "10001", "01010", "00100", "01010", "10001", "10001"),
    "Y": ("10001", "10001", "10001", "01010", "00100", "00100", "00100"),
    "Z": ("11111", "00001", "00010", "00100", "01000", "10000", "11111"),
}
SLATE_LINES = ("ROLL A013 SCENE 42 TAKE 7", "PROD PIXSTOR DIR J Q C", "CAM B 1O0 8B 5S 2Z")
GLYPH_SCALE = 4  # master pixels per font dot: 28 px letters on the master
SLATE_ORIGIN = (600, 600)  # where the first letter's cell starts on the master


def glyph_cell(char: str, scale: int = GLYPH_SCALE) -> Image.Image:
    """One character cell (6 x 9 dots: the glyph with a dot of space right and two below),
    white on black, each dot ``scale`` pixels square."""
    cell = Image.new("L", (6, 9), 0)
    if char != " ":
        for y, row in enumerate(FONT_5X7[char]):
            for x, dot in enumerate(row):
                if dot == "1":
                    cell.putpixel((x, y), 255)
    return cell.resize((6 * scale, 9 * scale), Image.NEAREST)


def slate_cells(origin: Tuple[int, int] = SLATE_ORIGIN, scale: int = GLYPH_SCALE):
    """(character, box on the master) of every letter of ``SLATE_LINES``, spaces left out."""
    x0, y0 = origin
    for line_number, line in enumerate(SLATE_LINES):
        for column, char in enumerate(line):
            if char != " ":
                left, top = x0 + column * 6 * scale, y0 + line_number * 9 * scale
                yield char, (left, top, left + 6 * scale, top + 9 * scale)


def slate_master(
    size: Tuple[int, int] = (3072, 2048), grain: int = 10, scale: int = GLYPH_SCALE
) -> Image.Image:
    """A film still with a clapperboard in it: the photo mosaic with grain, and a dark slate
    board whose white lettering (``SLATE_LINES``) is ``scale`` pixels a dot."""
    im = add_grain(photo_mosaic(size, 2, 2), grain)
    cells = list(slate_cells(SLATE_ORIGIN, scale))
    right = max(box[2] for _, box in cells) + 6 * scale
    bottom = max(box[3] for _, box in cells) + 3 * scale
    im.paste((28, 30, 34), (SLATE_ORIGIN[0] - 60, SLATE_ORIGIN[1] - 60, right, bottom))
    for char, box in cells:
        im.paste((235, 235, 230), box, glyph_cell(char, scale))
    return im


def slate_jpeg(
    folder: Union[str, os.PathLike],
    size: Tuple[int, int] = (3072, 2048),
    quality: int = 95,
    scale: int = GLYPH_SCALE,
) -> Path:
    """``slate_master`` as a camera JPEG (4:2:2, ``quality``) with the camera's EXIF block."""
    data = _jpeg_bytes(slate_master(size, scale=scale), quality=quality, subsampling=1)
    data = insert_jpeg_segments(data, jpeg_segment(0xE1, b"Exif\0\0" + exif_block(1)))
    path = _folder(folder) / "slate.jpg"
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- metadata
#
# Files carrying every kind of metadata their format can hold, as cameras, editors and
# asset managers leave it; what ``SECRETS`` lists must never reach a service.


def jpeg_with_metadata(
    folder: Union[str, os.PathLike],
    size: Tuple[int, int] = (640, 480),
    orientation: int = 1,
    icc: bytes = b"",
    name: str = "",
) -> Path:
    """A JPEG with an EXIF block (GPS, serial, artist, ``orientation``), XMP naming the
    master, IPTC by-line and caption, a comment, the colour profile ``icc`` if given, and data
    appended after the end of the image, as some cameras and phones append theirs."""
    data = _jpeg_bytes(_scene(size, (40, 120, 200)), quality=90)
    segments = jpeg_segment(0xE1, b"Exif\0\0" + exif_block(orientation))
    segments += jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + xmp_packet())
    segments += jpeg_segment(0xED, iptc_block())
    segments += jpeg_segment(0xFE, COMMENT.encode("ascii"))
    if icc:
        segments += jpeg_segment(0xE2, b"ICC_PROFILE\0\x01\x01" + icc)
    path = _folder(folder) / (name or f"metadata_o{orientation}.jpg")
    path.write_bytes(insert_jpeg_segments(data, segments) + TRAILER)
    return path


def png_with_metadata(
    folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200), icc: bytes = b""
) -> Path:
    """A PNG with tEXt, zTXt and iTXt (XMP) text, an eXIf block, a tIME stamp, a private
    chunk naming the master, the colour profile ``icc`` under a personal profile name if given,
    and bytes after IEND."""
    buffer = io.BytesIO()
    _scene(size, (200, 60, 40)).save(buffer, "PNG")
    data = buffer.getvalue()
    chunks = _png_chunk(b"tEXt", b"Author\0" + PNG_TEXT.encode("latin-1"))
    chunks += _png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(COMMENT.encode("latin-1")))
    chunks += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp_packet())
    chunks += _png_chunk(b"eXIf", exif_block(1))
    chunks += _png_chunk(b"tIME", struct.pack(">HBBBBB", 2024, 5, 31, 14, 2, 11))
    chunks += _png_chunk(b"prVt", MASTER_PATH.encode("ascii"))
    if icc:
        name = ARTIST.encode("latin-1")  # iCCP's name is free text: one more place to leak
        chunks += _png_chunk(b"iCCP", name + b"\0\0" + zlib.compress(icc))
    after_header = 8 + 12 + 13
    path = _folder(folder) / "metadata.png"
    path.write_bytes(data[:after_header] + chunks + data[after_header:] + TRAILER)
    return path


def webp_with_metadata(
    folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200), icc: bytes = b""
) -> Path:
    """An extended WebP (VP8X) with EXIF and XMP chunks, the colour profile ``icc`` if given,
    and bytes after the RIFF container."""
    buffer = io.BytesIO()
    _scene(size, (0, 160, 160)).save(buffer, "WEBP", quality=85)
    simple = buffer.getvalue()
    if simple[12:16] != b"VP8 ":
        raise ValueError("Pillow wrote an extended WebP: no simple VP8 chunk to wrap")
    flags = 0x08 | 0x04 | (0x20 if icc else 0)  # EXIF, XMP, ICC
    w, h = size[0] - 1, size[1] - 1
    vp8x = bytes((flags, 0, 0, 0)) + struct.pack("<I", w)[:3] + struct.pack("<I", h)[:3]
    chunks = [_riff_chunk(b"VP8X", vp8x)]
    if icc:
        chunks.append(_riff_chunk(b"ICCP", icc))
    chunks.append(simple[12:])  # the VP8 chunk as Pillow wrote it
    chunks.append(_riff_chunk(b"EXIF", exif_block(1)))
    chunks.append(_riff_chunk(b"XMP ", xmp_packet()))
    content = b"WEBP" + b"".join(chunks)
    path = _folder(folder) / "metadata.webp"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(content)) + content + TRAILER)
    return path


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)


def tiff_with_metadata(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """An RGB TIFF whose directory names the artist, the document (the master's path), the
    image description and the software, as scanners and asset managers write them."""
    path = _folder(folder) / "metadata.tif"
    tags = {269: MASTER_PATH, 270: IPTC_CAPTION, 305: "PixScan 2.1", 315: ARTIST}
    _scene(size, (90, 200, 90)).save(path, "TIFF", tiffinfo=tags)
    return path


def gif_with_metadata(folder: Union[str, os.PathLike], size: Tuple[int, int] = (300, 200)) -> Path:
    """A GIF with a comment extension and an XMP application extension before its image,
    and bytes after its trailer."""
    buffer = io.BytesIO()
    _scene(size, (255, 255, 0)).convert("P", palette=_ADAPTIVE, colors=16).save(buffer, "GIF")
    data = buffer.getvalue()
    flags = data[10]
    header = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    extensions = b"\x21\xfe" + _sub_blocks(COMMENT.encode("ascii"))
    extensions += b"\x21\xff\x0bXMP DataXMP" + _sub_blocks(xmp_packet())
    path = _folder(folder) / "metadata.gif"
    path.write_bytes(data[:header] + extensions + data[header:] + TRAILER)
    return path


def _sub_blocks(data: bytes) -> bytes:
    out = b""
    for start in range(0, len(data), 255):
        part = data[start : start + 255]
        out += bytes((len(part),)) + part
    return out + b"\0"


# --------------------------------------------------------------------------- colour profiles
#
# ICC profiles written byte for byte (version 2, RGB display, matrix and tone curves), with
# free text where real ones carry it: a description, a copyright, the device's maker and model.
# The primaries are turned to the profile connection space's D50 white by the Bradford
# transform, as littleCMS and the ICC's own tools do.

# A profile's free text, as an editor or a calibration tool leaves it: never to reach a service.
PROFILE_NOTE = "graded for reel 07 by Jane Q. Cinematographer"
ADOBE_RGB = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))  # Adobe RGB (1998): a wide gamut
SRGB = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
D65 = (0.3127, 0.3290)
_D50_XYZ = (0.9642, 1.0, 0.8249)
_BRADFORD = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367), (0.0389, -0.0685, 1.0296))
ADOBE_GAMMA = 563 / 256  # 2.19921875, as Adobe RGB (1998) is written in u8Fixed8


def _xyz(xy: Tuple[float, float]) -> Tuple[float, float, float]:
    x, y = xy
    return (x / y, 1.0, (1 - x - y) / y)


def _solve(m, v):
    """``m``^-1 ``v`` for a 3x3 matrix, by Cramer's rule."""

    def det(a):
        return (
            a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
        )

    whole = det(m)
    out = []
    for col in range(3):
        a = [list(row) for row in m]
        for row in range(3):
            a[row][col] = v[row]
        out.append(det(a) / whole)
    return tuple(out)


def _mul(m, v):
    return tuple(sum(m[r][c] * v[c] for c in range(3)) for r in range(3))


def rgb_to_xyz(primaries, white=D65):
    """The 3x3 matrix from linear RGB to XYZ (Y of white 1) of these primaries and white."""
    columns = [_xyz(p) for p in primaries]
    m = [[columns[c][r] for c in range(3)] for r in range(3)]
    scale = _solve(m, _xyz(white))
    return tuple(tuple(m[r][c] * scale[c] for c in range(3)) for r in range(3))


def _to_d50(xyz, white=D65):
    """``xyz`` seen under ``white`` adapted to D50, by the Bradford transform."""
    src, dst = _mul(_BRADFORD, _xyz(white)), _mul(_BRADFORD, _D50_XYZ)
    cone = _mul(_BRADFORD, xyz)
    return _solve(_BRADFORD, tuple(c * d / s for c, d, s in zip(cone, dst, src)))


def srgb_encode(linear: float) -> float:
    """The sRGB transfer function, 0..1 in and out."""
    linear = min(1.0, max(0.0, linear))
    return 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055


def srgb_decode(value: float) -> float:
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def adobe_to_srgb(rgb: Tuple[int, int, int]) -> Tuple[float, float, float]:
    """What an Adobe RGB (1998) colour is in sRGB (0..255, not rounded), worked out from the
    primaries alone: linear Adobe RGB -> XYZ -> linear sRGB, both under D65."""
    linear = tuple((v / 255) ** ADOBE_GAMMA for v in rgb)
    xyz = _mul(rgb_to_xyz(ADOBE_RGB), linear)
    return tuple(255 * srgb_encode(v) for v in _solve(rgb_to_xyz(SRGB), xyz))


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _icc_xyz(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _icc_desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + b"\0" * 8  # no Unicode text
        + b"\0\0\0"  # no ScriptCode text
        + b"\0" * 67
    )


def icc_profile(primaries=ADOBE_RGB, gamma: float = ADOBE_GAMMA, note: str = PROFILE_NOTE) -> bytes:
    """An RGB display profile (ICC version 2) of ``primaries`` under D65 with the tone curve
    ``gamma`` (a number), or the sRGB curve sampled at 1024 points (``gamma`` None); its
    description, copyright, maker and model all carry ``note`` and the secrets of the
    metadata files."""
    m = rgb_to_xyz(primaries)
    colorants = [_to_d50(tuple(m[r][c] for r in range(3))) for c in range(3)]
    if gamma is None:
        points = [round(65535 * srgb_decode(i / 1023)) for i in range(1024)]
        curve = b"curv\0\0\0\0" + struct.pack(f">I{len(points)}H", len(points), *points)
    else:
        curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))
    tags = [
        (b"desc", _icc_desc(f"Wide RGB, {note}, {MASTER_PATH}")),
        (b"cprt", b"text\0\0\0\0" + f"Copyright {ARTIST}, {note}".encode("ascii") + b"\0"),
        (b"dmnd", _icc_desc(f"PixCam maker, {note}")),
        (b"dmdd", _icc_desc(f"PixCam model {SERIAL}")),
        (b"wtpt", _icc_xyz(_D50_XYZ)),
        (b"rXYZ", _icc_xyz(colorants[0])),
        (b"gXYZ", _icc_xyz(colorants[1])),
        (b"bXYZ", _icc_xyz(colorants[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_end = 128 + 4 + 12 * len(tags)
    entries, body, at = b"", b"", table_end
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        entries += signature + struct.pack(">II", at, len(data))
        body += data
        at += len(data)
    size = table_end + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"  # preferred CMM: none
        + bytes((2, 0x10, 0, 0))  # version 2.1
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 5, 31, 14, 2, 11)
        + b"acsp"
        + b"\0" * 4  # platform
        + b"\0" * 4  # flags
        + b"PXCM"  # device maker
        + b"\0" * 4  # device model
        + b"\0" * 8  # attributes
        + b"\0" * 4  # rendering intent: perceptual
        + b"".join(_s15(v) for v in _D50_XYZ)
        + b"\0" * 4  # creator
        + b"\0" * 16  # profile id: not computed
        + b"\0" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + body


def flat_with_profile(
    folder: Union[str, os.PathLike],
    colour: Tuple[int, int, int],
    profile: bytes,
    fmt: str = "JPEG",
    size: Tuple[int, int] = (300, 200),
    name: str = "",
) -> Path:
    """A picture of one ``colour`` (its numbers as stored) with the ICC ``profile`` embedded,
    as Pillow writes one into a JPEG (APP2), PNG (iCCP), WebP (ICCP) or TIFF (tag 34675)."""
    suffix = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif"}[fmt]
    path = _folder(folder) / (name or f"profiled.{suffix}")
    # WebP losslessly: its lossy coding moves a flat colour's numbers by several steps.
    options = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}.get(fmt, {})
    im = Image.new("RGB", size, colour)
    im.info["icc_profile"] = profile  # where Pillow 7's TIFF writer takes it from
    im.save(path, fmt, icc_profile=profile, **options)
    return path


# --------------------------------------------------------------------------- files that are large


def png_with_text_chunk(
    folder: Union[str, os.PathLike], megabytes: int = 200, kind: bytes = b"tEXt"
) -> Path:
    """A small PNG (64x48) with one text chunk of ``megabytes`` MB before its pixels, written
    a megabyte at a time (the chunk is never whole in this process's memory)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(buffer, "PNG")
    data = buffer.getvalue()
    after_header = 8 + 12 + 13
    piece = b"x" * (1 << 20)
    head = kind + b"Comment\0"
    length = len(head) - 4 + megabytes * len(piece)
    path = _folder(folder) / f"text_{megabytes}mb.png"
    with open(path, "wb") as f:
        f.write(data[:after_header])
        f.write(struct.pack(">I", length) + head)
        crc = zlib.crc32(head)
        for _ in range(megabytes):
            f.write(piece)
            crc = zlib.crc32(piece, crc)
        f.write(struct.pack(">I", crc & 0xFFFFFFFF))
        f.write(data[after_header:])
    return path


def png_16bit(
    folder: Union[str, os.PathLike], size: Tuple[int, int] = (6000, 5000), name: str = ""
) -> Path:
    """A 16-bit greyscale PNG (a scan, a render's depth pass): a diagonal ramp over the whole
    16-bit range, ``size`` pixels (30 MP by default, a few MB: a ramp compresses well)."""
    w, h = size
    row = array("H", (round(65535 * x / max(1, w - 1)) for x in range(w)))
    if sys.byteorder == "big":
        row.byteswap()
    ramp = Image.frombytes("I;16", (w, 1), row.tobytes()).resize(size, Image.NEAREST)
    path = _folder(folder) / (name or f"ramp_{w}x{h}_16bit.png")
    ramp.save(path, "PNG", compress_level=1)
    return path


def sparse_file(
    folder: Union[str, os.PathLike], name: str, gigabytes: int = 20, head: bytes = b""
) -> Path:
    """A file of ``gigabytes`` GB that takes no room on disk (a hole), starting with ``head``:
    what a failed copy or a hostile user leaves. Reading it gives zeros after ``head``."""
    path = _folder(folder) / name
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(gigabytes << 30)
    return path
