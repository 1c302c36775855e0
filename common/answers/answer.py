"""One service's raw answer for one picture, and how the setup that asked it is written down.

An ``Answer`` is what every backend's ``ask`` returns and what the answer cache keeps: the body
as the service sent it, before any threshold, with the sizes its boxes are relative to.
``identity_key`` is the one way an identity (everything that changes what a service answers for
the same picture) is serialised: the cache's key, the models seen and the holds all use it.
"""

import json
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


def fresh(
    body: Any,
    sent: Tuple[int, int],
    display: Tuple[int, int],
    model: Optional[str] = None,
    bytes_sent: int = 0,
) -> Answer:
    """A fresh answer, asked now."""
    return Answer(body, sent, display, time.time(), model, bytes_sent)


def model_of(found: Answer) -> Optional[str]:
    """The model that gave an answer, where the answer says: the model version it names, else
    Custom Vision's iteration id (exported models answer with empty ids: unknown)."""
    if found.model:
        return found.model
    iteration = found.body.get("iteration") if isinstance(found.body, dict) else None
    if isinstance(iteration, str) and iteration.strip("0-"):
        return iteration
    return None


def identity_key(identity: dict) -> str:
    """``identity`` as one canonical string (keys sorted, no spaces, text as it is)."""
    return json.dumps(
        identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
