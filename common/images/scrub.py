"""Pixels only: a file's own encoded image with every metadata block taken out, losslessly.

A picture small enough to be sent as it is would otherwise leave with everything embedded in
it: EXIF (camera serials, GPS position, artist), XMP (which can name the master it was made
from), IPTC captions, comments, text chunks, thumbnails and data appended after the image.
``pixels_only(data, format)`` rebuilds the file from the parts the pixels need (the coded
image, its tables and colour-transform markers) and drops the rest, without decoding or
re-encoding anything. It returns None when it cannot be sure of the result: a layout it does
not know, a TIFF carrying anything but image structure, a damaged file. The caller then
re-encodes the decoded pixels instead.

The colour profile goes too: it carries free text (description, copyright, the device's maker
and model) and goes out whole. Only a file whose pixels are sRGB already may be sent this way
(``prepare`` converts the others), and sRGB is what pixels without a profile are taken for.
An EXIF orientation goes with the EXIF block: only a file that is upright as stored may be
sent this way.
"""

import re
import struct
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple


class Clean(NamedTuple):
    data: bytes
    format: str  # what the bytes are: an MPO's first picture is a plain JPEG


def pixels_only(data: bytes, fmt: Optional[str]) -> Optional[Clean]:
    """``data`` (a file Pillow identified as ``fmt``) without its metadata, or None."""
    scrub = _SCRUBBERS.get(fmt or "")
    if scrub is None:
        return None
    try:
        return scrub(data)
    except (struct.error, IndexError, ValueError):
        return None  # a layout this module misreads is re-encoded, never guessed at


# --------------------------------------------------------------------------- JPEG

# Segments a decoder needs: frame headers, Huffman and arithmetic tables, quantisation
# tables, restart interval, scans, line count, hierarchical headers.
_JPEG_STRUCTURE = frozenset(range(0xC0, 0xD0)) - {0xC8} | {0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}
# The next marker after entropy-coded data: 0xFF followed by neither a stuffed zero, a
# restart marker nor another fill byte.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg(data: bytes) -> Optional[Clean]:
    if data[:2] != b"\xff\xd8":
        return None
    out = [b"\xff\xd8"]
    pos, end = 2, len(data)
    while True:
        if data[pos] != 0xFF:
            return None
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # end of image: whatever follows (an MPO's second picture,
            out.append(b"\xff\xd9")  # a phone's appended video, a trailer) stays behind
            return Clean(b"".join(out), "JPEG")
        if marker in _JPEG_STANDALONE:
            out.append(bytes((0xFF, marker)))
            continue
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > end:
            return None
        payload = data[pos + 2 : pos + length]
        kept = _jpeg_segment(marker, payload)
        if kept is _UNKNOWN:
            return None
        if kept is not None:
            out.append(bytes((0xFF, marker)) + struct.pack(">H", len(kept) + 2) + kept)
        pos += length
        if marker == 0xDA:  # a scan: its entropy-coded data runs to the next marker
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return None
            out.append(data[pos : found.start()])
            pos = found.start()


_UNKNOWN = b"unknown"


def _jpeg_segment(marker: int, payload: bytes) -> Optional[bytes]:
    """The payload to keep (possibly rewritten), None to drop it, ``_UNKNOWN`` to give up."""
    if marker in _JPEG_STRUCTURE:
        return payload
    if marker == 0xE0:
        # JFIF: version and pixel density, kept; its thumbnail, dropped. JFXX and the rest of
        # APP0 (thumbnails, AVI1) carry nothing a decoder needs.
        if payload[:5] == b"JFIF\0" and len(payload) >= 14:
            return payload[:12] + b"\0\0"
        return None
    if marker == 0xEE and payload[:5] == b"Adobe":
        return payload  # whether the channels are RGB, YCbCr, CMYK or YCCK
    if 0xE0 <= marker <= 0xEF or marker == 0xFE:
        return None  # EXIF, XMP, MPF, FlashPix, ICC profile, IPTC, Photoshop, comments...
    return _UNKNOWN


# --------------------------------------------------------------------------- PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Critical chunks, and the ancillary ones that change what the pixels look like (in numbers
# only: the profile, iCCP, is free text too).
_PNG_KEEP = frozenset(
    {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"sBIT", b"sRGB"}
    | {b"cICP", b"mDCv", b"cLLi"}
)


def _png(data: bytes) -> Optional[Clean]:
    if data[:8] != _PNG_SIGNATURE:
        return None
    out = [_PNG_SIGNATURE]
    pos = 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            return None
        chunk = data[pos : pos + 12 + length]
        pos += 12 + length
        if kind in _PNG_KEEP:
            out.append(chunk)
        if kind == b"IEND":  # anything after the end stays behind
            return Clean(b"".join(out), "PNG")
    return None


# --------------------------------------------------------------------------- GIF


def _gif(data: bytes) -> Optional[Clean]:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    out = [data[:pos]]
    while True:
        block = data[pos]
        if block == 0x3B:  # trailer: anything after it stays behind
            out.append(b"\x3b")
            return Clean(b"".join(out), "GIF")
        if block == 0x21:
            label = data[pos + 1]
            end = _gif_sub_blocks(data, pos + 2)
            if label == 0xF9:  # graphic control: transparency and timing
                out.append(data[pos:end])
            # comments, application blocks (XMP, ICC, loop counts) and plain text: dropped
            pos = end
        elif block == 0x2C:
            descriptor_flags = data[pos + 9]
            start = pos
            pos += 10
            if descriptor_flags & 0x80:
                pos += 3 << ((descriptor_flags & 7) + 1)
            end = _gif_sub_blocks(data, pos + 1)  # after the LZW minimum code size
            out.append(data[start:end])
            pos = end
        else:
            return None


def _gif_sub_blocks(data: bytes, pos: int) -> int:
    """Where the chain of data sub-blocks starting at ``pos`` ends (after its terminator)."""
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            if pos > len(data):
                raise IndexError("GIF sub-blocks run past the end")
            return pos


# --------------------------------------------------------------------------- WebP

_WEBP_KEEP = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH"})
_VP8X_ICC, _VP8X_EXIF, _VP8X_XMP, _VP8X_ANIMATION = 0x20, 0x08, 0x04, 0x02


def _webp(data: bytes) -> Optional[Clean]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    (riff_size,) = struct.unpack("<I", data[4:8])
    end = min(len(data), 8 + riff_size)  # bytes after the RIFF container stay behind
    pos, chunks = 12, []
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + size]
        if len(body) != size:
            return None
        pos += 8 + size + (size & 1)
        if kind in (b"ANIM", b"ANMF"):
            return None  # an animation is re-encoded from its first frame
        if kind == b"VP8X":
            body = bytes((body[0] & ~(_VP8X_ICC | _VP8X_EXIF | _VP8X_XMP),)) + body[1:]
        if kind in _WEBP_KEEP:
            chunks.append(kind + struct.pack("<I", size) + body + b"\0" * (size & 1))
    content = b"WEBP" + b"".join(chunks)
    return Clean(b"RIFF" + struct.pack("<I", len(content)) + content, "WEBP")


# --------------------------------------------------------------------------- BMP

_BMP_HEADERS = frozenset({12, 40, 52, 56, 108, 124})
_BI_RGB, _BI_BITFIELDS = 0, 3


def _bmp(data: bytes) -> Optional[Clean]:
    """The file when it is nothing but header, palette and pixels (BMP has no metadata
    blocks, but a version 5 header can link a colour profile by file path, and bytes can
    hide between the parts or after them); else None."""
    if data[:2] != b"BM":
        return None
    (pixels_at,) = struct.unpack("<I", data[10:14])
    (header,) = struct.unpack("<I", data[14:18])
    if header not in _BMP_HEADERS:
        return None
    if header == 12:
        width, height, _, bits = struct.unpack("<HHHH", data[18:26])
        compression, colours, entry = _BI_RGB, 0, 3
    else:
        width, height, _, bits, compression = struct.unpack("<iiHHI", data[18:34])
        (colours,) = struct.unpack("<I", data[46:50])
        entry = 4
        if header == 124:
            (colour_space,) = struct.unpack("<I", data[70:74])
            if colour_space in (0x4C494E4B, 0x4D424544):  # "LINK", "MBED" profiles
                return None
    if compression not in (_BI_RGB, _BI_BITFIELDS):
        return None
    masks = 12 if compression == _BI_BITFIELDS and header == 40 else 0
    if bits <= 8:
        colours = colours or (1 << bits)
    palette = colours * entry
    stride = (width * bits + 31) // 32 * 4
    if pixels_at != 14 + header + masks + palette or len(data) != pixels_at + stride * abs(height):
        return None
    return Clean(data, "BMP")


# --------------------------------------------------------------------------- TIFF

# Tags that describe how the pixels are stored and coloured, and nothing else (a profile,
# tag 34675, is free text too: a TIFF with one is re-encoded).
_TIFF_STRUCTURE = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 274, 277, 278, 279, 280, 281, 282}
    | {283, 284, 296, 317, 318, 319, 320, 322, 323, 324, 325, 338, 339, 340, 341, 347}
    | {529, 530, 531, 532}
)
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
_OFFSETS_AND_COUNTS = ((273, 279), (324, 325))


def _tiff(data: bytes) -> Optional[Clean]:
    """The file when every tag it holds describes the pixels and every byte of it belongs to
    the header, the one directory, a tag's value or the image data; else None."""
    order = {b"II*\0": "<", b"MM\0*": ">"}.get(data[:4])
    if order is None:
        return None
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    used = [(0, 8), (ifd, ifd + 2 + 12 * count + 4)]
    values: Dict[int, Tuple[int, ...]] = {}
    for index in range(count):
        at = ifd + 2 + 12 * index
        tag, kind, number = struct.unpack(order + "HHI", data[at : at + 8])
        if tag not in _TIFF_STRUCTURE or kind not in _TIFF_SIZES:
            return None
        size = _TIFF_SIZES[kind] * number
        where = at + 8
        if size > 4:
            (where,) = struct.unpack(order + "I", data[at + 8 : at + 12])
            used.append((where, where + size))
        if kind in (3, 4):
            code = "H" if kind == 3 else "I"
            values[tag] = struct.unpack(f"{order}{number}{code}", data[where : where + size])
    (following,) = struct.unpack(order + "I", data[ifd + 2 + 12 * count : ifd + 6 + 12 * count])
    if following:
        return None  # a second page or a thumbnail
    for offsets_tag, counts_tag in _OFFSETS_AND_COUNTS:
        offsets, counts = values.get(offsets_tag, ()), values.get(counts_tag, ())
        if len(offsets) != len(counts):
            return None
        used.extend((start, start + length) for start, length in zip(offsets, counts))
    return Clean(data, "TIFF") if _covers(used, len(data)) else None


def _covers(ranges: List[Tuple[int, int]], length: int) -> bool:
    """Whether ``ranges`` cover every byte of 0..length and nothing past it (TIFF pads values
    to even offsets: a single byte between two parts is allowed)."""
    reached = 0
    for start, stop in sorted(ranges):
        if start > reached + 1 or stop > length:
            return False
        reached = max(reached, stop)
    return reached >= length - 1


_SCRUBBERS: Dict[str, Callable[[bytes], Optional[Clean]]] = {
    "JPEG": _jpeg,
    "MPO": _jpeg,
    "PNG": _png,
    "GIF": _gif,
    "WEBP": _webp,
    "BMP": _bmp,
    "TIFF": _tiff,
}
