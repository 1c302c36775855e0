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

from ..ground.settings import Settings

ASSUMED_ON = "2026-11-28"
CURRENCY_SETTING = "PIXSTOR_AZURE_PRICE_CURRENCY"


class Price(NamedTuple):
    per_1000: float  # per 1,000 calls
    setting: str
    assumed: bool  # True: the default, an assumption; False: set by the administrator
    note: str  # the tier the default is for

    def cost(self, calls: int) -> float:
        return calls * self.per_1000 / 1000.0


# What runs on the customer's own machines: an exported model, file or container.
RUN_HERE = ("onnx-export", "container")


def billed(chosen: Any) -> bool:
    """Whether a call of the backend ``chosen`` is billed by Azure (per call or by tokens)."""
    identity = chosen.identity()
    return not (identity.get("service") == "customvision" and identity.get("api") in RUN_HERE)


def price(chosen: Any, settings: Settings) -> Optional[Price]:
    """The price per 1,000 calls of the backend ``chosen``; None when it is not priced (a model
    run here, an exported model's container, Azure OpenAI's tokens)."""
    if not billed(chosen):
        return None
    identity = chosen.identity()
    kind = identity.get("service")
    if kind == "customvision":
        return _price(settings, "PIXSTOR_AZURE_PRICE_CUSTOM_VISION", 2.0, "S0 prediction")
    if kind == "vision":
        features = str(identity.get("features") or "").split(",")
        count = max(1, len([f for f in features if f]))
        return _price(
            settings,
            "PIXSTOR_AZURE_PRICE_VISION",
            1.0 * count,
            f"S1, 0-1M a month, 1 per 1,000 for each of {count} feature(s)",
        )
    if kind == "read":
        return _price(settings, "PIXSTOR_AZURE_PRICE_READ", 1.5, "Read, S1 / S0, 0-1M a month")
    return None


def label(chosen: Any) -> str:
    """The service a backend calls, and which of its APIs, for the lines of a dry run."""
    identity = chosen.identity()
    what = identity.get("protocol") or identity.get("api")
    return f"{chosen.service} ({what})" if what else chosen.service


def currency(settings: Settings) -> str:
    return settings.text(CURRENCY_SETTING, "USD")


def _price(settings: Settings, setting: str, default: float, note: str) -> Price:
    assumed = settings.raw(setting) is None
    return Price(settings.number(setting, default, 0.0, 1000000.0), setting, assumed, note)
