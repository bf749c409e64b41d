"""spendgate: meter, price and govern LLM usage.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from __future__ import annotations

import importlib as _importlib
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

from spendgate.errors import (
    BudgetExceeded,
    ConfigurationError,
    CurrencyError,
    InvalidUsageError,
    LedgerError,
    PricingError,
    SpendgateError,
    TokenizationError,
    UnknownModelError,
)
from spendgate.settings import Settings
from spendgate.usage import Usage

if TYPE_CHECKING:
    from spendgate.budgets import Action
    from spendgate.integrations import instrument
    from spendgate.ledger import EventFilter, UsageEvent, UsageSummary
    from spendgate.meter import AsyncMeter, Authorization, Meter, Recorded, RerateReport
    from spendgate.pricing import CostBreakdown, FallbackPrice, PriceBook, PriceOverride
    from spendgate.tokens import TokenCount, TokenCounter

# Heavier parts (SQLAlchemy, tokenizers, the price catalog) load on first use, so `import spendgate`
# stays cheap and each subpackage can be imported on its own.
_LAZY = {
    "EventFilter": "spendgate.ledger",
    "UsageEvent": "spendgate.ledger",
    "UsageSummary": "spendgate.ledger",
    "Action": "spendgate.budgets",
    "AsyncMeter": "spendgate.meter",
    "Authorization": "spendgate.meter",
    "Meter": "spendgate.meter",
    "Recorded": "spendgate.meter",
    "RerateReport": "spendgate.meter",
    "CostBreakdown": "spendgate.pricing",
    "FallbackPrice": "spendgate.pricing",
    "PriceBook": "spendgate.pricing",
    "PriceOverride": "spendgate.pricing",
    "TokenCount": "spendgate.tokens",
    "TokenCounter": "spendgate.tokens",
    "instrument": "spendgate.integrations",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spendgate' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


try:
    __version__ = _version("spendgate")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "Action",
    "AsyncMeter",
    "Authorization",
    "BudgetExceeded",
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
    "instrument",
]
