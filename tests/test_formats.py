"""common/formats.py: which files the plugins take, from a fixed table, with no I/O."""

import pytest

from pixstor_azure.ground import pixstor
from pixstor_azure.images import formats


@pytest.mark.parametrize(
    ("ext", "expected"),
    [
        (".jpg", True),
        ("JPEG", True),
        (".png", True),
        (".gif", True),
        (".bmp", True),
        (".webp", True),
        (".tif", True),
        (".tiff", True),
        (".svg", False),
        (".pdf", False),
        (".eps", False),
        (".txt", False),
        (".dpx", False),
    ],
)
def test_handles_extensions(monkeypatch, ext, expected):
    monkeypatch.setattr(pixstor, "load_image", None)
    monkeypatch.setenv("PIXSTOR_AZURE_VFX_DECODER", "pixstor")  # OpenImageIO aside (test_vfx)
    assert formats.handles(ext=ext) is expected


@pytest.mark.parametrize(
    ("mimetype", "expected"),
    [
        ("image/jpeg", True),
        ("image/png; charset=binary", True),
        ("IMAGE/GIF", True),
        ("image/webp", True),
        ("image/tiff", True),
        ("image/svg+xml", False),
        ("application/pdf", False),
        ("text/plain", False),
    ],
)
def test_handles_mimetypes(monkeypatch, mimetype, expected):
    monkeypatch.setattr(pixstor, "load_image", None)
    assert formats.handles(mimetype=mimetype) is expected


def test_handles_pixstor_formats_only_with_pixstor_loader(monkeypatch):
    monkeypatch.setattr(pixstor, "load_image", None)
    monkeypatch.setenv("PIXSTOR_AZURE_VFX_DECODER", "pixstor")  # OpenImageIO aside (test_vfx)
    assert not formats.handles(ext=".dpx")

    monkeypatch.setattr(pixstor, "load_image", lambda name: None)

    assert formats.handles(ext=".dpx")
    assert formats.handles(ext=".EXR")
    assert not formats.handles(ext=".svg")
    assert not formats.handles()
