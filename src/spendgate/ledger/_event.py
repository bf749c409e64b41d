"""What the ledger stores: :class:`UsageEvent`, and what recording one returns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from spendgate._frozen import fast_init
from spendgate.errors import InvalidUsageError
from spendgate.ledger._money import MAX_MONEY
from spendgate.ledger._validate import (
    MAX_INT,
    check_aware,
    check_bool,
    check_int,
    check_json_object,
    check_money,
    check_optional_text,
    check_tags,
    check_text,
)
from spendgate.usage import Usage

__all__ = ["OPTIONAL_TEXT_FIELDS", "TEXT_LIMITS", "RecordResult", "StoredEvent", "UsageEvent"]

#: Maximum length of an event id (the idempotency key).
MAX_ID_LENGTH = 200

#: Optional string fields of :class:`UsageEvent` (``None`` when not set).
OPTIONAL_TEXT_FIELDS = (
    "model_used",
    "price_version",
    "user_id",
    "team_id",
    "api_key_id",
    "session_id",
    "request_type",
    "service_tier",
    "error_kind",
    "action",
    "prompt_hash",
    "client_ip",
    "user_agent",
    "service",
    "endpoint",
)

#: Maximum length of every string field; the database columns are sized from this.
TEXT_LIMITS: Mapping[str, int] = {
    "event_id": MAX_ID_LENGTH,
    "provider": 200,
    "model": 200,
    **dict.fromkeys(OPTIONAL_TEXT_FIELDS, 200),
    "user_agent": 2000,
    "endpoint": 2000,
}

_CURRENCY = re.compile(r"[A-Z]{3}")
_REQUIRED_TEXT = tuple((name, TEXT_LIMITS[name]) for name in ("event_id", "provider", "model"))
_required_texts = attrgetter("event_id", "provider", "model")
_SEEN_MAX = 4096  # combinations of optional texts remembered as plain (forgotten all at once beyond it)
_plain_seen: set[tuple[object, ...]] = set()
_OPTIONAL_TEXT = tuple((name, TEXT_LIMITS[name]) for name in OPTIONAL_TEXT_FIELDS)
_optional_texts = attrgetter(*OPTIONAL_TEXT_FIELDS)
_flags = attrgetter("cost_estimated", "tokens_estimated", "success", "cached")
_FLAGS = ("cost_estimated", "tokens_estimated", "success", "cached")
_counts = attrgetter("latency_ms", "request_bytes", "response_bytes")
_COUNTS = ("latency_ms", "request_bytes", "response_bytes")
_ZERO = Decimal(0)
_TEXT_TYPES = frozenset({str, type(None)})
_SHORT = min(TEXT_LIMITS.values())


def _plain_texts(values: tuple[object, ...]) -> bool:
    """True when every value is None or a non-empty str of at most :data:`_SHORT` characters (checked in C)."""
    return (
        _TEXT_TYPES.issuperset(map(type, values))
        and "" not in values
        and max(map(len, filter(None, values)), default=0) <= _SHORT  # type: ignore[arg-type]  # str (None filtered)
    )


def _seen_plain(texts: tuple[object, ...]) -> bool:
    """:func:`_plain_texts`, remembered for the combinations seen (who, what, how: they repeat from call to call)."""
    try:
        if texts in _plain_seen:
            return True
    except TypeError:  # an unhashable value: not a plain text anyway
        return False
    if not _plain_texts(texts):
        return False
    if len(_plain_seen) >= _SEEN_MAX:
        _plain_seen.clear()
    _plain_seen.add(texts)
    return True


def _plain_money(value: object) -> bool:
    """True for what :func:`check_money` accepts unchanged: None or a finite Decimal from 0 to MAX_MONEY."""
    return value is None or (type(value) is Decimal and value.is_finite() and _ZERO <= value <= MAX_MONEY)


@fast_init
@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEvent:
    """One metered call: who made it, what it consumed and what it cost.

    ``event_id`` is the idempotency key: recording the same id twice stores it once. ``cost`` is
    ``None`` for an *unpriced* call (no price known yet): it is counted and can be re-rated later,
    never stored as zero. ``timestamp`` must be timezone-aware and is kept in UTC.
    ``service_tier`` is the provider tier the call ran in (e.g. ``"batch"``, ``"flex"``), kept so
    the call can be re-rated with the right prices.

    Every field is validated on construction; a value that cannot be right raises
    :class:`~spendgate.errors.InvalidUsageError` naming the field.
    """

    event_id: str
    timestamp: datetime
    provider: str
    model: str
    usage: Usage
    model_used: str | None = None
    cost: Decimal | None = None
    currency: str = "USD"
    price_version: str | None = None
    cost_estimated: bool = False
    tokens_estimated: bool = False
    user_id: str | None = None
    team_id: str | None = None
    api_key_id: str | None = None
    session_id: str | None = None
    request_type: str | None = None
    service_tier: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    latency_ms: int | None = None
    success: bool = True
    error_kind: str | None = None
    action: str | None = None
    cached: bool = False
    cache_savings: Decimal | None = None
    prompt_hash: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    service: str | None = None
    endpoint: str | None = None
    status_code: int | None = None
    request_bytes: int | None = None
    response_bytes: int | None = None

    def __post_init__(self) -> None:
        # Each check first asks cheaply whether the value is plainly right, and only then calls the
        # validator, which says what is wrong (or normalizes the value).
        put = object.__setattr__
        for value, (name, limit) in zip(_required_texts(self), _REQUIRED_TEXT, strict=True):
            if type(value) is not str or not value or len(value) > limit:  # the check says what is wrong
                check_text(name, value, limit)
        texts = _optional_texts(self)
        if not _seen_plain(texts):
            for value, (name, limit) in zip(texts, _OPTIONAL_TEXT, strict=True):
                if value is not None and (type(value) is not str or not value or len(value) > limit):
                    check_optional_text(name, value, limit)
        if type(self.timestamp) is not datetime or self.timestamp.tzinfo is not UTC:
            put(self, "timestamp", check_aware("timestamp", self.timestamp))
        if not isinstance(self.usage, Usage):
            raise InvalidUsageError("usage", f"must be a spendgate.usage.Usage, got {type(self.usage).__name__}")
        cost = self.cost
        if cost is not None and not (type(cost) is Decimal and cost.is_finite() and _ZERO <= cost <= MAX_MONEY):
            put(self, "cost", check_money("cost", cost))
        if not _plain_money(self.cache_savings):
            put(self, "cache_savings", check_money("cache_savings", self.cache_savings))
        if self.currency != "USD" and (not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency)):
            raise InvalidUsageError(
                "currency", f"must be a three-letter ISO 4217 code like 'USD', got {self.currency!r}"
            )
        flags = _flags(self)
        cost_estimated, tokens_estimated, success, cached = flags
        if not (
            type(cost_estimated) is bool and type(tokens_estimated) is bool and type(success) is bool
            and type(cached) is bool
        ):  # fmt: skip
            for value, name in zip(flags, _FLAGS, strict=True):
                check_bool(name, value)
        for value, name in zip(_counts(self), _COUNTS, strict=True):
            if value is not None and (type(value) is not int or not 0 <= value <= MAX_INT):
                check_int(name, value)  # says what is wrong (or lets an int subclass in range through)
        if self.status_code is not None:
            check_int("status_code", self.status_code, low=100, high=599)
        tags, metadata = self.tags, self.metadata
        put(self, "tags", {} if type(tags) is dict and not tags else check_tags("tags", tags))  # always a copy
        none = type(metadata) is dict and not metadata
        put(self, "metadata", {} if none else check_json_object("metadata", metadata))

    def __hash__(self) -> int:
        # Equal events have equal ids; hashing the id keeps events usable in sets despite the dicts.
        return hash(self.event_id)

    @property
    def priced(self) -> bool:
        """True when the event carries a cost (``cost is not None``)."""
        return self.cost is not None

    @property
    def estimated(self) -> bool:
        """True when the cost or the token counts are estimates."""
        return self.cost_estimated or self.tokens_estimated


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome of recording one event: ``duplicate`` is True when the id was already stored."""

    event_id: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """An event as the ledger holds it, with what the ledger adds.

    ``event`` carries the *current* cost and price version (after any re-rating);
    ``original_cost`` and ``original_price_version`` are as first recorded and never change.
    """

    event: UsageEvent
    original_cost: Decimal | None
    original_price_version: str | None
    recorded_at: datetime
