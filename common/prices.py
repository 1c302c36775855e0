"""What calls would cost, for ``tag --dry-run``: per-1,000-call prices that are settings.

The defaults are assumptions, not prices read from Azure: the pricing pages were not available
when they were set (2026-11-28), so they are list prices of the pay-as-you-go tiers as commonly
quoted (Custom Vision S0 prediction: 2 USD per 1,000 transactions; Azure AI Vision S1, first
million transactions a month: 1 USD per 1,000 per feature). Azure AI Vision is said to bill each
feature asked for as a transaction (a third party's quote of the pricing page, unconfirmed),
so its default per call is 1 USD per 1,000 times the number of features asked. Set the
settings to the prices of your contract and region.
"""

from typing import Any, NamedTuple, Optional

from .settings import Settings

ASSUMED_ON = "2026-11-28"
CURRENCY_SETTING = "PIXSTOR_AZURE_PRICE_CURRENCY"


class Price(NamedTuple):
    per_1000: float  # per 1,000 calls
    setting: str
    assumed: bool  # True: the default, an assumption; False: set by the administrator
    note: str  # the tier the default is for

    def cost(self, calls: int) -> float:
        return calls * self.per_1000 / 1000.0


def price(service: str, chosen: Any, settings: Settings) -> Optional[Price]:
    """The price per 1,000 calls of ``chosen`` (a backend of ``service``), None if not priced."""
    if service == "Custom Vision" and chosen.endpoint_setting == "CUSTOM_VISION_ENDPOINT":
        return _price(settings, "PIXSTOR_AZURE_PRICE_CUSTOM_VISION", 2.0, "S0 prediction")
    if service == "Azure AI Vision":
        features = str(chosen.identity().get("features") or "").split(",")
        count = max(1, len([f for f in features if f]))
        return _price(
            settings,
            "PIXSTOR_AZURE_PRICE_VISION",
            1.0 * count,
            f"S1, 0-1M a month, 1 per 1,000 for each of {count} feature(s)",
        )
    return None


def currency(settings: Settings) -> str:
    return settings.text(CURRENCY_SETTING, "USD")


def _price(settings: Settings, setting: str, default: float, note: str) -> Price:
    assumed = settings.raw(setting) is None
    return Price(settings.number(setting, default, 0.0, 1000000.0), setting, assumed, note)
