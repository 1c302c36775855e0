"""The PixStor adapter: the real ``arcapix`` runtime when it is installed, our stand-in elsewhere.

Plugins import ``Plugin``, ``PluginStatus`` and ``Metadata`` from here and never from
``arcapix`` directly, so the same file runs inside PixStor Search, in tests and on a laptop.
"""

try:
    from arcapix.search.metadata.helpers import Metadata
    from arcapix.search.metadata.plugins.base import Plugin, PluginStatus

    IN_PIXSTOR = True
except ImportError:
    from .standin import Metadata, Plugin, PluginStatus

    IN_PIXSTOR = False

load_image = None  # type: Optional[Callable[[str], Any]]
try:
    # PixStor's own loader reads DPX, EXR and other formats Pillow cannot.
    from arcapix.search.metadata.utils import load_image
except ImportError:
    load_image = None

__all__ = ["IN_PIXSTOR", "Metadata", "Plugin", "PluginStatus", "load_image"]
