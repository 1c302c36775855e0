"""Files of ours alone: the folders, SQLite files and journals we create or write.

The plugins often run as root, on nodes shared with other users and other vendors' software.
A file another user planted where we look (a rate file in the shared temporary folder, a link to
a file of their choice, a database holding a view that never finishes) must never be trusted,
followed or written. So every file we create or write:

- lives in a folder only the running user can write (made 0700 when we make it, whatever the
  umask; an existing one must be a real folder of ours, not a link, not writable by others);
- is opened without following links, and must be a regular file owned by the effective user,
  root included, made 0600;
- when it is a SQLite database, holds exactly our tables and indexes (no views, no triggers)
  before anything reads it; its journals are checked as the file is.

A refusal is a ``NotOurs`` (an ``OSError``), which each caller already turns into one line and
a fallback.
"""

import os
import re
import sqlite3
import stat
import tempfile
from pathlib import Path
from typing import Any, FrozenSet, Iterable, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]
JOURNALS = ("-wal", "-shm", "-journal")
_CREATED = re.compile(
    r"CREATE\s+(?:UNIQUE\s+)?(TABLE|INDEX)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE
)


class NotOurs(PermissionError):
    """A file or folder we would use is not ours alone, or holds what we did not put there."""


def folder(path: PathLike) -> Path:
    """``path`` as a folder only this user can write; made (with its parents) 0700 if new."""
    path = Path(path)
    missing = []
    probe = path
    while not os.path.lexists(str(probe)) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for new in reversed(missing):
        try:
            os.mkdir(str(new), 0o700)
        except FileExistsError:  # made by another process of ours meanwhile: checked below
            continue
        os.chmod(str(new), 0o700)  # whatever the umask took away or let through
    found = os.lstat(str(path))
    if stat.S_ISLNK(found.st_mode) or not stat.S_ISDIR(found.st_mode):
        raise NotOurs(f"{path} is not a folder (a link, or a file)")
    if found.st_uid != os.geteuid():
        raise NotOurs(f"the folder {path} belongs to another user (uid {found.st_uid})")
    if found.st_mode & 0o022:
        raise NotOurs(
            f"the folder {path} can be written by other users (mode {found.st_mode & 0o777:o})"
        )
    return path


def file(path: PathLike) -> Path:
    """``path`` as a regular file of ours alone (0600), made if missing, in a folder of ours."""
    path = Path(path)
    folder(path.parent)
    try:
        fd = os.open(
            str(path),
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
            0o600,
        )
    except OSError:
        if os.path.islink(str(path)):
            raise NotOurs(f"{path} is a link") from None
        raise
    try:
        found = os.fstat(fd)
        _check(path, found)
        if stat.S_IMODE(found.st_mode) & 0o077:
            os.fchmod(fd, 0o600)  # ours, made under a loose umask before: closed now
    finally:
        os.close(fd)
    for end in JOURNALS:
        journal = f"{path}{end}"
        try:
            found = os.lstat(journal)
        except FileNotFoundError:  # none, or removed meanwhile by SQLite's last connection
            continue
        _check(Path(journal), found)
    return path


def _check(path: Path, found: os.stat_result) -> None:
    if not stat.S_ISREG(found.st_mode):
        raise NotOurs(f"{path} is not a regular file")
    if found.st_uid != os.geteuid():
        raise NotOurs(f"{path} belongs to another user (uid {found.st_uid})")


def tables(statements: Iterable[str]) -> FrozenSet[Tuple[str, str]]:
    """The (type, name) of each table and index ``statements`` create."""
    return frozenset(
        (kind.lower(), name) for text in statements for kind, name in _CREATED.findall(text)
    )


def connect(path: PathLike, ours: FrozenSet[Tuple[str, str]], **options: Any) -> sqlite3.Connection:
    """A connection to the SQLite file at ``path``, checked to be ours: the file as ``file``
    says, its schema no more than ``ours`` (see ``tables``): no view, no trigger."""
    path = file(path)
    connection = sqlite3.connect(str(path), **options)
    try:
        check_schema(connection, ours, path)
    except BaseException:
        connection.close()
        raise
    return connection


def check_schema(
    connection: sqlite3.Connection, ours: FrozenSet[Tuple[str, str]], path: PathLike
) -> None:
    """Refuse a database holding anything but our tables and indexes (SQLite's own aside)."""
    found = connection.execute(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    strange = sorted((kind, name) for kind, name in found if (kind, name) not in ours)
    if strange:
        kind, name = strange[0]
        raise NotOurs(f"{path} holds a {kind} {name!r} that is not ours")


def runtime_folder() -> Path:
    """A folder of this user's in the node's temporary folder, for what the node's processes
    share (the rate file): local to the node, made 0700."""
    return Path(tempfile.gettempdir()) / f"pixstor-azure-{os.geteuid()}"
