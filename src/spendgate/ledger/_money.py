"""Fixed-point conversion of exact decimals to integers, as the ledger stores them.

SQLite has no exact decimal type, so every amount of money is stored as a 64-bit count of
pico-units (1e-12 of the currency unit) on both backends; durations as a count of microseconds.
Values with more fractional digits than the scale are rounded half-even (banker's rounding) to the
scale. Nothing here ever touches a float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

__all__ = [
    "MAX_MONEY",
    "MAX_UNITS",
    "MONEY_SCALE",
    "SECONDS_SCALE",
    "from_units",
    "quantize",
    "to_units",
]

#: Decimal places kept for money: 1e-12 of a currency unit (a pico-dollar for USD).
MONEY_SCALE = 12
#: Decimal places kept for durations (audio and processing seconds): one microsecond.
SECONDS_SCALE = 6
#: Largest integer a 64-bit signed column holds.
MAX_UNITS = 2**63 - 1
#: Largest amount of money one value (an event's cost, one rollup cell) can hold: about 9.2 million.
MAX_MONEY = Decimal(MAX_UNITS).scaleb(-MONEY_SCALE)

# Wide enough for any 64-bit value at any of our scales; traps make every inexact step an error.
_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation])
_EXPONENTS = {MONEY_SCALE: Decimal(1).scaleb(-MONEY_SCALE), SECONDS_SCALE: Decimal(1).scaleb(-SECONDS_SCALE)}


def quantize(value: Decimal, scale: int = MONEY_SCALE) -> Decimal:
    """``value`` rounded half-even to ``scale`` decimal places (what the ledger will store)."""
    exponent = _EXPONENTS.get(scale) or Decimal(1).scaleb(-scale)
    return value.quantize(exponent, context=_CONTEXT)


def to_units(value: Decimal, scale: int = MONEY_SCALE) -> int:
    """The integer count of ``10**-scale`` units in ``value`` (rounded half-even).

    Raises :class:`OverflowError` when the result does not fit a 64-bit signed column and
    :class:`ValueError` for NaN or infinity.
    """
    if not value.is_finite():
        raise ValueError(f"cannot store non-finite amount {value}")
    units = int(quantize(value, scale).scaleb(scale, context=_CONTEXT))
    if not -MAX_UNITS <= units <= MAX_UNITS:
        raise OverflowError(f"{value} does not fit a 64-bit column at scale {scale}")
    return units


def from_units(units: int, scale: int = MONEY_SCALE) -> Decimal:
    """The exact decimal for ``units`` of ``10**-scale``, without trailing zeros.

    ``from_units(75_000)`` is ``Decimal("7.5E-8")`` (equal to ``Decimal("0.000000075")``); whole
    numbers keep a zero exponent (``Decimal("100")``, never ``Decimal("1E+2")``).
    """
    value = Decimal(units).scaleb(-scale, context=_CONTEXT).normalize(_CONTEXT)
    if value.as_tuple().exponent > 0:  # type: ignore[operator]  # finite: exponent is an int
        value = value.quantize(Decimal(1), context=_CONTEXT)
    return value
