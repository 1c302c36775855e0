"""The PostgreSQL schema of the cluster's shared state, as versioned migrations.

Only ``pixstor-azure db init`` runs them (``migrate``), as a role that may create tables; the
plugins never run DDL: they read ``schema_version`` when they connect and fall back to the
node's own SQLite when it is missing or older than ``VERSION``. A migration only adds (tables,
columns with defaults, indexes), so that nodes still on the previous release keep working
against a database a newer one upgraded; ``db init`` records each one it applies.

Everything lives in the schema ``pixstor_azure`` (``SCHEMA``): one ``GRANT`` on it and its
tables gives the nodes' role what it needs (``grants``). Times are seconds since the epoch
(``double precision``) on the nodes' clocks, which NTP keeps in step: a node whose clock is
off never brings two request starts closer than their spacing, it only leaves a slot unused.
"""

import re
from typing import List, Sequence, Tuple

SCHEMA = "pixstor_azure"
# The schema version this release reads and writes; nodes fall back below it.
VERSION = 3
# A number of our own for pg_advisory_xact_lock: two `db init` at once run one after the other.
MIGRATION_LOCK = 0x70784163

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# (version, what it brings, statements). Appended to, never edited once released.
MIGRATIONS = (
    (
        1,
        "answers and the setups they were asked with (as the SQLite answer cache)",
        (
            f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (
                version integer PRIMARY KEY,
                applied timestamptz NOT NULL DEFAULT now(),
                about text NOT NULL
            )""",
            # The same columns as the SQLite cache's: `db import` copies rows as they are.
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.answers (
                content bytea NOT NULL,
                setup bytea NOT NULL,
                body bytea NOT NULL,
                sent_width integer NOT NULL,
                sent_height integer NOT NULL,
                display_width integer NOT NULL,
                display_height integer NOT NULL,
                asked double precision NOT NULL,
                model text,
                bytes_sent integer NOT NULL,
                PRIMARY KEY (content, setup)
            )""",
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.setups (
                setup bytea PRIMARY KEY,
                identity text NOT NULL
            )""",
        ),
    ),
    (
        2,
        "claims of answers being asked, the rate budget, holds, nodes",
        (
            # One row per answer being asked: `backend` is the claimant's server process, so a
            # claim whose session is gone is taken over at once; `until` ends it in any case.
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.claims (
                content bytea NOT NULL,
                setup bytea NOT NULL,
                holder text NOT NULL,
                backend integer NOT NULL,
                until double precision NOT NULL,
                PRIMARY KEY (content, setup)
            )""",
            # One row per service and host: the next free request start of the whole cluster,
            # and the starts of this and the last minute (for `db status`).
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.rates (
                key text PRIMARY KEY,
                next double precision NOT NULL,
                rate double precision NOT NULL DEFAULT 0,
                minute bigint NOT NULL DEFAULT 0,
                this_minute integer NOT NULL DEFAULT 0,
                last_minute integer NOT NULL DEFAULT 0,
                paused_until double precision NOT NULL DEFAULT 0
            )""",
            # Faults that hold for every file: a refusal per backend, an outage per host.
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.holds (
                key text PRIMARY KEY,
                kind text NOT NULL,
                until double precision NOT NULL,
                pause double precision NOT NULL DEFAULT 0,
                since double precision NOT NULL,
                error text NOT NULL,
                probing boolean NOT NULL DEFAULT false,
                node text NOT NULL DEFAULT ''
            )""",
            # The nodes that used the database, and when last: how many share the rate.
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.nodes (
                name text PRIMARY KEY,
                seen double precision NOT NULL,
                version text NOT NULL DEFAULT ''
            )""",
        ),
    ),
    (
        3,
        "the answered frames of frame sequences, with their signatures",
        (
            # As the SQLite cache's frames table: `sequence` is a digest of folder and pattern.
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.frames (
                sequence bytea NOT NULL,
                setup bytea NOT NULL,
                frame bigint NOT NULL,
                digits text NOT NULL,
                name text NOT NULL,
                content bytea NOT NULL,
                signature bytea NOT NULL,
                PRIMARY KEY (sequence, setup, frame)
            )""",
        ),
    ),
)

# What the nodes' role may do on each table: no DDL, no TRUNCATE.
TABLE_GRANTS = (
    ("schema_version", "SELECT"),
    ("answers", "SELECT, INSERT, UPDATE"),
    ("setups", "SELECT, INSERT"),
    ("claims", "SELECT, INSERT, UPDATE, DELETE"),
    ("rates", "SELECT, INSERT, UPDATE"),
    ("holds", "SELECT, INSERT, UPDATE, DELETE"),
    ("nodes", "SELECT, INSERT, UPDATE"),
    ("frames", "SELECT, INSERT, UPDATE"),
)


def pending(current: int, target: int = VERSION) -> List[Tuple[int, str, Sequence[str]]]:
    """The migrations that take a schema at version ``current`` to ``target``, in order."""
    return [m for m in MIGRATIONS if current < m[0] <= target]


def grants(role: str) -> List[str]:
    """The statements that give the nodes' role ``role`` what the plugins need, and no more.

    ``role`` must be a plain name (``quote_role``)."""
    role = quote_role(role)
    statements = [f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}"]
    statements += [f"GRANT {rights} ON {SCHEMA}.{t} TO {role}" for t, rights in TABLE_GRANTS]
    return statements


def quote_role(role: str) -> str:
    """``role`` as an SQL identifier; ValueError unless it is letters, digits and ``_``."""
    if not _PLAIN_NAME.fullmatch(role or ""):
        raise ValueError(f"{role!r} is not a plain role name (letters, digits and _)")
    return f'"{role}"'
