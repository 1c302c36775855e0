"""Azure Custom Vision: classify or detect one image, whichever backend answers.

Both plugins call ``predict(path, CLASSIFY | DETECT)``. The backend is chosen per plugin by
``CUSTOM_VISION_<TASK>_BACKEND``: ``cloud`` (the Prediction v3.0 API, here), ``container`` (an
exported model's container), ``onnx`` (an exported model run in this process) or, for
classification, ``openai``. Every Custom Vision backend answers in the cloud's envelope, so
``parse`` and the thresholds below serve them all.
"""

import importlib
import logging
import uuid
from typing import Any, List, NamedTuple, Optional
from urllib.parse import quote, urlsplit

from ..answers import fetch
from ..answers.answer import Answer, fresh
from ..ground.boxes import Box
from ..ground.errors import ImageRejected, Refused, ServiceError, SettingsError
from ..ground.fields import passing
from ..ground.settings import Settings
from ..http import client
from ..images import prepare

log = logging.getLogger(__name__)

SERVICE = "Custom Vision"


class Task(NamedTuple):
    name: str  # the path segment: "classify" or "detect"
    max_setting: str
    default_max: int

    def setting(self, what: str) -> str:
        return f"CUSTOM_VISION_{self.name.upper()}_{what}"


CLASSIFY = Task("classify", "CUSTOM_VISION_CLASSIFY_MAX_TAGS", 5)
DETECT = Task("detect", "CUSTOM_VISION_DETECT_MAX_BOXES", 50)

# Backend name -> module beside this one that holds its ``Backend(task, settings)`` class.
# Imported only when chosen: the onnx backend needs the optional onnx extra.
BACKENDS = {"cloud": __name__, "container": ".container", "onnx": ".onnxexport"}
CLASSIFY_BACKENDS = dict(BACKENDS, openai=".openai")


class Prediction(NamedTuple):
    tag: str
    probability: float
    box: Optional[Box] = None


class Thresholds(NamedTuple):
    threshold: float
    max_count: int

    @classmethod
    def load(cls, task: Task, settings: Settings) -> "Thresholds":
        return cls(
            settings.number(task.setting("THRESHOLD"), 0.5, 0.0, 1.0),
            settings.integer(task.max_setting, task.default_max, 1, 1000),
        )


def backend(task: Task, settings: Settings) -> Any:
    """The backend ``CUSTOM_VISION_<TASK>_BACKEND`` chooses, built from the settings: once
    while they are unchanged, naming every missing setting at once."""
    return settings.built(("customvision", task.name), lambda: _backend(task, settings))


def _backend(task: Task, settings: Settings) -> Any:
    choices = CLASSIFY_BACKENDS if task is CLASSIFY else BACKENDS
    name = settings.choice(task.setting("BACKEND"), "cloud", tuple(choices))
    module = importlib.import_module(choices[name], __package__)
    return module.Backend(task, settings)


def predict(path: str, task: Task, settings: Optional[Settings] = None) -> List[Prediction]:
    """The predictions for the image at ``path`` that pass the threshold, most probable first."""
    settings = settings or Settings.load()
    chosen = backend(task, settings)
    limits = Thresholds.load(task, settings)
    predictions = chosen.parse(fetch.fetch(chosen, path))
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


class Backend:
    """The Custom Vision Prediction v3.0 API in Azure."""

    service = SERVICE
    endpoint_setting = "CUSTOM_VISION_ENDPOINT"

    def __init__(self, task: Task, settings: Settings) -> None:
        self.task = task
        project = settings.text(task.setting("PROJECT"))
        try:
            self.project = str(uuid.UUID(project))
        except ValueError:
            raise SettingsError(
                task.setting("PROJECT"),
                "must be the project id, a GUID from the project's settings",
            ) from None
        self.endpoint = settings.endpoint("CUSTOM_VISION_ENDPOINT")
        self.key = settings.secret("CUSTOM_VISION_KEY")
        self.iteration = settings.text(task.setting("ITERATION"))
        self.store_images = settings.flag("CUSTOM_VISION_STORE_IMAGES", False)
        self.max_edge, self.min_edge = prepare.edge_settings(settings, custom_vision=True)
        self.http = client.HttpConfig.from_settings(
            settings, "CUSTOM_VISION_REQUESTS_PER_SECOND", 10.0
        )

    def url(self) -> str:
        url = (
            f"{self.endpoint}/customvision/v3.0/Prediction/{self.project}/{self.task.name}"
            f"/iterations/{quote(self.iteration, safe='')}/image"
        )
        # nostore: the customer's picture is not kept in the Custom Vision project.
        return url if self.store_images else url + "/nostore"

    def identity(self) -> dict:
        return {
            "service": "customvision",
            "host": urlsplit(self.endpoint).hostname,
            "api": "prediction-v3.0",
            "task": self.task.name,
            "project": self.project,
            "iteration": self.iteration,
            "edge": self.max_edge,
        }

    def ask(self, path: str) -> Answer:
        image = prepare.prepare(path, prepare.CUSTOM_VISION, self.max_edge, self.min_edge)
        try:
            body = client.post(
                SERVICE,
                self.url(),
                self.http,
                headers={"Prediction-Key": self.key.reveal()},
                data=image.data,
            )
        except ServiceError as exc:
            raise _explain(exc, self) from None
        return fresh(
            body,
            (image.width, image.height),
            (image.display_width, image.display_height),
            bytes_sent=len(image.data),
        )

    def parse(self, answer: Answer) -> List[Prediction]:
        return parse(answer.body, with_boxes=self.task is DETECT)


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
        raise ServiceError(
            SERVICE, f"{SERVICE} answered with an unexpected body ({type(exc).__name__}: {exc})"
        ) from None
    return predictions


# Custom Vision's built-in tag for "none of the tags": the cloud marks it with its tagType;
# an exported model (container, ONNX) names it only, in labels.txt.
NEGATIVE = "Negative"


def _negative(tag_type: Any, tag: Any) -> bool:
    """Whether a prediction is of the Negative tag: so typed, or so named and not typed."""
    if tag_type:
        return str(tag_type).lower() == "negative"
    return tag == NEGATIVE


def _explain(exc: ServiceError, config: Backend) -> ServiceError:
    """The service's error in words an administrator can act on.

    What holds for every file (the key, the endpoint, the project, the iteration) is
    ``Refused``: logged once, and files fail without asking until it is asked again.
    """
    code = exc.code or ""
    project, iteration = config.task.setting("PROJECT"), config.task.setting("ITERATION")
    said = f" (the service said: {exc.said})" if exc.said else ""
    tier = client.resource_tier(exc)
    if tier is not None:
        message = (
            f"CUSTOM_VISION_ENDPOINT is the endpoint of another kind of resource (pricing tier "
            f"{tier}), not of a Custom Vision prediction resource: set CUSTOM_VISION_ENDPOINT "
            f"and CUSTOM_VISION_KEY to those of the prediction resource{said}"
        )
    elif exc.http_status in (401, 403):
        message = (
            f"{SERVICE} refused the key ({exc.http_status}): check CUSTOM_VISION_KEY, and that "
            f"CUSTOM_VISION_ENDPOINT is the endpoint of the prediction resource{said}"
        )
    elif code in ("NotFoundIteration", "BadRequestIterationNotPublished"):
        message = (
            f'{SERVICE} says iteration "{config.iteration}" is not published in project '
            f"{config.project} (check {iteration}: the published name, not the iteration's)"
        )
    elif code in ("NotFoundProject", "NotFound") and exc.http_status == 404:
        message = f"{SERVICE} has no project {config.project} at this endpoint (check {project})"
    elif code.startswith("BadRequestImage") or code == "UnsupportedMediaType":
        return ImageRejected(
            SERVICE,
            f"{SERVICE} refused the image: {exc.message}",
            exc.http_status,
            code,
            exc.detail,
            said=exc.said,
        )
    elif exc.http_status == 404:
        message = (
            f"{SERVICE} has no prediction API at CUSTOM_VISION_ENDPOINT (check it is the "
            f"endpoint of the prediction resource){said}"
        )
    elif exc.http_status == 429:
        return ServiceError(
            SERVICE,
            f"{exc.message} (lower CUSTOM_VISION_REQUESTS_PER_SECOND to the resource's tier)",
            exc.http_status,
            code,
            exc.detail,
            said=exc.said,
        )
    else:
        return exc
    return Refused(SERVICE, message, exc.http_status, code, exc.detail, said=exc.said)
