"""Validators and converters shared by the budget types.

Each returns the normalised value or raises :class:`BudgetConfigError` naming the field, so a bad
limit, tier or grant is refused where it is built (in Python or from a stored dict), never later on
the request path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendgate.errors import ConfigurationError

__all__ = [
    "MAX_AMOUNT",
    "BudgetConfigError",
    "check_aware",
    "check_bool",
    "check_decimal",
    "check_enum",
    "check_fraction",
    "check_int",
    "check_keys",
    "check_text",
    "check_zone",
    "fmt_duration",
    "iso",
    "parse_duration",
]

#: Largest amount accepted for any limit, grant or overage (money or counts): far above any real budget.
MAX_AMOUNT = Decimal(10) ** 15

_E = TypeVar("_E", bound=StrEnum)


class BudgetConfigError(ConfigurationError, ValueError):
    """A limit, tier, grant, rate limit or breaker is invalid; ``field`` names the offending field."""

    code = "budget_config_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_text(field: str, value: object, *, max_length: int = 200) -> str:
    """A non-empty string of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise BudgetConfigError(field, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BudgetConfigError(field, "must not be empty")
    if len(value) > max_length:
        raise BudgetConfigError(field, f"must be at most {max_length} characters, got {len(value)}")
    return value


def check_bool(field: str, value: object) -> bool:
    """Exactly ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise BudgetConfigError(field, f"must be true or false, got {value!r}")
    return value


def check_int(field: str, value: object, *, low: int = 0, high: int = 10**12) -> int:
    """An ``int`` (not a bool) within ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BudgetConfigError(field, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise BudgetConfigError(field, f"must be between {low} and {high}, got {value}")
    return int(value)


def check_decimal(field: str, value: object, *, integral: bool = False, high: Decimal = MAX_AMOUNT) -> Decimal:
    """A finite ``Decimal`` from 0 to ``high`` (from an int, a numeric string or a Decimal).

    A float is accepted only through its shortest text form (``2.5`` → ``Decimal('2.5')``), so a value
    typed into YAML or JSON keeps exactly the digits that were written; binary float arithmetic never
    touches money. ``integral`` demands a whole number (token and request amounts).
    """
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal, float)):
        raise BudgetConfigError(field, f"must be a number, got {type(value).__name__}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise BudgetConfigError(field, f"is not a number: {value!r}") from exc
    if not number.is_finite() or number < 0 or number > high:
        raise BudgetConfigError(field, f"must be a finite number from 0 to {high}, got {value}")
    if integral and number != number.to_integral_value():
        raise BudgetConfigError(field, f"must be a whole number for this metric, got {value}")
    return number + 0  # normalises -0 to 0


def check_fraction(field: str, value: object, *, high: Decimal = Decimal(10)) -> Decimal:
    """A positive fraction of a limit: ``0.7``, ``"0.7"`` or ``"70%"`` all mean seventy per cent."""
    if isinstance(value, str) and value.strip().endswith("%"):
        number = check_decimal(field, value.strip()[:-1]) / 100
    else:
        number = check_decimal(field, value)
    if not 0 < number <= high:
        raise BudgetConfigError(field, f"must be a fraction above 0 and at most {high} (1 = 100%), got {value}")
    return number


def check_aware(field: str, value: object) -> datetime:
    """A timezone-aware datetime (or ISO 8601 text with an offset or ``Z``), converted to UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise BudgetConfigError(field, f"is not an ISO 8601 date-time: {value!r}") from exc
    if not isinstance(value, datetime):
        raise BudgetConfigError(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise BudgetConfigError(field, f"must be timezone-aware (naive datetimes are ambiguous), got {value}")
    return value.astimezone(UTC)


def check_enum(field: str, enum: type[_E], value: object) -> _E:
    """A member of ``enum`` (or its string value)."""
    if isinstance(value, enum):
        return value
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise BudgetConfigError(field, f"must be one of {allowed}, got {value!r}") from None


def check_keys(what: str, data: object, allowed: Iterable[str]) -> Mapping[str, Any]:
    """``data`` as a mapping whose keys are all in ``allowed`` (an unknown key names itself)."""
    if not isinstance(data, Mapping):
        raise BudgetConfigError(what, f"must be a mapping, got {type(data).__name__}")
    known = set(allowed)
    for key in data:
        if key not in known:
            raise BudgetConfigError(str(key), f"is not a field of {what} (known: {', '.join(sorted(known))})")
    return data


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_zone(name: object, field: str = "timezone") -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``"Europe/Berlin"``); cached per name."""
    if not isinstance(name, str) or not name:
        raise BudgetConfigError(field, f"must be an IANA time zone name, got {name!r}")
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BudgetConfigError(field, f"unknown IANA time zone {name!r}") from exc


def iso(moment: datetime) -> str:
    """``2026-03-11T00:00:00Z``: UTC, seconds precision kept only where non-zero microseconds exist."""
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


_DURATION = re.compile(r"(\d+)\s*([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(field: str, value: object) -> timedelta:
    """A non-negative duration: a ``timedelta``, whole seconds, or text such as ``"6h"``, ``"1h30m"``, ``"2d"``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if not parts or _DURATION.sub("", text).strip():
            raise BudgetConfigError(field, f"is not a duration like '6h', '30m', '1h30m' or seconds: {value!r}")
        seconds = sum(int(n) * _UNITS[unit] for n, unit in parts)
    else:
        seconds = check_int(field, value, high=10**10)
    if seconds < 0:
        raise BudgetConfigError(field, f"must not be negative, got {value!r}")
    return timedelta(seconds=seconds)


def fmt_duration(delta: timedelta) -> str:
    """The shortest text :func:`parse_duration` reads back: ``"6h"``, ``"90m"``, ``"1d"``, ``"45s"``."""
    seconds = int(delta.total_seconds())
    for unit, size in _UNITS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
