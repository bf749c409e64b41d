"""Input checks shared by the chat and tool counters: every error names the offending field."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from spendgate.errors import InvalidUsageError

__all__ = ["as_list", "is_list", "mapping", "string", "to_json"]


def to_json(value: object) -> str:
    """Compact JSON, the way request bodies are usually sent."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def is_list(value: object) -> bool:
    """Whether ``value`` is a list (any sequence that is not a string)."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def as_list(value: object, where: str, what: str) -> Sequence[Any]:
    """``value`` if it is a list (any non-string sequence), else an error naming ``where``."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        return value
    raise InvalidUsageError(where, f"must be a list of {what}, got {type(value).__name__}")


def string(value: object, where: str, *, default: str | None = None) -> str:
    """``value`` if it is a string (or ``default`` if it is None and a default is given), else an error."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise InvalidUsageError(where, f"must be a string, got {type(value).__name__}")
    return value


def mapping(value: object, where: str) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an error naming ``where``."""
    if not isinstance(value, Mapping):
        raise InvalidUsageError(where, f"must be a mapping, got {type(value).__name__}")
    return value
