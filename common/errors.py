"""The exceptions of pixstor-azure, each carrying the PixStor status it ends a file with.

The runner turns an exception into a status and one log line, so every module raises one of
these with a message written for a storage administrator, not a developer.
"""

from typing import Optional


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


class ImageError(PixstorAzureError):
    """The file is not an image we can read, or cannot be brought within the service's limits."""

    status = "SKIPPED"


class ServiceError(PixstorAzureError):
    """The service failed or refused the request (after any retries).

    ``code``, ``inner_code`` and ``message`` are the service's own, read from either error
    body shape; ``detail`` is the raw body, for debug logs.
    """

    status = "FATAL"

    def __init__(
        self,
        service: str,
        message: str,
        http_status: Optional[int] = None,
        code: Optional[str] = None,
        detail: Optional[str] = None,
        inner_code: Optional[str] = None,
    ) -> None:
        self.service = service
        self.http_status = http_status
        self.code = code
        self.inner_code = inner_code
        self.message = message
        self.detail = detail
        super().__init__(message)


class ImageRejected(ServiceError):
    """The service refused this one image (format, size, dimensions): other files may pass."""

    status = "SKIPPED"


class StoreError(PixstorAzureError):
    """The metadata store refused the write."""

    status = "ERRORED"
