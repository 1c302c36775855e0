"""Azure Custom Vision's two plugins: classify or detect one image, whichever backend answers.

Both plugins call ``predict(path, CLASSIFY | DETECT)``. The backend is chosen per plugin by
``CUSTOM_VISION_<TASK>_BACKEND`` (``registry.py``): ``cloud`` (the Prediction v3.0 API,
``customvisioncloud.py``), ``container`` (an exported model's container), ``onnx`` (an exported
model run in this process) or, for classification, ``openai``. Every Custom Vision backend
answers in the cloud's envelope (``imageprediction.py``), so the thresholds below serve them
all.
"""

import logging
from typing import List, NamedTuple, Optional

from ..ground.fields import passing
from ..ground.settings import Settings
from . import registry
from .base import CLASSIFY, DETECT, Prediction, Task

log = logging.getLogger(__name__)

__all__ = ["CLASSIFY", "DETECT", "Thresholds", "predict"]


class Thresholds(NamedTuple):
    threshold: float
    max_count: int

    @classmethod
    def load(cls, task: Task, settings: Settings) -> "Thresholds":
        return cls(settings.get(task.declared("THRESHOLD")), settings.get(task.max_setting))


def predict(path: str, task: Task, settings: Optional[Settings] = None) -> List[Prediction]:
    """The predictions for the image at ``path`` that pass the threshold, most probable first."""
    settings = settings or Settings.load()
    chosen = registry.backend(task.name, settings)
    limits = Thresholds.load(task, settings)
    predictions = chosen.find(path)
    kept = passing(predictions, limits.threshold, limits.max_count)
    if not kept and predictions:
        best = max(predictions, key=lambda p: p.probability)
        log.debug(
            "%s: best %s %r at %.3f, under the threshold %g",
            path,
            task.name,
            best.tag,
            best.probability,
            limits.threshold,
        )
    return kept
