"""A process that must not call any service: ``retag`` re-derives fields from cached answers.

``answers.fetch`` asks ``check(backend)`` before it calls a backend on a cache miss; while calls
are forbidden that raises ``NotCached`` instead, so nothing is sent and nothing is billed.
"""

import contextlib
import threading
from typing import Any, Iterator

from ..ground import runtime
from ..ground.errors import PixstorAzureError


class NotCached(PixstorAzureError):
    """The answer cache holds no answer for this file, and calls are forbidden."""

    status = "SKIPPED"


class Calls:
    """Whether this process may call services (one switch for every thread)."""

    def __init__(self) -> None:
        self.forbidden = 0
        self.lock = threading.Lock()


def check(backend: Any) -> None:
    """Raise NotCached when calls are forbidden: the caller was about to call ``backend``."""
    if runtime.current().get(Calls).forbidden:
        raise NotCached(f"no cached answer of {backend.name} for this file")


@contextlib.contextmanager
def forbidden() -> Iterator[None]:
    """Forbid every call while inside."""
    calls = runtime.current().get(Calls)
    with calls.lock:
        calls.forbidden += 1
    try:
        yield
    finally:
        with calls.lock:
            calls.forbidden -= 1
