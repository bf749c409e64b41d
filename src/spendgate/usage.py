"""`Usage`: what one provider call consumed, as counts (no money here).

Conventions (the same as OpenAI's and genai-prices'):

* ``input_tokens`` is *all* input, cached or not: ``cache_read_tokens`` and ``cache_write_tokens``
  are parts of it. Anthropic reports cache tokens outside ``input_tokens``; convert with
  :meth:`Usage.from_anthropic` (or let the integrations do it) rather than adding them by hand.
* ``output_tokens`` is all output: ``reasoning_tokens`` and ``output_audio_tokens`` are parts of it.

Usage that cannot be right (negative counts, a part larger than its whole, absurd sizes) raises
:class:`~spendgate.errors.InvalidUsageError` naming the field, so it is never stored or priced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from spendgate._frozen import fast_init
from spendgate.errors import InvalidUsageError

__all__ = ["MAX_COUNT", "Usage"]

#: Largest count accepted in any one field: far above any real call, far below integer overflow
#: in the ledger's sums.
MAX_COUNT = 10**12

_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "images",
    "web_searches",
)


_int_values = attrgetter(*_INT_FIELDS)
_INT = frozenset({int})
_NO_SECONDS = Decimal(0)  # the default of the seconds fields (the same object)


@fast_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Counts one call consumed. All fields default to zero."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0
    images: int = 0
    web_searches: int = 0
    audio_seconds: Decimal = _NO_SECONDS
    processing_seconds: Decimal = _NO_SECONDS

    def __post_init__(self) -> None:
        ints = _int_values(self)
        if (
            _INT.issuperset(map(type, ints))
            and min(ints) >= 0
            and max(ints) <= MAX_COUNT
            and self.audio_seconds is _NO_SECONDS
            and self.processing_seconds is _NO_SECONDS
            and self.cache_read_tokens + self.cache_write_tokens <= self.input_tokens
            and self.input_audio_tokens + self.input_image_tokens <= self.input_tokens
            and self.reasoning_tokens + self.output_audio_tokens <= self.output_tokens
        ):
            return  # plain counts in range and no seconds (checked in C, mostly): what the checks below let through
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if type(value) is not int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise InvalidUsageError(name, f"must be an integer, got {type(value).__name__}")
                object.__setattr__(self, name, int(value))
                value = int(value)
            if value < 0:
                raise InvalidUsageError(name, f"must not be negative, got {value}")
            if value > MAX_COUNT:
                raise InvalidUsageError(name, f"must be at most {MAX_COUNT}, got {value}")
        for name in ("audio_seconds", "processing_seconds"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise InvalidUsageError(name, f"must be a number, got {type(value).__name__}")
                try:
                    value = Decimal(str(value))
                except ArithmeticError as exc:
                    raise InvalidUsageError(name, f"is not a number: {value!r}") from exc
                object.__setattr__(self, name, value)
            if not value.is_finite() or value < 0 or value > MAX_COUNT:
                raise InvalidUsageError(name, f"must be a finite number from 0 to {MAX_COUNT}, got {value}")
        cached = self.cache_read_tokens + self.cache_write_tokens
        if cached > self.input_tokens:
            raise InvalidUsageError(
                "cache_read_tokens",
                f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens ({self.input_tokens});"
                " input_tokens must include cached tokens (for Anthropic use Usage.from_anthropic)",
            )
        if self.input_audio_tokens + self.input_image_tokens > self.input_tokens:
            raise InvalidUsageError(
                "input_audio_tokens",
                "input_audio_tokens + input_image_tokens exceed input_tokens, which must include them",
            )
        if self.reasoning_tokens + self.output_audio_tokens > self.output_tokens:
            raise InvalidUsageError(
                "reasoning_tokens",
                f"reasoning_tokens + output_audio_tokens exceed output_tokens ({self.output_tokens}),"
                " which must include them",
            )

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        values: dict[str, Any] = {f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        return Usage(**values)

    def to_dict(self) -> dict[str, Any]:
        """Non-zero fields as a JSON-friendly dict (Decimals as strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value:
                out[f.name] = str(value) if isinstance(value, Decimal) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Build from a mapping of field names; unknown keys are an error naming the key."""
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise InvalidUsageError(str(key), "is not a usage field")
        return cls(**{k: v for k, v in data.items() if v is not None})

    @classmethod
    def from_anthropic(
        cls,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_input_tokens: int = 0,
        cache_creation_input_tokens: int = 0,
    ) -> Usage:
        """Convert Anthropic's usage, which counts cache tokens *outside* ``input_tokens``."""
        for name, value in (
            ("input_tokens", input_tokens),
            ("cache_read_input_tokens", cache_read_input_tokens),
            ("cache_creation_input_tokens", cache_creation_input_tokens),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidUsageError(name, f"must be a non-negative integer, got {value!r}")
        return cls(
            input_tokens=input_tokens + cache_read_input_tokens + cache_creation_input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_input_tokens,
            cache_write_tokens=cache_creation_input_tokens,
        )
