"""Azure Custom Vision in the cloud: its Prediction v3.0 API classifies or detects one image.

The backend ``cloud`` of ``CUSTOM_VISION_<TASK>_BACKEND`` (the default). The picture is POSTed
as raw bytes to the published iteration of the project; ``nostore`` unless
``CUSTOM_VISION_STORE_IMAGES`` asks the project to keep it.
"""

import uuid
from typing import Any, Dict
from urllib.parse import quote, urlsplit

from ..answers import pacing
from ..answers.answer import Answer
from ..ground.errors import Problem, Refused, ServiceError
from ..ground.outcomes import IMAGE_REFUSED, KEY_REFUSED, OTHER_TIER, THROTTLED, Outcome
from ..ground.setting_registry import (
    CLASSIFY_ITERATION,
    CLASSIFY_PROJECT,
    CV_ENDPOINT,
    CV_KEY,
    CV_MAX_LONG_EDGE,
    CV_REQUESTS_PER_SECOND,
    CV_STORE_IMAGES,
    DETECT_ITERATION,
    DETECT_PROJECT,
)
from ..ground.settings import Settings
from ..http import client
from ..images import prepare
from . import imageprediction
from .base import Task, answered

SERVICE = "Custom Vision"


NOT_PUBLISHED = Outcome(
    Refused,
    '{name} says iteration "{iteration}" is not published in project {project} (check '
    "{iteration_setting}: the published name, not the iteration's)",
    codes="NotFoundIteration|BadRequestIterationNotPublished",
)
NO_PROJECT = Outcome(
    Refused,
    "{name} has no project {project} at this endpoint (check {project_setting})",
    status=frozenset({404}),
    codes="NotFoundProject|NotFound",
)
NO_PREDICTION_API = Outcome(
    Refused,
    "{name} has no prediction API at {endpoint_setting} (check it is the endpoint of the "
    "prediction resource){said}",
    status=frozenset({404}),
)
# CUSTOM_VISION_<TASK>_PROJECT is not a GUID (``train`` says the same of the same setting).
PROJECT_NOT_GUID = Problem("must be the project id, a GUID from the project's settings")


class CustomVisionCloud(imageprediction.CustomVisionService):
    """The Custom Vision Prediction v3.0 API in Azure."""

    name = SERVICE
    endpoint_setting = CV_ENDPOINT.name
    reads = (
        CLASSIFY_PROJECT,
        DETECT_PROJECT,
        CV_ENDPOINT,
        CV_KEY,
        CLASSIFY_ITERATION,
        DETECT_ITERATION,
        CV_STORE_IMAGES,
        CV_MAX_LONG_EDGE,
        CV_REQUESTS_PER_SECOND,
    )
    # What holds for every file (the key, the endpoint, the project, the iteration) is
    # ``Refused``: logged once, and files fail without asking until it is asked again.
    outcomes = (
        OTHER_TIER,
        KEY_REFUSED,
        NOT_PUBLISHED,
        NO_PROJECT,
        IMAGE_REFUSED._replace(codes="BadRequestImage.*|UnsupportedMediaType"),
        NO_PREDICTION_API,
        THROTTLED,
    )

    def __init__(self, task: Task, settings: Settings) -> None:
        self.task = task
        project = settings.get(task.declared("PROJECT"))
        try:
            self.project = str(uuid.UUID(project))
        except ValueError:
            raise PROJECT_NOT_GUID.error(task.setting("PROJECT")) from None
        self.endpoint = settings.get(CV_ENDPOINT)
        self.key = settings.get(CV_KEY)
        self.iteration = settings.get(task.declared("ITERATION"))
        self.store_images = settings.get(CV_STORE_IMAGES)
        self.max_edge, self.min_edge = prepare.edge_settings(settings, custom_vision=True)
        self.http = pacing.http_config(settings, CV_REQUESTS_PER_SECOND)

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
            raise self.explain(exc) from None
        return answered(image, body)

    def wording(self, error: ServiceError) -> Dict[str, Any]:
        return dict(
            super().wording(error),
            key_setting=CV_KEY.name,
            rate_setting=CV_REQUESTS_PER_SECOND.name,
            resource="the prediction resource",
            kind_of_resource="a Custom Vision prediction resource",
            right_resource="the prediction resource",
            iteration=self.iteration,
            iteration_setting=self.task.setting("ITERATION"),
            project=self.project,
            project_setting=self.task.setting("PROJECT"),
        )
