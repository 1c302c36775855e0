"""The time one file may take, across every attempt and wait (``PIXSTOR_AZURE_FILE_TIMEOUT``).

A hung service (connection accepted, never answered) would otherwise hold a file for every read
timeout and backoff in turn. The runner opens a budget for each file, in the thread that works
on it; ``http`` caps each timeout and each wait by what is left of it, and reading the file
(its digest, its decode) stops when it runs out.

The budget is also the file's scope: ``first_seen`` keeps what the file was when it was first
opened in it, so that the file's digest and its decode are known to be of the same bytes.
"""

import contextlib
import threading
from typing import Any, Dict, Hashable, Iterator, NamedTuple, Optional

from . import clock, runtime


class Budget(NamedTuple):
    deadline: float
    seconds: float
    seen: Dict[str, Hashable]  # each path opened, and what it was at its first opening


class Budgets:
    """Each thread's current file budget, or none outside a file."""

    def __init__(self) -> None:
        self.local = threading.local()


@contextlib.contextmanager
def limit(seconds: float) -> Iterator[None]:
    """Give the work inside the ``with`` ``seconds`` in all, in this thread."""
    local = runtime.current().get(Budgets).local
    outer = getattr(local, "budget", None)
    local.budget = Budget(clock.now() + seconds, seconds, {})
    try:
        yield
    finally:
        local.budget = outer


def _current() -> Optional[Budget]:
    return getattr(runtime.current().get(Budgets).local, "budget", None)


def remaining() -> Optional[float]:
    """Seconds left of this thread's budget (may be negative); None when there is none."""
    budget = _current()
    return None if budget is None else budget.deadline - clock.now()


def total() -> Optional[float]:
    """The seconds this thread's budget started with; None when there is none."""
    budget = _current()
    return None if budget is None else budget.seconds


def first_seen(path: str, stamp: Any) -> Any:
    """The stamp ``path`` had when it was first opened within this thread's budget, which is
    ``stamp`` when this is the first time; ``stamp`` itself outside a budget."""
    budget = _current()
    return stamp if budget is None else budget.seen.setdefault(path, stamp)
