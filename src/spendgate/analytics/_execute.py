"""Run a planned query in one snapshot: cube segments, raw segments and the not-yet-refreshed tail.

Cube segments are summed in SQL (sketches merged in Python). Raw segments are read from
``usage_events`` with the current cost. The tail (events and re-ratings still in the analytics queue)
is added for the periods answered from cubes, events with their original cost and re-ratings as
``new - old``, exactly as the worker will add them, so an answer is exact and current whether or not
the worker has run. Under a cube, raw segments and queued events are grouped and summed by the
database (:mod:`spendgate.analytics._edges`); only a query no cube covers reads events one by one.
Everything is read in one transaction (REPEATABLE READ on PostgreSQL), so a refresh committing
meanwhile is seen either entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from spendgate.analytics._edges import EdgeGroups, Period, event_keys, sum_events
from spendgate.analytics._measures import Agg, Cell, Delta, adjustment_delta, event_delta, merge_values
from spendgate.analytics._plan import ENTITY_FILTERS, PLAIN_FILTERS, Plan, Query, bucket_key
from spendgate.analytics._refresh import entity_values
from spendgate.ledger._analytics_cubes import Window, aggregate, count_distinct, sketch_rows
from spendgate.ledger._analytics_queue import EVENT_COLUMNS, queued, read_adjustments
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


def _raw_scan(conn: sa.Connection, query: Query) -> Iterator[Any]:
    """Every event of the period matching the filters (a query no cube covers), streamed."""
    conditions = [_e.c.timestamp >= query.since, _e.c.timestamp < query.until]
    conditions += [_e.c[name] == value for name, value in query.filters.items() if name != "tag"]
    yield from conn.execute(sa.select(*EVENT_COLUMNS).where(*conditions))


def _windows(plan: Plan) -> list[Window]:
    return [(s.granularity, s.since, s.until) for s in plan.segments if s.granularity is not None]


def _edges(conn: sa.Connection, query: Query, plan: Plan, tail: Tail) -> EdgeGroups:
    """The raw segments (current cost) and the queued events in the cube periods (original cost), per group."""
    edges: EdgeGroups = {}
    tail.load()
    sum_events(conn, query, _raw_periods(plan), tail=False, into=edges)
    if tail.events:
        sum_events(conn, query, _ranges(plan), tail=True, into=edges)
    return edges


def _ranges(plan: Plan) -> list[Period]:
    """The periods answered from cube rows."""
    return [(s.since, s.until) for s in plan.segments if s.granularity is not None]


def _raw_periods(plan: Plan) -> list[Period]:
    """The periods read from raw events (the ragged edges)."""
    return [(s.since, s.until) for s in plan.segments if s.granularity is None]


def _group(groups: Groups, key: tuple[Any, ...], query: Query) -> Agg:
    agg = groups.get(key)
    if agg is None:
        agg = groups[key] = Agg(query.sketches, query.slots)
    return agg


def execute(conn: sa.Connection, query: Query, plan: Plan, tail: Tail) -> Groups:
    """The groups answering ``query`` (``tail``: the snapshot's queued items, added to cube periods)."""
    groups: Groups = {}
    collector = _Collector(query)
    if plan.cube is None:
        for row in _raw_scan(conn, query):
            collector.add(row, event_delta(row, row.cost))
        collector.fold(groups)
        return groups
    windows = _windows(plan)
    if windows:
        key = _cube_key(query, plan)
        cube_rows = aggregate(conn, plan.cube, windows, plan.cube_filters, plan.group_columns, query.measures)
        for values, measures in cube_rows:
            merge_values(_group(groups, key(values), query).values, measures)
        if query.sketches:
            names = [SKETCH_COLUMNS[slot] for slot in query.slots]
            for values, texts in sketch_rows(conn, plan.cube, windows, plan.cube_filters, plan.group_columns, names):
                agg = groups.get(key(values))
                if agg is not None:
                    agg.add_texts(texts)
    for out, (measures, sketches) in _edges(conn, query, plan, tail).items():
        agg = _group(groups, out, query)
        merge_values(agg.values, measures)
        if agg.sketches is not None and sketches is not None:
            for target, sketch in zip(agg.sketches, sketches, strict=True):
                target.add_sketch(sketch)
    tail.add_adjustments(collector, _ranges(plan))
    collector.fold(groups)
    return groups


def count_keys(conn: sa.Connection, query: Query, plan: Plan, tail: Tail) -> list[int]:
    """How many distinct values each grouping column of ``query`` takes (measures are not computed).

    From a cube: ``COUNT(DISTINCT)`` over its rows, plus the values seen only in raw segments or the tail.
    """
    extra: list[set[Any]] = [set() for _ in plan.group_columns]
    if plan.cube is None:
        keys = _event_keys(query)
        found: Iterator[tuple[Any, ...]] = (key for row in _raw_scan(conn, query) for key in keys(row))
    else:
        tail.load()
        seen = event_keys(conn, query, _raw_periods(plan), tail=False)
        if tail.events:
            seen |= event_keys(conn, query, _ranges(plan), tail=True)
        found = iter(seen)
    for key in found:
        for i, value in enumerate(key):
            extra[i].add(value)
    windows = _windows(plan)
    if plan.cube is None or not windows:
        return [len(values - {None}) for values in extra]
    return count_distinct(conn, plan.cube, windows, plan.cube_filters, plan.group_columns, extra)


class Tail:
    """The analytics queue as one snapshot sees it: how many events it lists, and its re-ratings.

    Queued events are summed by the database (:func:`~spendgate.analytics._edges.sum_events`);
    re-ratings are read here, once per snapshot, and added event by event.
    """

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._adjustment_ids: list[Any] | None = None
        self._adjustments: list[Any] | None = None
        self.events = 0
        self.items = 0

    def load(self) -> None:
        """Read the queue rows (once)."""
        if self._adjustment_ids is None:
            queue = queued(self._conn)
            self.events = sum(len(row.ids) for row in queue if row.kind == "events")
            self._adjustment_ids = [i for row in queue if row.kind == "adjustments" for i in row.ids]
            self.items = self.events + len(self._adjustment_ids)

    def add_adjustments(self, collector: _Collector, ranges: list[Period]) -> None:
        """Add the queued re-ratings of events timestamped in ``ranges`` (the periods answered from cubes)."""
        self.load()
        if self._adjustments is None:
            self._adjustments = list(read_adjustments(self._conn, self._adjustment_ids or []))
        for adjustment in self._adjustments:
            if any(start <= adjustment.timestamp < end for start, end in ranges):
                collector.add(adjustment, adjustment_delta(adjustment.old_units, adjustment.new_units))
