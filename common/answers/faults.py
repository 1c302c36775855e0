"""Faults that hold for every file, between a backend and its service.

``ask(backend, path)`` is how a backend is asked on a cache miss. Two kinds of fault are worth
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
until it is answered.
"""

import logging
import threading
from typing import Any, Optional, Tuple

from ..ground import clock, runtime
from ..ground.errors import Held, Refused, ServiceError, Unavailable, Unresolved
from ..ground.logonce import forget
from .answer import Answer, identity_key

log = logging.getLogger(__name__)

RECHECK = 60.0  # seconds between two askings of a service that refuses every file
OUTAGE_AFTER = 3  # files in a row failing on transport errors, timeouts or 5xx
FIRST_PAUSE = 30.0
LONGEST_PAUSE = 600.0


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
        self.refused = {}  # type: Dict[str, _Hold]
        self.outages = {}  # type: Dict[Tuple[str, str], _Hold]
        self.failures = {}  # type: Dict[Tuple[str, str], int]  # files in a row, per host

    def admit(self, refusal: str, outage: Tuple[str, str]) -> None:
        """Raise when the backend is held back now; else return, and if a hold's time was up,
        hold the others back while this file asks."""
        now = clock.now()
        with self.lock:
            hold = self.refused.get(refusal)
            if hold is not None:
                if now < hold.until:
                    raise _again(hold.error)  # the same words: the runner logged them once
                hold.until, hold.probing = now + RECHECK, True
            pause = self.outages.get(outage)
            if pause is not None:
                if now < pause.until:
                    raise Held(
                        pause.error.service,
                        f"{pause.error.service} was not asked: calls pause for "
                        f"{pause.until - now:.0f} s more after files in a row failed (last: "
                        f"{pause.error})",
                    )
                # One file asks; the others keep failing at once until it is answered.
                pause.until, pause.probing = now + pause.pause, True

    def answered(self, refusal: str, outage: Tuple[str, str], service: str) -> None:
        """The service answered (even if it refused this one image): lift any hold."""
        with self.lock:
            refused = self.refused.pop(refusal, None)
            pause = self.outages.pop(outage, None)
            self.failures.pop(outage, None)
        if refused is not None:
            forget(str(refused.error))  # were it to refuse again, that is worth a line again
            log.warning(
                "%s answers again after refusing every file for %.0f s (%s)",
                service,
                clock.now() - refused.since,
                refused.error,
            )
        if pause is not None:
            log.warning(
                "%s at %s answers again after an outage of %.0f s: calls resume",
                service,
                outage[1],
                clock.now() - pause.since,
            )

    def refuse(self, refusal: str, outage: Tuple[str, str], error: Refused) -> None:
        with self.lock:
            held = self.refused.get(refusal)
            since = held.since if held is not None else None
            self.refused[refusal] = _Hold(error, clock.now() + RECHECK, since=since)
            self.outages.pop(outage, None)  # it answered: no outage
            self.failures.pop(outage, None)

    def unavailable(self, outage: Tuple[str, str], error: ServiceError) -> None:
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
            self.outages[outage] = _Hold(error, clock.now() + length, length, since)
        log.error(
            "%s at %s failed for %d files in a row (last: %s): calls pause for %.0f s, and "
            "files end FATAL meanwhile without asking (re-ingest them once it answers)",
            error.service,
            outage[1],
            failures,
            error,
            length,
        )


def ask(backend: Any, path: str) -> Answer:
    """``backend.ask(path)``, unless the service is held back for every file."""
    refusal, outage = _keys(backend)
    faults = runtime.current().get(Faults)
    faults.admit(refusal, outage)
    try:
        answer = backend.ask(path)
    except Unresolved as exc:
        error = _unresolved(backend, exc)
        faults.refuse(refusal, outage, error)
        raise error from None
    except Refused as exc:
        faults.refuse(refusal, outage, exc)
        raise
    except Unavailable as exc:
        faults.unavailable(outage, exc)
        raise
    except ServiceError as exc:
        if (exc.http_status or 0) >= 500:  # a backend that words a 5xx its own way
            faults.unavailable(outage, exc)
        elif exc.http_status is not None:
            faults.answered(refusal, outage, backend.service)
        raise
    faults.answered(refusal, outage, backend.service)
    return answer


def _keys(backend: Any) -> Tuple[str, Tuple[str, str]]:
    """What a refusal holds back (everything that makes the backend what it is), and what an
    outage holds back (the service's host)."""
    identity = backend.identity()
    refusal = identity_key({"service": backend.service, "identity": identity})
    host = identity.get("host") if isinstance(identity, dict) else None
    return refusal, (backend.service, str(host or refusal))


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
    )
    again.sent = False
    return again


def _unresolved(backend: Any, exc: Unresolved) -> Refused:
    setting: Optional[str] = getattr(backend, "endpoint_setting", None)
    where = f"{setting} names" if setting else f"{backend.service} is set to call"
    return Refused(
        exc.service,
        f"{where} {exc.host}, a host name that does not resolve ({exc.reason}): check "
        f"{setting or 'the endpoint'} and the node's DNS",
    )
