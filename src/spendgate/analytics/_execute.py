"""Run a planned query in one snapshot: cube segments, raw segments and the not-yet-refreshed tail.

Cube segments are summed in SQL (sketches merged in Python). Raw segments are read from
``usage_events`` with the current cost. The tail (events and re-ratings still in the analytics queue)
is added for the periods answered from cubes, events with their original cost and re-ratings as
``new - old``, exactly as the worker will add them, so an answer is exact and current whether or not
the worker has run. Everything is read in one transaction (REPEATABLE READ on PostgreSQL), so a refresh
committing meanwhile is seen either entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from spendgate.analytics._measures import Agg, Cell, Delta, adjustment_delta, event_delta, merge_values
from spendgate.analytics._plan import ENTITY_FILTERS, PLAIN_FILTERS, Plan, Query, bucket_key
from spendgate.analytics._refresh import entity_values
from spendgate.ledger._analytics_cubes import Window, aggregate, count_distinct, sketch_rows
from spendgate.ledger._analytics_queue import EVENT_COLUMNS, queued, read_adjustments, read_events
from spendgate.ledger._analytics_schema import SKETCH_COLUMNS
from spendgate.ledger._schema import usage_events

__all__ = ["Groups", "Tail", "count_keys", "execute"]

#: Output group key -> aggregate.
Groups = dict[tuple[Any, ...], Agg]
_e = usage_events


def _cube_key(query: Query, plan: Plan) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Output key of a cube group (``''`` dimensions become ``None``; bucket starts become output buckets)."""
    to_bucket = bucket_key(query.group.time) if query.group.time else None

    def key(values: tuple[Any, ...]) -> tuple[Any, ...]:
        out = [v or None for v in values]
        if to_bucket is not None:
            out[-1] = to_bucket(values[-1])
        return tuple(out)

    return key


def _event_keys(query: Query) -> Callable[[Any], list[tuple[Any, ...]]]:
    """Output keys an event counts under (none when it fails a filter or lacks the grouped entity)."""
    group = query.group
    plain = [(name, value) for name, value in query.filters.items() if name in PLAIN_FILTERS]
    entity_filters = [(ENTITY_FILTERS[name], value) for name, value in query.filters.items() if name in ENTITY_FILTERS]
    to_bucket = bucket_key(group.time) if group.time else None

    def keys(row: Any) -> list[tuple[Any, ...]]:
        if any((getattr(row, name) or "") != value for name, value in plain):
            return []
        pairs = entity_values(row) if entity_filters or group.entity else []
        if any(pair not in pairs for pair in entity_filters):
            return []
        base = tuple(getattr(row, name) or None for name in group.columns)
        if group.entity is not None:
            heads = [(*base, value) for dimension, value in pairs if dimension == group.entity]
        else:
            heads = [base]
        if to_bucket is not None:
            bucket = to_bucket(row.timestamp)
            return [(*head, bucket) for head in heads]
        return heads

    return keys


class _Collector:
    """Raw and tail contributions per output key, folded into the groups at the end."""

    def __init__(self, query: Query) -> None:
        self.cells: dict[tuple[Any, ...], Cell] = {}
        self.keys = _event_keys(query)
        self.sketches = query.sketches
        self.slots = query.slots

    def add(self, row: Any, delta: Delta) -> None:
        for key in self.keys(row):
            cell = self.cells.get(key)
            if cell is None:
                cell = self.cells[key] = Cell(self.sketches)
            cell.add(delta)

    def fold(self, groups: Groups) -> None:
        for key, cell in self.cells.items():
            agg = groups.get(key)
            if agg is None:
                agg = groups[key] = Agg(self.sketches, self.slots)
            agg.add_cell(cell)


def _raw_where(query: Query, since: datetime, until: datetime) -> list[sa.ColumnElement[bool]]:
    conditions = [_e.c.timestamp >= since, _e.c.timestamp < until]
    for name, value in query.filters.items():
        if name != "tag":
            conditions.append(_e.c[name] == value)
    return conditions


def _in(moment: datetime, ranges: Iterable[tuple[datetime, datetime]]) -> bool:
    return any(start <= moment < end for start, end in ranges)


def _windows(plan: Plan) -> list[Window]:
    return [(s.granularity, s.since, s.until) for s in plan.segments if s.granularity is not None]


def _raw_rows(conn: sa.Connection, query: Query, plan: Plan, tail: Tail) -> Iterator[Any]:
    for segment in plan.segments:
        if segment.granularity is None:
            if plan.cube is None:  # a whole period without a cube: streamed, never kept
                yield from conn.execute(
                    sa.select(*EVENT_COLUMNS).where(*_raw_where(query, segment.since, segment.until))
                )
            else:  # the ragged edges around cube buckets: small, shared by the parts of one answer
                yield from tail.raw(query, segment.since, segment.until)


def execute(conn: sa.Connection, query: Query, plan: Plan, tail: Tail) -> Groups:
    """The groups answering ``query`` (``tail``: the snapshot's queued items, added to cube periods)."""
    groups: Groups = {}
    collector = _Collector(query)
    for row in _raw_rows(conn, query, plan, tail):
        collector.add(row, event_delta(row, row.cost))
    windows = _windows(plan)
    if plan.cube is not None and windows:
        key = _cube_key(query, plan)
        for values, measures in aggregate(conn, plan.cube, windows, plan.cube_filters, plan.group_columns):
            out = key(values)
            agg = groups.get(out)
            if agg is None:
                agg = groups[out] = Agg(query.sketches, query.slots)
            merge_values(agg.values, measures)
        if query.sketches:
            names = [SKETCH_COLUMNS[slot] for slot in query.slots]
            for values, texts in sketch_rows(conn, plan.cube, windows, plan.cube_filters, plan.group_columns, names):
                agg = groups.get(key(values))
                if agg is not None:
                    agg.add_texts(texts)
        tail.add_to(collector, [(w[1], w[2]) for w in windows])
    collector.fold(groups)
    return groups


def count_keys(conn: sa.Connection, query: Query, plan: Plan, tail: Tail) -> list[int]:
    """How many distinct values each grouping column of ``query`` takes (measures are not computed).

    From a cube: ``COUNT(DISTINCT)`` over its rows, plus the values seen only in raw segments or the tail.
    """
    keys = _event_keys(query)
    extra: list[set[Any]] = [set() for _ in plan.group_columns]
    windows = _windows(plan)

    def see(row: Any) -> None:
        for key in keys(row):
            for i, value in enumerate(key):
                extra[i].add(value)

    for row in _raw_rows(conn, query, plan, tail):
        see(row)
    if plan.cube is None or not windows:
        return [len(values - {None}) for values in extra]
    ranges = [(w[1], w[2]) for w in windows]
    for event in tail.rows()[0]:
        if _in(event.timestamp, ranges):
            see(event)
    return count_distinct(conn, plan.cube, windows, plan.cube_filters, plan.group_columns, extra)


class Tail:
    """The queued (not yet refreshed) events and re-ratings, read once per snapshot."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._loaded: tuple[list[Any], list[Any]] | None = None
        self._raw: dict[tuple[datetime, datetime, tuple[tuple[str, str], ...]], list[Any]] = {}
        self.items = 0

    def raw(self, query: Query, since: datetime, until: datetime) -> list[Any]:
        """The raw events of ``[since, until)`` matching ``query``'s filters, read once per snapshot (the
        parts of one answer, e.g. a summary's totals and its distinct counts, share their ragged edges)."""
        key = (since, until, tuple(sorted(query.filters.items())))
        found = self._raw.get(key)
        if found is None:
            statement = sa.select(*EVENT_COLUMNS).where(*_raw_where(query, since, until))
            found = self._raw[key] = list(self._conn.execute(statement))
        return found

    def rows(self) -> tuple[list[Any], list[Any]]:
        """(event rows, adjustment rows) of every queue row."""
        if self._loaded is None:
            queue = queued(self._conn)
            event_ids = [i for row in queue if row.kind == "events" for i in row.ids]
            adjustment_ids = [i for row in queue if row.kind == "adjustments" for i in row.ids]
            self.items = len(event_ids) + len(adjustment_ids)
            self._loaded = (
                list(read_events(self._conn, event_ids)),
                list(read_adjustments(self._conn, adjustment_ids)),
            )
        return self._loaded

    def add_to(self, collector: _Collector, ranges: list[tuple[datetime, datetime]]) -> None:
        """Add the queued items timestamped in ``ranges`` (the periods answered from cubes)."""
        events, adjustments = self.rows()
        for event in events:
            if _in(event.timestamp, ranges):
                collector.add(event, event_delta(event, event.original_cost))
        for adjustment in adjustments:
            if _in(adjustment.timestamp, ranges):
                collector.add(adjustment, adjustment_delta(adjustment.old_units, adjustment.new_units))
