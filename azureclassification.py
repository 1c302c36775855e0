"""PixStor Search plugin: tag images with the customer's own Azure Custom Vision classifier.

Writes ``image.azure_class`` (the most probable class at or above the threshold) and
``image.azure_classes`` (every such class, most probable first). When no class reaches the
threshold nothing is written and the file is SKIPPED. Settings: see README.md.
"""

import importlib.util
import os
import sys
from typing import Any, Optional

# PixStor loads this file through a link in its enabled/ folder. Load common/ from beside the
# real file under a name of our own: other vendors' plugins may bring a "common" of their own,
# and sys.path stays as PixStor set it.
_COMMON = os.path.join(os.path.dirname(os.path.realpath(__file__)), "common", "__init__.py")
if "pixstor_azure" not in sys.modules and os.path.isfile(_COMMON):
    _spec = importlib.util.spec_from_file_location("pixstor_azure", _COMMON)
    if _spec is None or _spec.loader is None:  # no loader for a .py file: never for ours
        raise ImportError(f"{_COMMON} cannot be loaded as a module")
    sys.modules["pixstor_azure"] = importlib.util.module_from_spec(_spec)
    try:
        _spec.loader.exec_module(sys.modules["pixstor_azure"])
    except BaseException:
        del sys.modules["pixstor_azure"]
        raise

from pixstor_azure import runner
from pixstor_azure.answers import fetch
from pixstor_azure.ground import fields
from pixstor_azure.ground.pixstor import Plugin, PluginStatus
from pixstor_azure.images.formats import handles
from pixstor_azure.services import customvision

SCHEMA = [
    fields.string("azure_class", "Most probable Custom Vision class"),
    fields.strings("azure_classes", "Custom Vision classes, most probable first"),
    fields.string(
        "azure_classification_source",
        "What answered (backend, model, when; for a frame, which frame's answer it reuses)",
    ),
]


def extract(path: str) -> dict:
    """The fields for the image at ``path``: exactly what ``process`` writes."""
    with fetch.watching() as seen:
        predictions = customvision.predict(path, customvision.CLASSIFY)
    if not predictions:
        return {}
    return {
        "azure_class": predictions[0].tag,
        "azure_classes": [p.tag for p in predictions],
        "azure_classification_source": fetch.provenance(seen),
    }


class AzureClassificationPlugin(Plugin):
    def namespace(self) -> str:
        return "image"

    def handles(self, ext: Optional[str] = None, mimetype: Optional[str] = None) -> bool:
        return handles(ext, mimetype)

    def schema(self) -> list:
        return SCHEMA

    def process(self, id_: Any, file_: str, fileinfo: Optional[dict] = None) -> PluginStatus:
        return runner.process(self, id_, file_, extract)
