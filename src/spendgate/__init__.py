"""spendgate: meter, price and govern LLM usage.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from spendgate.errors import (
    ConfigurationError,
    CurrencyError,
    InvalidUsageError,
    LedgerError,
    PricingError,
    SpendgateError,
    TokenizationError,
    UnknownModelError,
)
from spendgate.ledger import EventFilter, UsageEvent, UsageSummary
from spendgate.meter import AsyncMeter, Meter, Recorded, RerateReport
from spendgate.pricing import CostBreakdown, FallbackPrice, PriceBook, PriceOverride
from spendgate.settings import Settings
from spendgate.tokens import TokenCount, TokenCounter
from spendgate.usage import Usage

try:
    __version__ = _version("spendgate")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "AsyncMeter",
    "ConfigurationError",
    "CostBreakdown",
    "CurrencyError",
    "EventFilter",
    "FallbackPrice",
    "InvalidUsageError",
    "LedgerError",
    "Meter",
    "PriceBook",
    "PriceOverride",
    "PricingError",
    "Recorded",
    "RerateReport",
    "Settings",
    "SpendgateError",
    "TokenCount",
    "TokenCounter",
    "TokenizationError",
    "UnknownModelError",
    "Usage",
    "UsageEvent",
    "UsageSummary",
    "__version__",
]
