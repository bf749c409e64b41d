"""The raw events around a cube answer, grouped and summed by the database.

A query answered from a cube also reads raw events: those in the ragged edges of its period (with their
current cost) and those still queued for the worker whose timestamp falls in the periods the cube
answers (with their original cost, as the worker will add them). Both are summed here in SQL into the
cube's measure vector per output group, so Python handles groups rather than events; a percentile
sketch is built from each group's distinct values and their counts. The result is the same as
:func:`~spendgate.analytics._measures.event_delta` summed event by event (float sums of squares up to
rounding).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from spendgate.analytics._measures import COST, LATENCY, empty_values, merge_values
from spendgate.analytics._plan import ENTITY_FILTERS, PLAIN_FILTERS, Query, bucket_key
from spendgate.analytics._sketch import Sketch, bin_of
from spendgate.ledger._analytics_schema import (
    FLOAT_COLUMNS,
    MAX_COLUMNS,
    MIN_COLUMNS,
    MONEY_COLUMNS,
    SUM_COLUMNS,
    VALUE_LIMIT,
    analytics_queue,
)
from spendgate.ledger._schema import usage_events

__all__ = ["EdgeGroups", "Period", "event_keys", "sum_events"]

#: [since, until)
Period = tuple[datetime, datetime]
#: Output group key -> (measure vector, sketches by slot or ``None``).
EdgeGroups = dict[tuple[Any, ...], tuple[list[Any], tuple[Sketch, Sketch, Sketch] | None]]

_e = usage_events
_RAW = sa.BigInteger()
_SPLIT = 2**32
_UNIT = 1e12
_COLUMN = {"user": "user_id", "api_key": "api_key_id", "session": "session_id"}
# The finest bucket a time grouping needs; output buckets are derived from it in Python.
_FLOOR = {"minute": 16, "hour": 13, "how": 13, "day": 10, "week": 10, "month": 10}
_UNITS = {16: "minute", 13: "hour", 10: "day"}
_SUFFIX = {16: ":00", 13: ":00:00", 10: " 00:00:00"}


def _flag(condition: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _measures(cost: sa.ColumnElement[Any]) -> list[sa.ColumnElement[Any]]:
    """Aggregates in :data:`MEASURE_COLUMNS` order; money in two 32-bit halves (as the cubes are read)."""
    tokens = _e.c.input_tokens + _e.c.output_tokens
    savings = sa.type_coerce(_e.c.cache_savings, _RAW)
    sums: dict[str, list[sa.ColumnElement[Any]]] = {
        "requests": [sa.func.count()],
        "successes": [_flag(_e.c.success)],
        "failures": [_flag(sa.not_(_e.c.success))],
        "cost": [sa.func.sum(cost // _SPLIT), sa.func.sum(cost % _SPLIT)],
        "unpriced_requests": [_flag(cost.is_(None))],
        "estimated_requests": [_flag(sa.or_(_e.c.cost_estimated, _e.c.tokens_estimated))],
        "cached_requests": [_flag(_e.c.cached)],
        "cache_savings": [sa.func.sum(savings // _SPLIT), sa.func.sum(savings % _SPLIT)],
        "latency_sum": [sa.func.sum(_e.c.latency_ms)],
        "latency_requests": [sa.func.count(_e.c.latency_ms)],
    }
    columns = [c for name in SUM_COLUMNS for c in sums.get(name) or [sa.func.sum(_e.c[name])]]
    bases = {
        "latency_sq": sa.cast(_e.c.latency_ms, sa.Float),
        "cost_sq": sa.cast(cost, sa.Float) / _UNIT,
        "tokens_sq": sa.cast(tokens, sa.Float),
    }
    columns += [sa.func.sum(bases[name] * bases[name]) for name in FLOAT_COLUMNS]
    extremes = {"latency": _e.c.latency_ms, "tokens": tokens}
    columns += [sa.func.min(extremes[name.removesuffix("_min")]) for name in MIN_COLUMNS]
    columns += [sa.func.max(extremes[name.removesuffix("_max")]) for name in MAX_COLUMNS]
    return columns


def _vector(row: Sequence[Any]) -> list[Any]:
    """A measure vector from a row of :func:`_measures` (NULL sums are 0)."""
    values, i = empty_values(), 0
    for k, name in enumerate(SUM_COLUMNS):
        if name in MONEY_COLUMNS:
            values[k] = int(row[i] or 0) * _SPLIT + int(row[i + 1] or 0)
            i += 2
        else:
            values[k] = int(row[i] or 0)
            i += 1
    k = len(SUM_COLUMNS)
    for offset in range(len(FLOAT_COLUMNS)):
        values[k + offset] = float(row[i + offset] or 0.0)
    i, k = i + len(FLOAT_COLUMNS), k + len(FLOAT_COLUMNS)
    values[k:] = [None if v is None else int(v) for v in row[i:]]
    return values


class _Select:
    """The FROM, WHERE and output-key columns shared by one query's measure and sketch statements."""

    def __init__(self, conn: sa.Connection, query: Query, periods: Sequence[Period], tail: bool) -> None:
        self.postgres = conn.dialect.name == "postgresql"
        group = query.group
        self.cost = sa.type_coerce(_e.c.original_cost if tail else _e.c.cost, _RAW)
        self.source: sa.FromClause = _e
        self.where: list[sa.ColumnElement[bool]] = [
            sa.or_(*(sa.and_(_e.c.timestamp >= since, _e.c.timestamp < until) for since, until in periods))
        ]
        self.where += [_e.c[name] == value for name, value in query.filters.items() if name in PLAIN_FILTERS]
        if tail:
            self.where.append(_e.c.event_id.in_(self._queued_ids()))
        # Keys are expressions, not bare columns: SQLite would otherwise scan a whole (provider, model, ...)
        # index in GROUP BY order rather than search the timestamp index for the few events of the periods.
        self.keys: list[sa.ColumnElement[Any]] = [sa.func.coalesce(_e.c[name], "") for name in group.columns]
        entity_filters = {ENTITY_FILTERS[n]: v for n, v in query.filters.items() if n in ENTITY_FILTERS}
        entity = group.entity or next(iter(entity_filters), None)
        if entity is not None:
            value = self._entity(entity)
            self.where.append(value != "")
            if entity in entity_filters:
                self.where.append(value == entity_filters[entity])
            if group.entity is not None:
                self.keys.append(value)
        self.floor = _FLOOR[group.time] if group.time else None
        if self.floor is not None:
            self.keys.append(self._bucket(self.floor))
        self.to_bucket = bucket_key(group.time) if group.time else None

    def _queued_ids(self) -> sa.Select[Any]:
        q = analytics_queue
        if self.postgres:
            ids = sa.func.jsonb_array_elements_text(sa.cast(q.c.body, JSONB))
            return sa.select(ids).where(q.c.kind == "events")
        listed = sa.func.json_each(q.c.body).table_valued("value")
        return sa.select(listed.c.value).select_from(sa.join(q, listed, sa.true())).where(q.c.kind == "events")

    def _entity(self, entity: str) -> sa.ColumnElement[Any]:
        """The entity's value per row (tags: one row per ``key=value`` of at most :data:`VALUE_LIMIT`)."""
        if entity != "tag":
            return sa.func.coalesce(_e.c[_COLUMN[entity]], "")
        pairs = (sa.func.jsonb_each_text if self.postgres else sa.func.json_each)(_e.c.tags)
        tags = pairs.table_valued("key", "value").alias("tag_pairs")
        self.source = sa.join(self.source, tags, sa.true())
        tag = sa.cast(tags.c.key, sa.Text) + "=" + sa.cast(tags.c.value, sa.Text)
        self.where.append(sa.func.length(tag) <= VALUE_LIMIT)
        return tag

    def _bucket(self, width: int) -> sa.ColumnElement[Any]:
        if self.postgres:
            return sa.func.date_trunc(_UNITS[width], sa.func.timezone("UTC", _e.c.timestamp))
        return sa.func.substr(sa.cast(_e.c.timestamp, sa.Text), 1, width)

    def key(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """The output key of a result row's leading key columns (``''``/NULL become ``None``)."""
        out = [v or None for v in row[: len(self.keys)]]
        if self.floor is not None and self.to_bucket is not None:
            raw = row[len(self.keys) - 1]
            moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw + _SUFFIX[self.floor])
            out[-1] = self.to_bucket(moment.replace(tzinfo=UTC))
        return tuple(out)

    def statement(self, *columns: sa.ColumnElement[Any]) -> sa.Select[Any]:
        query = sa.select(*self.keys, *columns).select_from(self.source).where(*self.where)
        return query.group_by(*self.keys) if self.keys else query


def _sketched(select: _Select, slot: int) -> sa.ColumnElement[Any]:
    """The value a sketch slot bins (cost in 1e-12 units)."""
    if slot == LATENCY:
        return _e.c.latency_ms
    if slot == COST:
        return select.cost
    return _e.c.input_tokens + _e.c.output_tokens


def sum_events(conn: sa.Connection, query: Query, periods: Iterable[Period], *, tail: bool, into: EdgeGroups) -> None:
    """Add the events timestamped in ``periods`` that match ``query``'s filters, per output group.

    ``tail``: only the events still listed in the analytics queue, with their original cost (what the
    worker will add); otherwise every event, with its current cost. Sketches (``query.slots``) when
    ``query.sketches``.
    """
    periods = list(periods)
    if not periods:
        return
    select = _Select(conn, query, periods, tail)
    for row in conn.execute(select.statement(*_measures(select.cost))):
        if row[len(select.keys)]:  # no events: an aggregate without GROUP BY still returns one row
            key = select.key(row)
            found = into.get(key)
            vector = _vector(row[len(select.keys) :])
            if found is None:
                sketches = (Sketch(), Sketch(), Sketch()) if query.sketches else None
                into[key] = (vector, sketches)
            else:
                merge_values(found[0], vector)
    if not query.sketches:
        return
    for slot in query.slots:
        value = _sketched(select, slot)
        statement = select.statement(sa.func.count(), value).where(value.is_not(None)).group_by(value)
        for row in conn.execute(statement):
            sketches = into[select.key(row)][1]
            assert sketches is not None  # built with sketches above
            count, raw = row[len(select.keys)], row[len(select.keys) + 1]
            sketches[slot].add_bin(bin_of(raw / _UNIT if slot == COST else raw), count)


def event_keys(conn: sa.Connection, query: Query, periods: Iterable[Period], *, tail: bool) -> set[tuple[Any, ...]]:
    """The output keys the events :func:`sum_events` would add fall under (no measures summed)."""
    periods = list(periods)
    if not periods:
        return set()
    select = _Select(conn, query, periods, tail)
    return {select.key(row) for row in conn.execute(select.statement(sa.func.count())) if row[len(select.keys)]}
