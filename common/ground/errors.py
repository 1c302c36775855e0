"""The exceptions of pixstor-azure, each carrying the PixStor status it ends a file with.

The runner turns an exception into a status and one log line, so every module raises one of
these with a message written for a storage administrator, not a developer.
"""

from typing import Any, NamedTuple, Optional

from .logtext import redact


class PixstorAzureError(Exception):
    """Base class. ``status`` names the PluginStatus member the file ends with."""

    status = "FATAL"


class SettingsError(PixstorAzureError):
    """A setting is missing or malformed. Names the setting, never its value."""

    status = "FATAL"

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"setting {setting} {problem}")


class Problem(NamedTuple):
    """What is wrong with a setting, in words: a ``str.format`` template over its fields.

    Each is declared once, named, beside the code that finds it (``NOT_SET`` in
    ``settings.py``...); tests name it too (``tests/wording.py``), so that rewording a problem is
    one change. The words never hold a secret's value: fields say of a value only what
    ``settings`` lets show (its length, whether it looks like a key)."""

    words: str

    def error(self, setting: str, **values: Any) -> SettingsError:
        """The ``SettingsError`` of ``setting`` with this problem, ``values`` filled in."""
        return SettingsError(setting, self.words.format(**values))


class ImageError(PixstorAzureError):
    """The file is not an image we can read, or cannot be brought within the service's limits."""

    status = "SKIPPED"


class FileProblem(NamedTuple):
    """What is wrong with a file or its picture (the file is skipped), in words: a template
    declared once and named, like ``Problem``."""

    words: str

    def error(self, **values: Any) -> ImageError:
        """The ``ImageError`` with this problem, ``values`` filled in."""
        return ImageError(self.words.format(**values))


class ServiceError(PixstorAzureError):
    """The service failed or refused the request (after any retries).

    ``message`` is the line for the log; ``code``, ``inner_code`` and ``said`` (the message
    of the error body) are the service's own, read from either error body shape; ``detail`` is
    the raw body, for debug logs.

    No key is in any of them, even one the service (or a gateway) quoted back: every key
    configured is redacted (``logtext.redact``).

    ``answered``: whether the service answered at all, so that it is no sign of an outage and
    lifts any hold (``answers/faults.py``). By default, when it answered with an HTTP status
    under 500; an error raised on a 200's body (off the schema, withheld by a content filter, a
    reading that failed) says ``answered=True``, one raised on nothing that came back says
    ``answered=False``.
    """

    status = "FATAL"
    sent = True  # False: the file was not sent (held back, or no rate-limit slot)

    def __init__(
        self,
        service: str,
        message: str,
        http_status: Optional[int] = None,
        code: Optional[str] = None,
        detail: Optional[str] = None,
        inner_code: Optional[str] = None,
        said: Optional[str] = None,
        answered: Optional[bool] = None,
    ) -> None:
        message = redact(message)
        detail = redact(detail) if isinstance(detail, str) else detail
        said = redact(said) if isinstance(said, str) else said
        self.service = service
        self.http_status = http_status
        self.code = code
        self.inner_code = inner_code
        self.message = message
        self.detail = detail
        self.said = said
        if answered is None:
            answered = http_status is not None and http_status < 500
        self.answered = answered
        super().__init__(message)


class ImageRejected(ServiceError):
    """The service refused this one image (format, size, dimensions): other files may pass."""

    status = "SKIPPED"


class Refused(ServiceError):
    """The service refuses every request as set up: a wrong key, an endpoint of another kind of
    resource, an unknown project, an unpublished iteration, an unsupported language, a host name
    that does not resolve. Every file would fail alike, so it is logged once and files fail
    without asking until the service is asked again (see ``faults``)."""

    status = "FATAL"


class Unresolved(Refused):
    """The endpoint's host name does not resolve. ``host`` is that name; the message is made
    to name the setting by the caller, which knows it."""

    def __init__(self, service: str, host: str, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(service, f"{service}: the host name {host} does not resolve ({reason})")


class Unavailable(ServiceError):
    """The service did not answer, or answered 5xx, after every attempt allowed: an outage
    when it holds for several files in a row."""

    status = "FATAL"


class NoAnswer(Unavailable):
    """No answer came within the time given (a timeout, or the file's time budget): told
    apart from a service that could not be reached."""


class Held(ServiceError):
    """The file was not sent: the service is held back after a fault that holds for every file
    (a refusal, an outage). The fault itself was logged when it was found."""

    status = "FATAL"
    sent = False


class NotAsked(ServiceError):
    """The file was not sent: the client-side rate limit had no slot within the file's time
    budget. Not a fault of the service, so it never counts towards an outage."""

    status = "FATAL"
    sent = False


class StoreError(PixstorAzureError):
    """The metadata store refused the write."""

    status = "ERRORED"
