"""A Custom Vision model exported as a Docker container, asked over the local network.

``CUSTOM_VISION_<TASK>_URL`` is the container's base URL (no key: the container takes none).
The picture is POSTed as raw bytes to ``/image`` (docs/azure-services.md, "Docker export"). The
container answers in the cloud's ImagePrediction envelope with empty ids, so
``imageprediction.parse`` and the same thresholds serve it; a classifier's predictions come in
labels.txt order with ``boundingBox: null``, a detector's sorted, its boxes fractions of the
picture it got.

Its quirks, handled here: it refuses bodies over 4 MiB (Flask's 413); and a failure may come
as HTTP 500 text, as HTTP 200 text, or as HTTP 200 with a JSON *string* ("Error: Could not
preprocess image for prediction. ...") instead of an object: all of these are errors, never
an empty answer. HTTP 500 "Error processing image" and the JSON string are about the picture
(the file is skipped); a 404 or 405 means the URL is not the container's (``Refused``). Its
answers have no ``tagType``: the classifier's Negative tag is known by its name alone.
"""

from typing import Any, Dict
from urllib.parse import urlsplit

from ..answers import pacing
from ..answers.answer import Answer
from ..ground.errors import ImageRejected, Refused, ServiceError
from ..ground.outcomes import Outcome
from ..ground.setting_registry import (
    CLASSIFY_URL,
    CV_MAX_LONG_EDGE,
    CV_REQUESTS_PER_SECOND,
    DETECT_URL,
)
from ..ground.settings import Settings
from ..http import client
from ..images import prepare
from . import imageprediction
from .base import Task, answered

SERVICE = "Custom Vision container"

# The container's own code shrinks every picture to at most 1600 px before its model sees it
# (the classifier then crops and scales to a few hundred px; the detector to about 512x512),
# so more is never worth sending; Flask refuses bodies over 4 MiB. Any format Pillow reads
# would do; these four are the cloud's, and what ``prepare`` sends as they are.
LIMITS = prepare.Limits(
    SERVICE,
    frozenset({"JPEG", "PNG", "BMP", "GIF"}),
    max_bytes=4 * 1024 * 1024,
    max_side=1600,
)

# What the container answers, with HTTP 500, when it fails on a picture, mostly one Pillow
# cannot open: asking again gives the same, and others may pass. The container answered: no
# sign of an outage (see ``faults``).
UNREADABLE = Outcome(
    ImageRejected,
    "{name} could not read the picture (it answered {status}: {said_line}; its docker logs "
    "say why)",
    status=frozenset({500}),
    pattern="(?i)error processing image",
    answered=True,
)


# An error in plain text, with 200.
NOT_PREDICTIONS = Outcome(
    ServiceError,
    "{name} at {url} answered with an error instead of predictions: {body_line}",
    status=frozenset({200}),
)
# The same said in a 200's text: the container could not decode or shrink the picture.
NOT_PREPROCESSED = Outcome(ImageRejected, "{name} could not read the picture: {body_line}")
TOO_LARGE = Outcome(
    ImageRejected,
    "{name} refused the picture as larger than its 4 MiB limit",
    status=frozenset({413}),
)
# The same for every file: logged once, files held back until asked again.
NOT_A_CONTAINER = Outcome(
    Refused,
    "{endpoint_setting} names {url}, where no Custom Vision container answers POST "
    "/image ({status}): give the container's base URL, e.g. http://HOST:8080",
    status=frozenset({404, 405}),
)


class CustomVisionContainer(imageprediction.CustomVisionService):
    """An exported Custom Vision container: ``POST {url}/image``."""

    name = SERVICE
    billed = False  # the customer's own machine
    reads = (CLASSIFY_URL, DETECT_URL, CV_MAX_LONG_EDGE, CV_REQUESTS_PER_SECOND)
    outcomes = (NOT_PREDICTIONS, TOO_LARGE, NOT_A_CONTAINER, UNREADABLE)

    def __init__(self, task: Task, settings: Settings) -> None:
        self.task = task
        self.endpoint_setting = task.setting("URL")
        url = settings.get(task.declared("URL"))
        # The URL of the route itself, as the container's README shows it, is taken as well.
        self.url = url[: -len("/image")] if url.lower().endswith("/image") else url
        self.max_edge, self.min_edge = prepare.edge_settings(settings, custom_vision=True)
        self.http = pacing.http_config(settings, CV_REQUESTS_PER_SECOND)

    def identity(self) -> dict:
        # The container names no model: a new model behind the same URL is not seen here.
        return {
            "service": "customvision",
            "api": "container",
            "host": urlsplit(self.url).netloc,
            "url": self.url,
            "task": self.task.name,
            "edge": min(self.max_edge, LIMITS.max_side),
        }

    def ask(self, path: str) -> Answer:
        edge = min(self.max_edge, LIMITS.max_side)
        image = prepare.prepare(path, LIMITS, edge, self.min_edge)
        try:
            body = client.post(
                SERVICE,
                self.url + "/image",
                self.http,
                headers={},
                data=image.data,
                final=_unreadable,
            )
        except ServiceError as exc:
            raise self.explain(exc) from None
        if not (isinstance(body, dict) and isinstance(_predictions(body), list)):
            raise self._not_predictions(body)
        return answered(image, body)

    def wording(self, error: ServiceError) -> Dict[str, Any]:
        return dict(
            super().wording(error),
            url=self.url,
            body_line=_text(error.detail) or "an empty body",
            said_line=_text(error.said),
        )

    def _not_predictions(self, body: Any) -> ServiceError:
        text = _text(body if isinstance(body, str) else repr(body))
        if isinstance(body, str) and "preprocess image" in body:
            # The container could not decode or shrink this one picture: others may pass.
            return NOT_PREPROCESSED.error(SERVICE, 200, body_line=text)
        return NOT_PREDICTIONS.error(SERVICE, 200, url=self.url, body_line=text)


def _predictions(body: dict) -> Any:
    for key, value in body.items():
        if str(key).lower() == "predictions":
            return value
    return None


def _text(value: Any) -> str:
    """A body's first line, short, for a log line."""
    text = str(value or "").strip().strip('"').strip()
    return text.splitlines()[0][:200] if text else ""


def _unreadable(exc: ServiceError) -> bool:
    """The container's answer when it fails on the picture: no other attempt (``client``)."""
    return UNREADABLE.match(exc) is not None
