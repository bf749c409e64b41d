"""The Meter's logic that does no I/O: turning a call's facts into a priced, validated ledger event."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendgate.clock import Clock
from spendgate.errors import InvalidUsageError, UnknownModelError
from spendgate.ledger import EventFilter, UsageEvent
from spendgate.pricing import CostBreakdown, PriceBook
from spendgate.settings import Settings
from spendgate.usage import Usage

__all__ = ["Recorded", "build_event", "make_filter", "new_event_id"]


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
    return f"evt_{uuid.uuid4().hex}"


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidUsageError(field, "must be timezone-aware (e.g. datetime.now(UTC))")
    return value


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


def build_event(
    *,
    clock: Clock,
    cost: CostBreakdown | None,
    event_id: str | None,
    provider: str,
    model: str,
    usage: Usage,
    timestamp: datetime | None,
    fields: Mapping[str, Any],
) -> UsageEvent:
    """A validated ledger event from the call's facts and its (optional) price."""
    if not isinstance(usage, Usage):
        raise InvalidUsageError("usage", f"must be a spendgate.Usage, got {type(usage).__name__}")
    when = _aware(timestamp, "timestamp") or clock.now()
    return UsageEvent(
        event_id=event_id if event_id is not None else new_event_id(),
        timestamp=when,
        provider=provider,
        model=model,
        usage=usage,
        cost=cost.total if cost is not None else None,
        currency=cost.currency if cost is not None else "USD",
        price_version=cost.price_version if cost is not None else None,
        cost_estimated=cost.estimated if cost is not None else False,
        **fields,
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


def money(value: Decimal | None) -> str | None:
    """A Decimal as a plain string for JSON/CSV (never scientific notation); None stays None."""
    if value is None:
        return None
    return format(value, "f")
