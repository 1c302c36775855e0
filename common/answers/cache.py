"""The answer cache: every answer a service gave, kept by the file's content and what was asked.

One SQLite file (standard library) in WAL mode, shared by every thread and process of the node
that names it; each thread has its own connection. A row is keyed by the SHA-256 of the file's
bytes and a digest of the backend's ``identity()`` (service, host, API, features, project,
iteration, long edge sent...), and holds the service's raw answer (zlib-compressed JSON), the
sizes sent and displayed, when it was asked and the model version. Never the image, never a
key: identities hold neither.

The cache only ever saves calls. Whatever goes wrong with it (the file missing, unwritable,
corrupt, locked past ``busy_timeout``, full) leaves the file to be answered by the service as
without a cache, and is said in one log line per process. ``PIXSTOR_AZURE_CACHE_MAX_MB`` caps
the file: when a write finds it full, the oldest answers make room.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
import weakref
import zlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..ground import clock, paths, private, runtime
from ..ground.logonce import log_once
from ..ground.setting_registry import CACHE, CACHE_MAX_MB
from ..ground.settings import Settings
from .answer import Answer, identity_key
from .engine import Reference

log = logging.getLogger(__name__)

OFF = "off"
FILE_NAME = "answers.sqlite3"
# Inside PixStor: a folder beside common/, which the user PixStor runs as must be able to write.
# Marks a file as an answer cache (SQLite's application_id, "pxAc"): any other database, such
# as the metadata store named by mistake, is left untouched.
APPLICATION_ID = 0x70784163
SCHEMA_VERSION = 2  # 2: the frames table (a file of version 1 gets it when opened)

# The answered frames of each frame sequence (``frames.py``): where the answer of each is
# kept (``content``), and its signature. ``sequence`` is a digest of its folder and pattern.
_FRAMES = """CREATE TABLE IF NOT EXISTS frames (
        sequence BLOB NOT NULL,
        setup BLOB NOT NULL,
        frame INTEGER NOT NULL,
        digits TEXT NOT NULL,
        name TEXT NOT NULL,
        content BLOB NOT NULL,
        signature BLOB NOT NULL,
        PRIMARY KEY (sequence, setup, frame)
    )"""
_SCHEMA = (
    # rowid order is the order answers were kept in: eviction takes the smallest first.
    """CREATE TABLE IF NOT EXISTS answers (
        content BLOB NOT NULL,
        setup BLOB NOT NULL,
        body BLOB NOT NULL,
        sent_width INTEGER NOT NULL,
        sent_height INTEGER NOT NULL,
        display_width INTEGER NOT NULL,
        display_height INTEGER NOT NULL,
        asked REAL NOT NULL,
        model TEXT,
        bytes_sent INTEGER NOT NULL,
        PRIMARY KEY (content, setup)
    )""",
    # What each setup digest stands for, so that an administrator can see and clear by service.
    "CREATE TABLE IF NOT EXISTS setups (setup BLOB PRIMARY KEY, identity TEXT NOT NULL)",
    _FRAMES,
)
OURS = private.tables(_SCHEMA)
_SELECT = (
    "SELECT body, sent_width, sent_height, display_width, display_height, asked, model, "
    "bytes_sent FROM answers WHERE content = ? AND setup = ?"
)
_INSERT = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_REFER = "INSERT OR REPLACE INTO frames VALUES (?, ?, ?, ?, ?, ?, ?)"


class NotACache(Exception):
    """The file is an SQLite database of something else."""


class Leftovers(Exception):
    """The database is gone but its -wal or -shm file is there: being deleted, or in part."""


def current(settings: Optional[Settings] = None) -> Optional["AnswerCache"]:
    """The cache the settings name, opened on first use; None when ``PIXSTOR_AZURE_CACHE=off``."""
    settings = settings or Settings.load()
    named = settings.get(CACHE)
    if named.lower() == OFF:
        return None
    path = Path(os.path.abspath(os.path.expanduser(named))) if named else paths.cache(settings)
    max_mb = settings.get(CACHE_MAX_MB)
    return runtime.current().get(Caches).get(path, int(max_mb * 1024 * 1024))


class Caches:
    """This process's open caches, by path."""

    def __init__(self) -> None:
        self.open: Dict[str, AnswerCache] = {}
        self.lock = threading.Lock()

    def get(self, path: Path, max_bytes: int) -> "AnswerCache":
        with self.lock:
            cache = self.open.get(str(path))
            if cache is None:
                cache = self.open[str(path)] = AnswerCache(path, max_bytes)
        cache.max_bytes = max_bytes
        return cache

    def close(self) -> None:
        with self.lock:
            caches, self.open = list(self.open.values()), {}
        for cache in caches:
            cache.close()


class _Link:
    """A thread's connection. When the thread ends, this goes and the connection closes."""

    __slots__ = ("__weakref__", "connection", "file", "generation")

    def __init__(
        self, connection: sqlite3.Connection, generation: int, file: Optional[tuple]
    ) -> None:
        self.connection = connection
        self.generation = generation
        self.file = file  # (device, inode) of the file opened


def _file_id(path: Path) -> Optional[tuple]:
    try:
        stat = os.stat(str(path))
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


class AnswerCache:
    """The answers kept in one SQLite file; ``max_bytes`` 0 is no bound."""

    busy_timeout = 1.0  # seconds a lookup or a write waits for another writer, then goes on
    retry_after = 60.0  # seconds before a file found unusable is tried again
    evict_to = 0.9  # a full cache drops its oldest answers down to this share of the bound

    def __init__(self, path: Union[str, os.PathLike], max_bytes: int = 0) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._links = weakref.WeakSet()  # type: weakref.WeakSet
        self._lock = threading.Lock()
        self._generation = 0  # bumped when the file is found unusable: threads reconnect
        self._unusable_until = 0.0

    # -------------------------------------------------------------------- answers

    def get(self, content: str, identity: dict) -> Optional[Answer]:
        """The answer kept for content digest ``content`` asked with ``identity``, or None."""
        connection = self._connection()
        if connection is None:
            return None
        try:
            row = connection.execute(_SELECT, (bytes.fromhex(content), setup(identity)[0]))
            row = row.fetchone()
        except sqlite3.Error as exc:
            self._trouble(exc)
            return None
        if row is None:
            return None
        try:
            return answer_of(row)
        except UNREADABLE as exc:
            log.debug("answer cache %s: an unreadable answer is asked again (%s)", self.path, exc)
            return None

    def put(self, content: str, identity: dict, answer: Answer) -> bool:
        """Keep ``answer``; False when it was not kept (not an answer to keep, or no cache)."""
        if not keepable(answer):
            return False
        key, described = setup(identity)
        row = (
            bytes.fromhex(content),
            key,
            pack(answer.body),
            int(answer.sent[0]),
            int(answer.sent[1]),
            int(answer.display[0]),
            int(answer.display[1]),
            float(answer.asked),
            answer.model,
            int(answer.bytes_sent),
        )
        connection = self._connection()
        if connection is None:
            return False
        try:
            try:
                self._insert(connection, key, described, row)
            except sqlite3.OperationalError as exc:
                if not (_is_full(exc) and self._evict(connection)):
                    raise
                self._insert(connection, key, described, row)
        except sqlite3.Error as exc:
            self._trouble(exc)
            return False
        return True

    def references(self, sequence: str, identity: dict, low: int, high: int) -> List[Reference]:
        """The answered frames ``low`` to ``high`` of ``sequence`` asked with ``identity``."""
        connection = self._connection()
        if connection is None:
            return []
        try:
            rows = connection.execute(
                "SELECT frame, digits, name, content, signature FROM frames "
                "WHERE sequence = ? AND setup = ? AND frame BETWEEN ? AND ?",
                (sequence_key(sequence), setup(identity)[0], low, high),
            ).fetchall()
        except sqlite3.Error as exc:
            self._trouble(exc)
            return []
        return [reference_of(row) for row in rows]

    def refer(self, sequence: str, identity: dict, reference: Reference) -> None:
        """Keep ``reference`` (an answered frame of ``sequence``); nothing when it cannot."""
        connection = self._connection()
        if connection is None:
            return
        try:
            with _transaction(connection):
                connection.execute(_REFER, reference_row(sequence, identity, reference))
        except sqlite3.Error as exc:
            self._trouble(exc)

    def count(self) -> int:
        """How many answers the file holds (0 when it cannot be read)."""
        connection = self._connection()
        if connection is None:
            return 0
        try:
            return connection.execute("SELECT count(*) FROM answers").fetchone()[0]
        except sqlite3.Error as exc:
            self._trouble(exc)
            return 0

    def close(self) -> None:
        """Close every thread's connection; for tests and shutdown."""
        with self._lock:
            links = list(self._links)
            self._links = weakref.WeakSet()
            self._generation += 1
        for link in links:
            with contextlib.suppress(sqlite3.Error):
                link.connection.close()

    # -------------------------------------------------------------------- the file

    def _connection(self) -> Optional[sqlite3.Connection]:
        link = getattr(self._local, "link", None)
        # A file deleted (to clear the cache) or replaced is let go of: a new one is made.
        if (
            link is not None
            and link.generation == self._generation
            and link.file == _file_id(self.path)
        ):
            return link.connection
        if link is not None:
            self._local.link = None
            with contextlib.suppress(sqlite3.Error):
                link.connection.close()
        if clock.now() < self._unusable_until:
            return None
        try:
            link = self._connect()
        except (sqlite3.Error, OSError, NotACache, Leftovers) as exc:
            self._trouble(exc)
            return None
        self._local.link = link
        return link.connection

    def _connect(self) -> _Link:
        # Switching a new file to WAL fails at once, without waiting, while another connection
        # does the same: one thread of the process at a time, and retries for other processes.
        with self._lock:
            generation = self._generation
            private.folder(self.path.parent)
            if not os.path.lexists(str(self.path)) and any(
                os.path.lexists(f"{self.path}{end}") for end in ("-wal", "-shm")
            ):
                # A new database beside an old log would be read through that log.
                raise Leftovers()
            # Ours alone, checked before anything is read: answers describe the customer's
            # pictures, and another user's file could feed us answers or hang us on a view.
            connection = private.connect(
                self.path,
                OURS,
                timeout=self.busy_timeout,
                isolation_level=None,  # transactions are ours: BEGIN IMMEDIATE ... COMMIT
                check_same_thread=False,  # used by one thread only, but closed by any
            )
            try:
                self._setup(connection)
                self._cap(connection)
                if self.max_bytes and _used_bytes(connection) > self.max_bytes:
                    self._evict(connection)  # the bound was lowered since the file was filled
            except BaseException:
                connection.close()
                raise
            link = _Link(connection, generation, _file_id(self.path))
            self._links.add(link)
        return link

    def _setup(self, connection: sqlite3.Connection) -> None:
        # Real time, as SQLite's own busy wait: this waits for another process's lock.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                _make_schema(connection)
                return
            except sqlite3.OperationalError as exc:
                if not _is_locked(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _cap(self, connection: sqlite3.Connection) -> None:
        """Make a write that would grow the file past ``max_bytes`` fail as full (then evict)."""
        if self.max_bytes:
            page = connection.execute("PRAGMA page_size").fetchone()[0]
            connection.execute(f"PRAGMA max_page_count = {max(2, self.max_bytes // page)}")

    def _insert(self, connection: sqlite3.Connection, key: bytes, described: str, row) -> None:
        with _transaction(connection):
            connection.execute("INSERT OR IGNORE INTO setups VALUES (?, ?)", (key, described))
            connection.execute(_INSERT, row)

    def _evict(self, connection: sqlite3.Connection) -> bool:
        """Drop the oldest answers down to ``evict_to`` of the bound; False if none could go."""
        if not self.max_bytes:
            return False
        target = self.max_bytes * self.evict_to
        dropped = 0
        with _transaction(connection):
            rows = connection.execute("SELECT count(*) FROM answers").fetchone()[0]
            for _ in range(8):  # rows differ in size: estimate, drop, measure again
                used = _used_bytes(connection)
                if used <= target or not rows:
                    break
                drop = min(rows, math.ceil(rows * (used - target) / used) + 1)
                connection.execute(
                    "DELETE FROM answers WHERE rowid IN "
                    "(SELECT rowid FROM answers ORDER BY rowid LIMIT ?)",
                    (drop,),
                )
                # The frames whose answers went: no longer a frame to reuse.
                connection.execute(
                    "DELETE FROM frames WHERE NOT EXISTS (SELECT 1 FROM answers "
                    "WHERE answers.content = frames.content AND answers.setup = frames.setup)"
                )
                dropped += drop
                rows -= drop
        if not dropped:
            return False  # nothing to drop: the disk is full, or one answer is over the bound
        # Give the freed pages back to the file system (executescript steps the pragma to its
        # end; execute would free one page).
        with contextlib.suppress(sqlite3.Error):
            connection.executescript("PRAGMA incremental_vacuum;")
            self._cap(connection)
        log_once(
            log,
            logging.INFO,
            f"answer cache {self.path} reached {CACHE_MAX_MB.name}: the oldest answers make room",
        )
        return True

    def _trouble(self, exc: BaseException) -> None:
        """Say once what is wrong; the file at hand is answered by the service meanwhile."""
        where = f"answer cache {self.path}"
        if isinstance(exc, sqlite3.ProgrammingError):  # closed by close(): connect again
            with self._lock:
                self._generation += 1
            return
        if isinstance(exc, sqlite3.OperationalError) and _is_locked(exc):
            log_once(
                log,
                logging.WARNING,
                f"{where} stayed locked by another process for more than "
                f"{self.busy_timeout:g} s: files are answered by the service meanwhile",
            )
            return
        if isinstance(exc, Leftovers):  # tried again at the next file: rm may be under way
            log_once(
                log,
                logging.WARNING,
                f"{where} is missing but its -wal or -shm file is there: delete "
                f"{self.path.name}-wal and {self.path.name}-shm too; files are answered by the "
                "service meanwhile",
            )
            return
        if isinstance(exc, sqlite3.OperationalError) and _is_full(exc):
            log_once(
                log,
                logging.WARNING,
                f"{where} is full (the disk, or {CACHE_MAX_MB.name} too small for one answer): "
                "new answers are not kept",
            )
            return
        with self._lock:
            self._generation += 1
            self._unusable_until = clock.now() + self.retry_after
        if isinstance(exc, NotACache):
            advice = f"it is not an answer cache: set {CACHE.name} to a new file"
        elif isinstance(exc, private.NotOurs):
            advice = f"{exc}: it is not used; set {CACHE.name} to a file of this user's own"
        elif isinstance(exc, OSError) or "readonly" in str(exc) or "unable to open" in str(exc):
            advice = (
                f"{_reason(exc)}: the user the plugins run as must be able to write "
                f"{self.path.parent}, or set {CACHE.name}"
            )
        else:
            advice = f"{_reason(exc)}: delete it and its -wal and -shm files to start afresh"
        log_once(
            log,
            logging.WARNING,
            f"{where} cannot be used ({advice}); files are answered by the service without it",
        )


# What ``answer_of`` raises for a body that cannot be read (UnicodeDecodeError is a ValueError).
UNREADABLE = (zlib.error, ValueError)


def answer_of(row: Sequence[Any]) -> Answer:
    """The kept answer of a row of ``_SELECT``'s columns (here and in the database's engine);
    raises one of ``UNREADABLE`` when its body cannot be read."""
    body = json.loads(zlib.decompress(bytes(row[0])).decode("utf-8"))
    return Answer(body, (row[1], row[2]), (row[3], row[4]), row[5], row[6], row[7], True)


def reference_of(row: Sequence[Any]) -> Reference:
    """An answered frame from a row of (frame, digits, name, content, signature)."""
    return Reference(row[0], row[1], row[2], bytes(row[3]).hex(), bytes(row[4]))


def reference_row(sequence: str, identity: dict, reference: Reference) -> tuple:
    """The row of the frames table that keeps ``reference``, in its columns' order."""
    return (
        sequence_key(sequence),
        setup(identity)[0],
        reference.number,
        reference.digits,
        reference.name,
        bytes.fromhex(reference.content),
        reference.signature,
    )


def sequence_key(sequence: str) -> bytes:
    """The key a frame sequence is kept under: a digest of its folder and pattern."""
    return hashlib.sha256(sequence.encode("utf-8", "surrogateescape")).digest()[:16]


def setup(identity: dict) -> Tuple[bytes, str]:
    """(key, canonical text) of a backend's identity: the same settings give the same key."""
    described = identity_key(identity)
    return hashlib.sha256(described.encode("utf-8")).digest()[:16], described


def pack(body: Any) -> bytes:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return zlib.compress(text.encode("utf-8"), 6)


def keepable(answer: Answer) -> bool:
    """An answer worth keeping: an answer, not an error body that slipped through."""
    body = answer.body
    if isinstance(body, dict):
        return not any(str(k).lower() == "error" for k in body)
    return isinstance(body, list)


def _make_schema(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN")  # one snapshot: another process may be making the tables
    try:
        mine, tables = _application_id(connection), _tables(connection)
    finally:
        with contextlib.suppress(sqlite3.Error):  # a read: nothing to lose
            connection.execute("COMMIT")
    if mine == APPLICATION_ID:
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
        if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            with _transaction(connection):  # a file of an older release: add what it lacks
                connection.execute(_FRAMES)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    if mine != 0 or tables:
        raise NotACache()
    # A new file. Incremental vacuum can only be chosen before the first table.
    connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
    connection.execute("PRAGMA journal_mode=WAL")
    with _transaction(connection):
        mine = _application_id(connection)  # another process may have got here first
        if mine != APPLICATION_ID:
            if mine != 0 or _tables(connection):
                raise NotACache()
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _application_id(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA application_id").fetchone()[0]


def _tables(connection: sqlite3.Connection) -> int:
    return connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]


def _used_bytes(connection: sqlite3.Connection) -> int:
    page = connection.execute("PRAGMA page_size").fetchone()[0]
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * page


@contextlib.contextmanager
def _transaction(connection: sqlite3.Connection):
    """BEGIN IMMEDIATE (waits for other writers up to the busy timeout) ... COMMIT."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:  # SQLite rolls some failures back by itself
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _is_full(exc: BaseException) -> bool:
    return "full" in str(exc).lower()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__
