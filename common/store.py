"""The embedded SQLite store the stand-in ``Metadata`` writes to outside PixStor.

One row per field: (item, namespace, field) -> JSON value, with the plugin that wrote it. A
plugin's write for an item replaces that plugin's earlier fields for the item, in one
transaction, so a failed write leaves the previous state whole.
"""

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import List, Optional, Union

from . import runtime

log = logging.getLogger(__name__)

STORE_VARIABLE = "PIXSTOR_AZURE_STORE"
DEFAULT_STORE = Path.home() / ".local" / "share" / "pixstor-azure" / "metadata.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fields (
    item TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    plugin TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (item, namespace, name)
)
"""


class Stores(dict):
    """This process's open stores, by path."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


class MetadataStore:
    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._setup = threading.Lock()

    @classmethod
    def default(cls) -> "MetadataStore":
        """The store named by $PIXSTOR_AZURE_STORE, else ``DEFAULT_STORE``."""
        from .settings import Settings  # late: settings may name the store in the INI file

        path = os.path.expanduser(Settings.load().text(STORE_VARIABLE, str(DEFAULT_STORE)))
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
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(str(self.path), timeout=30)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute(_SCHEMA)
            self._local.connection = connection
        return connection

    def write(self, item: str, namespace: str, plugin: str, data: dict) -> bool:
        """Replace ``plugin``'s fields of ``item`` with ``data``; False if the store refused."""
        now = time.time()
        rows = [
            (item, namespace, name, json.dumps(value, ensure_ascii=False), plugin, now)
            for name, value in data.items()
        ]
        try:
            connection = self._connection()
            with connection:  # one transaction: all of it or nothing
                connection.execute(
                    "DELETE FROM fields WHERE item = ? AND namespace = ? AND plugin = ?",
                    (item, namespace, plugin),
                )
                connection.executemany(
                    "INSERT OR REPLACE INTO fields VALUES (?, ?, ?, ?, ?, ?)", rows
                )
        except (sqlite3.Error, OSError) as exc:
            log.error("metadata store %s refused the write for %s: %s", self.path, item, exc)
            return False
        return True

    def read(self, item: str, namespace: Optional[str] = None) -> dict:
        """The fields of ``item`` as {field: value} (``namespace.field`` when not given one)."""
        query = "SELECT namespace, name, value FROM fields WHERE item = ?"
        args: tuple = (item,)
        if namespace is not None:
            query += " AND namespace = ?"
            args += (namespace,)
        rows = self._connection().execute(query + " ORDER BY namespace, name", args).fetchall()
        return {
            (name if namespace else f"{ns}.{name}"): json.loads(value) for ns, name, value in rows
        }

    def items(self) -> List[str]:
        rows = self._connection().execute("SELECT DISTINCT item FROM fields ORDER BY item")
        return [row[0] for row in rows]
