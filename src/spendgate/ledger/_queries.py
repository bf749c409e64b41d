"""SQL for reading events: filters, streamed event scans, summaries and totals.

Money sums stay exact on every backend: SQLite's ``SUM`` of 64-bit integers overflows past about
9.2 million dollars, so a cost is summed in two parts, ``SUM(cost / 2**32)`` and
``SUM(cost % 2**32)`` (both truncating, so ``cost == hi * 2**32 + lo``), recombined in Python. Each
partial sum fits 64 bits for billions of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from spendgate.errors import LedgerError
from spendgate.ledger._event import UsageEvent
from spendgate.ledger._money import from_units
from spendgate.ledger._query import DIMENSIONS, TEXT_FILTERS, Dimension, EventFilter, UsageSummary
from spendgate.ledger._rows import row_to_event
from spendgate.ledger._schema import usage_events

__all__ = ["count_events", "iter_events", "summarize", "totals_by", "where"]

_SPLIT = 2**32
_TOKEN_SUMS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def where(flt: EventFilter | None) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions for ``flt`` (an empty list for no filter)."""
    if flt is None:
        return []
    t = usage_events
    conditions: list[sa.ColumnElement[bool]] = []
    if flt.since is not None:
        conditions.append(t.c.timestamp >= flt.since)
    if flt.until is not None:
        conditions.append(t.c.timestamp < flt.until)
    for name in TEXT_FILTERS:
        value = getattr(flt, name)
        if value is not None:
            conditions.append(t.c[name] == value)
    if flt.success is not None:
        conditions.append(t.c.success.is_(flt.success))
    if flt.priced is not None:
        conditions.append(t.c.cost.is_not(None) if flt.priced else t.c.cost.is_(None))
    return conditions


def iter_events(conn: sa.Connection, flt: EventFilter | None, batch_size: int) -> Iterator[UsageEvent]:
    """Matching events ordered by (timestamp, event_id), fetched ``batch_size`` rows at a time."""
    t = usage_events
    query = sa.select(t).where(*where(flt)).order_by(t.c.timestamp, t.c.event_id)
    result = conn.execute(query.execution_options(yield_per=batch_size))
    for row in result.mappings():
        yield row_to_event(row)


def count_events(conn: sa.Connection, flt: EventFilter | None) -> int:
    """How many events match."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(usage_events).where(*where(flt))).scalar_one())


def _flag(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((column, 1), else_=0)), 0)


def _summary_columns() -> list[sa.Label[Any]]:
    t = usage_events
    cost = sa.type_coerce(t.c.cost, sa.BigInteger)
    priced_currency = sa.case((t.c.cost.is_not(None), t.c.currency))
    return [
        sa.func.count().label("requests"),
        _flag(t.c.success).label("successes"),
        *(sa.func.coalesce(sa.func.sum(t.c[name]), 0).label(name) for name in _TOKEN_SUMS),
        sa.func.coalesce(sa.func.sum(cost // _SPLIT), 0).label("cost_hi"),
        sa.func.coalesce(sa.func.sum(cost % _SPLIT), 0).label("cost_lo"),
        sa.func.count(t.c.cost).label("priced"),
        _flag(sa.or_(t.c.cost_estimated, t.c.tokens_estimated)).label("estimated"),
        _flag(t.c.cached).label("cached"),
        sa.func.coalesce(sa.func.sum(t.c.latency_ms), 0).label("latency_sum"),
        sa.func.count(t.c.latency_ms).label("latency_n"),
        sa.func.min(priced_currency).label("currency_min"),
        sa.func.max(priced_currency).label("currency_max"),
    ]


def _summary(row: Any, label: str) -> UsageSummary:
    if row.currency_min != row.currency_max:
        raise LedgerError(
            f"{label} spans several currencies ({row.currency_min}, {row.currency_max});"
            " filter by currency to sum costs"
        )
    requests, successes, latency_n = int(row.requests), int(row.successes), int(row.latency_n)
    units = int(row.cost_hi) * _SPLIT + int(row.cost_lo)
    return UsageSummary(
        requests=requests,
        successes=successes,
        failures=requests - successes,
        **{name: int(getattr(row, name)) for name in _TOKEN_SUMS},
        cost=from_units(units),
        currency=row.currency_min,
        unpriced_requests=requests - int(row.priced),
        estimated_requests=int(row.estimated),
        cached_requests=int(row.cached),
        avg_latency_ms=int(row.latency_sum) / latency_n if latency_n else None,
    )


def summarize(conn: sa.Connection, flt: EventFilter | None) -> UsageSummary:
    """Totals over the matching events."""
    row = conn.execute(sa.select(*_summary_columns()).select_from(usage_events).where(*where(flt))).one()
    return _summary(row, "the selection")


def totals_by(
    conn: sa.Connection, dimension: Dimension, flt: EventFilter | None
) -> list[tuple[str | None, UsageSummary]]:
    """Totals per value of ``dimension``, by cost (highest first), then requests, then value."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"cannot group by {dimension!r}; choose one of {', '.join(DIMENSIONS)}")
    column = usage_events.c[dimension]
    query = (
        sa.select(column.label("value"), *_summary_columns())
        .select_from(usage_events)
        .where(*where(flt))
        .group_by(column)
    )
    totals = [(row.value, _summary(row, f"{dimension}={row.value!r}")) for row in conn.execute(query)]
    return sorted(totals, key=_order)


def _order(item: tuple[str | None, UsageSummary]) -> tuple[Decimal, int, bool, str]:
    value, summary = item
    return (-summary.cost, -summary.requests, value is None, value or "")
