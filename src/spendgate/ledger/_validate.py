"""Small validators shared by the ledger's value types.

Each returns the (possibly normalised) value or raises :class:`~spendgate.errors.InvalidUsageError`
naming the field, so bad input is refused before it reaches the database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendgate.errors import InvalidUsageError
from spendgate.ledger._money import MAX_MONEY

__all__ = [
    "MAX_INT",
    "check_aware",
    "check_bool",
    "check_int",
    "check_json_object",
    "check_money",
    "check_optional_text",
    "check_tags",
    "check_text",
    "dump_json",
]

#: Largest integer accepted in a 64-bit column (latency, byte counts).
MAX_INT = 2**63 - 1


def check_text(field: str, value: object, max_length: int) -> str:
    """A non-empty string of at most ``max_length`` characters."""
    if not isinstance(value, str):
        raise InvalidUsageError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidUsageError(field, "must not be empty")
    if len(value) > max_length:
        raise InvalidUsageError(field, f"must be at most {max_length} characters, got {len(value)}")
    return value


def check_optional_text(field: str, value: object, max_length: int) -> str | None:
    """``None`` or a non-empty string (an empty string must be spelled ``None``)."""
    if value is None:
        return None
    if value == "":
        raise InvalidUsageError(field, "must not be empty (use None for 'not set')")
    return check_text(field, value, max_length)


def check_aware(field: str, value: object) -> datetime:
    """A timezone-aware datetime, converted to UTC."""
    if not isinstance(value, datetime):
        raise InvalidUsageError(field, f"must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidUsageError(field, f"must be timezone-aware (naive datetimes are ambiguous), got {value}")
    return value.astimezone(UTC)


def check_bool(field: str, value: object) -> bool:
    """Exactly ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise InvalidUsageError(field, f"must be a bool, got {type(value).__name__}")
    return value


def check_int(field: str, value: object, *, low: int = 0, high: int = MAX_INT) -> int:
    """An ``int`` (not a bool) within ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidUsageError(field, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidUsageError(field, f"must be between {low} and {high}, got {value}")
    return int(value)


def check_money(field: str, value: object) -> Decimal | None:
    """``None`` or a finite, non-negative ``Decimal`` (ints are accepted) the ledger can hold.

    Floats are refused: they cannot represent most prices exactly.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        hint = " (use Decimal(str(x)): floats are not exact)" if isinstance(value, float) else ""
        raise InvalidUsageError(field, f"must be a Decimal, got {type(value).__name__}{hint}")
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise InvalidUsageError(field, f"must be a finite, non-negative amount, got {amount}")
    if amount > MAX_MONEY:
        raise InvalidUsageError(field, f"must be at most {MAX_MONEY}, got {amount}")
    return amount


def check_tags(field: str, value: object) -> dict[str, str]:
    """A mapping of strings to strings, copied."""
    if not isinstance(value, Mapping):
        raise InvalidUsageError(field, f"must be a mapping of strings, got {type(value).__name__}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidUsageError(field, f"keys and values must be strings, got {key!r}: {item!r}")
        out[key] = item
    return out


def dump_json(value: Any) -> str:
    """Strict, compact JSON (no NaN or infinity) with sorted keys."""
    return json.dumps(value, allow_nan=False, sort_keys=True, separators=(",", ":"))


def check_json_object(field: str, value: object) -> dict[str, Any]:
    """A mapping with string keys whose values are plain JSON; returned as its JSON round trip.

    The round trip makes the stored value and the in-memory value the same (tuples become lists)
    and detaches the copy from the caller's objects.
    """
    if not isinstance(value, Mapping):
        raise InvalidUsageError(field, f"must be a mapping, got {type(value).__name__}")
    if not value:
        return {}
    if not all(isinstance(key, str) for key in value):
        raise InvalidUsageError(field, "keys must be strings")
    try:
        text = dump_json(dict(value))
    except (TypeError, ValueError) as exc:
        raise InvalidUsageError(field, f"must be JSON-serializable: {exc}") from exc
    loaded: dict[str, Any] = json.loads(text)
    return loaded
