"""The state a process keeps from one file to the next, in one object a test can build fresh.

PixStor keeps a plugin loaded for days and calls it for every new file, so some things are
worth keeping between calls: the HTTP session and rate limiters, decoded images, lines already
logged, loaded models, the answer cache. Each module keeps its own kind of state in a class of
its own and asks ``current().get(ThatClass)`` for the instance of this process; nothing else is
kept in module globals. ``reset()`` starts over (tests call it before each test), and a forked
child starts over by itself: sockets, locks and SQLite connections must not cross a fork.
"""

import os
import threading
from typing import Any, Callable, Dict, Optional, Type, TypeVar

T = TypeVar("T")


class Runtime:
    """One instance of each state class, made on first use, shared by every thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._parts: Dict[Any, Any] = {}
        self._lock = threading.RLock()

    def get(self, kind: Type[T], factory: Optional[Callable[[], T]] = None) -> T:
        """This process's ``kind``, made with ``factory`` (else ``kind()``) the first time."""
        part = self._parts.get(kind)
        if part is None:
            with self._lock:
                part = self._parts.get(kind)
                if part is None:
                    part = (factory or kind)()
                    self._parts[kind] = part
        return part

    def close(self) -> None:
        """Close what holds a resource (sessions, connections); for tests and shutdown."""
        with self._lock:
            parts, self._parts = list(self._parts.values()), {}
        for part in parts:
            closer = getattr(part, "close", None)
            if callable(closer):
                closer()


_current = Runtime()
_lock = threading.Lock()


def current() -> Runtime:
    """The runtime of this process (a new one in a forked child)."""
    global _current
    runtime = _current
    if runtime.pid != os.getpid():
        with _lock:
            if _current.pid != os.getpid():
                _current = Runtime()
            runtime = _current
    return runtime


def reset() -> Runtime:
    """Start over with fresh state; the old state's resources are closed."""
    global _current
    with _lock:
        old, _current = _current, Runtime()
    if old.pid == os.getpid():
        old.close()
    return _current
