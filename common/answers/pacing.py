"""The ``Pacer`` the HTTP client asks before each request (``http/client.py``): the rate budget
of the engine this process uses (``engines.py``).

Without a database, the node's processes share each rate through the node's rate file; with
one, every process of every node takes its turn from one budget per service and host, and a
429's wait pauses them all. Starts are spaced by ``ratelimit.interval``: a little more than
``1/rate`` apart, the margin kept. (Here rather than in ``ratelimit.py``: the engines use
``ratelimit``'s slots, and the pacer uses the engines.)
"""

from typing import NamedTuple, Optional

from ..ground.setting_registry import RATE_FILE, Setting
from ..ground.settings import Settings
from ..http.client import HttpConfig, Pacer
from . import engines
from .ratelimit import interval


class RateLimit(NamedTuple):
    """The rate limit of one service as set up: ``requests_per_second``, the tier's rate,
    shared through ``rate_file`` (the settings', "" for the default) or the database."""

    requests_per_second: float
    rate_file: str = ""


class RatePacer(Pacer):
    """Each request's start, from the engine's rate budget."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit

    def reserve(self, key: str, now: float, within: Optional[float]) -> Optional[float]:
        return engines.current().reserve(key, interval(self.limit.requests_per_second), now, within)

    def pause(self, key: str, until: float) -> None:
        engines.current().pause(key, until)

    def __eq__(self, other: object) -> bool:  # equal settings, equal configs
        return isinstance(other, RatePacer) and other.limit == self.limit

    def __hash__(self) -> int:
        return hash(self.limit)


def pacer(settings: Settings, rate_setting: Setting) -> Optional[RatePacer]:
    """The pacer for a service whose rate is ``rate_setting`` (its ``..._REQUESTS_PER_SECOND``);
    None when the rate is 0 (off)."""
    rate = settings.get(rate_setting)
    if rate <= 0:
        return None
    return RatePacer(RateLimit(rate, settings.get(RATE_FILE)))


def http_config(settings: Settings, rate_setting: Setting) -> HttpConfig:
    """How a service is called, its rate limit included."""
    return HttpConfig.from_settings(settings, pacer(settings, rate_setting))
