"""The client-side rate limit: when each request to a service may start.

Azure counts the requests of a resource per second and answers 429 above its tier's rate. So
request starts are spaced a little more than ``1/rate`` apart: spaced exactly, any one second
holds ``rate + 1`` starts now and then, and a few milliseconds of network jitter do the rest.
With ``MARGIN`` kept unused, 25 to 50 ms of jitter are absorbed (at 10 to 20 per second) while
96% of the rate is used.

PixStor runs several worker processes on a node, all calling the same resource; the rate
setting is the resource's whole rate, so the spacing is shared by every process of the node
through a small SQLite file (``PIXSTOR_AZURE_RATE_FILE``, by default in the temporary folder).
It must be on a disk local to the node: nodes do not share it (several nodes share each rate
through a database instead: ``postgres.py``). If the file cannot be used, each process keeps
its own spacing and one warning says so. The engines keep their slots here (``local.py``);
the HTTP client's pacer asks them (``pacing.py``).
"""

import logging
import sqlite3
import threading
from typing import Dict, Optional, Tuple

from ..ground import clock, private, runtime
from ..ground.logonce import log_once
from ..ground.setting_registry import RATE_FILE

log = logging.getLogger(__name__)

# A file that failed is tried again after this many seconds: a lock held by a hung process
# or a full disk passes.
RETRY_AFTER = 60.0
MARGIN = 0.04
# A slot further ahead than this is left over from before the clock was set back: start over.
STALE = 3600.0


def interval(rate: float) -> float:
    """Seconds between two request starts at ``rate`` per second, margin kept."""
    return 1.0 / (rate * (1.0 - MARGIN))


def default_file() -> str:
    """One file per user, in a folder of that user's alone in the node's temporary folder:
    PixStor's workers run as one user, and the folder is on a disk local to the node."""
    return str(private.runtime_folder() / "rate.sqlite3")


class ProcessSlots:
    """The next free start per key, for this process only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: Dict[str, float] = {}

    def reserve(self, key: str, gap: float, now: float, within: Optional[float]) -> Optional[float]:
        """The time the next request for ``key`` may start (``now`` or later), taken for it;
        None, and nothing taken, when that is more than ``within`` seconds away."""
        with self._lock:
            start = _start(self._next.get(key), now, gap)
            if within is not None and start - now > within:
                return None
            self._next[key] = start + gap
        return start

    def pause(self, key: str, until: float) -> None:
        """No request for ``key`` starts before ``until`` (a 429 asked to wait)."""
        with self._lock:
            self._next[key] = max(until, self._next.get(key, until))


_SLOTS = "CREATE TABLE IF NOT EXISTS slots (key TEXT PRIMARY KEY, next REAL NOT NULL)"


class NodeSlots:
    """The next free start per key, shared by every process that opens the same file.
    ``TABLES``: the file's tables (``local.NodeFile`` keeps claims and holds there too)."""

    TABLES: Tuple[str, ...] = (_SLOTS,)

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Each reservation is one short write transaction; waiting for another process's
        # is a matter of microseconds, the timeout is for a file left locked by a hung one.
        self._db = private.connect(
            path,
            private.tables(self.TABLES),
            timeout=5.0,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            # A rollback journal kept between requests, not made and removed for each; not
            # WAL, whose switch and recovery answer "locked" without waiting for the lock.
            self._db.execute("PRAGMA journal_mode=PERSIST")
            self._db.execute("PRAGMA synchronous=OFF")  # nothing here is worth an fsync
            for statement in self.TABLES:
                self._db.execute(statement)
        except sqlite3.Error:
            self._db.close()
            raise

    def reserve(self, key: str, gap: float, now: float, within: Optional[float]) -> Optional[float]:
        """As ``ProcessSlots.reserve``, across processes; raises sqlite3.Error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT next FROM slots WHERE key = ?", (key,)).fetchone()
                start = _start(row[0] if row else None, now, gap)
                taken = within is None or start - now <= within
                if taken:
                    self._db.execute(
                        "INSERT OR REPLACE INTO slots (key, next) VALUES (?, ?)",
                        (key, start + gap),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return start if taken else None

    def close(self) -> None:
        self._db.close()


def _start(following: Optional[float], now: float, gap: float) -> float:
    if following is None or following - now > STALE + gap:
        return now
    return max(following, now)


class Limiters:
    """This process's slots: those of the node's file, else its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: Dict[str, Optional[NodeSlots]] = {}
        self._retry_at: Dict[str, float] = {}
        self.own = ProcessSlots()

    def reserve(
        self, key: str, rate: float, now: float, within: Optional[float], path: str = ""
    ) -> Optional[float]:
        """When a request to ``key`` at ``rate`` per second may start: see ProcessSlots."""
        path = path or default_file()
        slots = self._node(path)
        if slots is not None:
            try:
                return slots.reserve(key, interval(rate), now, within)
            except sqlite3.Error as exc:
                self._give_up(path, exc)
        return self.own.reserve(key, interval(rate), now, within)

    def _node(self, path: str) -> Optional[NodeSlots]:
        with self._lock:
            if path in self._files:
                known = self._files[path]
                if known is not None or clock.now() < self._retry_at.get(path, 0.0):
                    return known
            try:
                slots = NodeSlots(path)  # type: Optional[NodeSlots]
            except (sqlite3.Error, OSError) as exc:
                slots = None
                self._retry_at[path] = clock.now() + RETRY_AFTER
                _warn(path, exc)
            self._files[path] = slots
            return slots

    def _give_up(self, path: str, exc: Exception) -> None:
        with self._lock:
            slots = self._files.get(path)
            self._files[path] = None
            self._retry_at[path] = clock.now() + RETRY_AFTER
        if slots is not None:
            slots.close()
        _warn(path, exc)

    def close(self) -> None:
        with self._lock:
            files, self._files = list(self._files.values()), {}
        for slots in files:
            if slots is not None:
                slots.close()


def _warn(path: str, exc: Exception) -> None:
    log_once(
        log,
        logging.WARNING,
        f"the rate limit file {path} cannot be used ({type(exc).__name__}: {exc}): each "
        f"process limits its own rate meanwhile (tried again each minute), so the node may go "
        f"over the resource's; set "
        f"{RATE_FILE.name} to a file on a local disk this user can write",
    )


def limiters() -> Limiters:
    return runtime.current().get(Limiters)
