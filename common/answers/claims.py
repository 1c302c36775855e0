"""One asker per answer: the first thread, of any process on any node, that needs an answer
asks the service for it; the others wait for that answer and reuse it.

Within a process, threads wait for each other on an event; across processes, the engine keeps
the claim (``Engine.claim``): a waiter looks for the answer every few tens of milliseconds
and takes the claim over when its holder let go (the asking failed), died, or its lease (the
holder's file budget) ran out. A waiter waits within its own file's budget; when that runs
out it gives up without asking (``NotAsked``).

``take`` gives the caller its turn to ask (None), or the answer another got meanwhile; the
caller that got its turn must end it with ``done``, with the fresh answer or without one.
"""

import threading
from typing import Any, Callable, Dict, Optional, Tuple

from ..ground import budget, clock, runtime
from ..ground.errors import NotAsked
from ..ground.setting_registry import FILE_TIMEOUT
from .answer import Answer, identity_key
from .engine import Engine

FIRST_LOOK = 0.02  # seconds before a waiter first looks for another process's answer
LONGEST_LOOK = 0.25  # the longest wait between two looks
SPARE = 5.0  # seconds a claim outlives its holder's file budget


class Asking:
    """The answers this process's threads are asking for now, each with the event its other
    threads wait on (keyed by content and setup; ``frames.Stretches`` by stretch)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: Dict[Tuple[Any, ...], threading.Event] = {}

    def enter(self, key: Tuple[Any, ...]) -> Tuple[threading.Event, bool]:
        """The event of ``key``'s asking, and True when this thread is the one to ask."""
        with self.lock:
            event = self.now.get(key)
            if event is not None:
                return event, False
            event = self.now[key] = threading.Event()
            return event, True

    def leave(self, key: Tuple[Any, ...]) -> None:
        with self.lock:
            event = self.now.pop(key, None)
        if event is not None:
            event.set()


def _asking() -> Asking:
    return runtime.current().get(Asking)


def lease() -> float:
    """How long a claim holds when its holder is not seen to die: its file's budget, and some."""
    seconds = budget.total()
    return (seconds if seconds is not None else FILE_TIMEOUT.default) + SPARE


def take(
    store: Engine, content: str, identity: dict, service: str, usable: Callable[[Answer], bool]
) -> Optional[Answer]:
    """None when this thread is to ask for the answer (then ``done`` must follow), else the
    answer a thread or process asked for meanwhile. Raises NotAsked when the file's budget
    runs out while another is still asking."""
    key = (content, identity_key(identity))
    asking = _asking()
    while True:
        event, mine = asking.enter(key)
        if not mine:
            # Another thread of this process asks: its answer wakes this one (real time: the
            # asker's exchange takes real time too).
            left = budget.remaining()
            if not event.wait(lease() if left is None else max(0.0, left)):
                raise _late(service)
            found = store.get(content, identity)
            if found is not None and usable(found):
                return found
            continue  # it failed: this thread may ask now
        try:
            found = _across(store, content, identity, service, usable)
        except BaseException:
            asking.leave(key)
            raise
        if found is None:
            return None  # this thread's turn: ``done`` leaves
        asking.leave(key)
        return found


def _across(
    store: Engine, content: str, identity: dict, service: str, usable: Callable[[Answer], bool]
) -> Optional[Answer]:
    """Claim the asking from every other process, waiting while one of them asks."""
    look = FIRST_LOOK
    while not store.claim(content, identity, lease()):
        left = budget.remaining()
        if left is not None and left < look:
            raise _late(service)
        clock.sleep(look)
        look = min(look * 2, LONGEST_LOOK)
        found = store.get(content, identity)
        if found is not None and usable(found):
            return found
    # Claimed: the answer may have been kept between the caller's look and the claim.
    found = store.get(content, identity)
    if found is not None and usable(found):
        store.release(content, identity)
        return found
    return None


def done(store: Engine, content: str, identity: dict, fresh: Optional[Answer]) -> Any:
    """End this thread's turn: keep ``fresh`` (which ends the claim), or let the claim go."""
    try:
        if fresh is not None:
            return store.put(content, identity, fresh)
        store.release(content, identity)
        return False
    finally:
        _asking().leave((content, identity_key(identity)))


def _late(service: str) -> NotAsked:
    return NotAsked(
        service,
        f"{service} was not asked: another process was asking it for the same picture, and "
        f"its answer did not come within the file's time budget ({FILE_TIMEOUT.name})",
    )
