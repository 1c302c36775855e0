"""The HTTP client every Azure call goes through.

One keep-alive ``requests`` session per process, with a connection for each thread at work
(``connections().fit(jobs)``); timeouts on every call, capped by what is left of the file's
time budget (``budget``); a ``Pacer`` that says when each request may start (the client-side
rate limit of ``answers/pacing.py``, handed in with the config); and bounded retries with
exponential backoff and jitter that honour the service's own word on when to come back.
Retries are written here rather than with urllib3's ``Retry`` because Azure puts the wait of a
429 in the *body* as often as in a header ("Please retry after 55 seconds", "Try again in 1
seconds.") where ``Retry`` cannot see it, and PixStor's shared environment may hold an old
urllib3.
"""

import abc
import collections
import email.utils
import json
import logging
import math
import random
import re
import socket
import threading
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3

from .. import __version__
from ..ground import budget, clock, runtime
from ..ground.errors import NoAnswer, NotAsked, Refused, ServiceError, Unavailable, Unresolved
from ..ground.outcomes import Outcome
from ..ground.setting_registry import (
    ATTEMPTS,
    BACKOFF,
    CONNECT_TIMEOUT,
    FILE_TIMEOUT,
    MAX_WAIT,
    READ_TIMEOUT,
)
from ..ground.settings import Settings
from . import watchdog

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"pixstor-azure/{__version__}"
POOL = 10  # connections kept per host, at least: requests' own default
CHUNK = 64 * 1024  # bytes of an answer read at a time
# Less than this left of a file's time budget is not worth a request.
MIN_SLICE = 0.05

# What the client says of an exchange, whichever service it is with (``ground/outcomes.py``:
# rows raised, matching nothing). ``_PART`` rows are words within another's.
ANSWERED = Outcome(ServiceError, "{name} answered {status}{codes}: {text}")
NOT_JSON = Outcome(ServiceError, "{name} answered {status} with a body that is not JSON")
NO_ANSWER_IN_TIME = Outcome(NoAnswer, "{name} did not answer in time")
TIMED_OUT = Outcome(NoAnswer, "{name} did not answer ({kind} timeout of {timeout:g} s)")
OVERSIZED = Outcome(
    ServiceError,
    "{name} sent an answer of more than {megabytes} MB, more than any of its answers should "
    "be (a proxy or gateway in the way?)",
)
TLS_FAILED = Outcome(Refused, "{name}: TLS verification failed ({why})")
UNREACHABLE = Outcome(Unavailable, "{name} could not be reached ({why})")
REQUEST_FAILED = Outcome(ServiceError, "{name}: request failed ({why})")
REDIRECTED = Outcome(
    Refused,
    "{name} answered {status}, a redirect{where}, which is not followed (the key and the "
    "picture go only to the endpoint set): set the endpoint to the address it redirects to, "
    "if that is the service",
)
NOT_ASKED = Outcome(NotAsked, "{name} was not asked{why}")
GIVEN_UP = Outcome(None, "{message}, {why}")
NO_SLOT_PART = Outcome(None, "no request slot of the client-side rate limit")
WAIT_TOO_LONG_PART = Outcome(
    None, "asked to wait {asked:g} s, longer than {setting} ({max_wait:g} s)"
)
ONE_ATTEMPT_PART = Outcome(None, "after 1 attempt")
ATTEMPTS_PART = Outcome(None, "after {count} attempts")
NO_TIME_PART = Outcome(None, "no time left")
NO_TIME_FOR_ANOTHER_PART = Outcome(None, "{attempts}: no time left for another")
OUT_OF_TIME_PART = Outcome(None, "{spent} in the file's time budget ({setting}, {seconds:g} s)")


class Pacer(abc.ABC):
    """When a request may start: the policy a rate limit implements (``answers/pacing.py``)."""

    @abc.abstractmethod
    def reserve(self, key: str, now: float, within: Optional[float]) -> Optional[float]:
        """The time a request for ``key`` may start (``now`` or later), taken for it; None,
        and nothing taken, when that is more than ``within`` seconds away (None: no bound)."""

    @abc.abstractmethod
    def pause(self, key: str, until: float) -> None:
        """No request for ``key`` starts before ``until`` (``clock.wall``): the service asked
        to wait, and every process that shares the rate waits too."""


class HttpConfig(NamedTuple):
    """How one service is called: an immutable policy, built once from the settings."""

    connect_timeout: float = CONNECT_TIMEOUT.default
    read_timeout: float = READ_TIMEOUT.default
    attempts: int = ATTEMPTS.default
    backoff: float = BACKOFF.default
    max_wait: float = MAX_WAIT.default
    pacer: Optional[Pacer] = None  # None: requests start as soon as they are made
    # The largest answer read: Azure's are kilobytes; a larger one is a proxy's or a fault's.
    max_answer_bytes: int = 8 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings, pacer: Optional[Pacer]) -> "HttpConfig":
        return cls(
            connect_timeout=settings.get(CONNECT_TIMEOUT),
            read_timeout=settings.get(READ_TIMEOUT),
            attempts=settings.get(ATTEMPTS),
            backoff=settings.get(BACKOFF),
            max_wait=settings.get(MAX_WAIT),
            pacer=pacer,
        )


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, its pools' connections registered with the exchange's watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(watchdog.POOLS)


class Connections:
    """This process's HTTP session, its connection pool sized to the threads that use it."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.size = POOL
        self._mount(WatchedAdapter())
        self._lock = threading.Lock()

    def _mount(self, adapter: requests.adapters.HTTPAdapter) -> None:
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def fit(self, jobs: int) -> int:
        """Keep a connection per host for each of ``jobs`` threads (never fewer than ``POOL``):
        above the pool's size, connections are opened, used once and thrown away. Returns the
        size now kept."""
        with self._lock:
            if jobs > self.size:
                self._mount(WatchedAdapter(pool_maxsize=jobs))
                self.size = jobs
            return self.size

    def close(self) -> None:
        self.session.close()


def connections() -> Connections:
    return runtime.current().get(Connections)


class Resends:
    """POSTs sent again after the first got no answer in time, per service: the service may
    have billed both. The tool's summary reports them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = collections.Counter()  # type: collections.Counter

    def add(self, service: str) -> None:
        with self.lock:
            self.counts[service] += 1

    def snapshot(self) -> Dict[str, int]:
        with self.lock:
            return dict(self.counts)


def resends() -> Resends:
    return runtime.current().get(Resends)


def post(
    service: str,
    url: str,
    config: HttpConfig,
    *,
    headers: Dict[str, str],
    data: bytes = b"",
    params: Optional[Dict[str, str]] = None,
    json_body: Any = None,
    final: Optional[Callable[[ServiceError], bool]] = None,
) -> Any:
    """POST the image bytes ``data`` and return the decoded JSON answer, or raise ServiceError.

    ``service`` names the service in messages and, with the URL's host, keys the rate limit.
    ``json_body``, when given, is sent instead as ``application/json`` (Azure OpenAI takes the
    image inside it). Raises ``Refused`` when no request can succeed as set up (TLS, a host
    name that does not resolve), ``Unavailable`` when the service did not answer or answered
    5xx after every attempt, ``ServiceError`` otherwise. ``final``: which error answers the
    service words its own way are about the picture, so not worth another try.
    """
    # Both services take the image as application/octet-stream whatever its format; a
    # Content-Type of image/jpeg is refused with 415.
    content_type = "application/octet-stream"
    if json_body is not None:
        data = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
        content_type = "application/json"
    headers = {"Accept": "application/json", "Content-Type": content_type, **headers}
    return _json(service, _send(service, "POST", url, config, headers, data, params, final))


class Exchange(NamedTuple):
    """A 2xx answer: its status, its headers (names in any case), its JSON body (None if empty)."""

    status: int
    headers: Any
    body: Any


def exchange(
    service: str,
    method: str,
    url: str,
    config: HttpConfig,
    *,
    headers: Dict[str, str],
    data: Optional[bytes] = None,
    params: Optional[Dict[str, str]] = None,
) -> Exchange:
    """``method`` ``url`` with the timeouts, rate limit, retries and errors of ``post``, for
    services whose answer is in the status and headers as much as in a body: the Read APIs
    answer 202 with an Operation-Location, then GETs of it. ``headers`` are sent as given."""
    headers = {"Accept": "application/json", **headers}
    response = _send(service, method, url, config, headers, data, params)
    body = _json(service, response) if response.content.strip() else None
    return Exchange(response.status_code, response.headers, body)


def _send(
    service: str,
    method: str,
    url: str,
    config: HttpConfig,
    headers: Dict[str, str],
    data: Optional[bytes],
    params: Optional[Dict[str, str]],
    final: Optional[Callable[[ServiceError], bool]] = None,
) -> requests.Response:
    """The one request loop: rate limit, timeouts within the file's budget, retries; the 2xx
    response, or the error that ended it."""
    host = urlsplit(url).hostname or ""
    failure = None  # type: Optional[ServiceError]
    for attempt in range(1, config.attempts + 1):
        left = _slot(service, host, config, failure, attempt)
        unanswered = False  # True when the request went out and no answer came back
        connect, read = config.connect_timeout, config.read_timeout
        if left is not None:
            connect, read = min(connect, left), min(read, left)
        try:
            response = _exchange(method, url, params, headers, data, (connect, read), left, config)
        except _Expired:
            failure = NO_ANSWER_IN_TIME.error(service)
            wait = _backoff(config, attempt)
            unanswered = True
        except TooLarge as exc:
            raise OVERSIZED.error(service, exc.status, megabytes=exc.cap // 1024**2) from None
        except requests.Timeout as exc:
            kind, timeout = "read", read
            if isinstance(exc, requests.ConnectTimeout):
                kind, timeout = "connect", connect
            capped = left is not None and timeout >= left  # the budget ran out, not the timeout
            failure = (
                NO_ANSWER_IN_TIME.error(service)
                if capped
                else TIMED_OUT.error(service, kind=kind, timeout=timeout)
            )
            wait = _backoff(config, attempt)
            unanswered = kind == "read"
        except requests.exceptions.SSLError as exc:
            # A certificate that fails today fails in a second too: no retry.
            raise TLS_FAILED.error(service, why=_reason(exc)) from None
        except requests.ConnectionError as exc:
            unresolved = _unresolved(exc)
            if unresolved is not None:  # no retry: a minute later is soon enough (see faults)
                raise Unresolved(service, host, unresolved) from None
            failure = UNREACHABLE.error(service, why=_reason(exc))
            wait = _backoff(config, attempt)
        except requests.RequestException as exc:
            raise REQUEST_FAILED.error(service, why=_reason(exc)) from None
        else:
            if response.status_code < 300:
                return response
            if response.status_code < 400:
                raise _redirected(service, response)
            failure = error_from_response(service, response)
            if response.status_code not in RETRY_STATUSES or (final and final(failure)):
                raise failure
            asked = retry_after(response.headers, response.text)
            if asked is not None and asked > config.max_wait:
                why = WAIT_TOO_LONG_PART.say(
                    service, asked=asked, setting=MAX_WAIT.name, max_wait=config.max_wait
                )
                raise _given_up(failure, why)
            # A little over what was asked, so a crowd of workers does not return at once.
            wait = _backoff(config, attempt) if asked is None else asked * random.uniform(1.0, 1.1)
            if asked is not None and response.status_code == 429 and config.pacer is not None:
                config.pacer.pause(f"{service} {host}", clock.wall() + asked)
        if attempt == config.attempts:
            raise _given_up(failure, _attempts(attempt))
        left = budget.remaining()
        if left is not None and wait > left - MIN_SLICE:
            raise _out_of_time(failure, attempt)
        log.debug("%s: attempt %d failed (%s); retrying in %.1f s", service, attempt, failure, wait)
        if unanswered and method == "POST":
            # Sent, and no answer came: the service may have done (and billed) the work. We
            # ask again all the same (a file's fields matter more than one call) and count it.
            resends().add(service)
        clock.sleep(wait)
    raise AssertionError("unreachable")  # the loop always returns or raises


class _Expired(Exception):
    """The exchange's time ran out while the other end was still sending (or not)."""


class TooLarge(Exception):
    """The answer's body is larger than the service's cap."""

    def __init__(self, status: int, cap: int) -> None:
        super().__init__(status, cap)
        self.status, self.cap = status, cap


def _exchange(
    method: str,
    url: str,
    params: Optional[Dict[str, str]],
    headers: Dict[str, str],
    data: Optional[bytes],
    timeout: Tuple[float, float],
    left: Optional[float],
    config: HttpConfig,
) -> requests.Response:
    """One request and its whole body, ended by the watchdog when its time is up: a timeout
    bounds each wait for a byte, the watchdog the exchange."""
    dog = watchdog.watchdog()
    armed = dog.arm(left if left is not None else sum(timeout))
    try:
        response = connections().session.request(
            method,
            url,
            params=params,
            headers=headers,
            data=data,
            timeout=timeout,
            # requests would carry the key and the picture to wherever a redirect points,
            # over plain http too: an endpoint that redirects is a wrong endpoint.
            allow_redirects=False,
            stream=True,  # the body is read below, within the service's cap
        )
        _read_body(response, config.max_answer_bytes)
        return response
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        if armed.expired:
            raise _Expired() from None
        if isinstance(exc, urllib3.exceptions.HTTPError):  # not wrapped by requests
            raise requests.ConnectionError(exc) from None
        raise
    finally:
        dog.disarm(armed)


def _read_body(response: requests.Response, cap: int) -> None:
    """Read the body in chunks, never more than ``cap`` bytes; the connection is dropped
    when the answer is larger."""
    length = response.headers.get("Content-Length", "").strip()
    if length.isdigit() and int(length) > cap:
        response.close()
        raise TooLarge(response.status_code, cap)
    chunks, size = [], 0
    for chunk in response.iter_content(CHUNK):
        size += len(chunk)
        if size > cap:
            response.close()
            raise TooLarge(response.status_code, cap)
        chunks.append(chunk)
    # What requests keeps once a body is read: .content, .text and .json() use it from here.
    response._content = b"".join(chunks)


def _slot(
    service: str, host: str, config: HttpConfig, failure: Optional[ServiceError], attempt: int
) -> Optional[float]:
    """Wait for the rate limit's next slot; the seconds then left of the file's budget."""
    left = budget.remaining()
    if left is not None and left < MIN_SLICE:
        raise _out_of_time(failure or _not_asked(service), attempt - 1)
    if config.pacer is not None:
        now = clock.wall()
        start = config.pacer.reserve(f"{service} {host}", now, left)
        if start is None:
            why = failure or _not_asked(service, NO_SLOT_PART.say(service))
            raise _out_of_time(why, attempt - 1)
        if start > now:
            clock.sleep(start - now)
        left = budget.remaining()
    return left


def _not_asked(service: str, why: str = "") -> ServiceError:
    return NOT_ASKED.error(service, why=f": {why}" if why else "")


def _redirected(service: str, response: requests.Response) -> ServiceError:
    target = urlsplit(response.headers.get("Location") or "")
    where = f" to {target.scheme}://{target.hostname}" if target.hostname else ""
    status = response.status_code
    return REDIRECTED.error(service, status, status=status, where=where)


def _attempts(count: int) -> str:
    if count == 1:
        return ONE_ATTEMPT_PART.say("")
    return ATTEMPTS_PART.say("", count=count)


def _out_of_time(failure: ServiceError, attempts: int) -> ServiceError:
    if attempts:
        spent = NO_TIME_FOR_ANOTHER_PART.say("", attempts=_attempts(attempts))
    else:
        spent = NO_TIME_PART.say("")
    seconds = budget.total() or 0
    why = OUT_OF_TIME_PART.say("", spent=spent, setting=FILE_TIMEOUT.name, seconds=seconds)
    return _given_up(failure, why)


def _given_up(failure: ServiceError, why: str) -> ServiceError:
    """The same error (same class), saying why no further attempt is made."""
    return type(failure)(
        failure.service,
        GIVEN_UP.say(failure.service, message=failure.message.rstrip(". "), why=why),
        failure.http_status,
        failure.code,
        failure.detail,
        failure.inner_code,
        failure.said,
    )


def _backoff(config: HttpConfig, attempt: int) -> float:
    """Exponential backoff with jitter: half to all of base * 2^(attempt-1)."""
    return config.backoff * (2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


# Azure's words for a wait: "Please retry after 55 seconds." (the API gateway), "Try again in
# 1 seconds." (Custom Vision), "retry after 1 second" ... A number without a unit is seconds.
_WAIT_IN_TEXT = re.compile(
    r"(?:retry\s+after|try\s+again\s+in)\s+(\d+(?:\.\d+)?)\s*"
    r"(milliseconds?|ms|seconds?|secs?|s|minutes?|mins?)?\b",
    re.IGNORECASE,
)


def retry_after(headers: Any, text: str) -> Optional[float]:
    """The seconds the service asks to wait before the next request, if it says so.

    Read from ``x-ms-retry-after-ms`` or ``retry-after-ms`` (milliseconds), ``Retry-After``
    (seconds or an HTTP date), else from the words of the body ``text``.
    """
    for name in ("x-ms-retry-after-ms", "retry-after-ms"):
        millis = _number((headers.get(name) or "").strip())
        if millis is not None:
            return millis / 1000.0
    header = (headers.get("Retry-After") or "").strip()
    if header:
        seconds = _number(header)
        if seconds is not None:
            return seconds
        if email.utils.parsedate_tz(header) is not None:
            when = email.utils.parsedate_to_datetime(header)
            return max(0.0, when.timestamp() - clock.wall())
    match = _WAIT_IN_TEXT.search(text or "")
    if not match:
        return None
    unit = (match.group(2) or "s").lower()
    if unit.startswith("milli") or unit == "ms":
        factor = 0.001
    elif unit.startswith("min"):
        factor = 60.0
    else:
        factor = 1.0
    return float(match.group(1)) * factor


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return max(0.0, value) if math.isfinite(value) else None


_NOT_RESOLVED = re.compile(
    r"Name or service not known|nodename nor servname provided|getaddrinfo failed|"
    r"Temporary failure in name resolution|No address associated with hostname|"
    r"Failed to resolve",
    re.IGNORECASE,
)


def _unresolved(exc: BaseException) -> Optional[str]:
    """Why the host name did not resolve, when that is why ``exc`` was raised."""
    seen = set()
    # requests wraps urllib3's MaxRetryError, which wraps the real cause
    pending: List[Optional[BaseException]] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, socket.gaierror):
            return str(error.strerror or error)
        pending.extend(a for a in getattr(error, "args", ()) if isinstance(a, BaseException))
        pending.extend([getattr(error, "reason", None), error.__cause__, error.__context__])
    match = _NOT_RESOLVED.search(str(exc))
    return match.group(0) if match else None


def _reason(exc: Exception) -> str:
    """The cause of a connection failure in a few words, without urllib3's wrapping."""
    cause = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the real cause
    return re.sub(r"<[^>]*>:\s*", "", str(cause))[:200]


def _json(service: str, response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        status = response.status_code
        raise NOT_JSON.error(service, status, detail=response.text[:300], status=status) from None


def _lower_keys(value: Any) -> Any:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


# Sentences of an error message about when to come back or whom to call: the client does the
# waiting, and the administrator's line keeps to what went wrong.
_ADVICE = re.compile(
    r"\s*[^.]*(?:retry\s+after|try\s+again\s+in|contact\s+azure\s+support)[^.]*(?:\.|$)",
    re.IGNORECASE,
)


def error_from_response(service: str, response: requests.Response) -> ServiceError:
    """Read Azure's error body, wrapped ``{"error": {...}}`` or flat ``{"code", "message"}``.

    The message names the status once, and the service's code only where it says more than
    the status (gateways repeat it: ``"code": "429"``).
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    outer = _lower_keys(body)
    error = _lower_keys(outer.get("error")) or outer
    inner = _lower_keys(error.get("innererror"))
    code = error.get("code") or response.headers.get("x-ms-error-code")
    message = error.get("message") or (response.text or "").strip()[:300] or response.reason or ""
    inner_code = inner.get("code")
    status = response.status_code
    codes = f" {code}" if code and str(code) != str(status) else ""
    if inner_code:
        codes += f"/{inner_code}"
    text = str(message).strip()
    if status == 429:
        text = _ADVICE.sub("", text).strip() or text
    row = ANSWERED._replace(kind=Unavailable) if status >= 500 else ANSWERED
    return row.error(
        service,
        status,
        str(code) if code else None,
        json.dumps(body)[:1000] if body is not None else None,
        str(inner_code) if inner_code else None,
        text,
        status=status,
        codes=codes,
        text=text,
    )
