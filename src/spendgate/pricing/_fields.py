"""Validation helpers for price configuration: errors that name the offending field's path.

A :class:`FieldError` carries the path of the bad value (``input``, ``context_tiers[0].output``);
callers that know more context prefix it (``overrides[2].input``, then the file name), so the user
reads e.g. ``prices.toml: overrides[2].input: must be a non-negative decimal``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from spendgate.errors import ConfigurationError

__all__ = [
    "FieldError",
    "build",
    "count_field",
    "decimal_field",
    "optional_decimal",
    "text_field",
    "to_mapping",
    "utc_datetime",
]

T = TypeVar("T")


class FieldError(ConfigurationError):
    """A configuration value is invalid; ``path`` says where, ``reason`` what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason

    @property
    def field(self) -> str:
        """The field's path, under the name every spendgate error uses for it."""
        return self.path

    def within(self, prefix: str) -> FieldError:
        """The same error, located inside ``prefix`` (``overrides[2]``, a file name...)."""
        if not prefix:
            return self
        path = f"{prefix}.{self.path}" if self.path and not self.path.startswith("[") else f"{prefix}{self.path}"
        return FieldError(path, self.reason)


def decimal_field(value: object, path: str, *, positive: bool = False) -> Decimal:
    """A finite, non-negative (or positive) Decimal from a Decimal, int, numeric string or file float."""
    need = "a positive decimal" if positive else "a non-negative decimal"
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        raise FieldError(path, f"must be {need}, got {type(value).__name__}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise FieldError(path, f"must be {need}, got {value!r}") from None
    if not number.is_finite() or number < 0 or (positive and number == 0):
        raise FieldError(path, f"must be {need}, got {value!r}")
    return number


def optional_decimal(value: object, path: str) -> Decimal | None:
    return None if value is None else decimal_field(value, path)


def count_field(value: object, path: str) -> int:
    """A non-negative integer (token counts, thresholds)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FieldError(path, f"must be a non-negative integer, got {value!r}")
    return value


def text_field(value: object, path: str) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError(path, f"must be a non-empty string, got {value!r}")
    return value.strip()


def utc_datetime(value: object, path: str) -> datetime:
    """An aware UTC datetime from a date (midnight UTC), a datetime (naive = UTC) or an ISO 8601 string."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text) if len(text) > 10 else date.fromisoformat(text)
        except ValueError:
            raise FieldError(path, f"must be an ISO 8601 date or datetime, got {text!r}") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise FieldError(path, f"must be a date or datetime, got {type(value).__name__}")


def build(cls: Callable[..., T], data: object, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys; errors are located at ``where``."""
    if not isinstance(data, Mapping):
        raise FieldError(where, f"must be a table/mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            raise FieldError(
                f"{where}.{key}" if where else str(key), f"unknown field (expected one of {sorted(known)})"
            )
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        required = f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in data:
            raise FieldError(f"{where}.{f.name}" if where else f.name, "is required")
    try:
        return cls(**data)
    except FieldError as exc:
        raise exc.within(where) from None


def to_mapping(obj: object) -> dict[str, Any]:
    """A dataclass' init fields as a JSON-friendly dict, leaving out ``None``, ``""`` and ``()`` values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if not f.init or value is None or value in ("", ()):
            continue
        out[f.name] = _plain(value)
    return out


def _plain(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [to_mapping(item) if dataclasses.is_dataclass(item) else _plain(item) for item in value]
    return value
