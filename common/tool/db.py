"""``db``: the PostgreSQL database several nodes share (``PIXSTOR_AZURE_DATABASE``).

    pixstor-azure db init [--grant ROLE]   create or upgrade the tables (as their owner)
    pixstor-azure db status                answers, size, oldest answer, claims, rates, nodes
    pixstor-azure db import [FILE]         copy a node's SQLite answer cache into the database

``init`` is the only place DDL runs: the plugins read the schema's version and fall back to
the node's own cache below it. ``check`` is what ``doctor`` says of the database.
"""

import argparse
import datetime
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..answers import cache, pgschema, postgres
from ..answers.postgres import Connection, Target
from ..ground import paths
from ..ground.errors import Problem, SettingsError
from ..ground.setting_registry import CACHE, DATABASE
from ..ground.settings import Settings

HELP = "the database several nodes share: init, status, import"
S = pgschema.SCHEMA
BATCH = 2000  # answers copied per statement by `import`
CHECK_SECONDS = 10.0

DATABASE_NOT_SET = Problem("is not set: name the database to use")
CACHE_OFF = Problem("is off: name the cache file to import")


def add_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    init_parser = actions.add_parser(
        "init",
        help="create or upgrade the tables; run as the role that owns them",
        description="create or upgrade the tables; run as the role that owns them",
    )
    init_parser.add_argument(
        "--grant",
        metavar="ROLE",
        help="also give ROLE, the role the nodes log in as, what the plugins need (and no more)",
    )
    actions.add_parser("status", help="answers, size, oldest answer, claims, rate use, nodes")
    copy = actions.add_parser(
        "import",
        help="copy a node's SQLite answer cache into the database",
        description="copy a node's SQLite answer cache into the database; answers the "
        "database already holds stay as they are",
    )
    copy.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help=f"default: this node's ({CACHE.name}, else its default)",
    )


def db(args: argparse.Namespace) -> int:
    """Run ``db ACTION``; the exit status."""
    settings = Settings.load()
    found = postgres.target(settings)
    if found is None:
        raise DATABASE_NOT_SET.error(DATABASE.name)
    try:
        if args.action == "init":
            lines = init(found.dsn, grant=args.grant)
        elif args.action == "status":
            lines = status(found)
        else:
            lines = import_cache(found, _cache_file(settings, args.file))
    except (postgres.Late, _driver_errors()) as exc:
        print(f"database {found.shown}: {_said(exc, found)}")
        return 1
    except ValueError as exc:  # a role name that is not one, a file that is no cache
        print(f"{exc}")
        return 1
    for line in lines:
        print(line)
    return 0


def _driver_errors():
    return postgres._driver().Error


def _said(exc: BaseException, found: Target) -> str:
    if isinstance(exc, postgres.Late):
        return "no answer in time"
    return postgres.clean(str(exc), found)


def _link(found: Target, seconds: float = CHECK_SECONDS) -> Connection:
    return postgres.connect(found, seconds)


# ------------------------------------------------------------------ init


def init(dsn: str, grant: Optional[str] = None, target: int = pgschema.VERSION) -> List[str]:
    """Create or upgrade the tables to version ``target``, then give ``grant`` its rights."""
    found = postgres.parse(dsn)
    statements = pgschema.grants(grant) if grant else []  # a bad name fails before any change
    link = _link(found)
    try:
        link.run("BEGIN", None, time.monotonic() + 60)
        # Two `db init` at once (two nodes set up together): the second waits, then finds
        # the work done.
        postgres.rows_of(link, "SELECT pg_advisory_xact_lock(%s)", (pgschema.MIGRATION_LOCK,))
        current = _version(link)
        lines = []
        for version, about, migration in pgschema.pending(current, target):
            for statement in migration:
                postgres.rows_of(link, statement)
            postgres.rows_of(
                link,
                f"INSERT INTO {S}.schema_version (version, about) VALUES (%s, %s)",
                (version, about),
            )
            lines.append(f"schema version {version}: {about}")
        for statement in statements:
            postgres.rows_of(link, statement)
        postgres.rows_of(link, "COMMIT")
    finally:
        link.close()  # before COMMIT: rolled back
    where = found.shown
    if not lines:
        lines.append(f"database {where}: schema version {max(current, target)}, nothing to do")
    else:
        lines.insert(0, f"database {where}: from version {current} to {target}")
    if grant:
        lines.append(f"{grant} may read and write the answers, claims, rates, holds and nodes")
    return lines


def _version(link: Connection) -> int:
    """The schema's version (0: none yet)."""
    exists = postgres.rows_of(link, f"SELECT to_regclass('{S}.schema_version') IS NOT NULL")
    if not exists[0][0]:
        return 0
    return postgres.rows_of(link, f"SELECT coalesce(max(version), 0) FROM {S}.schema_version")[0][0]


# ------------------------------------------------------------------ status


def status(found: Target) -> List[str]:
    """What the database holds and how the nodes use it, in lines."""
    link = _link(found)
    try:
        return _status(link, found)
    finally:
        link.close()


def _status(link: Connection, found: Target) -> List[str]:
    server = postgres.rows_of(link, "SHOW server_version")[0][0]
    version = _version(link)
    lines = [
        f"database: {found.shown} (PostgreSQL {server}), schema version {version} "
        f"(this release needs {pgschema.VERSION})"
    ]
    if version < pgschema.VERSION:
        lines.append("run `pixstor-azure db init` as the tables' owner: the nodes do not use it")
        if version == 0:
            return lines
    now = postgres.rows_of(link, "SELECT extract(epoch from clock_timestamp())::float8")[0][0]
    count, oldest, newest = postgres.rows_of(
        link, f"SELECT count(*), min(asked), max(asked) FROM {S}.answers"
    )[0]
    size = postgres.rows_of(
        link,
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        (S,),
    )[0][0]
    each = f", {size / count:,.0f} bytes each" if count >= 10000 else ""
    lines.append(f"answers: {count:,} in {_size(size)} (tables and indexes){each}")
    if count:
        lines.append(f"oldest answer: asked {_when(oldest)}; newest: asked {_when(newest)}")
        by_service = postgres.rows_of(
            link,
            f"SELECT s.identity, count(*) FROM {S}.answers a JOIN {S}.setups s USING (setup) "
            "GROUP BY s.identity ORDER BY count(*) DESC",
        )
        for identity, answers in by_service:
            lines.append(f"  {answers:,} from {_setup(identity)}")
    if version < 2:
        return lines
    live, late = postgres.rows_of(
        link,
        f"SELECT count(*) FILTER (WHERE until >= %(now)s), count(*) FILTER (WHERE until < %(now)s) "
        f"FROM {S}.claims",
        {"now": now},
    )[0]
    lines.append(f"claims: {live} answers being asked now, {late} run out (taken over when met)")
    rates = postgres.rows_of(
        link,
        f"SELECT key, rate, minute, this_minute, last_minute, paused_until FROM {S}.rates "
        "ORDER BY key",
    )
    minute = int(now // 60)
    for key, rate, seen, this, last, paused in rates:
        if seen == minute:
            used = last / 60.0
        elif seen == minute - 1:
            used = this / 60.0
        else:
            used = 0.0
        share = f" ({used / rate:.0%} of it)" if rate else ""
        pause = f"; paused by a 429 until {_when(paused)}" if paused > now else ""
        lines.append(
            f"rate {key}: {used:.2f} requests/s over the last whole minute, spaced for "
            f"{rate:.2f}/s{share}{pause}"
        )
    holds = postgres.rows_of(
        link, f"SELECT kind, until, since, error, node FROM {S}.holds ORDER BY since"
    )
    for kind, until, since, error, node in holds:
        lines.append(
            f"hold ({kind}) since {_when(since)}, found on {node or 'a node'}, asked again "
            f"from {_when(until)}: {_error_words(error)}"
        )
    nodes = postgres.rows_of(
        link,
        f"SELECT name, seen, version FROM {S}.nodes WHERE seen > %s ORDER BY name",
        (now - postgres.NODES_WINDOW,),
    )
    named = ", ".join(f"{n} ({v}, {now - s:.0f} s ago)" for n, s, v in nodes)
    lines.append(f"nodes seen in the last hour: {len(nodes)}{': ' + named if named else ''}")
    return lines


def _size(size: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024.0
    return f"{size:,.1f} GB"


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _setup(identity: str) -> str:
    """A way of asking in a few words: its service and host (never a key: identities hold none)."""
    try:
        described = json.loads(identity)
    except ValueError:
        return "an unreadable setup"
    if not isinstance(described, dict):
        return "an unreadable setup"
    words = [str(described.get(k)) for k in ("service", "task", "api", "host") if described.get(k)]
    return " ".join(words) or "a setup"


def _error_words(error: str) -> str:
    try:
        return str(json.loads(error).get("message", error))
    except (ValueError, AttributeError):
        return error


# ------------------------------------------------------------------ import


def _cache_file(settings: Settings, named: Optional[str]) -> Path:
    if named:
        return Path(named)
    value = settings.get(CACHE)
    if value.lower() == "off":
        raise CACHE_OFF.error(CACHE.name)
    return Path(os.path.expanduser(value)) if value else paths.cache(settings)


def import_cache(found: Target, file: Path) -> List[str]:
    """Copy every answer of the SQLite cache ``file`` the database does not hold yet."""
    source = _open_cache(file)
    link = _link(found)
    copied = seen = 0
    started = time.monotonic()
    try:
        setups = source.execute("SELECT setup, identity FROM setups").fetchall()
        for part in _batches(setups, BATCH):
            _insert(link, "setups (setup, identity)", part, "(%s, %s)", "setup")
        rows = source.execute(
            "SELECT content, setup, body, sent_width, sent_height, display_width, "
            "display_height, asked, model, bytes_sent FROM answers ORDER BY rowid"
        )
        while True:
            part = rows.fetchmany(BATCH)
            if not part:
                break
            seen += len(part)
            copied += _insert(
                link, "answers", part, "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", "content, setup"
            )
    finally:
        link.close()
        source.close()
    return [
        f"{file}: {seen:,} answers read, {copied:,} copied into {found.shown} "
        f"({seen - copied:,} were there already) in {time.monotonic() - started:.1f} s"
    ]


def _open_cache(file: Path) -> sqlite3.Connection:
    if not file.is_file():
        raise ValueError(f"{file}: no such file")
    source = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        mine = source.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        source.close()
        raise ValueError(f"{file}: not an answer cache ({exc})") from None
    if mine != cache.APPLICATION_ID:
        source.close()
        raise ValueError(f"{file}: not an answer cache")
    return source


def _batches(rows: Sequence, size: int):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert(link: Connection, into: str, rows: Sequence[Tuple], shape: str, key: str) -> int:
    cursor = link.conn.cursor()
    try:
        values = ",".join(cursor.mogrify(shape, _bytes(row)).decode("utf-8") for row in rows)
    finally:
        cursor.close()
    done = postgres.rows_of(
        link,
        f"INSERT INTO {S}.{into} VALUES {values} ON CONFLICT ({key}) DO NOTHING RETURNING 1",
        None,
        300.0,
    )
    return len(done)


def _bytes(row: Tuple) -> Tuple:
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)


# ------------------------------------------------------------------ doctor


def check(settings: Settings) -> Tuple[List[str], Optional[bool]]:
    """What ``doctor`` says of the database: lines, and True (works), False, or None (not set)."""
    try:
        found = postgres.target(settings)
    except SettingsError as exc:
        return [f"settings: {exc}"], False
    if found is None:
        return ["not set: each node keeps its own answer cache and rate limit"], None
    lines = [f"uses {found.shown}"]
    try:
        link = _link(found)
    except (postgres.Late, _driver_errors()) as exc:
        return [*lines, f"cannot connect: {_said(exc, found)}"], False
    ok = True
    try:
        version = _version(link)
        if version < pgschema.VERSION:
            return [
                *lines,
                f"schema version {version}, this release needs {pgschema.VERSION}: run "
                "`pixstor-azure db init` as the tables' owner (the nodes do not use it meanwhile)",
            ], False
        missing = postgres.rows_of(
            link,
            "SELECT t FROM unnest(%s::text[], %s::text[]) AS g(t, r) "
            "WHERE NOT has_table_privilege(%s || '.' || t, r)",
            (
                [t for t, _ in pgschema.TABLE_GRANTS],
                [r for _, r in pgschema.TABLE_GRANTS],
                S,
            ),
        )
        if missing:
            ok = False
            lines.append(
                "the role lacks grants on "
                + ", ".join(row[0] for row in missing)
                + ": run `pixstor-azure db init --grant ROLE` as the tables' owner"
            )
        tls = postgres.rows_of(
            link, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        mode = dict(postgres._driver().extensions.parse_dsn(found.dsn)).get("sslmode", "")
        if tls and tls[0][0]:
            verified = " and the server verified" if mode == "verify-full" else ""
            lines.append(f"TLS {tls[0][1]}{verified}")
        if mode != "verify-full" and not _local(found):
            lines.append(
                "the server's certificate is not verified: add sslmode=verify-full (and "
                "sslrootcert=) to the URL"
            )
        started = time.perf_counter()
        postgres.rows_of(
            link,
            f"SELECT body FROM {S}.answers WHERE content = %s AND setup = %s",
            (b"\0" * 32, b"\0" * 16),
        )
        took = (time.perf_counter() - started) * 1000
        lines.append(f"works: schema version {version}, a lookup takes {took:.1f} ms")
    except (postgres.Late, _driver_errors()) as exc:
        return [*lines, f"failed: {_said(exc, found)}"], False
    finally:
        link.close()
    return lines, ok


def _local(found: Target) -> bool:
    """Whether the URL names this machine (a unix socket or the loopback)."""
    where = dict(postgres._driver().extensions.parse_dsn(found.dsn)).get("host", "")
    return not where or where.startswith("/") or where in ("localhost", "127.0.0.1", "::1")
