"""The Meter's logic that does no I/O: turning a call's facts into a priced, validated ledger event."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spendgate._frozen import fast_init
from spendgate.clock import Clock
from spendgate.errors import InvalidUsageError, UnknownModelError
from spendgate.ledger import EventFilter, UsageEvent
from spendgate.pricing import CostBreakdown, PriceBook
from spendgate.settings import Settings
from spendgate.usage import Usage

__all__ = ["Call", "Recorded", "build_event", "make_filter", "new_event_id", "parse_call", "price_usage"]


@fast_init
@dataclass(frozen=True, slots=True)
class Recorded:
    """What :meth:`Meter.record` did: the event id, whether it was already there, and its cost."""

    event_id: str
    duplicate: bool
    cost: CostBreakdown | None
    """The price breakdown; ``None`` when the model has no known price (the event is stored unpriced)."""

    @property
    def priced(self) -> bool:
        return self.cost is not None


def new_event_id() -> str:
    """A fresh, unique event id (callers that can retry should pass their own, stable id)."""
    return "evt_" + os.urandom(16).hex()


_EVENT_FIELDS = frozenset(
    {
        "user_id", "team_id", "api_key_id", "session_id", "request_type", "tags", "metadata", "model_used",
        "latency_ms", "success", "error_kind", "tokens_estimated", "action", "cached", "cache_savings",
        "prompt_hash", "client_ip", "user_agent", "service", "endpoint", "status_code", "request_bytes",
        "response_bytes", "service_tier",
    }
)  # fmt: skip


@fast_init
@dataclass(frozen=True, slots=True)
class Call:
    """One call's facts, parsed and checked, before pricing."""

    provider: str
    model: str
    usage: Usage
    event_id: str
    timestamp: datetime
    batch: bool
    service_tier: str | None
    fields: Mapping[str, Any]
    """The remaining event fields (user_id, tags, latency_ms, ...), validated by UsageEvent."""


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidUsageError(field, "must be timezone-aware (e.g. datetime.now(UTC))")
    return value


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidUsageError("timestamp", f"is not an ISO 8601 datetime: {value!r}") from None
    if value is not None and not isinstance(value, datetime):
        raise InvalidUsageError("timestamp", f"must be a datetime or ISO 8601 string, got {type(value).__name__}")
    return _aware(value, "timestamp")


def parse_call(kwargs: Mapping[str, Any], clock: Clock) -> Call:
    """Check the keyword arguments of ``record`` (or one JSON event) and normalize them."""
    data = dict(kwargs)
    if "provider" not in data or "model" not in data or "usage" not in data:
        missing = [name for name in ("provider", "model", "usage") if name not in data]
        raise InvalidUsageError(missing[0], "is required")
    provider, model, usage = data.pop("provider"), data.pop("model"), data.pop("usage")
    for name, value in (("provider", provider), ("model", model)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidUsageError(name, "must be a non-empty string")
    if type(usage) is not Usage and isinstance(usage, Mapping):
        try:
            usage = Usage.from_dict(usage)
        except InvalidUsageError as exc:
            raise InvalidUsageError(f"usage.{exc.field}", exc.message) from None
    if not isinstance(usage, Usage):
        raise InvalidUsageError("usage", f"must be a spendgate.Usage or a mapping, got {type(usage).__name__}")
    event_id = data.pop("event_id", None)
    timestamp = _timestamp(data.pop("timestamp", None)) or clock.now()
    batch = data.pop("batch", False)
    if not isinstance(batch, bool):
        raise InvalidUsageError("batch", "must be true or false")
    if batch and data.get("service_tier") in (None, "batch"):
        data["service_tier"] = "batch"  # stored, so a later re-rate prices it at the batch rate again
    if not _EVENT_FIELDS.issuperset(data):
        raise InvalidUsageError(sorted(set(data) - _EVENT_FIELDS)[0], "is not an event field")
    return Call(
        provider=provider,
        model=model,
        usage=usage,
        event_id=new_event_id() if event_id is None else event_id,
        timestamp=timestamp,
        batch=batch,
        service_tier=data.get("service_tier"),
        fields=data,
    )


def price_usage(
    book: PriceBook,
    settings: Settings,
    *,
    provider: str,
    model: str,
    usage: Usage,
    at: datetime,
    service_tier: str | None,
    batch: bool,
    monthly_volume: int,
) -> CostBreakdown | None:
    """Price usage, or ``None`` for a model with no known price when unpriced recording is allowed."""
    try:
        return book.cost(
            provider, model, usage, at=at, service_tier=service_tier, batch=batch, monthly_volume=monthly_volume
        )
    except UnknownModelError:
        if settings.record_unpriced:
            return None
        raise


def build_event(call: Call, cost: CostBreakdown | None) -> UsageEvent:
    """A validated ledger event from the call's facts and its (optional) price."""
    return UsageEvent(
        event_id=call.event_id,
        timestamp=call.timestamp,
        provider=call.provider,
        model=call.model,
        usage=call.usage,
        cost=cost.total if cost is not None else None,
        currency=cost.currency if cost is not None else "USD",
        price_version=cost.price_version if cost is not None else None,
        cost_estimated=cost.estimated if cost is not None else False,
        **call.fields,
    )


def make_filter(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    user_id: str | None = None,
    team_id: str | None = None,
    api_key_id: str | None = None,
    session_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    request_type: str | None = None,
) -> EventFilter:
    """An :class:`EventFilter` after checking the window's datetimes are aware and ordered."""
    _aware(since, "since")
    _aware(until, "until")
    if since is not None and until is not None and until <= since:
        raise InvalidUsageError("until", "must be later than since")
    return EventFilter(
        since=since,
        until=until,
        user_id=user_id,
        team_id=team_id,
        api_key_id=api_key_id,
        session_id=session_id,
        provider=provider,
        model=model,
        request_type=request_type,
    )
