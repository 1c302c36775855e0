"""Custom Vision's answer, the ImagePrediction envelope, read into ``Prediction``\\ s.

Every Custom Vision backend answers in it: the cloud, the exported model's container (with
empty ids, ``boundingBox: null`` for a classifier, no ``tagType``) and the ONNX model run here
(which builds it), so one reader and the same thresholds serve them all: each is a
``CustomVisionService``.
"""

from typing import Any, List

from ..answers.answer import Answer
from ..ground.boxes import Box
from ..ground.outcomes import UNEXPECTED
from .base import DETECT, Prediction, Service, Task

SERVICE = "Custom Vision"  # named in its errors, whichever backend answered
# Custom Vision's built-in tag for "none of the tags": the cloud marks it with its tagType;
# an exported model (container, ONNX) names it only, in labels.txt.
NEGATIVE = "Negative"


def parse(body: Any, with_boxes: bool) -> List[Prediction]:
    """Read an ImagePrediction answer; keys are matched case-insensitively."""
    try:
        answer = {k.lower(): v for k, v in body.items()}
        predictions = []
        for item in answer["predictions"]:
            item = {k.lower(): v for k, v in item.items()}
            if _negative(item.get("tagtype"), item.get("tagname")):
                continue  # a classifier's "none of these": not a class, never written
            tag, probability = str(item["tagname"]), float(item["probability"])
            if not 0.0 <= probability <= 1.0:  # NaN and Infinity too: they are not JSON
                raise ValueError(f"probability {probability} of {tag!r} is not in 0..1")
            box = None
            if with_boxes:
                geometry = {k.lower(): float(v) for k, v in item["boundingbox"].items()}
                box = Box.from_fractions(
                    tag,
                    probability,
                    geometry["left"],
                    geometry["top"],
                    geometry["width"],
                    geometry["height"],
                )
            predictions.append(Prediction(tag, probability, box))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UNEXPECTED.error(SERVICE, what=f"{type(exc).__name__}: {exc}") from None
    return predictions


class CustomVisionService(Service):
    """A backend that answers a Custom Vision ``task`` in the ImagePrediction envelope."""

    task: Task

    def parse(self, answer: Answer) -> List[Prediction]:
        return parse(answer.body, with_boxes=self.task is DETECT)


def _negative(tag_type: Any, tag: Any) -> bool:
    """Whether a prediction is of the Negative tag: so typed, or so named and not typed."""
    if tag_type:
        return str(tag_type).lower() == "negative"
    return tag == NEGATIVE
