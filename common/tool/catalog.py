"""The three plugins as the command-line tool sees them.

For each: how to load it (from its file beside ``common/``, as PixStor does), the backend that
answers for it (``services/registry.py``), and the signature of the settings that shape its
fields: what the backend is asked (its ``identity()``) and what is kept of the answer
(thresholds, counts, the smallest side sent). A file whose stored signature and content digest
are today's needs no new work.
"""

import hashlib
import importlib.util
import json
import sys
from typing import Any, Dict, List, NamedTuple

from ..ground.settings import PLUGINS_FOLDER, Settings
from ..images import prepare
from ..services import customvision, registry, vision
from ..services.base import CLASSIFY, DETECT, Service, Task
from ..services.onnxexport import CustomVisionOnnx


class Entry(NamedTuple):
    name: str  # what ``-p`` takes
    module: str  # the plugin's file, without .py
    cls: str  # its class, also the name its fields and runs are stored under


PLUGINS = {
    "vision": Entry("vision", "azurevision", "AzureVisionPlugin"),
    "classification": Entry("classification", "azureclassification", "AzureClassificationPlugin"),
    "detection": Entry("detection", "azureobjectdetection", "AzureObjectDetectionPlugin"),
}


def module(name: str) -> Any:
    """The plugin's module, loaded from its file beside ``common/`` as PixStor loads it."""
    entry = PLUGINS[name]
    loaded = sys.modules.get(entry.module)
    if loaded is None:
        path = PLUGINS_FOLDER / (entry.module + ".py")
        spec = importlib.util.spec_from_file_location(entry.module, str(path))
        if spec is None or spec.loader is None:  # no loader for a .py file: never for ours
            raise ImportError(f"{path} cannot be loaded as a module")
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        sys.modules[entry.module] = loaded
    return loaded


def load(name: str) -> Any:
    """An instance of the named plugin."""
    return getattr(module(name), PLUGINS[name].cls)()


def backend(name: str, settings: Settings) -> Service:
    """The backend that answers for the plugin; raises SettingsError as the plugin would."""
    return registry.backend(_asked(name), settings)


def backend_name(name: str, settings: Settings) -> str:
    """The backend's name as its setting says it: cloud, container, onnx, openai; 4.0, 3.2."""
    chosen = registry.chosen(_asked(name), settings)
    if name == "vision":
        named = {"openai": "Azure OpenAI", "local": "local OCR"}
        return named.get(chosen, "Image Analysis " + chosen)
    return chosen


def kept(name: str, settings: Settings) -> Dict[str, Any]:
    """The settings that choose what of an answer becomes fields."""
    if name == "vision":
        keep = vision.Keep.load(settings)._asdict()
    else:
        keep = customvision.Thresholds.load(_task(name), settings)._asdict()
    keep["min-side"] = prepare.edge_settings(settings)[1]
    return dict(keep)


def signature(name: str, chosen: Service, settings: Settings) -> str:
    """A digest of everything that shapes the plugin's fields but the picture (never a key)."""
    shape = {"plugin": name, "asked": chosen.identity(), "kept": kept(name, settings)}
    text = json.dumps(shape, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def describe(name: str, chosen: Service, settings: Settings) -> str:
    """One line on what answers for the plugin: backend, service, and what its identity names
    (for a plugin two backends answer, such as Vision with a Read API, each of them)."""
    described = []
    for part in chosen.parts():
        shown = [
            f"{k}={_short(v)}"
            for k, v in part.identity().items()
            if k != "service" and v not in (None, "")
        ]
        if isinstance(part, CustomVisionOnnx):  # a model run here: which one
            shown.insert(0, f"file={part.model.where} ({part.model.form})")
        described.append(f"{part.name}: " + ", ".join(shown))
    return f"{backend_name(name, settings)} backend, " + "; ".join(described)


def _short(value: Any) -> str:
    text = " ".join(str(value).split())  # a list of classes is one line
    return text if len(text) <= 60 else text[:57] + "..."


def names() -> List[str]:
    return sorted(PLUGINS)


def _task(name: str) -> Task:
    return CLASSIFY if name == "classification" else DETECT


def _asked(name: str) -> str:
    """What the plugin asks of its backend, as the registry names it."""
    return "vision" if name == "vision" else _task(name).name
