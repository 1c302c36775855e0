"""The embedded SQLite store the stand-in ``Metadata`` writes to outside PixStor.

One row per field: (item, namespace, field) -> JSON value, with the plugin that wrote it. A
plugin's write for an item replaces that plugin's earlier fields for the item, in one
transaction, so a failed write leaves the previous state whole.

The command-line tool also keeps one row per (item, plugin) in ``runs``: the content digest of
the file, the signature of the settings that shaped its fields, the status and when. It is
written in the same transaction as the fields, so a run that is stopped at any moment leaves
every file either done (fields and run row) or not done (neither), and the next run continues.

An item is kept as text, except the path of a file whose name is not UTF-8 (Python gives it
with lone surrogates, which SQLite's text cannot hold): that one is kept as the bytes of the
name, and read back as the same path.
"""

import json
import logging
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, NamedTuple, Optional, Union

from . import paths, private, runtime
from .settings import Settings

log = logging.getLogger(__name__)


_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS fields (
        item TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        plugin TEXT NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (item, namespace, name)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS runs (
        item TEXT NOT NULL,
        plugin TEXT NOT NULL,
        digest TEXT,
        size INTEGER,
        mtime_ns INTEGER,
        signature TEXT NOT NULL,
        status TEXT NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (item, plugin)
    )
    """,
)
OURS = private.tables(_SCHEMA)


def _key(item: str) -> Union[str, bytes]:
    """``item`` as the store keeps it: as it is, or the bytes of a name that is not UTF-8."""
    try:
        item.encode("utf-8")
        return item
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(item)  # the name's own bytes
    except UnicodeEncodeError:  # surrogates no file system decoding makes
        return item.encode("utf-8", "surrogatepass")


def _item(kept: Union[str, bytes]) -> str:
    """An item as ``_key`` kept it, as it was given."""
    return os.fsdecode(kept) if isinstance(kept, bytes) else kept


def _json(value: Any) -> str:
    """A field's value as JSON text SQLite can hold: a lone surrogate (from a ``\\udXXX``
    escape in a service's answer) stays an escape."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


class Run(NamedTuple):
    """What the tool last did for one (item, plugin)."""

    item: str
    plugin: str  # the plugin's class name, as in the fields table
    digest: Optional[str]  # SHA-256 of the file's content
    size: Optional[int]  # size and mtime when the digest was taken: an unchanged file is
    mtime_ns: Optional[int]  # not read again to know its digest
    signature: str  # of the settings that shape the fields (never a key)
    status: str  # SUCCESS, SKIPPED, FATAL or ERRORED
    updated: float = 0.0


def _set_up(connection: sqlite3.Connection, tries: int = 50) -> None:
    """WAL and the tables. Another *process* switching a new file to WAL at the same moment
    makes SQLite answer "database is locked" at once, without its busy wait: try again."""
    for attempt in range(tries):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                connection.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05 + 0.05 * random.random())


class Stores(dict):
    """This process's open stores, by path."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


def default_path() -> Path:
    """The store named by $PIXSTOR_AZURE_STORE, else the default (see ``paths``)."""
    return paths.store(Settings.load())


class MetadataStore:
    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._setup = threading.Lock()

    @classmethod
    def default(cls) -> "MetadataStore":
        """The store named by $PIXSTOR_AZURE_STORE, else the default (see ``paths``)."""
        path = str(default_path())
        stores = runtime.current().get(Stores)
        with stores.lock:
            if path not in stores:
                stores[path] = cls(path)
            return stores[path]

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # Switching a new file to WAL fails at once ("database is locked", no busy wait)
            # while another thread does the same: one thread at a time sets a connection up.
            with self._setup:
                # Ours alone (0600 in a 0700 folder), checked before anything is read.
                connection = private.connect(self.path, OURS, timeout=30)
                _set_up(connection)
            self._local.connection = connection
        return connection

    def write(
        self, item: str, namespace: str, plugin: str, data: dict, run: Optional[Run] = None
    ) -> bool:
        """Replace ``plugin``'s fields of ``item`` with ``data``; False if the store refused.

        ``run`` (the tool's record of the file, for the same item and plugin) is written with
        status SUCCESS in the same transaction.
        """
        if run is not None:
            run = run._replace(status="SUCCESS")
        return self._commit(item, namespace, plugin, data, run)

    def record(self, run: Run, namespace: str, data: Optional[dict]) -> bool:
        """Write ``run``, and replace the plugin's fields of the item with ``data`` unless it is
        None (an empty dict removes them), in one transaction; False if the store refused."""
        return self._commit(run.item, namespace, run.plugin, data, run)

    def _commit(
        self, item: str, namespace: str, plugin: str, data: Optional[dict], run: Optional[Run]
    ) -> bool:
        now = time.time()
        try:
            connection = self._connection()
            with connection:  # one transaction: all of it or nothing
                if data is not None:
                    key = _key(item)
                    rows = [
                        (key, namespace, name, _json(value), plugin, now)
                        for name, value in data.items()
                    ]
                    connection.execute(
                        "DELETE FROM fields WHERE item = ? AND namespace = ? AND plugin = ?",
                        (key, namespace, plugin),
                    )
                    connection.executemany(
                        "INSERT OR REPLACE INTO fields VALUES (?, ?, ?, ?, ?, ?)", rows
                    )
                if run is not None:
                    connection.execute(
                        "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (_key(run.item), *run._replace(updated=now)[1:]),
                    )
        except (sqlite3.Error, OSError) as exc:
            log.error("metadata store %s refused the write for %s: %s", self.path, item, exc)
            return False
        return True

    def read(self, item: str, namespace: Optional[str] = None) -> dict:
        """The fields of ``item`` as {field: value} (``namespace.field`` when not given one)."""
        query = "SELECT namespace, name, value FROM fields WHERE item = ?"
        args = (_key(item),)  # type: tuple
        if namespace is not None:
            query += " AND namespace = ?"
            args += (namespace,)
        rows = self._connection().execute(query + " ORDER BY namespace, name", args).fetchall()
        return {
            (name if namespace else f"{ns}.{name}"): json.loads(value) for ns, name, value in rows
        }

    def items(self) -> List[str]:
        rows = self._connection().execute("SELECT DISTINCT item FROM fields ORDER BY item")
        return [_item(row[0]) for row in rows]

    def run(self, item: str, plugin: str) -> Optional[Run]:
        """What the tool last did for ``item`` with ``plugin``, if anything."""
        row = (
            self._connection()
            .execute("SELECT * FROM runs WHERE item = ? AND plugin = ?", (_key(item), plugin))
            .fetchone()
        )
        return Run(*row)._replace(item=_item(row[0])) if row else None

    def items_of(self, plugin: str) -> List[str]:
        """The items ``plugin`` wrote fields for or the tool ran it on, in order."""
        rows = self._connection().execute(
            "SELECT item FROM runs WHERE plugin = ? UNION SELECT item FROM fields WHERE plugin = ?"
            " ORDER BY item",
            (plugin, plugin),
        )
        return [_item(row[0]) for row in rows]

    def search(self, namespace: str, name: str, match: Any) -> Iterator[str]:
        """The items whose field ``namespace.name`` holds a value for which ``match`` is true
        (for a list field: any of its values), in item order."""
        rows = self._connection().execute(
            "SELECT item, value FROM fields WHERE namespace = ? AND name = ? ORDER BY item",
            (namespace, name),
        )
        for item, value in rows:
            value = json.loads(value)
            values = value if isinstance(value, list) else [value]
            if any(match(v) for v in values):
                yield _item(item)

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            self._local.connection = None
            connection.close()
