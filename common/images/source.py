"""Opening a picture: a regular file only, never blocking, never read past its bounds.

Every read of a file the plugins are given goes through ``open_picture``: its content digest's
(``answers.fetch``) and its decode's. So each refusal comes before anything else is read, in
the same words, and the file ends SKIPPED with that one line:

- a FIFO, a device, a socket or a folder named like a picture is refused on ``stat``, before it
  is opened; the file is opened without blocking (``O_NONBLOCK``: a FIFO put in its place
  meanwhile cannot hold the open) and ``fstat`` must find a regular file again;
- its first bytes must name a format the plugins read (``sniff``): a 20 GB file of zeros
  named ``.jpg`` is not hashed;
- a file larger than ``PIXSTOR_AZURE_MAX_FILE_MB`` is refused, its first bytes alone read;
- a file this process may not read says "permission denied".

``Opened.stamp`` is what ``fstat`` says of the file opened: size, modification and change
times, inode and device; a file is rewritten, replaced or restored with other bytes only with
another stamp (nothing can set a change time back). Within one file's budget (the runner opens
one for each file), every opening of the path must find the stamp of the first: a picture
replaced or rewritten between its digest and its decode is refused, and no answer is ever kept
under the digest of other bytes than those sent.

``chunks`` reads an opened file within what is left of the file's time budget, and
``png_skimmed`` shows a PNG to Pillow without the large chunks it would load whole before it
judges them (a 200 MB text chunk cost 1.16 GB).
"""

import bisect
import contextlib
import io
import os
import stat
import struct
import time
from typing import Any, Iterator, List, NamedTuple, Optional, Tuple

from ..ground import budget
from ..ground.errors import FileProblem, ImageError
from ..ground.setting_registry import FILE_TIMEOUT, MAX_FILE_MB
from ..ground.settings import Settings

MB = 1 << 20
CHUNK = 1 << 20
# Read only; never wait for a writer (a FIFO) or become a terminal's; not inherited by children.
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)

# What is wrong with a file, in the words of its SKIPPED line.
NO_FORMAT = FileProblem("not an image: its first bytes are of no format the plugins read")
TOO_LARGE = FileProblem("{size}, larger than {setting} ({largest} MB): not read")
REPLACED = FileProblem(
    "the file was replaced or rewritten while it was processed: nothing was sent"
)
PERMISSION_DENIED = FileProblem("permission denied")
UNREADABLE = FileProblem("cannot read the file ({why})")
OUT_OF_TIME = FileProblem(
    "ran out of the file's time budget while it was read ({setting}, {seconds:g} s)"
)
NOT_REGULAR = FileProblem("not a regular file{what}")


class Stamp(NamedTuple):
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int


def stamp_of(found: os.stat_result) -> Stamp:
    return Stamp(found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino, found.st_dev)


class Opened(NamedTuple):
    file: io.BufferedReader  # at its first byte
    stamp: Stamp
    format: str  # what its first bytes name (``sniff``)


@contextlib.contextmanager
def open_picture(path: str, stated: Optional[os.stat_result] = None) -> Iterator[Opened]:
    """The picture at ``path``, opened for reading; ImageError when it is not one to read.
    ``stated``: what ``os.stat`` said of ``path`` a moment ago, when the caller has it."""
    left = budget.remaining()
    if left is not None and left <= 0:
        raise out_of_time()
    try:
        _regular(stated or os.stat(path))
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise unreadable(exc) from None
    with os.fdopen(fd, "rb") as f:
        try:
            found = stamp_of(_regular(os.fstat(fd)))
            # pread: the first bytes alone, not a buffer's worth, and the file stays at 0.
            prefix = os.pread(fd, SNIFF_BYTES, 0)
        except OSError as exc:
            raise unreadable(exc) from None
        kind = sniff(prefix)
        if kind is None:
            raise NO_FORMAT.error()
        largest = Settings.load().get(MAX_FILE_MB)
        if found.size > largest * MB:
            size = _megabytes(found.size)
            raise TOO_LARGE.error(size=size, setting=MAX_FILE_MB.name, largest=largest)
        same_file(path, found)
        yield Opened(f, found, kind)


def same_file(path: str, stamp: Stamp) -> None:
    """ImageError unless ``path`` had ``stamp`` when it was first opened in this thread's file
    budget (the file's digest and its decode, of the same bytes)."""
    if budget.first_seen(path, stamp) != stamp:
        raise REPLACED.error()


def chunks(f: io.BufferedIOBase, size: int = CHUNK) -> Iterator[memoryview]:
    """The rest of ``f``, ``size`` bytes at a time (each view is reused for the next), until
    this thread's file budget runs out: then ImageError.

    The deadline is on the real clock: reading takes real time, whatever clock the budgets
    read (a test's fake one included).
    """
    left = budget.remaining()
    deadline = None if left is None else time.monotonic() + left
    buffer = bytearray(size)
    view = memoryview(buffer)
    while True:
        if deadline is not None and time.monotonic() > deadline:
            raise out_of_time()
        count = f.readinto(buffer)
        if not count:
            return
        yield view[:count]


def unreadable(exc: OSError) -> ImageError:
    """The ImageError for an OSError met opening or reading a file."""
    if isinstance(exc, PermissionError):
        return PERMISSION_DENIED.error()
    return UNREADABLE.error(why=exc.strerror or exc)


def out_of_time() -> ImageError:
    return OUT_OF_TIME.error(setting=FILE_TIMEOUT.name, seconds=budget.total() or 0)


def _regular(found: os.stat_result) -> os.stat_result:
    for test, what in _NOT_REGULAR:
        if test(found.st_mode):
            raise NOT_REGULAR.error(what=f" ({what})")
    if not stat.S_ISREG(found.st_mode):
        raise NOT_REGULAR.error(what="")
    return found


def _megabytes(size: int) -> str:
    return f"{size / MB:.1f} MB" if size < 10 * MB else f"{size / MB:.0f} MB"


# --------------------------------------------------------------------------- PNG

# Chunks of pixels: as large as the picture needs. Every other ancillary chunk (text, EXIF,
# private data) larger than Pillow's own limit for decompressed text is left unread: Pillow
# reads a chunk whole, and copies it, before it judges its size.
_PNG_PIXELS = (b"IDAT", b"fdAT")
LARGEST_PNG_CHUNK = 1 << 20


def png_skimmed(f: io.BufferedIOBase) -> io.IOBase:
    """``f`` (a PNG, at its start) without its large ancillary chunks (``LARGEST_PNG_CHUNK``):
    ``f`` itself when it has none, else a view of it that reads as if they were not there.
    Only the chunks' headers are read to find them."""
    skipped = []  # type: List[Tuple[int, int]]
    at = 8
    while True:
        f.seek(at)
        head = f.read(8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        end = at + 12 + length
        if kind == b"IEND":
            break
        if length > LARGEST_PNG_CHUNK and kind[0] & 0x20 and kind not in _PNG_PIXELS:
            skipped.append((at, end))
        at = end
    f.seek(0)
    return _Without(f, skipped) if skipped else f


class _Without(io.RawIOBase):
    """A file read as if the byte ranges ``skipped`` (in order, apart) were cut out of it."""

    def __init__(self, f: io.BufferedIOBase, skipped: List[Tuple[int, int]]) -> None:
        super().__init__()
        self.f = f
        self.starts = [0]  # where each kept part starts: in this view, and in the file
        self.file_starts = [0]
        for start, end in skipped:
            self.starts.append(self.starts[-1] + start - self.file_starts[-1])
            self.file_starts.append(end)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self.pos
        elif whence == io.SEEK_END:
            offset += self._length()
        self.pos = max(0, offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        """As much as ``buffer`` holds, across the cuts, unless the file ends first."""
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view):
            part = bisect.bisect_right(self.starts, self.pos) - 1
            self.f.seek(self.file_starts[part] + self.pos - self.starts[part])
            room = len(view) - done
            if part + 1 < len(self.starts):
                room = min(room, self.starts[part + 1] - self.pos)
            count = self.f.readinto(view[done : done + room])
            if not count:
                break
            done += count
            self.pos += count
        return done

    def _length(self) -> int:
        end = os.fstat(self.f.fileno()).st_size
        return self.starts[-1] + max(0, end - self.file_starts[-1])


# --------------------------------------------------------------------------- first bytes

# What the first bytes of each format of ``formats.EXTENSIONS`` are, so that a file is known
# for a picture before any more of it is read (hashed or decoded). Pillow identifies files the
# same way (each format's ``_accept``); TGA has no signature, so its header is checked as
# Pillow checks it.
SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),  # and MPO: a JPEG with more pictures after it
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II\x00*", "TIFF"),
    (b"MM*\x00", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),  # a bare codestream
    (b"DDS ", "DDS"),
    (b"icns", "ICNS"),
    (b"\x01\xda", "SGI"),
)
# Those PixStor's loader adds; its raw formats (CR2, NEF, DNG, ARW) start as TIFFs do. They are
# known whether the loader is there or not: the decode says whether it can read them.
PIXSTOR_SIGNATURES = (
    (b"SDPX", "DPX"),
    (b"XPDS", "DPX"),
    (b"\x76\x2f\x31\x01", "EXR"),
    (b"\x80\x2a\x5f\xd7", "CIN"),
    (b"\xd7\x5f\x2a\x80", "CIN"),
    (b"#?", "HDR"),  # "#?RADIANCE", "#?RGBE"
)
SNIFF_BYTES = 18  # enough for every signature, and for a TGA header


def sniff(prefix: bytes) -> Optional[str]:
    """The format a file's first ``SNIFF_BYTES`` bytes name, or None: not a picture the
    plugins (or PixStor's loader) read."""
    for signature, name in SIGNATURES + PIXSTOR_SIGNATURES:
        if prefix.startswith(signature):
            return name
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        return "WEBP"
    if len(prefix) >= 2 and prefix[0:1] == b"P" and prefix[1] in b"0123456fy":
        return "PPM"  # PBM, PGM, PPM, PFM
    if len(prefix) >= 2 and prefix[0] == 10 and prefix[1] in (0, 2, 3, 5):
        return "PCX"
    if _tga(prefix):
        return "TGA"
    return None


def _tga(header: bytes) -> bool:
    """Whether an 18-byte header is one Pillow would open as a TGA."""
    if len(header) < 18:
        return False
    width, height = header[12] | header[13] << 8, header[14] | header[15] << 8
    return (
        header[1] in (0, 1)  # colour map: none, or one
        and header[2] in (1, 2, 3, 9, 10, 11)  # palette, RGB, grey; plain or run-length
        and width > 0
        and height > 0
        and header[16] in (1, 8, 16, 24, 32)  # bits a pixel
    )
