"""Hourly and daily rollups: per-batch deltas computed in Python, upserted in the same transaction.

A rollup key is (granularity, UTC bucket start, user, team, api key, provider, model, currency);
unset dimensions are ``''``. :class:`RollupAccumulator` sums contributions per key (events, or cost
changes from re-rating); the sums are applied with
``INSERT ... ON CONFLICT (key) DO UPDATE SET col = col + excluded.col`` on both backends. The same
accumulator, fed from the raw events, is what :func:`check_rollups` compares the table with and what
:func:`rebuild_rollups` writes, so the three can never disagree about what a rollup means.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from spendgate.ledger._bulk import BulkInsert
from spendgate.ledger._event import UsageEvent
from spendgate.ledger._money import from_units, to_units
from spendgate.ledger._query import Granularity, RollupRow
from spendgate.ledger._rows import row_to_event
from spendgate.ledger._schema import ROLLUP_KEY_COLUMNS, ROLLUP_SUM_COLUMNS, usage_events, usage_rollups

__all__ = [
    "GRANULARITIES",
    "RollupAccumulator",
    "bucket_start",
    "check_rollups",
    "read_rollups",
    "rollup_dims",
    "rebuild_rollups",
    "RollupUpsert",
]

GRANULARITIES: tuple[Granularity, ...] = ("hour", "day")
_COST = ROLLUP_SUM_COLUMNS.index("cost")
_UNPRICED = ROLLUP_SUM_COLUMNS.index("unpriced_requests")
_WIDTH = len(ROLLUP_SUM_COLUMNS)

#: (user_id, team_id, api_key_id, provider, model, currency) with '' for unset ids.
Dims = tuple[str, str, str, str, str, str]
#: (granularity, bucket_start, *Dims)
Key = tuple[str, datetime, str, str, str, str, str, str]


def bucket_start(timestamp: datetime, granularity: Granularity) -> datetime:
    """Start of the UTC hour or day containing the (UTC) ``timestamp``."""
    if granularity == "hour":
        return timestamp.replace(minute=0, second=0, microsecond=0)
    return timestamp.replace(hour=0, minute=0, second=0, microsecond=0)


def rollup_dims(
    user_id: str | None, team_id: str | None, api_key_id: str | None, provider: str, model: str, currency: str
) -> Dims:
    """The dimensions part of a rollup key (unset ids become ``''``)."""
    return (user_id or "", team_id or "", api_key_id or "", provider, model, currency)


def _units(cost: Decimal | None) -> int:
    return 0 if cost is None else to_units(cost)


class RollupAccumulator:
    """Sums of rollup columns per key; costs are kept as integer 1e-12 units, as stored."""

    def __init__(self) -> None:
        self._sums: dict[Key, list[int]] = {}

    def __len__(self) -> int:
        return len(self._sums)

    def add_event(self, event: UsageEvent) -> None:
        """Count one newly stored event."""
        usage = event.usage
        self._add(
            event.timestamp,
            rollup_dims(event.user_id, event.team_id, event.api_key_id, event.provider, event.model, event.currency),
            [
                1,
                int(event.success),
                int(not event.success),
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.reasoning_tokens,
                _units(event.cost),
                int(event.cost is None),
                int(event.cost_estimated or event.tokens_estimated),
                event.latency_ms or 0,
                int(event.latency_ms is not None),
                int(event.cached),
            ],
        )

    def add_cost_change(self, timestamp: datetime, dims: Dims, old: Decimal | None, new: Decimal | None) -> None:
        """Move one event's cost from ``old`` to ``new`` (``None`` = unpriced)."""
        delta = [0] * _WIDTH
        delta[_COST] = _units(new) - _units(old)
        delta[_UNPRICED] = int(new is None) - int(old is None)
        self._add(timestamp, dims, delta)

    def _add(self, timestamp: datetime, dims: Dims, values: list[int]) -> None:
        for granularity in GRANULARITIES:
            key: Key = (granularity, bucket_start(timestamp, granularity), *dims)
            sums = self._sums.get(key)
            if sums is None:
                self._sums[key] = list(values)
            else:
                for i, value in enumerate(values):
                    sums[i] += value

    def sums(self) -> Mapping[Key, list[int]]:
        """The accumulated sums per key."""
        return self._sums

    def rows(self) -> list[dict[str, Any]]:
        """Rows to upsert, sorted by key (a stable lock order for concurrent writers)."""
        out = []
        for key in sorted(self._sums):
            row: dict[str, Any] = dict(zip(ROLLUP_KEY_COLUMNS, key, strict=True))
            row.update(zip(ROLLUP_SUM_COLUMNS, self._sums[key], strict=True))
            row["cost"] = from_units(row["cost"])
            out.append(row)
        return out


class RollupUpsert:
    """``INSERT ... ON CONFLICT (key) DO UPDATE SET col = col + excluded.col`` for one dialect."""

    def __init__(self, dialect_name: str) -> None:
        self._bulk = BulkInsert(dialect_name, usage_rollups)
        stmt = self._bulk.statement
        sums: dict[str, Any] = {name: usage_rollups.c[name] + stmt.excluded[name] for name in ROLLUP_SUM_COLUMNS}
        if dialect_name == "sqlite":
            # SQLite turns an overflowing integer sum into a float; make it NULL instead, which the
            # NOT NULL constraint refuses, so the transaction fails rather than storing an inexact cost.
            total = sums["cost"]
            sums["cost"] = sa.case((sa.func.typeof(total) == "integer", total), else_=sa.null())
        self.statement = stmt.on_conflict_do_update(index_elements=list(ROLLUP_KEY_COLUMNS), set_=sums)

    def execute(self, conn: sa.Connection, acc: RollupAccumulator) -> None:
        """Add the accumulated sums to the rollup table."""
        if len(acc):
            conn.execute(self.statement, self._bulk.parameters(acc.rows()))


def _events_accumulator(conn: sa.Connection, since: datetime | None) -> RollupAccumulator:
    """Rollups recomputed from every raw event (from ``since`` on), streamed."""
    acc = RollupAccumulator()
    query = sa.select(usage_events)
    if since is not None:
        query = query.where(usage_events.c.timestamp >= since)
    result = conn.execute(query.execution_options(yield_per=2000))
    for row in result.mappings():
        acc.add_event(row_to_event(row))
    return acc


def read_rollups(
    conn: sa.Connection, granularity: Granularity, since: datetime | None, until: datetime | None
) -> list[RollupRow]:
    """Rollup rows of one granularity whose bucket starts in ``[since, until)``, in key order."""
    t = usage_rollups
    query = sa.select(t).where(t.c.granularity == granularity)
    if since is not None:
        query = query.where(t.c.bucket_start >= since)
    if until is not None:
        query = query.where(t.c.bucket_start < until)
    query = query.order_by(*(t.c[name] for name in ROLLUP_KEY_COLUMNS))
    return [RollupRow(**row) for row in conn.execute(query).mappings()]


def _table_sums(conn: sa.Connection, since: datetime | None) -> dict[Key, list[int]]:
    out: dict[Key, list[int]] = {}
    for granularity in GRANULARITIES:
        for row in read_rollups(conn, granularity, since, None):
            key: Key = tuple(getattr(row, name) for name in ROLLUP_KEY_COLUMNS)
            values = [getattr(row, name) for name in ROLLUP_SUM_COLUMNS]
            values[_COST] = to_units(values[_COST])
            out[key] = values
    return out


def _describe(key: Key) -> str:
    granularity, start, *dims = key
    labels = ", ".join(f"{name}={value!r}" for name, value in zip(ROLLUP_KEY_COLUMNS[2:], dims, strict=True))
    return f"{granularity} {start.isoformat()} ({labels})"


def check_rollups(conn: sa.Connection, since: datetime | None = None) -> list[str]:
    """Differences between the rollup table and rollups recomputed from the raw events.

    ``since`` (a UTC midnight: where retention has deleted raw events before) limits the comparison to
    buckets from then on; older rollups have outlived their events on purpose.
    """
    expected = _events_accumulator(conn, since).sums()
    actual = _table_sums(conn, since)
    problems: list[str] = []
    for key in sorted(set(expected) | set(actual)):
        want, have = expected.get(key), actual.get(key)
        if want is None:
            problems.append(f"{_describe(key)}: rollup row without events")
        elif have is None:
            problems.append(f"{_describe(key)}: events without a rollup row")
        elif want != have:
            diffs = ", ".join(
                f"{name} {_show(name, got)} != {_show(name, exp)}"
                for name, got, exp in zip(ROLLUP_SUM_COLUMNS, have, want, strict=True)
                if got != exp
            )
            problems.append(f"{_describe(key)}: rollup vs events: {diffs}")
    return problems


def _show(name: str, value: int) -> str:
    return str(from_units(value)) if name == "cost" else str(value)


def rebuild_rollups(conn: sa.Connection, since: datetime | None = None) -> int:
    """Replace rollup rows with sums recomputed from the raw events; returns the row count.

    With ``since`` (see :func:`check_rollups`) only buckets from then on are replaced.
    """
    acc = _events_accumulator(conn, since)
    delete = sa.delete(usage_rollups)
    conn.execute(delete if since is None else delete.where(usage_rollups.c.bucket_start >= since))
    RollupUpsert(conn.dialect.name).execute(conn, acc)
    return len(acc)
