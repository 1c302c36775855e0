"""Faults that hold for every file, between a backend and its service.

``ask(backend, path)`` is how a backend (a ``Service``, ``services/base.py``) is asked on a
cache miss. Two kinds of fault are worth
more than a log line per file, because PixStor sends every new file and each would fail alike:

- a refusal (``Refused``: a wrong key, an endpoint of another kind of resource, an unknown
  project or unpublished iteration, an unsupported language, a host name that does not
  resolve). The runner logs it once; following files fail at once without asking, and the
  service is asked again at most once every ``RECHECK`` seconds, so a corrected setting or a
  restored service is picked up without a restart. Keyed on the backend's identity: another
  plugin, project or endpoint is not held back by it.
- an outage: ``OUTAGE_AFTER`` files in a row that found the service unreachable, timing out or
  answering 5xx. Calls then pause for ``FIRST_PAUSE`` seconds, doubling up to ``LONGEST_PAUSE``
  while it lasts; files meanwhile fail at once. One line when a pause opens, one when the
  service answers again. Keyed on the service and its host: every plugin calling that host
  shares it.

After a hold's time is up, one file is let through to ask; the others keep failing at once
until it is answered. Any answer of the service lifts a hold: a refusal of this one picture, and
an error found in a 200's body too (``ServiceError.answered``).

The holds live in the engine (``engine.Hold``): every process of the node shares them through
its rate file, and every node through the database when there is one, so that a wrong key found
on one node holds on all, and one file of all of them is let through to ask. ``Faults`` keeps
this process's copy, brought up to date before each asking.
"""

import json
import logging
import socket
import threading
from typing import Any, Dict, Optional, Tuple

from ..ground import clock, runtime
from ..ground.errors import Held, NoAnswer, Refused, ServiceError, Unavailable, Unresolved
from ..ground.logonce import forget, log_once
from ..ground.outcomes import Outcome
from . import engines
from .answer import Answer, identity_key
from .engine import OUTAGE, REFUSED, Engine, Hold

log = logging.getLogger(__name__)

RECHECK = 60.0  # seconds between two askings of a service that refuses every file
OUTAGE_AFTER = 3  # files in a row failing on transport errors, timeouts or 5xx
FIRST_PAUSE = 30.0
LONGEST_PAUSE = 600.0


# What is said of a fault that holds for every file (``ground/outcomes.py``: rows raised or
# logged, matching nothing).
PAUSED = Outcome(
    Held,
    "{name} was not asked: calls pause for {seconds:.0f} s more after files in a row failed "
    "(last: {last})",
)
UNRESOLVED = Outcome(
    Refused,
    "{where} {host}, a host name that does not resolve ({why}): check {setting} and the node's DNS",
)
NAMES_PART = Outcome(None, "{setting} names")
SET_TO_CALL_PART = Outcome(None, "{name} is set to call")
HELD_SINCE = Outcome(ServiceError, "held back since a fault ({kind})")
OUTAGE_OPENED = Outcome(
    None,
    "{name} at {host} failed for {failures} files in a row (last: {last}): calls pause for "
    "{seconds:.0f} s, and files end FATAL meanwhile without asking (re-ingest them once it "
    "answers)",
)
OUTAGE_ELSEWHERE = Outcome(
    None,
    "{name} at {host}: calls pause, after files in a row failed on {node}: files end FATAL "
    "meanwhile without asking (re-ingest them once it answers)",
)
ANSWERS_AGAIN = Outcome(
    None, "{name} answers again after refusing every file for {seconds:.0f} s ({last})"
)
RESUMED = Outcome(
    None, "{name} at {host} answers again after an outage of {seconds:.0f} s: calls resume"
)


class _Hold:
    """A service held back: ``until`` when it is asked again, why, and since when."""

    def __init__(
        self, error: ServiceError, until: float, pause: float = 0.0, since: Optional[float] = None
    ) -> None:
        self.error = error
        self.until = until
        self.pause = pause
        self.since = clock.now() if since is None else since
        self.probing = False  # a file was let through to ask after the hold's time was up


class Faults:
    """This process's holds: refusals per backend identity, outages per service and host."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refused: Dict[str, _Hold] = {}
        self.outages: Dict[Tuple[str, str], _Hold] = {}
        self.failures: Dict[Tuple[str, str], int] = {}  # files in a row, per host

    def admit(self, refusal: str, outage: Tuple[str, str], store: Engine) -> None:
        """Raise when the backend is held back now; else return, and if a hold's time was up,
        hold the others (of every process sharing ``store``) back while this file asks."""
        self.sync(refusal, outage, store.holds([refusal, _outage_key(outage)]))
        now = clock.now()
        with self.lock:
            hold = self.refused.get(refusal)
            pause = self.outages.get(outage)
            if hold is not None and now < hold.until:
                raise _again(hold.error)  # the same words: the runner logged them once
            if pause is not None and now < pause.until:
                raise _paused(pause, now)
        # A hold's time is up: one file, of all processes, asks; the others go on failing.
        if hold is not None:
            if not store.probe(refusal, clock.wall(), clock.wall() + RECHECK):
                raise _again(hold.error)
            with self.lock:
                hold.until, hold.probing = now + RECHECK, True
        if pause is not None:
            if not store.probe(_outage_key(outage), clock.wall(), clock.wall() + pause.pause):
                raise _paused(pause, now)
            with self.lock:
                pause.until, pause.probing = now + pause.pause, True

    def sync(self, refusal: str, outage: Tuple[str, str], shared: Dict[str, Hold]) -> None:
        """Make this process's holds of the backend those ``shared`` holds: the engine's."""
        now, wall = clock.now(), clock.wall()
        with self.lock:
            kept = shared.get(refusal)
            held = self.refused.get(refusal)
            if kept is None and held is not None:
                self.refused.pop(refusal)
                forget(str(held.error))  # lifted by another process: a new refusal is news
            elif kept is not None:
                self.refused[refusal] = _local(kept, now, wall)
            kept = shared.get(_outage_key(outage))
            if kept is None:
                self.outages.pop(outage, None)
            else:
                if outage not in self.outages:
                    log_once(
                        log,
                        logging.WARNING,
                        OUTAGE_ELSEWHERE.say(
                            outage[0], host=outage[1], node=kept.node or "another node"
                        ),
                        key=f"outage {kept.since} {outage}",
                    )
                self.outages[outage] = _local(kept, now, wall)

    def answered(self, refusal: str, outage: Tuple[str, str], service: str, store: Engine) -> None:
        """The service answered (even if it refused this one image): lift any hold."""
        with self.lock:
            refused = self.refused.pop(refusal, None)
            pause = self.outages.pop(outage, None)
            self.failures.pop(outage, None)
        if refused is None and pause is None:
            return
        lifted = store.lift([refusal, _outage_key(outage)])  # by this process, or already
        if refusal not in lifted:
            refused = None  # another process lifted it, and said so
        if _outage_key(outage) not in lifted:
            pause = None
        if refused is not None:
            forget(str(refused.error))  # were it to refuse again, that is worth a line again
            seconds = clock.now() - refused.since
            log.warning(ANSWERS_AGAIN.say(service, seconds=seconds, last=refused.error))
        if pause is not None:
            seconds = clock.now() - pause.since
            log.warning(RESUMED.say(service, host=outage[1], seconds=seconds))

    def refuse(
        self, refusal: str, outage: Tuple[str, str], error: ServiceError, store: Engine
    ) -> None:
        with self.lock:
            held = self.refused.get(refusal)
            since = held.since if held is not None else None
            hold = self.refused[refusal] = _Hold(error, clock.now() + RECHECK, since=since)
            pause = self.outages.pop(outage, None)  # it answered: no outage
            self.failures.pop(outage, None)
        store.hold(refusal, _shared(REFUSED, hold))
        if pause is not None:
            store.lift([_outage_key(outage)])

    def unavailable(self, outage: Tuple[str, str], error: ServiceError, store: Engine) -> None:
        with self.lock:
            failures = self.failures.get(outage, 0) + 1
            self.failures[outage] = failures
            pause = self.outages.get(outage)
            if pause is not None and pause.probing:  # the file let through failed too
                length, since = min(pause.pause * 2, LONGEST_PAUSE), pause.since
            elif pause is None and failures >= OUTAGE_AFTER:
                length, since = FIRST_PAUSE, None
            else:  # not yet an outage, or a file already under way when the pause opened
                return
            hold = self.outages[outage] = _Hold(error, clock.now() + length, length, since)
        store.hold(_outage_key(outage), _shared(OUTAGE, hold))
        said = OUTAGE_OPENED.say(
            error.service, host=outage[1], failures=failures, last=error, seconds=length
        )
        log.error(said)


def ask(backend: Any, path: str) -> Answer:
    """``backend.ask(path)``, unless the service is held back for every file."""
    refusal, outage = _keys(backend)
    faults = runtime.current().get(Faults)
    store = engines.current()
    faults.admit(refusal, outage, store)
    try:
        answer = backend.ask(path)
    except Unresolved as exc:
        error = _unresolved(backend, exc)
        faults.refuse(refusal, outage, error, store)
        raise error from None
    except Refused as exc:
        faults.refuse(refusal, outage, exc, store)
        raise
    except Unavailable as exc:
        faults.unavailable(outage, exc, store)
        raise
    except ServiceError as exc:
        if exc.answered:
            faults.answered(refusal, outage, backend.name, store)
        elif (exc.http_status or 0) >= 500:  # a backend that words a 5xx its own way
            faults.unavailable(outage, exc, store)
        raise
    faults.answered(refusal, outage, backend.name, store)
    return answer


def _outage_key(outage: Tuple[str, str]) -> str:
    return identity_key({"outage": list(outage)})


def _paused(pause: "_Hold", now: float) -> ServiceError:
    seconds = pause.until - now
    return PAUSED.error(pause.error.service, seconds=seconds, last=pause.error)


# The errors a hold is kept with, by name: what another process reads back.
_KINDS = {kind.__name__: kind for kind in (ServiceError, Refused, Unavailable, NoAnswer)}


def _shared(kind: str, hold: "_Hold") -> Hold:
    """This process's hold as the engine keeps it (times on the wall clock)."""
    error = hold.error
    written = {
        "kind": type(error).__name__ if type(error).__name__ in _KINDS else "ServiceError",
        "service": error.service,
        "message": error.message,
        "http_status": error.http_status,
        "code": error.code,
        "detail": error.detail,
        "inner_code": error.inner_code,
        "said": error.said,
        "answered": error.answered,
    }
    offset = clock.wall() - clock.now()
    return Hold(
        kind,
        hold.until + offset,
        hold.pause,
        hold.since + offset,
        json.dumps(written),
        hold.probing,
        socket.gethostname(),
    )


def _local(kept: Hold, now: float, wall: float) -> "_Hold":
    """A hold the engine keeps as this process's (times on the monotonic clock)."""
    try:
        written = json.loads(kept.error)
        error = _KINDS.get(written.pop("kind"), ServiceError)(**written)
    except (ValueError, TypeError, KeyError, AttributeError):
        error = HELD_SINCE.error("the service", kind=kept.kind)
    hold = _Hold(error, kept.until - wall + now, kept.pause, kept.since - wall + now)
    hold.probing = kept.probing
    return hold


def _keys(backend: Any) -> Tuple[str, Tuple[str, str]]:
    """What a refusal holds back (everything that makes the backend what it is), and what an
    outage holds back (the service's host)."""
    identity = backend.identity()
    refusal = identity_key({"service": backend.name, "identity": identity})
    host = identity.get("host") if isinstance(identity, dict) else None
    return refusal, (backend.name, str(host or refusal))


def _again(error: ServiceError) -> ServiceError:
    """A new exception saying what ``error`` said (one instance is not raised in two threads),
    for a file that was not sent."""
    again = type(error)(
        error.service,
        error.message,
        error.http_status,
        error.code,
        error.detail,
        error.inner_code,
        error.said,
        answered=error.answered,
    )
    again.sent = False
    return again


def _unresolved(backend: Any, exc: Unresolved) -> ServiceError:
    setting: Optional[str] = backend.endpoint_setting
    where = NAMES_PART.say("", setting=setting) if setting else SET_TO_CALL_PART.say(backend.name)
    return UNRESOLVED.error(
        exc.service, where=where, host=exc.host, why=exc.reason, setting=setting or "the endpoint"
    )
