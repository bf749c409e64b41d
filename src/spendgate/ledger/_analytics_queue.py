"""The analytics queue: what the write path adds (one row per transaction) and what the worker reads.

The write path only appends (:func:`enqueue`, one small INSERT). The worker claims the oldest rows
(:func:`claim`; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so replicas share the work, the write lock on
SQLite), reads the events or adjustments they list (only the columns analytics needs) and deletes
the rows in the same transaction. Queries read the unclaimed tail the same way (:func:`queued`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from spendgate.ledger._analytics_schema import analytics_queue
from spendgate.ledger._engine import LedgerEngine
from spendgate.ledger._engine import engine_of as _engine_of
from spendgate.ledger._schema import cost_adjustments, usage_events

__all__ = [
    "EVENT_COLUMNS",
    "Pending",
    "QueueRow",
    "claim",
    "delete",
    "engine_of",
    "enqueue",
    "pending",
    "queued",
    "read_adjustments",
    "read_events",
]

Kind = Literal["events", "adjustments"]
_INSERT = sa.insert(analytics_queue)
_CHUNK = 2000
_e = usage_events
_RAW = sa.BigInteger()
#: The event columns analytics reads (money as raw 1e-12 units), by name.
EVENT_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    _e.c.event_id,
    _e.c.timestamp,
    _e.c.team_id,
    _e.c.provider,
    _e.c.model,
    _e.c.request_type,
    _e.c.currency,
    _e.c.user_id,
    _e.c.api_key_id,
    _e.c.session_id,
    _e.c.tags,
    _e.c.success,
    _e.c.input_tokens,
    _e.c.output_tokens,
    _e.c.cache_read_tokens,
    _e.c.cache_write_tokens,
    _e.c.reasoning_tokens,
    sa.type_coerce(_e.c.cost, _RAW).label("cost"),
    sa.type_coerce(_e.c.original_cost, _RAW).label("original_cost"),
    _e.c.cost_estimated,
    _e.c.tokens_estimated,
    _e.c.cached,
    sa.type_coerce(_e.c.cache_savings, _RAW).label("cache_savings"),
    _e.c.latency_ms,
)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue row: which events (or ``cost_adjustments`` rows) a write transaction stored."""

    id: int
    kind: Kind
    ids: list[Any]


@dataclass(frozen=True, slots=True)
class Pending:
    """The backlog: queue rows, the events and adjustments they list, when the oldest was written."""

    rows: int
    items: int
    oldest: datetime | None


def engine_of(store: object) -> LedgerEngine:
    """The engine of a SQL usage store (analytics needs the ledger's own database)."""
    return _engine_of(store, "analytics")


def enqueue(conn: sa.Connection, kind: Kind, ids: Sequence[Any], now: datetime) -> None:
    """Append one queue row listing ``ids`` (nothing when empty). Runs in the writer's transaction."""
    if ids:
        conn.execute(_INSERT, {"created_at": now, "kind": kind, "body": json.dumps(list(ids))})


def _rows(conn: sa.Connection, query: sa.Select[Any]) -> list[QueueRow]:
    return [QueueRow(row.id, row.kind, json.loads(row.body)) for row in conn.execute(query)]


def claim(conn: sa.Connection, max_items: int) -> list[QueueRow]:
    """Lock and return the oldest queue rows, at least one, until they list ``max_items`` or more items.

    PostgreSQL skips rows another worker holds; SQLite's write transaction already excludes others.
    """
    q = analytics_queue
    claimed: list[QueueRow] = []
    items, last = 0, None
    while items < max_items:
        query = sa.select(q.c.id, q.c.kind, q.c.body).order_by(q.c.id).limit(16)
        if last is not None:
            query = query.where(q.c.id > last)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        batch = _rows(conn, query)
        if not batch:
            break
        for row in batch:
            claimed.append(row)
            items += len(row.ids)
            last = row.id
            if items >= max_items:
                break
    return claimed


def queued(conn: sa.Connection) -> list[QueueRow]:
    """Every queue row not yet refreshed (what a query adds to the cubes), oldest first."""
    q = analytics_queue
    return _rows(conn, sa.select(q.c.id, q.c.kind, q.c.body).order_by(q.c.id))


def delete(conn: sa.Connection, ids: Sequence[int]) -> None:
    """Remove processed queue rows."""
    q = analytics_queue
    for start in range(0, len(ids), _CHUNK):
        conn.execute(sa.delete(q).where(q.c.id.in_(ids[start : start + _CHUNK])))


def pending(conn: sa.Connection) -> Pending:
    """The backlog: row count, listed items, oldest ``created_at``."""
    q = analytics_queue
    body = sa.cast(q.c.body, sa.JSON) if conn.dialect.name == "postgresql" else q.c.body
    row = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.func.json_array_length(body)), 0),
            sa.func.min(q.c.created_at),
        )
    ).one()
    return Pending(int(row[0]), int(row[1]), row[2])


def _chunks(ids: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def read_events(conn: sa.Connection, event_ids: Sequence[str]) -> Iterator[sa.Row[Any]]:
    """The analytics columns of the listed events (ids no longer stored are skipped)."""
    for chunk in _chunks(event_ids):
        yield from conn.execute(sa.select(*EVENT_COLUMNS).where(_e.c.event_id.in_(chunk)))


def read_adjustments(conn: sa.Connection, adjustment_ids: Sequence[int]) -> Iterator[sa.Row[Any]]:
    """Each listed adjustment (``old_units``/``new_units``: costs in 1e-12 units or None) with its event's
    analytics columns; adjustments of events no longer stored are skipped."""
    a = cost_adjustments
    columns = (
        a.c.id.label("adjustment_id"),
        sa.type_coerce(a.c.old_cost, _RAW).label("old_units"),
        sa.type_coerce(a.c.new_cost, _RAW).label("new_units"),
        *EVENT_COLUMNS,
    )
    for chunk in _chunks(adjustment_ids):
        query = sa.select(*columns).join_from(a, _e, a.c.event_id == _e.c.event_id).where(a.c.id.in_(chunk))
        yield from conn.execute(query.order_by(a.c.id))
