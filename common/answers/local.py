"""The node's own engine: the SQLite answer cache, and the node's rate file for the rest.

The embedded default for one node, and what the PostgreSQL engine falls back to. Answers live
in the answer cache (``cache.py``); rate slots, claims and holds in the small SQLite file the
node's worker processes share (``PIXSTOR_AZURE_RATE_FILE``, ``ratelimit.py``), beside the slots
table every release has used. When that file cannot be used, each process keeps its own (the
node may then go over a rate, and two processes may ask for one answer), one warning says so,
and the file is tried again each minute.
"""

import contextlib
import logging
import os
import socket
import sqlite3
import threading
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

from ..ground import clock
from ..ground.logonce import log_once
from ..ground.setting_registry import RATE_FILE
from . import ratelimit
from .answer import Answer
from .cache import AnswerCache, setup
from .engine import Engine, Hold, Reference

log = logging.getLogger(__name__)

RETRY_AFTER = 60.0  # seconds before a rate file found unusable is tried again

_CLAIMS = """CREATE TABLE IF NOT EXISTS claims (
    content BLOB NOT NULL, setup BLOB NOT NULL, holder TEXT NOT NULL, pid INTEGER NOT NULL,
    until REAL NOT NULL, PRIMARY KEY (content, setup))"""
_HOLDS = """CREATE TABLE IF NOT EXISTS holds (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, until REAL NOT NULL, pause REAL NOT NULL,
    since REAL NOT NULL, error TEXT NOT NULL, probing INTEGER NOT NULL, node TEXT NOT NULL)"""
_HOLD = "key, kind, until, pause, since, error, probing, node"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this node still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _claim_key(content: str, identity: dict) -> Tuple[bytes, bytes]:
    return bytes.fromhex(content), setup(identity)[0]


class NodeFile(ratelimit.NodeSlots):
    """Slots, claims and holds in the node's rate file, shared by every process that opens it
    (``ratelimit.NodeSlots`` and its file checks, with two tables more). Each method is one
    short transaction; raises sqlite3.Error, or OSError for a file that is not ours."""

    TABLES = (*ratelimit.NodeSlots.TABLES, _CLAIMS, _HOLDS)

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.pid = os.getpid()
        # One engine per process: its threads share its claims (fetch has them wait for each
        # other); another engine is another claimant.
        self.holder = f"{socket.gethostname()}:{self.pid}:{uuid.uuid4().hex[:8]}"

    @contextlib.contextmanager
    def _write(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def pause(self, key: str, until: float) -> None:
        with self._write() as db:
            row = db.execute("SELECT next FROM slots WHERE key = ?", (key,)).fetchone()
            following = max(until, row[0]) if row else until
            db.execute("INSERT OR REPLACE INTO slots (key, next) VALUES (?, ?)", (key, following))

    def claim(self, content: str, identity: dict, lease: float, now: float) -> bool:
        key = _claim_key(content, identity)
        with self._write() as db:
            row = db.execute(
                "SELECT holder, pid, until FROM claims WHERE content = ? AND setup = ?", key
            ).fetchone()
            if row is not None and row[0] != self.holder and row[2] >= now and _alive(row[1]):
                return False
            db.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                (*key, self.holder, self.pid, now + lease),
            )
        return True

    def release(self, content: str, identity: dict) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM claims WHERE content = ? AND setup = ? AND holder = ?",
                (*_claim_key(content, identity), self.holder),
            )

    def holds(self, keys: Sequence[str]) -> Dict[str, Hold]:
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_HOLD} FROM holds WHERE key IN ({marks})", tuple(keys)
            ).fetchall()
        return {row[0]: _hold(row) for row in rows}

    def hold(self, key: str, hold: Hold) -> None:
        with self._write() as db:
            db.execute(
                f"INSERT OR REPLACE INTO holds ({_HOLD}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, *hold[:5], int(hold.probing), hold.node),
            )

    def probe(self, key: str, now: float, until: float) -> bool:
        with self._write() as db:
            done = db.execute(
                "UPDATE holds SET until = ?, probing = 1 WHERE key = ? AND until <= ?",
                (until, key, now),
            )
            return done.rowcount > 0

    def lift(self, keys: Sequence[str]) -> Dict[str, Hold]:
        marks = ",".join("?" * len(keys))
        with self._write() as db:
            rows = db.execute(f"SELECT {_HOLD} FROM holds WHERE key IN ({marks})", tuple(keys))
            found = {row[0]: _hold(row) for row in rows.fetchall()}
            db.execute(f"DELETE FROM holds WHERE key IN ({marks})", tuple(keys))
        return found


def _hold(row: tuple) -> Hold:
    return Hold(row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7])


class Alone:
    """Slots, claims and holds of this process only: while the rate file cannot be used."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.slots = ratelimit.ProcessSlots()
        self.claims = {}  # type: Dict[Tuple[bytes, bytes], float]
        self.kept = {}  # type: Dict[str, Hold]

    def reserve(self, key: str, gap: float, now: float, within: Optional[float]) -> Optional[float]:
        return self.slots.reserve(key, gap, now, within)

    def pause(self, key: str, until: float) -> None:
        self.slots.pause(key, until)

    def claim(self, content: str, identity: dict, lease: float, now: float) -> bool:
        # Threads of one process wait for each other in fetch: a claim here is always granted.
        with self._lock:
            self.claims[_claim_key(content, identity)] = now + lease
        return True

    def release(self, content: str, identity: dict) -> None:
        with self._lock:
            self.claims.pop(_claim_key(content, identity), None)

    def holds(self, keys: Sequence[str]) -> Dict[str, Hold]:
        with self._lock:
            return {k: self.kept[k] for k in keys if k in self.kept}

    def hold(self, key: str, hold: Hold) -> None:
        with self._lock:
            self.kept[key] = hold

    def probe(self, key: str, now: float, until: float) -> bool:
        with self._lock:
            found = self.kept.get(key)
            if found is None or found.until > now:
                return False
            self.kept[key] = found._replace(until=until, probing=True)
            return True

    def lift(self, keys: Sequence[str]) -> Dict[str, Hold]:
        with self._lock:
            return {k: self.kept.pop(k) for k in keys if k in self.kept}


class SqliteEngine(Engine):
    """The node's own: answers in ``cache`` (None: kept nowhere), the rest in the rate file at
    ``rate_file`` ("" for the default), or in this process while that cannot be used."""

    name = "sqlite"

    def __init__(self, cache: Optional[AnswerCache], rate_file: str = "") -> None:
        self.cache = cache
        self.rate_file = rate_file or ratelimit.default_file()
        self.alone = Alone()
        self._lock = threading.Lock()
        self._file = None  # type: Optional[NodeFile]
        self._retry_at = 0.0

    def describe(self) -> str:
        answers = f"answer cache {self.cache.path}" if self.cache is not None else "no answer cache"
        return f"{answers}, rate file {self.rate_file}"

    # ---------------------------------------------------------------- answers

    def get(self, content: str, identity: dict) -> Optional[Answer]:
        return None if self.cache is None else self.cache.get(content, identity)

    def put(self, content: str, identity: dict, answer: Answer) -> bool:
        kept = self.cache is not None and self.cache.put(content, identity, answer)
        self.release(content, identity)
        return kept

    # ---------------------------------------------------------------- frames, with the answers

    def references(self, sequence: str, identity: dict, low: int, high: int) -> List[Reference]:
        if self.cache is None:
            return []
        return self.cache.references(sequence, identity, low, high)

    def refer(self, sequence: str, identity: dict, reference: Reference) -> None:
        if self.cache is not None:
            self.cache.refer(sequence, identity, reference)

    # ---------------------------------------------------------------- the rest, in the file

    def claim(self, content: str, identity: dict, lease: float) -> bool:
        return self._use("claim", content, identity, lease, clock.wall())

    def release(self, content: str, identity: dict) -> None:
        self._use("release", content, identity)

    def reserve(self, key: str, gap: float, now: float, within: Optional[float]) -> Optional[float]:
        return self._use("reserve", key, gap, now, within)

    def pause(self, key: str, until: float) -> None:
        self._use("pause", key, until)

    def holds(self, keys: Sequence[str]) -> Dict[str, Hold]:
        return self._use("holds", keys) if keys else {}

    def hold(self, key: str, hold: Hold) -> None:
        self._use("hold", key, hold)

    def probe(self, key: str, now: float, until: float) -> bool:
        return self._use("probe", key, now, until)

    def lift(self, keys: Sequence[str]) -> Dict[str, Hold]:
        return self._use("lift", keys) if keys else {}

    def close(self) -> None:
        with self._lock:
            found, self._file = self._file, None
        if found is not None:
            found.close()

    def _use(self, method: str, *args):
        node = self._node()
        if node is not None:
            try:
                return getattr(node, method)(*args)
            except sqlite3.Error as exc:
                self._give_up(node, exc)
        return getattr(self.alone, method)(*args)

    def _node(self) -> Optional[NodeFile]:
        with self._lock:
            if self._file is not None or clock.now() < self._retry_at:
                return self._file
            try:
                self._file = NodeFile(self.rate_file)
            except (sqlite3.Error, OSError) as exc:
                self._retry_at = clock.now() + RETRY_AFTER
                _warn(self.rate_file, exc)
            return self._file

    def _give_up(self, node: NodeFile, exc: Exception) -> None:
        with self._lock:
            if self._file is node:
                self._file = None
                self._retry_at = clock.now() + RETRY_AFTER
        node.close()
        _warn(self.rate_file, exc)


def _warn(path: str, exc: Exception) -> None:
    log_once(
        log,
        logging.WARNING,
        f"the rate file {path} cannot be used ({type(exc).__name__}: {exc}): each process "
        "keeps its own rate, claims and holds meanwhile (tried again each minute), so the node "
        f"may go over the resource's rate; set {RATE_FILE.name} to a file on a local disk "
        "this user can write",
    )
