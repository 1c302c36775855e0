"""Azure Custom Vision Prediction v3.0: classify or detect one prepared image.

Both plugins call ``predict(path, CLASSIFY | DETECT)``; the settings, the request, the
reading of the answer and the plain-words explanation of failures live here once.
"""

import logging
import uuid
from typing import Any, List, NamedTuple, Optional
from urllib.parse import quote

from . import http, images
from .boxes import Box
from .errors import ImageRejected, ServiceError, SettingsError
from .fields import passing
from .settings import Secret, Settings

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


class Config(NamedTuple):
    endpoint: str
    key: Secret
    project: str
    iteration: str
    store_images: bool
    threshold: float
    max_count: int
    max_edge: int
    min_edge: int
    http: http.HttpConfig

    @classmethod
    def load(cls, task: Task, settings: Optional[Settings] = None) -> "Config":
        settings = settings or Settings.load()
        project = settings.text(task.setting("PROJECT"))
        try:
            project = str(uuid.UUID(project))
        except ValueError:
            raise SettingsError(
                task.setting("PROJECT"),
                "must be the project id, a GUID from the project's settings",
            ) from None
        max_edge, min_edge = images.edge_settings(settings)
        return cls(
            endpoint=settings.endpoint("CUSTOM_VISION_ENDPOINT"),
            key=settings.secret("CUSTOM_VISION_KEY"),
            project=project,
            iteration=settings.text(task.setting("ITERATION")),
            store_images=settings.flag("CUSTOM_VISION_STORE_IMAGES", False),
            threshold=settings.number(task.setting("THRESHOLD"), 0.5, 0.0, 1.0),
            max_count=settings.integer(task.max_setting, task.default_max, 1, 1000),
            max_edge=max_edge,
            min_edge=min_edge,
            http=http.HttpConfig.from_settings(settings, "CUSTOM_VISION_REQUESTS_PER_SECOND", 10.0),
        )

    def url(self, task: Task) -> str:
        url = (
            f"{self.endpoint}/customvision/v3.0/Prediction/{self.project}/{task.name}"
            f"/iterations/{quote(self.iteration, safe='')}/image"
        )
        # nostore: the customer's picture is not kept in the Custom Vision project.
        return url if self.store_images else url + "/nostore"


class Prediction(NamedTuple):
    tag: str
    probability: float
    box: Optional[Box] = None


def predict(path: str, task: Task, config: Optional[Config] = None) -> List[Prediction]:
    """The predictions for the image at ``path`` that pass the threshold, most probable first."""
    config = config or Config.load(task)
    image = images.prepare(path, images.CUSTOM_VISION, config.max_edge, config.min_edge)
    try:
        body = http.post(
            SERVICE,
            config.url(task),
            config.http,
            headers={"Prediction-Key": config.key.reveal()},
            data=image.data,
        )
    except ServiceError as exc:
        raise _explain(exc, config, task) from None
    predictions = parse(body, with_boxes=task is DETECT)
    kept = passing(predictions, config.threshold, config.max_count)
    if not kept and predictions:
        best = max(predictions, key=lambda p: p.probability)
        log.debug(
            "%s: best %s %r at %.3f, under the threshold %g",
            path,
            task.name,
            best.tag,
            best.probability,
            config.threshold,
        )
    return kept


def parse(body: Any, with_boxes: bool) -> List[Prediction]:
    """Read an ImagePrediction answer; keys are matched case-insensitively."""
    try:
        answer = {k.lower(): v for k, v in body.items()}
        predictions = []
        for item in answer["predictions"]:
            item = {k.lower(): v for k, v in item.items()}
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


def _explain(exc: ServiceError, config: Config, task: Task) -> ServiceError:
    """The service's error in words an administrator can act on."""
    code = exc.code or ""
    project, iteration = task.setting("PROJECT"), task.setting("ITERATION")
    if exc.http_status in (401, 403):
        message = (
            f"{SERVICE} refused the key ({exc.http_status}): check CUSTOM_VISION_KEY, and that "
            "CUSTOM_VISION_ENDPOINT is the endpoint of the prediction resource"
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
        )
    elif exc.http_status == 429:
        message = f"{exc.message} (lower CUSTOM_VISION_REQUESTS_PER_SECOND to the resource's tier)"
    else:
        return exc
    return ServiceError(SERVICE, message, exc.http_status, code, exc.detail)
