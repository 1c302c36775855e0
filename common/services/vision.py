"""Azure AI Vision's plugin: generic tags, caption, objects and text for one image.

``azurevision.py`` calls ``analyze(path)``. What answers is chosen by ``AZURE_VISION_API``
(``registry.py``): Image Analysis 4.0 (the default) or Computer Vision 3.2
(``imageanalysis.py``), or an Azure OpenAI deployment (``openaivision.py``); the text comes from
a Read API (``read.py``) when ``AZURE_VISION_API=3.2`` (whose analyze reads none) or
``AZURE_VISION_READ_ENDPOINT`` names one, each answer fetched and cached on its own
(``withread.py``). Whichever answered, ``analyze`` returns one ``Analysis`` with the thresholds
and counts below applied.
"""

import logging
from typing import List, NamedTuple, Optional, Set

from ..ground.fields import passing
from ..ground.setting_registry import (
    VISION_MAX_OBJECTS,
    VISION_MAX_TAGS,
    VISION_OBJECT_THRESHOLD,
    VISION_TAG_THRESHOLD,
)
from ..ground.settings import Settings
from . import registry
from .base import Analysis, Tag

log = logging.getLogger(__name__)


class Keep(NamedTuple):
    """What of an answer is kept: thresholds and counts, applied to stored answers too."""

    tag_threshold: float
    max_tags: int
    object_threshold: float
    max_objects: int

    @classmethod
    def load(cls, settings: Settings) -> "Keep":
        return cls(
            settings.get(VISION_TAG_THRESHOLD),
            settings.get(VISION_MAX_TAGS),
            settings.get(VISION_OBJECT_THRESHOLD),
            settings.get(VISION_MAX_OBJECTS),
        )


def analyze(path: str, settings: Optional[Settings] = None) -> Analysis:
    """Tags and objects at or above their thresholds, the caption and the text of ``path``."""
    settings = settings or Settings.load()
    chosen, keep = registry.backend("vision", settings), Keep.load(settings)
    return _kept(path, chosen.find(path), keep)


def _kept(path: str, found: Analysis, config: Keep) -> Analysis:
    tags: List[Tag] = []
    seen: Set[str] = set()
    for tag in passing(found.tags, config.tag_threshold, len(found.tags), lambda t: t.confidence):
        if tag.name.lower() not in seen:  # 4.0 and 3.2 each name a tag once, but cheap to be sure
            seen.add(tag.name.lower())
            tags.append(tag)
    tags = tags[: config.max_tags]
    objects = passing(found.objects, config.object_threshold, config.max_objects)
    if found.tags and not tags:
        best = found.tags[0]
        log.debug(
            "%s: best tag %r at %.3f, under the threshold %g",
            path,
            best.name,
            best.confidence,
            config.tag_threshold,
        )
    names = found.object_names[: config.max_objects]
    return Analysis(tags, found.caption, found.caption_confidence, objects, found.text, names)
