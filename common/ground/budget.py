"""The time one file may take, across every attempt and wait (``PIXSTOR_AZURE_FILE_TIMEOUT``).

A hung service (connection accepted, never answered) would otherwise hold a file for every read
timeout and backoff in turn. The runner opens a budget for each file, in the thread that works
on it; ``http`` caps each timeout and each wait by what is left of it.
"""

import contextlib
import threading
from typing import Iterator, Optional

from . import clock, runtime

SETTING = "PIXSTOR_AZURE_FILE_TIMEOUT"
DEFAULT = 90.0


class Budgets:
    """Each thread's current file budget: (deadline, seconds), or none outside a file."""

    def __init__(self) -> None:
        self.local = threading.local()


@contextlib.contextmanager
def limit(seconds: float) -> Iterator[None]:
    """Give the work inside the ``with`` ``seconds`` in all, in this thread."""
    local = runtime.current().get(Budgets).local
    outer = getattr(local, "budget", None)
    local.budget = (clock.now() + seconds, seconds)
    try:
        yield
    finally:
        local.budget = outer


def remaining() -> Optional[float]:
    """Seconds left of this thread's budget (may be negative); None when there is none."""
    budget = getattr(runtime.current().get(Budgets).local, "budget", None)
    return None if budget is None else budget[0] - clock.now()


def total() -> Optional[float]:
    """The seconds this thread's budget started with; None when there is none."""
    budget = getattr(runtime.current().get(Budgets).local, "budget", None)
    return None if budget is None else budget[1]
