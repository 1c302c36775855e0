"""A service's raw answer for one file, and the one place every backend's answer is fetched.

Every backend (the Custom Vision cloud, its exported container or ONNX model, Azure AI Vision,
the Read APIs, Azure OpenAI) is an object with:

- ``service``: its name in messages, e.g. "Custom Vision";
- ``endpoint_setting``: the setting that names the host it calls (e.g.
  "CUSTOM_VISION_ENDPOINT"), or None when nothing leaves the process (an ONNX model);
- ``identity()``: a dict of everything that changes what it answers for the same picture
  (endpoint host, API and api-version, features, language, project and iteration, model file
  digest, the long edge sent...), never a key;
- ``ask(path)``: prepare the image, call, and return an ``Answer`` with the raw body before
  any threshold; raises ``ImageError`` / ``ServiceError`` / ``SettingsError``;
- ``parse(answer)``: what the answer found, before thresholds (thresholds are applied by the
  caller with today's settings, so a stored answer gives today's fields).

``fetch(backend, path)`` is how callers get an answer, so that the answer cache sits in one
place between the prepared image and the fields.
"""

import time
from typing import Any, NamedTuple, Optional, Tuple


class Answer(NamedTuple):
    body: Any  # the service's JSON answer as it came, before thresholds
    sent: Tuple[int, int]  # width, height of the image sent: pixel boxes are on it
    display: Tuple[int, int]  # width, height of the file as displayed (EXIF applied)
    asked: float  # when it was asked, seconds since the epoch
    model: Optional[str] = None  # the model version the answer names, where it names one
    bytes_sent: int = 0  # what was uploaded for it (0 when nothing left the machine)
    cached: bool = False  # True when it came from the answer cache, not the service


def answer(
    body: Any,
    sent: Tuple[int, int],
    display: Tuple[int, int],
    model: Optional[str] = None,
    bytes_sent: int = 0,
) -> Answer:
    """A fresh answer, asked now."""
    return Answer(body, tuple(sent), tuple(display), time.time(), model, bytes_sent)


def fetch(backend: Any, path: str) -> Answer:
    """The answer of ``backend`` for the file at ``path``."""
    from . import faults  # faults needs Answer from here

    return faults.ask(backend, path)
