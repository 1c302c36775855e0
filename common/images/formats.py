"""Which files the plugins take: a fixed table of extensions and mime types.

PixStor asks ``handles`` for every file it indexes, so the answer must cost nothing and be the
same on every node: no file I/O, nothing read from the host's mime table or from Pillow's
registry (which differ between machines and Pillow versions). What a file's first bytes must
be is ``source.sniff``'s.
"""

from typing import Optional

from ..ground import pixstor
from ..ground.errors import SettingsError
from ..ground.settings import Settings
from . import vfx

# Pictures Pillow 7.2 and newer decode (with their usual extensions), and their mime types.
EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo",
        ".png", ".apng",
        ".gif",
        ".bmp", ".dib",
        ".tif", ".tiff",
        ".webp",
        ".ico",
        ".ppm", ".pgm", ".pbm", ".pnm",
        ".tga",
        ".pcx",
        ".sgi", ".rgb", ".bw",
        ".jp2", ".j2k", ".jpx", ".jpf",
        ".dds",
        ".icns",
    }
)  # fmt: skip
MIME_TYPES = frozenset(
    {
        "image/jpeg", "image/pjpeg", "image/mpo",
        "image/png", "image/apng",
        "image/gif",
        "image/bmp", "image/x-bmp", "image/x-ms-bmp",
        "image/tiff",
        "image/webp",
        "image/x-icon", "image/vnd.microsoft.icon",
        "image/x-portable-pixmap", "image/x-portable-graymap", "image/x-portable-bitmap",
        "image/x-portable-anymap",
        "image/x-tga", "image/x-targa",
        "image/x-pcx", "image/vnd.zbrush.pcx",
        "image/sgi", "image/x-rgb",
        "image/jp2", "image/jpx",
        "image/vnd-ms.dds",
        "image/icns", "image/x-icns",
    }
)  # fmt: skip
# Formats PixStor's own loader adds (through ImageMagick) when it is there.
PIXSTOR_EXTENSIONS = frozenset({".dpx", ".exr", ".cin", ".hdr", ".cr2", ".nef", ".dng", ".arw"})
PIXSTOR_MIME_TYPES = frozenset(
    {"image/x-dpx", "image/x-exr", "image/x-canon-cr2", "image/x-nikon-nef", "image/x-adobe-dng"}
)


def handles(ext: Optional[str] = None, mimetype: Optional[str] = None) -> bool:
    """Whether a file of this extension (``.jpg``), or else mimetype, can be prepared."""
    with_pixstor = pixstor.load_image is not None
    if ext:
        ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
        if ext in vfx.EXTENSIONS and _openimageio(with_pixstor):
            return True
        return ext in EXTENSIONS or (with_pixstor and ext in PIXSTOR_EXTENSIONS)
    if mimetype:
        kind = mimetype.split(";")[0].strip().lower()
        if kind in vfx.MIME_TYPES and _openimageio(with_pixstor):
            return True
        return kind in MIME_TYPES or (with_pixstor and kind in PIXSTOR_MIME_TYPES)
    return False


def _openimageio(with_pixstor: bool) -> bool:
    """Whether OpenImageIO decodes EXR and DPX here (``vfx.chosen``). Chosen but missing,
    they are taken: each then ends FATAL with the settings error that names the extra."""
    try:
        return vfx.chosen(Settings.load(), with_pixstor)
    except SettingsError:
        return True
