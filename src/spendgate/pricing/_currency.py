"""Exchange rates and currency conversion of cost breakdowns.

Ledger amounts are USD. Other currencies are an output format: each part of a breakdown is
multiplied by the configured rate (units of that currency per 1 USD) and the total is the exact sum
of the converted parts. There are no built-in rates: stale defaults would silently misreport costs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal

from spendgate.pricing._breakdown import CostBreakdown
from spendgate.pricing._fields import FieldError, decimal_field

__all__ = ["PARTS", "convert", "parse_rates"]

#: The parts of a breakdown, in field order; ``total`` is their sum.
PARTS = ("input", "cache_read", "cache_write", "output", "reasoning", "request", "other")
_CODE = re.compile(r"^[A-Za-z]{3}$")
_ONE = Decimal(1)


def parse_rates(rates: Mapping[str, object] | None, where: str = "exchange_rates") -> dict[str, Decimal]:
    """Validated rates keyed by upper-case ISO 4217 code; ``USD`` is always 1."""
    if rates is None:
        return {}
    if not isinstance(rates, Mapping):
        raise FieldError(where, f"must be a table/mapping of currency codes to rates, got {type(rates).__name__}")
    out: dict[str, Decimal] = {}
    for code, rate in rates.items():
        if not isinstance(code, str) or not _CODE.match(code.strip()):
            raise FieldError(f"{where}.{code}", "is not a three-letter ISO 4217 currency code")
        name = code.strip().upper()
        value = decimal_field(rate, f"{where}.{name}", positive=True)
        if name == "USD" and value != _ONE:
            raise FieldError(f"{where}.USD", f"must be 1 (amounts are USD), got {rate!r}")
        out[name] = value
    return out


def convert(breakdown: CostBreakdown, currency: str, rate: Decimal) -> CostBreakdown:
    """``breakdown`` with every part multiplied by ``rate``; the total is the sum of the converted parts."""
    parts = {name: getattr(breakdown, name) * rate for name in PARTS}
    return replace(breakdown, **parts, total=sum(parts.values(), Decimal(0)), currency=currency)
