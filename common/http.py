"""The HTTP client every Azure call goes through.

One keep-alive ``requests`` session per process, timeouts on every call, a client-side rate
limit per service, and bounded retries with exponential backoff and jitter that honour the
service's own word on when to come back. Retries are written here rather than with urllib3's
``Retry`` because Azure puts the wait of a 429 in the *body* ("Please retry after 55 seconds")
where ``Retry`` cannot see it, and PixStor's shared environment may hold an old urllib3.
"""

import email.utils
import json
import logging
import random
import re
import threading
import time
from typing import Any, Dict, NamedTuple, Optional

import requests

from . import __version__, runtime
from .errors import ServiceError
from .settings import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"pixstor-azure/{__version__}"

# Tests replace this to run without waiting and to see the waits.
sleep = time.sleep


class HttpConfig(NamedTuple):
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    attempts: int = 5
    backoff: float = 1.0
    max_wait: float = 120.0
    requests_per_second: float = 10.0

    @classmethod
    def from_settings(
        cls, settings: Settings, rate_setting: str, default_rate: float
    ) -> "HttpConfig":
        return cls(
            connect_timeout=settings.number("PIXSTOR_AZURE_CONNECT_TIMEOUT", 5.0, 0.1, 300),
            read_timeout=settings.number("PIXSTOR_AZURE_READ_TIMEOUT", 60.0, 0.1, 3600),
            attempts=settings.integer("PIXSTOR_AZURE_ATTEMPTS", 5, 1, 20),
            backoff=settings.number("PIXSTOR_AZURE_BACKOFF", 1.0, 0.0, 60),
            max_wait=settings.number("PIXSTOR_AZURE_MAX_WAIT", 120.0, 0.0, 3600),
            requests_per_second=settings.number(rate_setting, default_rate, 0.0, 1000),
        )


class RateLimiter:
    """Spaces the starts of requests to one service at least 1/rate apart, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self, rate: float) -> None:
        if rate <= 0:  # 0 means unlimited
            return
        with self._lock:
            now = time.monotonic()
            start = max(self._next, now)
            self._next = start + 1.0 / rate
        if start > now:
            sleep(start - now)


class Connections:
    """This process's HTTP session and one rate limiter per service."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.limiters = {}  # type: Dict[str, RateLimiter]
        self._lock = threading.Lock()

    def limiter(self, service: str) -> RateLimiter:
        with self._lock:
            return self.limiters.setdefault(service, RateLimiter())

    def close(self) -> None:
        self.session.close()


def connections() -> Connections:
    return runtime.current().get(Connections)


def post(
    service: str,
    url: str,
    config: HttpConfig,
    *,
    headers: Dict[str, str],
    data: bytes,
    params: Optional[Dict[str, str]] = None,
) -> Any:
    """POST the image bytes ``data`` and return the decoded JSON answer, or raise ServiceError.

    ``service`` names the service in messages and keys the rate limit.
    """
    # Both services take the image as application/octet-stream whatever its format; a
    # Content-Type of image/jpeg is refused with 415.
    headers = {"Accept": "application/json", "Content-Type": "application/octet-stream", **headers}
    for attempt in range(1, config.attempts + 1):
        pool = connections()
        pool.limiter(service).wait(config.requests_per_second)
        try:
            response = pool.session.post(
                url,
                params=params,
                headers=headers,
                data=data,
                timeout=(config.connect_timeout, config.read_timeout),
            )
        except requests.Timeout as exc:
            kind = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
            timeout = config.connect_timeout if kind == "connect" else config.read_timeout
            failure = ServiceError(
                service, f"{service} did not answer ({kind} timeout of {timeout:g} s)"
            )
            wait = _backoff(config, attempt)
        except requests.exceptions.SSLError as exc:
            # A certificate that fails today fails in a second too: no retry.
            raise ServiceError(
                service, f"{service}: TLS verification failed ({_reason(exc)})"
            ) from None
        except requests.ConnectionError as exc:
            failure = ServiceError(service, f"{service} could not be reached ({_reason(exc)})")
            wait = _backoff(config, attempt)
        except requests.RequestException as exc:
            raise ServiceError(service, f"{service}: request failed ({_reason(exc)})") from None
        else:
            if response.status_code < 300:
                return _json(service, response)
            failure = error_from_response(service, response)
            if response.status_code not in RETRY_STATUSES:
                raise failure
            asked = _retry_after(response, failure.message)
            if asked is not None and asked > config.max_wait:
                raise _given_up(
                    failure,
                    f"asked to wait {asked:g} s, longer than PIXSTOR_AZURE_MAX_WAIT "
                    f"({config.max_wait:g} s)",
                )
            # A little over what was asked, so a crowd of workers does not return at once.
            wait = _backoff(config, attempt) if asked is None else asked * random.uniform(1.0, 1.1)
        if attempt == config.attempts:
            raise _given_up(failure, f"after {attempt} attempts")
        log.debug("%s: attempt %d failed (%s); retrying in %.1f s", service, attempt, failure, wait)
        sleep(wait)
    raise AssertionError("unreachable")  # the loop always returns or raises


def _given_up(failure: ServiceError, why: str) -> ServiceError:
    return ServiceError(
        failure.service,
        f"{failure.message}, {why}",
        failure.http_status,
        failure.code,
        failure.detail,
        failure.inner_code,
    )


def _backoff(config: HttpConfig, attempt: int) -> float:
    """Exponential backoff with jitter: half to all of base * 2^(attempt-1)."""
    return config.backoff * (2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


_RETRY_IN_TEXT = re.compile(r"retry after (\d+(?:\.\d+)?) second", re.IGNORECASE)


def _retry_after(response: requests.Response, message: str) -> Optional[float]:
    header = response.headers.get("Retry-After", "").strip()
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            when = email.utils.parsedate_to_datetime(header) if _is_http_date(header) else None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    match = _RETRY_IN_TEXT.search(message)
    return float(match.group(1)) if match else None


def _is_http_date(text: str) -> bool:
    return email.utils.parsedate_tz(text) is not None


def _reason(exc: Exception) -> str:
    """The cause of a connection failure in a few words, without urllib3's wrapping."""
    cause = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the real cause
    return re.sub(r"<[^>]*>:\s*", "", str(cause))[:200]


def _json(service: str, response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServiceError(
            service,
            f"{service} answered {response.status_code} with a body that is not JSON",
            http_status=response.status_code,
            detail=response.text[:300],
        ) from None


def _lower_keys(value: Any) -> Any:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


def error_from_response(service: str, response: requests.Response) -> ServiceError:
    """Read Azure's error body, wrapped ``{"error": {...}}`` or flat ``{"code", "message"}``."""
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
    summary = f"{service} answered {status}"
    if code:
        summary += f" {code}"
    if inner_code:
        summary += f"/{inner_code}"
    return ServiceError(
        service,
        f"{summary}: {str(message).strip()}",
        http_status=status,
        code=str(code) if code else None,
        inner_code=str(inner_code) if inner_code else None,
        detail=json.dumps(body)[:1000] if body is not None else None,
    )
