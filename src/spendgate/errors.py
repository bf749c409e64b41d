"""Errors raised by spendgate.

Every error spendgate raises on purpose derives from :class:`SpendgateError`::

    SpendgateError
    ├── ConfigurationError           bad settings, override files, unknown backend URLs
    ├── InvalidUsageError            usage that cannot be right (also a ValueError); names the field
    ├── TokenizationError            a tokenizer could not be loaded or used
    ├── PricingError
    │   ├── UnknownModelError        no price for this provider/model (also a LookupError)
    │   └── CurrencyError            no exchange rate configured for a currency
    ├── LedgerError                  the usage store failed (driver errors are wrapped here)
    └── BudgetExceeded               a budget, rate limit or emergency stop refused a call

Each error carries a stable ``code`` so HTTP layers and scripts can map it without parsing messages.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceeded",
    "ConfigurationError",
    "CurrencyError",
    "InvalidUsageError",
    "LedgerError",
    "PricingError",
    "SpendgateError",
    "TokenizationError",
    "UnknownModelError",
]


class SpendgateError(Exception):
    """Base class of every error spendgate raises on purpose."""

    code = "spendgate_error"


class ConfigurationError(SpendgateError):
    """Settings, an override file or a backend URL is invalid."""

    code = "configuration_error"


class InvalidUsageError(SpendgateError, ValueError):
    """Usage figures that cannot be right; ``field`` names the offending field."""

    code = "invalid_usage"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TokenizationError(SpendgateError):
    """A tokenizer could not be loaded or applied."""

    code = "tokenization_error"


class PricingError(SpendgateError):
    """A cost could not be computed."""

    code = "pricing_error"


class UnknownModelError(PricingError, LookupError):
    """No price is known for ``provider``/``model`` and no fallback is configured."""

    code = "unknown_model"

    def __init__(self, provider: str, model: str, detail: str = "") -> None:
        msg = f"no price known for model {model!r} of provider {provider!r}"
        if detail:
            msg += f" ({detail})"
        msg += "; add a price override or configure a fallback price to record it as estimated"
        super().__init__(msg)
        self.provider = provider
        self.model = model


class CurrencyError(PricingError):
    """No exchange rate is configured for the requested currency."""

    code = "unknown_currency"


class LedgerError(SpendgateError):
    """The usage store failed; the original driver error is the ``__cause__``."""

    code = "ledger_error"


class BudgetExceeded(SpendgateError):
    """A call was refused before it was made: which limit, what is spent, when it resets, when to retry.

    ``authorization`` is the :class:`~spendgate.meter.Authorization` that refused it (its ``to_dict()``
    explains everything); the attributes below repeat the essentials.
    """

    code = "budget_exceeded"

    def __init__(self, authorization: Any) -> None:
        self.authorization = authorization
        self.action: str = authorization.action.value
        limit = authorization.limit
        self.limit_id: str | None = None if limit is None else limit.id
        self.spent = authorization.spent
        self.remaining = authorization.remaining
        self.resets_at = authorization.resets_at
        self.retry_after_s: int | None = authorization.retry_after_s
        super().__init__(f"{self.action}: {authorization.reason}")
