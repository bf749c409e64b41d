"""Price overrides and custom models: :class:`PriceOverride` and its parts, and :class:`FallbackPrice`.

All prices are USD per million tokens unless named otherwise (``per_request`` and ``minimum_charge``
are USD per call, ``per_second`` USD per second of ``Usage.processing_seconds``). An override is one
*version* of a price: it applies from ``effective_from`` on and is never edited; a correction is a new
version with a later date. Every constructor validates and raises
:class:`~spendgate.errors.ConfigurationError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from itertools import pairwise
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spendgate.pricing._fields import (
    FieldError,
    build,
    count_field,
    decimal_field,
    optional_decimal,
    text_field,
    to_mapping,
    utc_datetime,
)

__all__ = ["ContextTier", "FallbackPrice", "PriceOverride", "TimeOfDayRule", "VolumeTier", "normalize_tier"]

#: Service tiers an override may be for (``None`` is standard processing).
OVERRIDE_TIERS = ("batch", "fast", "flex", "priority", "scale")
_STANDARD_TIERS = ("", "default", "standard")
_PRICE_FIELDS = (
    "input",
    "output",
    "cache_read",
    "cache_write",
    "reasoning",
    "per_request",
    "minimum_charge",
    "per_second",
)
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")

_T = TypeVar("_T")
_set = object.__setattr__


def normalize_tier(value: object, path: str = "service_tier") -> str | None:
    """``None`` for standard processing (``None``, ``"default"``, ``"standard"``), else the tier lower-cased."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FieldError(path, f"must be a string or null, got {type(value).__name__}")
    tier = value.strip().lower()
    return None if tier in _STANDARD_TIERS else tier


def _items(cls: type[_T], values: object, path: str) -> tuple[_T, ...]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise FieldError(path, f"must be a list, got {type(values).__name__}")
    out: list[_T] = []
    for index, item in enumerate(values):
        where = f"{path}[{index}]"
        if isinstance(item, cls):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(build(cls, item, where))
        else:
            raise FieldError(where, f"must be a table/mapping, got {type(item).__name__}")
    return tuple(out)


def _ascending(items: tuple[_T, ...], key: str, path: str) -> tuple[_T, ...]:
    ordered = tuple(sorted(items, key=lambda item: getattr(item, key)))
    for before, after in pairwise(ordered):
        if getattr(before, key) == getattr(after, key):
            raise FieldError(path, f"two tiers have the same {key} ({getattr(after, key)})")
    return ordered


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextTier:
    """Cliff prices for calls with more than ``above_input_tokens`` input tokens: they apply to the whole call.

    Omitted cache prices scale with the input price (base cache price * tier input / base input).
    """

    above_input_tokens: int
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def __post_init__(self) -> None:
        _set(self, "above_input_tokens", count_field(self.above_input_tokens, "above_input_tokens"))
        _set(self, "input", decimal_field(self.input, "input"))
        _set(self, "output", decimal_field(self.output, "output"))
        _set(self, "cache_read", optional_decimal(self.cache_read, "cache_read"))
        _set(self, "cache_write", optional_decimal(self.cache_write, "cache_write"))


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeTier:
    """Prices once the scope used more than ``above_monthly_tokens`` this month (before this call).

    Either new token prices (``input`` and ``output``, optional cache prices) or a ``discount_percent``
    off every token price. Per-request, per-second and minimum charges are not affected.
    """

    above_monthly_tokens: int
    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    discount_percent: Decimal | None = None

    def __post_init__(self) -> None:
        _set(self, "above_monthly_tokens", count_field(self.above_monthly_tokens, "above_monthly_tokens"))
        for name in ("input", "output", "cache_read", "cache_write", "discount_percent"):
            _set(self, name, optional_decimal(getattr(self, name), name))
        priced = self.input is not None or self.output is not None
        if self.discount_percent is not None:
            if priced or self.cache_read is not None or self.cache_write is not None:
                raise FieldError("discount_percent", "give either discount_percent or prices, not both")
            if self.discount_percent > 100:
                raise FieldError("discount_percent", f"must be at most 100, got {self.discount_percent}")
        elif self.input is None or self.output is None:
            raise FieldError("input" if self.input is None else "output", "a volume tier needs input and output prices")


def _clock_seconds(value: object, path: str, *, end: bool) -> int:
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise FieldError(path, f'must be a time of day "HH:MM", got {value!r}')
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise FieldError(path, f"is not a valid time of day: {value!r}" + ("" if end else " (24:00 only as an end)"))
    return hours * 3600 + minutes * 60


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeOfDayRule:
    """Multiply every charge by ``multiplier`` for calls from ``start`` to ``end`` (``"HH:MM"``) local time.

    For self-hosted capacity or internal chargeback only (provider list prices do not vary by time of
    day). ``end`` before ``start`` wraps past midnight; ``"24:00"`` is the end of the day.
    """

    start: str
    end: str
    timezone: str
    multiplier: Decimal
    _start: int = field(init=False, repr=False, compare=False, default=0)
    _end: int = field(init=False, repr=False, compare=False, default=0)
    _zone: ZoneInfo | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        _set(self, "_start", _clock_seconds(self.start, "start", end=False))
        _set(self, "_end", _clock_seconds(self.end, "end", end=True))
        if self._start == self._end:
            raise FieldError("end", "must differ from start")
        _set(self, "start", self.start.strip())
        _set(self, "end", self.end.strip())
        name = text_field(self.timezone, "timezone")
        try:
            _set(self, "_zone", ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise FieldError("timezone", f"is not an IANA time zone: {name!r}") from None
        _set(self, "timezone", name)
        _set(self, "multiplier", decimal_field(self.multiplier, "multiplier"))

    def applies(self, at: datetime) -> bool:
        """Whether the aware timestamp ``at`` falls in this window, in the rule's time zone."""
        local = at.astimezone(self._zone).time()
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        if self._start < self._end:
            return self._start <= seconds < self._end
        return seconds >= self._start or seconds < self._end


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceOverride:
    """One version of a negotiated, self-hosted or fine-tune price; wins over the catalog from ``effective_from``.

    ``model`` is matched case-insensitively; a ``*`` matches any run of characters (``"ft:gpt-4o-mini:*"``).
    An exact name wins over a pattern, a longer pattern over a shorter one, then the latest version in force.
    ``effective_from`` is a date (midnight UTC) or a datetime (naive means UTC). ``id`` defaults to
    ``"<provider>/<model>@<effective_from>"`` (plus ``"+<service_tier>"`` for a tier).
    """

    provider: str
    model: str
    effective_from: date
    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    """Defaults to the input price (cached tokens are then charged as input)."""
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    """Defaults to the output price (reasoning tokens are then charged as output)."""
    per_request: Decimal | None = None
    minimum_charge: Decimal | None = None
    per_second: Decimal | None = None
    context_tiers: Sequence[ContextTier] = ()
    volume_tiers: Sequence[VolumeTier] = ()
    time_of_day: Sequence[TimeOfDayRule] = ()
    service_tier: str | None = None
    currency: str = "USD"
    note: str = ""
    id: str = ""
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        _set(self, "provider", text_field(self.provider, "provider").lower())
        model = text_field(self.model, "model").lower()
        _set(self, "model", model)
        if "*" in model:
            _set(self, "_pattern", re.compile(".*".join(re.escape(part) for part in model.split("*"))))
        when = utc_datetime(self.effective_from, "effective_from")
        _set(self, "effective_from", when)
        for name in _PRICE_FIELDS:
            _set(self, name, optional_decimal(getattr(self, name), name))
        context = _items(ContextTier, self.context_tiers, "context_tiers")
        _set(self, "context_tiers", _ascending(context, "above_input_tokens", "context_tiers"))
        volume = _items(VolumeTier, self.volume_tiers, "volume_tiers")
        _set(self, "volume_tiers", _ascending(volume, "above_monthly_tokens", "volume_tiers"))
        _set(self, "time_of_day", _items(TimeOfDayRule, self.time_of_day, "time_of_day"))
        tier = normalize_tier(self.service_tier)
        if tier is not None and tier not in OVERRIDE_TIERS:
            raise FieldError("service_tier", f"must be one of {list(OVERRIDE_TIERS)} or null (standard), got {tier!r}")
        _set(self, "service_tier", tier)
        currency = text_field(self.currency, "currency").upper()
        if currency != "USD":
            raise FieldError("currency", f"only USD prices are supported (ledger amounts are USD), got {currency!r}")
        _set(self, "currency", currency)
        if not isinstance(self.note, str):
            raise FieldError("note", f"must be a string, got {type(self.note).__name__}")
        if self.id:
            _set(self, "id", text_field(self.id, "id"))
        else:
            stamp = when.date().isoformat() if when.time() == time() else when.isoformat()
            _set(self, "id", f"{self.provider}/{model}@{stamp}" + (f"+{tier}" if tier else ""))
        self._check_combination()

    def _check_combination(self) -> None:
        if all(getattr(self, name) is None for name in _PRICE_FIELDS):
            raise FieldError("", "an override needs at least one price (input, output, per_request, per_second...)")
        if self.context_tiers and (self.input is None or self.output is None):
            raise FieldError("context_tiers", "need the base input and output prices too")
        if self.context_tiers and any(tier.discount_percent is None for tier in self.volume_tiers):
            raise FieldError("volume_tiers", "tiers with their own prices cannot be combined with context_tiers")

    @property
    def effective_from_datetime(self) -> datetime:
        """``effective_from`` as an aware UTC datetime."""
        assert isinstance(self.effective_from, datetime)  # normalised in __post_init__
        return self.effective_from

    @property
    def version_key(self) -> tuple[str, str, str | None, datetime]:
        """Two overrides with the same key would be an in-place edit: (provider, model, tier, effective_from)."""
        return self.provider, self.model, self.service_tier, self.effective_from_datetime

    @property
    def specificity(self) -> tuple[bool, int]:
        """Exact names beat patterns; longer patterns beat shorter ones."""
        return self._pattern is None, len(self.model.replace("*", ""))

    def matches(self, model: str) -> bool:
        """Whether this override prices ``model`` (already lower-cased)."""
        if self._pattern is None:
            return model == self.model
        return self._pattern.fullmatch(model) is not None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "") -> PriceOverride:
        """Build from a mapping (a file entry, a JSON body); errors name ``where`` and the field."""
        return build(cls, data, where)

    def to_mapping(self) -> dict[str, Any]:
        """A JSON-friendly mapping that :meth:`from_mapping` turns back into an equal override."""
        return to_mapping(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackPrice:
    """Prices (USD per million tokens) for models with no known price; costs are marked ``estimated``.

    ``provider=None`` applies to any provider; a provider's own fallback wins over it.
    """

    input: Decimal
    output: Decimal
    provider: str | None = None

    def __post_init__(self) -> None:
        _set(self, "input", decimal_field(self.input, "input"))
        _set(self, "output", decimal_field(self.output, "output"))
        if self.provider is not None:
            _set(self, "provider", text_field(self.provider, "provider").lower())

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "") -> FallbackPrice:
        return build(cls, data, where)
