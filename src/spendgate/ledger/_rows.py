"""Mapping between :class:`UsageEvent` objects and ``usage_events`` rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping

from spendgate.ledger._event import OPTIONAL_TEXT_FIELDS, StoredEvent, UsageEvent
from spendgate.ledger._schema import TOKEN_COLUMNS
from spendgate.usage import Usage

__all__ = ["event_to_row", "row_to_event", "row_to_stored"]

_USAGE_COLUMNS = (*TOKEN_COLUMNS, "audio_seconds", "processing_seconds")
_PLAIN_COLUMNS = (
    "event_id",
    "timestamp",
    "provider",
    "model",
    "cost",
    "currency",
    "cost_estimated",
    "tokens_estimated",
    *OPTIONAL_TEXT_FIELDS,
    "latency_ms",
    "success",
    "cached",
    "cache_savings",
    "status_code",
    "request_bytes",
    "response_bytes",
)


def event_to_row(event: UsageEvent, recorded_at: datetime) -> dict[str, Any]:
    """The ``usage_events`` row for a newly recorded event (original cost = current cost)."""
    row: dict[str, Any] = {name: getattr(event, name) for name in _PLAIN_COLUMNS}
    usage = event.usage
    for name in _USAGE_COLUMNS:
        row[name] = getattr(usage, name)
    row["tags"] = dict(event.tags) or None
    row["metadata"] = dict(event.metadata) or None
    row["original_cost"] = event.cost
    row["original_price_version"] = event.price_version
    row["recorded_at"] = recorded_at
    return row


def row_to_event(row: RowMapping) -> UsageEvent:
    """Rebuild the event (with its current cost) from a full ``usage_events`` row."""
    values = {name: row[name] for name in _PLAIN_COLUMNS}
    usage = Usage(**{name: row[name] for name in _USAGE_COLUMNS})
    return UsageEvent(usage=usage, tags=row["tags"] or {}, metadata=row["metadata"] or {}, **values)


def row_to_stored(row: RowMapping) -> StoredEvent:
    """The event plus what the ledger keeps beside it."""
    return StoredEvent(
        event=row_to_event(row),
        original_cost=row["original_cost"],
        original_price_version=row["original_price_version"],
        recorded_at=row["recorded_at"],
    )
