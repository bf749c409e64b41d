"""What the ledger stores: :class:`UsageEvent`, and what recording one returns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendgate.errors import InvalidUsageError
from spendgate.ledger._validate import (
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
_OPTIONAL_TEXT = tuple((name, TEXT_LIMITS[name]) for name in OPTIONAL_TEXT_FIELDS)


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
        put = object.__setattr__
        for name, limit in _REQUIRED_TEXT:
            value = getattr(self, name)
            if type(value) is not str or not value or len(value) > limit:  # the check says what is wrong
                check_text(name, value, limit)
        for name, limit in _OPTIONAL_TEXT:
            value = getattr(self, name)
            if value is not None and (type(value) is not str or not value or len(value) > limit):
                check_optional_text(name, value, limit)
        if type(self.timestamp) is not datetime or self.timestamp.tzinfo is not UTC:
            put(self, "timestamp", check_aware("timestamp", self.timestamp))
        if not isinstance(self.usage, Usage):
            raise InvalidUsageError("usage", f"must be a spendgate.usage.Usage, got {type(self.usage).__name__}")
        put(self, "cost", check_money("cost", self.cost))
        put(self, "cache_savings", check_money("cache_savings", self.cache_savings))
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise InvalidUsageError(
                "currency", f"must be a three-letter ISO 4217 code like 'USD', got {self.currency!r}"
            )
        for name in ("cost_estimated", "tokens_estimated", "success", "cached"):
            if type(getattr(self, name)) is not bool:
                check_bool(name, getattr(self, name))
        for name in ("latency_ms", "request_bytes", "response_bytes"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        if self.status_code is not None:
            check_int("status_code", self.status_code, low=100, high=599)
        put(self, "tags", check_tags("tags", self.tags))
        put(self, "metadata", check_json_object("metadata", self.metadata))

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
