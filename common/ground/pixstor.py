"""The PixStor adapter: the real ``arcapix`` runtime when it is installed, our stand-in elsewhere.

Plugins import ``Plugin``, ``PluginStatus`` and ``Metadata`` from here and never from
``arcapix`` directly, so the same file runs inside PixStor Search, in tests and on a laptop.

Fields go to PixStor's index when ``arcapix`` imports, else to the stand-in's SQLite store. The
command-line tool calls ``use_own_store()`` first: run on a PixStor node, inside PixStor's
environment, it has no item ids of PixStor's index (only paths), so it must never write there.
"""

from typing import Any

from . import runtime
from .paths import IN_PIXSTOR
from .standin import Metadata as StoreMetadata

if IN_PIXSTOR:
    from arcapix.search.metadata.helpers import Metadata as _IndexMetadata
    from arcapix.search.metadata.plugins.base import Plugin, PluginStatus
else:
    from .standin import Plugin, PluginStatus

    _IndexMetadata = None

try:
    # PixStor's own loader reads DPX, EXR and other formats Pillow cannot.
    from arcapix.search.metadata.utils import load_image
except ImportError:
    load_image = None


class Destination:
    """Where this process writes fields: PixStor's index when it can, unless told otherwise."""

    def __init__(self) -> None:
        self.own_store = not IN_PIXSTOR


def use_own_store() -> None:
    """Write fields to the stand-in's SQLite store even where ``arcapix`` imports."""
    runtime.current().get(Destination).own_store = True


def writes_to_own_store() -> bool:
    return runtime.current().get(Destination).own_store


class Metadata:
    """Writes the fields of one indexed item, to wherever this process writes them."""

    def __init__(self, id_: Any, plugin: Any) -> None:
        if writes_to_own_store():
            self._target = StoreMetadata(id_, plugin)
        else:
            self._target = _IndexMetadata(id_, plugin)

    def update(self, data: dict) -> Any:
        return self._target.update(data)


__all__ = [
    "IN_PIXSTOR",
    "Metadata",
    "Plugin",
    "PluginStatus",
    "load_image",
    "use_own_store",
    "writes_to_own_store",
]
