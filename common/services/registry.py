"""Which service answers for each plugin, as its setting chooses: the one registry of backends.

``BACKENDS`` maps (what is asked, the backend's name in the setting that chooses) to the
``Service`` class that answers; ``CHOSEN_BY`` names that setting. Every caller goes through
``backend(task, settings)``: the plugins' paths (``vision.analyze``, ``customvision.predict``)
and the tool (``catalog``, ``doctor``, the dry run's prices). What is asked, and how its
classes are built:

- "classify", "detect": the Custom Vision plugins, ``cls(task, settings)``;
- "vision": ``azurevision.py``'s tags, caption and objects, ``cls(settings, text_elsewhere)``;
- "read": ``azurevision.py``'s text from a Read API, ``read.load(cls, settings, fallback)``;
  when one reads it, the plugin is answered by ``WithRead`` (or by the reader alone, when only
  text is asked for).

Every module is imported here once; the ONNX backend imports its optional libraries only when
it is built.
"""

from typing import Any, Dict, Optional, Tuple, Type

from ..ground.setting_registry import (
    CLASSIFY_BACKEND,
    DETECT_BACKEND,
    VISION_API,
    VISION_FEATURES,
    VISION_READ_API,
    Setting,
)
from ..ground.settings import Settings
from . import read
from .base import TASKS, Service
from .container import CustomVisionContainer
from .customvisioncloud import CustomVisionCloud
from .imageanalysis import API_32, ComputerVision32, ImageAnalysis40
from .localread import LOCAL, LocalRead
from .onnxexport import CustomVisionOnnx
from .openaiclassify import OpenAIClassify
from .openaivision import OpenAIVision
from .read import DocumentIntelligenceRead, Read32
from .withread import WithRead

BACKENDS: Dict[Tuple[str, str], Type[Service]] = {
    ("classify", "cloud"): CustomVisionCloud,
    ("classify", "container"): CustomVisionContainer,
    ("classify", "onnx"): CustomVisionOnnx,
    ("classify", "openai"): OpenAIClassify,
    ("detect", "cloud"): CustomVisionCloud,
    ("detect", "container"): CustomVisionContainer,
    ("detect", "onnx"): CustomVisionOnnx,
    ("vision", "4.0"): ImageAnalysis40,
    ("vision", API_32): ComputerVision32,
    ("vision", "openai"): OpenAIVision,
    ("vision", LOCAL): LocalRead,  # text only, read on the node
    ("read", read.READ_32): Read32,
    ("read", read.DOC_INTEL): DocumentIntelligenceRead,
    ("read", LOCAL): LocalRead,
}
CHOSEN_BY: Dict[str, Setting] = {
    "classify": CLASSIFY_BACKEND,
    "detect": DETECT_BACKEND,
    "vision": VISION_API,
    "read": VISION_READ_API,
}


def names(task: str) -> Tuple[str, ...]:
    """The names of the backends that answer ``task``, in the order registered."""
    return tuple(name for asked, name in BACKENDS if asked == task)


def chosen(task: str, settings: Settings) -> str:
    """The name of the backend the settings choose for ``task``."""
    setting = CHOSEN_BY[task]
    return settings.choice(setting.name, setting.default, names(task))


def backend(task: str, settings: Settings) -> Service:
    """The service that answers ``task`` ("classify", "detect" or "vision") as the settings
    choose, built from them: once while they are unchanged, naming every missing setting at
    once."""
    return settings.built(("backend", task), lambda: _build(task, settings))


def _build(task: str, settings: Settings) -> Service:
    if task == "vision":
        return _vision(settings)
    make: Any = BACKENDS[(task, chosen(task, settings))]  # a Custom Vision backend
    return make(TASKS[task], settings)


def _vision(settings: Settings) -> Service:
    asked = settings.get(VISION_FEATURES)
    api = chosen("vision", settings)
    if api == LOCAL:
        return LocalRead.text_only(settings, asked)
    reader = _reader(settings, api) if "read" in asked else None
    if reader is not None and asked == ["read"]:
        return reader
    make: Any = BACKENDS[("vision", api)]  # an analyzer
    analyzer = make(settings, text_elsewhere=reader is not None)
    return analyzer if reader is None else WithRead(analyzer, reader)


def _reader(settings: Settings, api: str) -> Optional[Service]:
    """The Read backend, when the text is not read by the analyze call (3.2's reads none)."""
    cls: Any = BACKENDS[("read", chosen("read", settings))]  # a Read backend
    if cls is LocalRead:  # on the node: no endpoint, no key
        return cls(settings)
    return read.load(cls, settings, fallback=api == API_32)
