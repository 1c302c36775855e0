"""PixStor Search plugin: generic tags, caption, objects and text from Azure AI Vision.

Needs no training. Writes ``image.azure_tags`` (tags at or above the threshold, most confident
first), ``image.azure_caption``, ``image.azure_objects`` and ``image.azure_object_boxes`` (what
was found and where, as fractions of the image as displayed) and ``image.azure_text`` (the lines
of text read in the picture, in reading order). A feature not asked for, or that found nothing,
writes no field; when nothing was found at all the file is SKIPPED. Settings: see README.md.
"""

import importlib.util
import os
import sys
from typing import Any, Dict, Optional

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
from pixstor_azure.ground import boxes, fields
from pixstor_azure.ground.pixstor import Plugin, PluginStatus
from pixstor_azure.images.formats import handles
from pixstor_azure.services import vision

SCHEMA = [
    fields.strings("azure_tags", "Azure AI Vision tags, most confident first"),
    fields.string("azure_caption", "Azure AI Vision caption"),
    fields.strings("azure_objects", "Objects found by Azure AI Vision, most confident first"),
    fields.string("azure_object_boxes", "Where Azure AI Vision found the objects (JSON boxes)"),
    fields.strings("azure_text", "Lines of text read in the image by Azure AI Vision"),
    fields.string(
        "azure_vision_source",
        "What answered (backend, model, when; for a frame, which frame's answer it reuses)",
    ),
]


def extract(path: str) -> dict:
    """The fields for the image at ``path``: exactly what ``process`` writes."""
    with fetch.watching() as seen:
        found = vision.analyze(path)
    data: Dict[str, Any] = {}
    if found.tags:
        data["azure_tags"] = [t.name for t in found.tags]
    if found.caption:
        data["azure_caption"] = found.caption
    if found.objects:
        data["azure_objects"] = fields.distinct([b.tag for b in found.objects])
        data["azure_object_boxes"] = boxes.to_json(found.objects)
    elif found.object_names:  # names without boxes (AZURE_VISION_API=openai)
        data["azure_objects"] = fields.distinct(found.object_names)
    if found.text:
        data["azure_text"] = found.text
    if data:
        data["azure_vision_source"] = fetch.provenance(seen)
    return data


class AzureVisionPlugin(Plugin):
    def namespace(self) -> str:
        return "image"

    def handles(self, ext: Optional[str] = None, mimetype: Optional[str] = None) -> bool:
        return handles(ext, mimetype)

    def schema(self) -> list:
        return SCHEMA

    def process(self, id_: Any, file_: str, fileinfo: Optional[dict] = None) -> PluginStatus:
        return runner.process(self, id_, file_, extract)
