"""A Custom Vision model exported as a Docker container, asked over the local network.

``CUSTOM_VISION_<TASK>_URL`` is the container's base URL (no key: the container takes none).
The picture is POSTed as raw bytes to ``/image`` (API-FACTS.md section 5.1). The container
answers in the cloud's ImagePrediction envelope with empty ids, so ``customvision.parse`` and
the same thresholds serve it; a classifier's predictions come in labels.txt order with
``boundingBox: null``, a detector's sorted, its boxes fractions of the picture it got.

Its quirks, handled here: it refuses bodies over 4 MiB (Flask's 413); and a failure may come
as HTTP 500 text, as HTTP 200 text, or as HTTP 200 with a JSON *string* ("Error: Could not
preprocess image for prediction. ...") instead of an object: all of these are errors, never
an empty answer. HTTP 500 "Error processing image" and the JSON string are about the picture
(the file is skipped); a 404 or 405 means the URL is not the container's (``Refused``). Its
answers have no ``tagType``: the classifier's Negative tag is known by its name alone.
"""

from typing import Any, List
from urllib.parse import urlsplit

from ..answers.answer import Answer, fresh
from ..ground.errors import ImageRejected, Refused, ServiceError
from ..ground.settings import Settings
from ..http import client
from ..images import prepare
from . import customvision

SERVICE = "Custom Vision container"
# What the container answers, with HTTP 500, when it fails on a picture (lower case).
PROCESSING_ERROR = "error processing image"

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


class Backend:
    """An exported Custom Vision container: ``POST {url}/image``."""

    service = SERVICE

    def __init__(self, task: customvision.Task, settings: Settings) -> None:
        self.task = task
        self.endpoint_setting = task.setting("URL")
        url = settings.endpoint(self.endpoint_setting)
        # The URL of the route itself, as the container's README shows it, is taken as well.
        self.url = url[: -len("/image")] if url.lower().endswith("/image") else url
        self.max_edge, self.min_edge = prepare.edge_settings(settings, custom_vision=True)
        self.http = client.HttpConfig.from_settings(
            settings, "CUSTOM_VISION_REQUESTS_PER_SECOND", 10.0
        )

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
            raise self._explain(exc) from None
        if not (isinstance(body, dict) and isinstance(_predictions(body), list)):
            raise self._not_predictions(body)
        return fresh(
            body,
            (image.width, image.height),
            (image.display_width, image.display_height),
            bytes_sent=len(image.data),
        )

    def parse(self, answer: Answer) -> List[customvision.Prediction]:
        return customvision.parse(answer.body, with_boxes=self.task is customvision.DETECT)

    def _explain(self, exc: ServiceError) -> Exception:
        """The container's failure in words an administrator can act on."""
        if exc.http_status == 200:  # an error in plain text, with 200
            text = _text(exc.detail) or "an empty body"
            return ServiceError(
                SERVICE,
                f"{SERVICE} at {self.url} answered with an error instead of predictions: {text}",
                exc.http_status,
                detail=exc.detail,
            )
        if exc.http_status == 413:
            return ImageRejected(
                SERVICE,
                f"{SERVICE} refused the picture as larger than its 4 MiB limit",
                exc.http_status,
                detail=exc.detail,
            )
        if exc.http_status in (404, 405):
            # The same for every file: logged once, files held back until it is asked again.
            return Refused(
                SERVICE,
                f"{self.endpoint_setting} names {self.url}, where no Custom Vision container "
                f"answers POST /image ({exc.http_status}): give the container's base URL, e.g. "
                "http://HOST:8080",
                exc.http_status,
                exc.code,
                exc.detail,
            )
        if _unreadable(exc):
            # The container's answer to any failure on the picture, mostly one Pillow cannot
            # open: others may pass. No status kept: it is no sign of an outage (see faults).
            return ImageRejected(
                SERVICE,
                f"{SERVICE} could not read the picture (it answered {exc.http_status}: "
                f"{_text(exc.said)}; its docker logs say why)",
                detail=exc.detail,
                said=exc.said,
            )
        return exc

    def _not_predictions(self, body: Any) -> ServiceError:
        text = _text(body if isinstance(body, str) else repr(body))
        if isinstance(body, str) and "preprocess image" in body:
            # The container could not decode or shrink this one picture: others may pass.
            return ImageRejected(SERVICE, f"{SERVICE} could not read the picture: {text}")
        return ServiceError(
            SERVICE,
            f"{SERVICE} at {self.url} answered with an error instead of predictions: {text}",
            200,
        )


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
    """The container's answer when it fails on the picture: asking again gives the same."""
    return exc.http_status == 500 and PROCESSING_ERROR in (exc.said or "").lower()
