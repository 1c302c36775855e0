"""What calls would cost, for ``tag --dry-run``: per-1,000-call prices that are settings.

The defaults are assumptions, not prices read from Azure: the pricing pages were not available
when they were set (2026-11-28), so they are list prices of the pay-as-you-go tiers as commonly
quoted: Custom Vision S0 prediction, 2 USD per 1,000 transactions; Azure AI Vision S1, first
million transactions a month, 1 USD per 1,000 per feature; Read 3.2 and Document
Intelligence's prebuilt-read, 1.50 USD per 1,000 (a third party's figure). Azure AI Vision is
said to bill each feature asked for as a transaction (a third party's quote of the pricing
page, unconfirmed), so its default per call is 1 USD per 1,000 times the number of features
asked. Set the settings to the prices of your contract and region.
"""

from typing import Any, NamedTuple, Optional

from ..ground.setting_registry import (
    PRICE_CURRENCY,
    PRICE_CUSTOM_VISION,
    PRICE_READ,
    PRICE_VISION,
    Setting,
)
from ..ground.settings import Settings
from ..services.base import Service
from ..services.customvisioncloud import CustomVisionCloud
from ..services.imageanalysis import Analyze
from ..services.read import Read

ASSUMED_ON = "2026-11-28"


class Price(NamedTuple):
    per_1000: float  # per 1,000 calls
    setting: str
    assumed: bool  # True: the default, an assumption; False: set by the administrator
    note: str  # the tier the default is for

    def cost(self, calls: int) -> float:
        return calls * self.per_1000 / 1000.0


def price(chosen: Service, settings: Settings) -> Optional[Price]:
    """The price per 1,000 calls of the backend ``chosen``; None when it is not priced: not
    billed (``Service.billed``: a model run here, an exported model's container), or billed by
    tokens (Azure OpenAI)."""
    if not chosen.billed:
        return None
    if isinstance(chosen, CustomVisionCloud):
        return _price(settings, PRICE_CUSTOM_VISION, "S0 prediction")
    if isinstance(chosen, Analyze):
        count = max(1, len(chosen.features))
        return _price(
            settings,
            PRICE_VISION,
            f"S1, 0-1M a month, 1 per 1,000 for each of {count} feature(s)",
            PRICE_VISION.default * count,
        )
    if isinstance(chosen, Read):
        return _price(settings, PRICE_READ, "Read, S1 / S0, 0-1M a month")
    return None


def label(chosen: Service) -> str:
    """The service a backend calls, and which of its APIs, for the lines of a dry run."""
    identity = chosen.identity()
    what = identity.get("protocol") or identity.get("api")
    return f"{chosen.name} ({what})" if what else chosen.name


def currency(settings: Settings) -> str:
    return settings.get(PRICE_CURRENCY)


def _price(settings: Settings, setting: Setting, note: str, default: Any = None) -> Price:
    """The price ``setting`` says; ``default`` for one worked out from the call (Vision's)."""
    assumed = settings.raw(setting.name) is None
    value = settings.get(setting) if default is None else settings.get(setting, default)
    return Price(value, setting.name, assumed, note)
