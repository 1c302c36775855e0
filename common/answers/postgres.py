"""The cluster's shared state in PostgreSQL (``PIXSTOR_AZURE_DATABASE``): one engine for all nodes.

When the setting names a database, every node keeps its answers, claims, rate slots and holds
there (``engine.Engine``, tables in ``pgschema.py``), so that a picture answered on one node is
reused on every other, two processes that meet the same picture at once pay once, the tier's
rate is shared by all nodes, and a wrong key found on one node holds on all.

Each process keeps one connection (``Databases``, in the runtime), used by one thread at a
time. It is opened in psycopg2's asynchronous mode so that every wait, the connection's and
each statement's, is bounded here by a deadline: ``PIXSTOR_AZURE_DATABASE_TIMEOUT``, and never
more than what is left of the file's time budget (the server's ``statement_timeout`` says the
same, so that it stops the work too).

Whatever goes wrong with the database (unreachable, slow, restarted, read-only, out of space,
the wrong password, the schema missing or older) costs no file: one log line, and the engine
falls back to the node's own (``local``: the SQLite answer cache and rate file, each rate
divided by the number of nodes), asks the database again at most once every ``RECHECK``
seconds, and says so when it is back. A connection lost under a statement (a restart) is
opened again at once, once, before falling back.

The password (in the URL, else libpq's pgpass file) is never logged or shown: the URL is
shown without it, and any message of the driver is cleaned of it.
"""

import logging
import os
import select
import socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, TypeVar
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit

from .. import __version__
from ..ground import budget, clock, runtime
from ..ground.errors import Problem
from ..ground.setting_registry import DATABASE, DATABASE_NODES, DATABASE_TIMEOUT
from ..ground.settings import Settings
from . import pgschema
from .answer import Answer
from .cache import (
    UNREADABLE,
    answer_of,
    keepable,
    pack,
    reference_of,
    reference_row,
    sequence_key,
    setup,
)
from .engine import Engine, Hold, Reference

log = logging.getLogger(__name__)

T = TypeVar("T")

S = pgschema.SCHEMA
RECHECK = 60.0  # seconds between two tries of a database found unusable
HEARTBEAT = 60.0  # seconds between two notes that this node uses the database
NODES_WINDOW = 3600.0  # a node seen within this many seconds shares the rate
MIN_SLICE = 0.02  # less than this left of a file's budget is not worth a statement
STALE = 3600.0  # a rate slot further ahead than this is left from a clock set back: start over
EXTRA = "postgres"  # setup.cfg's extra that brings the driver
DRIVER = "psycopg2-binary"
APPLICATION = "pixstor-azure"

# SQLSTATE classes and codes, for the log line's words.
_LOGIN = ("28P01", "28000")
_NO_DATABASE = "3D000"
_NO_SCHEMA = ("3F000", "42P01")
_READ_ONLY = ("25006",)
_NO_RIGHTS = "42501"
_FULL = ("53100", "53000")
_SHUTDOWN = ("57P01", "57P02", "57P03")

# The problems of PIXSTOR_AZURE_DATABASE.
NOT_A_POSTGRES_URL = Problem(
    "must be a PostgreSQL URL such as postgresql://pixstor@db.example.com/pixstor"
    "?sslmode=verify-full; the value set is not one ({length} characters, not shown)"
)
NOT_READ_BY_LIBPQ = Problem("is not a URL libpq reads: {said}")
NO_DRIVER = Problem(
    "is set, and needs the PostgreSQL driver, which is not installed: pip install "
    "'pixstor-azure[{extra}]' (or {driver}) into the Python the plugins run on"
)


# ------------------------------------------------------------------ the setting


class Target(NamedTuple):
    """A database as set: ``dsn`` as given (it may hold the password: never shown), ``shown``
    without a password, and the ``password`` given in it ("" when libpq's pgpass file gives
    it), to clean it out of any message."""

    dsn: str
    shown: str
    password: str


def target(settings: Settings) -> Optional[Target]:
    """The database ``PIXSTOR_AZURE_DATABASE`` names, checked; None when it is not set.

    Raises SettingsError (naming the setting, never its value) when it is not a PostgreSQL URL
    or the driver is not installed (naming the extra that brings it)."""
    value = settings.get(DATABASE)
    if not value:
        return None
    return parse(value)


def parse(value: str) -> Target:
    """A PostgreSQL URL, ``postgresql://USER@HOST:PORT/DATABASE?sslmode=verify-full``."""
    name = DATABASE.name
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres"):
        raise NOT_A_POSTGRES_URL.error(name, length=len(value))
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = unquote(password) or dict(query).get("password", "")
    shown_query = urlencode([(k, v) for k, v in query if k != "password"])
    shown = f"{parts.scheme}://{user + '@' if user else ''}{hosts}{parts.path}"
    if shown_query:
        shown += "?" + shown_query
    found = Target(value, shown, password)
    driver = _driver()
    try:
        driver.extensions.parse_dsn(value)
    except driver.ProgrammingError as exc:
        # libpq quotes the part it could not read, which may be the password.
        raise NOT_READ_BY_LIBPQ.error(name, said=clean(str(exc), found)) from None
    return found


def _driver() -> Any:
    """psycopg2, imported on first use: only the nodes that use a database need it."""
    try:
        import psycopg2
        import psycopg2.extensions
    except ImportError:
        raise NO_DRIVER.error(DATABASE.name, extra=EXTRA, driver=DRIVER) from None
    return psycopg2


def clean(text: str, found: Target) -> str:
    """``text`` without the password, whether written as given or %-decoded."""
    given = found.password
    forms = {given, unquote(given), quote(given, safe=""), quote_plus(given)}
    for secret in sorted(forms, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "****")
    return text.strip().splitlines()[0] if text.strip() else text


# ------------------------------------------------------------------ one connection


class Late(Exception):
    """The database did not answer before the deadline."""


class Connection:
    """One psycopg2 connection in asynchronous mode: each wait ends at a deadline
    (``time.monotonic()`` seconds), after which the connection is closed (``Late``)."""

    def __init__(self, found: Target, timeout: float, deadline: float, **extra: Any) -> None:
        driver = _driver()
        self.driver = driver
        options = {
            "application_name": APPLICATION,
            # libpq's own bound on each address it tries (it takes whole seconds, 2 at least).
            "connect_timeout": max(2, int(timeout + 0.999)),
            "options": _options(timeout),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        if driver.extensions.libpq_version() >= 120000:
            # A server gone from the network is noticed when what was sent is not acknowledged.
            options["tcp_user_timeout"] = int(max(timeout, 1.0) * 1000)
        options.update(extra)
        self.statement_ms = _millis(timeout)
        self._poller = select.poll()
        self.conn = driver.connect(driver.extensions.make_dsn(found.dsn, **options), async_=True)
        try:
            self._wait(deadline)
        except BaseException:
            self.close()
            raise

    def run(self, sql: str, params: Any = None, deadline: float = 0.0) -> List[tuple]:
        """Rows of ``sql`` (the last statement's, when it holds several)."""
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, params)
            self._wait(deadline)
            return cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()

    def bounded(self, seconds: float) -> str:
        """A ``SET statement_timeout`` to put before the next statement when its bound differs
        from the session's ("" when it does not)."""
        millis = _millis(seconds)
        if millis == self.statement_ms:
            return ""
        self.statement_ms = millis
        return f"SET statement_timeout = {millis}; "

    def _wait(self, deadline: float) -> None:
        extensions = self.driver.extensions
        while True:
            state = self.conn.poll()
            if state == extensions.POLL_OK:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise Late()
            # libpq's socket changes while it connects (one per address tried): asked anew.
            self._poller.register(
                self.conn.fileno(),
                select.POLLOUT if state == extensions.POLL_WRITE else select.POLLIN,
            )
            self._poller.poll(max(1, int(left * 1000)))

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.close()


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _options(timeout: float) -> str:
    millis = _millis(timeout)
    # A statement, a lock wait and a transaction left open are bounded on the server too.
    return (
        f"-c statement_timeout={millis} -c lock_timeout={millis} "
        f"-c idle_in_transaction_session_timeout={max(millis * 5, 10000)}"
    )


# ------------------------------------------------------------------ the engine


class Unusable(Exception):
    """The database cannot be used now; ``why`` in words for the log."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _Skip(Exception):
    """Not worth the database for this one call (no time left, another thread is slow)."""


_ANSWER = "body, sent_width, sent_height, display_width, display_height, asked, model, bytes_sent"
_HOLD = "key, kind, until, pause, since, error, probing, node"


class PostgresEngine(Engine):
    """The shared state of every node in one database, and the node's own (``local``) while
    it cannot be used. ``nodes``: the setting the fallback divides each rate by (the nodes seen
    using the database in the last hour, when more)."""

    name = "postgresql"

    def __init__(self, found: Target, local: Engine, timeout: float, nodes: int = 1) -> None:
        self.target = found
        self.local = local
        self.timeout = timeout
        self.nodes = max(1, nodes)
        self.node = socket.gethostname()
        # One engine per process and database: its threads share its claims (fetch has them
        # wait for each other); another engine is another claimant.
        self.holder = f"{self.node}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._connection = None  # type: Optional[Connection]
        self._seen = 1  # nodes that used the database within NODES_WINDOW, as last counted
        self._heartbeat = -HEARTBEAT  # clock.now() of the last note; due at once
        self._down_until = 0.0  # clock.now() before which the database is not tried
        self._down_since = None  # type: Optional[float]
        self._why = ""

    def describe(self) -> str:
        state = f" (not in use now: {self._why})" if self._down_since is not None else ""
        fallback = self.local.describe()
        return f"PostgreSQL {self.target.shown}{state}; while it cannot be used: {fallback}"

    @property
    def share(self) -> int:
        """What each rate is divided by while the node is on its own."""
        return max(self.nodes, self._seen)

    # ---------------------------------------------------------------- answers

    def get(self, content: str, identity: dict) -> Optional[Answer]:
        key = setup(identity)[0]

        def work(link: Connection, deadline: float, prefix: str) -> List[tuple]:
            return link.run(
                prefix + f"SELECT {_ANSWER} FROM {S}.answers WHERE content = %s AND setup = %s",
                (bytes.fromhex(content), key),
                deadline,
            )

        try:
            rows = self._run(work)
        except (Unusable, _Skip):
            return self.local.get(content, identity)
        if not rows:
            return None
        try:
            return answer_of(rows[0])
        except UNREADABLE as exc:
            log.debug(
                "database %s: an unreadable answer is asked again (%s)", self.target.shown, exc
            )
            return None

    def put(self, content: str, identity: dict, answer: Answer) -> bool:
        if not keepable(answer):
            self.release(content, identity)
            return False
        key, described = setup(identity)
        params = {
            "content": bytes.fromhex(content),
            "setup": key,
            "identity": described,
            "body": pack(answer.body),
            "sw": int(answer.sent[0]),
            "sh": int(answer.sent[1]),
            "dw": int(answer.display[0]),
            "dh": int(answer.display[1]),
            "asked": float(answer.asked),
            "model": answer.model,
            "bytes": int(answer.bytes_sent),
            "holder": self.holder,
        }

        def work(link: Connection, deadline: float, prefix: str) -> None:
            # One message: the statements are one transaction.
            link.run(
                prefix
                + f"INSERT INTO {S}.setups (setup, identity) VALUES (%(setup)s, %(identity)s) "
                "ON CONFLICT DO NOTHING; "
                f"INSERT INTO {S}.answers AS a VALUES (%(content)s, %(setup)s, %(body)s, %(sw)s, "
                "%(sh)s, %(dw)s, %(dh)s, %(asked)s, %(model)s, %(bytes)s) "
                "ON CONFLICT (content, setup) DO UPDATE SET body = EXCLUDED.body, "
                "sent_width = EXCLUDED.sent_width, sent_height = EXCLUDED.sent_height, "
                "display_width = EXCLUDED.display_width, "
                "display_height = EXCLUDED.display_height, asked = EXCLUDED.asked, "
                "model = EXCLUDED.model, bytes_sent = EXCLUDED.bytes_sent; "
                f"DELETE FROM {S}.claims WHERE content = %(content)s AND setup = %(setup)s "
                "AND holder = %(holder)s",
                params,
                deadline,
            )

        try:
            self._run(work)
        except (Unusable, _Skip):
            return self.local.put(content, identity, answer)
        return True

    # ---------------------------------------------------------------- frames

    def references(self, sequence: str, identity: dict, low: int, high: int) -> List[Reference]:
        params = (sequence_key(sequence), setup(identity)[0], low, high)

        def work(link: Connection, deadline: float, prefix: str) -> List[tuple]:
            return link.run(
                prefix + f"SELECT frame, digits, name, content, signature FROM {S}.frames "
                "WHERE sequence = %s AND setup = %s AND frame BETWEEN %s AND %s",
                params,
                deadline,
            )

        try:
            rows = self._run(work)
        except (Unusable, _Skip):
            return self.local.references(sequence, identity, low, high)
        return [reference_of(row) for row in rows]

    def refer(self, sequence: str, identity: dict, reference: Reference) -> None:
        params = reference_row(sequence, identity, reference)

        def work(link: Connection, deadline: float, prefix: str) -> None:
            link.run(
                prefix + f"INSERT INTO {S}.frames VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (sequence, setup, frame) DO UPDATE SET digits = EXCLUDED.digits, "
                "name = EXCLUDED.name, content = EXCLUDED.content, "
                "signature = EXCLUDED.signature",
                params,
                deadline,
            )

        try:
            self._run(work)
        except (Unusable, _Skip):
            self.local.refer(sequence, identity, reference)

    # ---------------------------------------------------------------- claims

    def claim(self, content: str, identity: dict, lease: float) -> bool:
        params: Dict[str, Any] = {
            "content": bytes.fromhex(content),
            "setup": setup(identity)[0],
            "holder": self.holder,
        }

        def work(link: Connection, deadline: float, prefix: str) -> List[tuple]:
            now = clock.wall()
            params.update(now=now, until=now + lease)
            # Taken when free, run out, ours, or its holder's session is gone (a process that
            # died: its server process ends with its connection).
            return link.run(
                prefix + f"INSERT INTO {S}.claims AS c (content, setup, holder, backend, until) "
                "VALUES (%(content)s, %(setup)s, %(holder)s, pg_backend_pid(), %(until)s) "
                "ON CONFLICT (content, setup) DO UPDATE SET holder = EXCLUDED.holder, "
                "backend = EXCLUDED.backend, until = EXCLUDED.until "
                "WHERE c.until < %(now)s OR c.holder = EXCLUDED.holder OR NOT EXISTS "
                "(SELECT 1 FROM pg_stat_activity s WHERE s.pid = c.backend) RETURNING 1",
                params,
                deadline,
            )

        try:
            return bool(self._run(work))
        except (Unusable, _Skip):
            return self.local.claim(content, identity, lease)

    def release(self, content: str, identity: dict) -> None:
        params = (bytes.fromhex(content), setup(identity)[0], self.holder)

        def work(link: Connection, deadline: float, prefix: str) -> None:
            link.run(
                prefix
                + f"DELETE FROM {S}.claims WHERE content = %s AND setup = %s AND holder = %s",
                params,
                deadline,
            )

        try:
            self._run(work)
        except (Unusable, _Skip):
            self.local.release(content, identity)

    # ---------------------------------------------------------------- rate slots

    def reserve(self, key: str, gap: float, now: float, within: Optional[float]) -> Optional[float]:
        def work(link: Connection, deadline: float, prefix: str) -> Optional[float]:
            params = {
                "key": key,
                "gap": gap,
                "now": now,
                "stale": STALE + gap,
                "within": 1e12 if within is None else within,
                "minute": int(now // 60),
            }
            start = _reserve(link, prefix, params, deadline)
            return None if start is None else max(now, start)

        try:
            return self._run(work)
        except (Unusable, _Skip):
            return self.local.reserve(key, gap * self.share, now, within)

    def pause(self, key: str, until: float) -> None:
        def work(link: Connection, deadline: float, prefix: str) -> None:
            link.run(
                prefix + f"INSERT INTO {S}.rates AS r (key, next, paused_until) VALUES "
                "(%(key)s, %(until)s, %(until)s) ON CONFLICT (key) DO UPDATE SET "
                "next = GREATEST(r.next, EXCLUDED.next), "
                "paused_until = GREATEST(r.paused_until, EXCLUDED.paused_until)",
                {"key": key, "until": until},
                deadline,
            )

        try:
            self._run(work)
        except (Unusable, _Skip):
            self.local.pause(key, until)

    # ---------------------------------------------------------------- holds

    def holds(self, keys: Sequence[str]) -> Dict[str, Hold]:
        def work(link: Connection, deadline: float, prefix: str) -> List[tuple]:
            return link.run(
                prefix + f"SELECT {_HOLD} FROM {S}.holds WHERE key = ANY(%s)",
                (list(keys),),
                deadline,
            )

        try:
            rows = self._run(work)
        except (Unusable, _Skip):
            return self.local.holds(keys)
        return {row[0]: Hold(*row[1:]) for row in rows}

    def hold(self, key: str, hold: Hold) -> None:
        params = {
            "key": key,
            "kind": hold.kind,
            "until": hold.until,
            "pause": hold.pause,
            "since": hold.since,
            "error": hold.error,
            "probing": hold.probing,
            "node": hold.node or self.node,
        }

        def work(link: Connection, deadline: float, prefix: str) -> None:
            link.run(
                prefix + f"INSERT INTO {S}.holds ({_HOLD}) VALUES (%(key)s, %(kind)s, "
                "%(until)s, %(pause)s, %(since)s, %(error)s, %(probing)s, %(node)s) "
                "ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, until = EXCLUDED.until, "
                "pause = EXCLUDED.pause, since = EXCLUDED.since, error = EXCLUDED.error, "
                "probing = EXCLUDED.probing, node = EXCLUDED.node",
                params,
                deadline,
            )

        try:
            self._run(work)
        except (Unusable, _Skip):
            self.local.hold(key, hold)

    def probe(self, key: str, now: float, until: float) -> bool:
        def work(link: Connection, deadline: float, prefix: str) -> List[tuple]:
            return link.run(
                prefix + f"UPDATE {S}.holds SET until = %(until)s, probing = true "
                "WHERE key = %(key)s AND until <= %(now)s RETURNING 1",
                {"key": key, "now": now, "until": until},
                deadline,
            )

        try:
            return bool(self._run(work))
        except (Unusable, _Skip):
            return self.local.probe(key, now, until)

    def lift(self, keys: Sequence[str]) -> Dict[str, Hold]:
        def work(link: Connection, deadline: float, prefix: str) -> List[tuple]:
            return link.run(
                prefix + f"DELETE FROM {S}.holds WHERE key = ANY(%s) RETURNING {_HOLD}",
                (list(keys),),
                deadline,
            )

        try:
            rows = self._run(work)
        except (Unusable, _Skip):
            return self.local.lift(keys)
        return {row[0]: Hold(*row[1:]) for row in rows}

    # ---------------------------------------------------------------- the connection

    def close(self) -> None:
        with self._lock:
            self._drop()
        self.local.close()

    def usable(self) -> bool:
        """Whether the database is in use now (tried now if its time has come)."""

        def work(link: Connection, deadline: float, prefix: str) -> None:
            if prefix:
                link.run(prefix + "SELECT 1", None, deadline)

        try:
            self._run(work)
        except (Unusable, _Skip):
            return False
        return True

    def _run(self, work: Callable[[Connection, float, str], T]) -> T:
        """``work(connection, deadline, prefix)`` on this process's connection, made when
        missing; ``prefix`` goes before its first statement. Raises Unusable after saying
        once why the database cannot be used, _Skip when this call is not worth it."""
        if clock.now() < self._down_until:
            raise _Skip()
        left = budget.remaining()
        seconds = self.timeout if left is None else min(self.timeout, left - MIN_SLICE)
        if seconds <= 0:
            raise _Skip()
        capped = seconds < self.timeout  # by the file's budget: running out is not the database's
        deadline = time.monotonic() + seconds
        if not self._lock.acquire(timeout=seconds):
            raise _Skip()  # another thread waits on the database: this file does not
        try:
            if clock.now() < self._down_until:  # found unusable while this thread waited
                raise _Skip()
            return self._attempt(work, deadline, seconds, capped)
        finally:
            self._lock.release()

    def _attempt(self, work: Callable, deadline: float, seconds: float, capped: bool) -> Any:
        driver = _driver()
        for attempt in (1, 2):
            link = self._connection
            fresh = link is None
            try:
                if link is None:
                    link = self._connect(deadline)
                self._note(link, deadline)
                result = work(link, deadline, link.bounded(seconds))
            except Late:
                self._drop()
                if capped:
                    raise _Skip() from None
                raise self._down(f"it did not answer within {seconds:g} s") from None
            except (driver.OperationalError, driver.InterfaceError) as exc:
                self._drop()
                # A connection that broke under a statement (a restart): one new one at once.
                if not fresh and attempt == 1 and not _said(exc, _READ_ONLY + _FULL):
                    continue
                raise self._down(self._words(exc)) from None
            except driver.Error as exc:
                self._drop()
                raise self._down(self._words(exc)) from None
            except Unusable as exc:
                self._drop()
                raise self._down(exc.why) from None
            self._up()
            return result
        raise AssertionError("unreachable")  # the second attempt returns or raises

    def _connect(self, deadline: float) -> Connection:
        """A new connection, its schema checked and this node noted."""
        link = Connection(self.target, self.timeout, deadline)
        self._connection = link
        rows = link.run(f"SELECT max(version) FROM {S}.schema_version", None, deadline)
        version = rows[0][0]
        if version is None or version < pgschema.VERSION:
            raise Unusable(
                f"its pixstor-azure tables are at version {version or 0}, this release needs "
                f"{pgschema.VERSION}: run `pixstor-azure db init` as the tables' owner"
            )
        self._heartbeat = -HEARTBEAT  # noted at once
        return link

    def _note(self, link: Connection, deadline: float) -> None:
        """Say that this node uses the database, and count the nodes that do."""
        if clock.now() - self._heartbeat < HEARTBEAT:
            return
        now = clock.wall()
        rows = link.run(
            f"INSERT INTO {S}.nodes AS n (name, seen, version) VALUES (%(node)s, %(now)s, "
            "%(version)s) ON CONFLICT (name) DO UPDATE SET seen = GREATEST(n.seen, "
            "EXCLUDED.seen), version = EXCLUDED.version; "
            f"SELECT count(*) FROM {S}.nodes WHERE seen > %(since)s",
            {"node": self.node, "now": now, "version": __version__, "since": now - NODES_WINDOW},
            deadline,
        )
        self._seen = max(1, int(rows[0][0]))
        self._heartbeat = clock.now()

    def _drop(self) -> None:
        link, self._connection = self._connection, None
        if link is not None:
            link.close()

    def _down(self, why: str) -> Unusable:
        """Fall back until the next check; one line when the database stops being used."""
        self._down_until = clock.now() + RECHECK
        if self._down_since is None or why != self._why:
            first = self._down_since is None
            self._down_since = clock.now() if first else self._down_since
            log.warning(
                "database %s cannot be used (%s): %s the node's own answer cache and rate "
                "file meanwhile, each rate divided by %d nodes; tried again each minute",
                self.target.shown,
                why,
                "files go on with" if first else "files still go on with",
                self.share,
            )
        self._why = why
        return Unusable(why)

    def _up(self) -> None:
        if self._down_since is None:
            return
        log.warning(
            "database %s is used again after %.0f s: answers, claims and rates are shared "
            "by every node again",
            self.target.shown,
            clock.now() - self._down_since,
        )
        self._down_since, self._why = None, ""

    def _words(self, exc: BaseException) -> str:
        """Why, in the words an administrator looks for; never the password."""
        code = getattr(exc, "pgcode", None) or ""
        said = clean(str(exc), self.target) or type(exc).__name__
        if code in _LOGIN or "password authentication failed" in said:
            return (
                f"it refused the login: {said}; check the password (the URL's or the pgpass "
                "file's) and the server's pg_hba.conf"
            )
        if code == _NO_DATABASE:
            return f"{said}: create it, then run `pixstor-azure db init`"
        if code in _NO_SCHEMA:
            return (
                f"it has no pixstor-azure tables ({said}): run `pixstor-azure db init` as the "
                "tables' owner"
            )
        if code in _READ_ONLY:
            return f"it is read-only ({said}): a standby, or default_transaction_read_only"
        if code == _NO_RIGHTS:
            return f"the role lacks a grant ({said}): see `pixstor-azure db init --grant`"
        if code in _FULL:
            return f"it is out of space ({said})"
        if code in _SHUTDOWN:
            return f"it is shutting down or starting ({said})"
        return said


def _said(exc: BaseException, codes: Sequence[str]) -> bool:
    return (getattr(exc, "pgcode", None) or "") in codes


def _reserve(link: Connection, prefix: str, params: dict, deadline: float) -> Optional[float]:
    """Take the next free start of ``params["key"]`` (server time), or None when it is further
    than ``within``; the row is made on first use."""
    start = "GREATEST(CASE WHEN r.next > %(now)s + %(stale)s THEN %(now)s ELSE r.next END, %(now)s)"
    update = (
        f"UPDATE {S}.rates AS r SET next = {start} + %(gap)s, rate = 1.0 / %(gap)s, "
        "this_minute = CASE WHEN r.minute = %(minute)s THEN r.this_minute + 1 ELSE 1 END, "
        "last_minute = CASE WHEN r.minute = %(minute)s THEN r.last_minute "
        "WHEN r.minute = %(minute)s - 1 THEN r.this_minute ELSE 0 END, "
        "minute = %(minute)s "
        f"WHERE r.key = %(key)s AND {start} - %(now)s <= %(within)s RETURNING r.next - %(gap)s"
    )
    for _ in range(2):
        rows = link.run(prefix + update, params, deadline)
        prefix = ""
        if rows:
            return float(rows[0][0])
        made = link.run(
            f"INSERT INTO {S}.rates (key, next, rate, minute, this_minute) VALUES (%(key)s, "
            "%(now)s + %(gap)s, 1.0 / %(gap)s, %(minute)s, 1) ON CONFLICT (key) DO NOTHING "
            "RETURNING next - %(gap)s",
            params,
            deadline,
        )
        if made:
            return float(made[0][0])
        if params["within"] < 1e12:  # the row is there: its next start is too far
            return None
    return None


# ------------------------------------------------------------------ this process's engines


class Databases:
    """This process's PostgreSQL engines, by URL: one connection each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: Dict[Tuple[str, float, int], PostgresEngine] = {}

    def get(self, found: Target, local: Engine, timeout: float, nodes: int) -> PostgresEngine:
        key = (found.dsn, timeout, nodes)
        with self.lock:
            made = self.open.get(key)
            if made is None or made.local is not local:
                made = self.open[key] = PostgresEngine(found, local, timeout, nodes)
            return made

    def close(self) -> None:
        with self.lock:
            engines, self.open = list(self.open.values()), {}
        for made in engines:
            made.close()


def engine(settings: Settings, local: Engine) -> Optional[PostgresEngine]:
    """The engine of the database the settings name, falling back to ``local``; None when
    ``PIXSTOR_AZURE_DATABASE`` is not set."""
    if not settings.get(DATABASE):
        return None
    found = settings.built(Target, lambda: target(settings))  # parsed once per settings
    timeout = settings.get(DATABASE_TIMEOUT)
    nodes = settings.get(DATABASE_NODES)
    return runtime.current().get(Databases).get(found, local, timeout, nodes)


def rows_of(link: Connection, sql: str, params: Any = None, seconds: float = 30.0) -> List[tuple]:
    """The rows of ``sql`` within ``seconds``: for the tool's `db` commands."""
    return link.run(sql, params, time.monotonic() + seconds)


def connect(found: Target, seconds: float = 10.0, statement_timeout: float = 0.0) -> Connection:
    """A connection for the tool's `db` commands: ``statement_timeout`` 0 is no bound."""
    return Connection(found, statement_timeout or 3600.0, time.monotonic() + seconds)
