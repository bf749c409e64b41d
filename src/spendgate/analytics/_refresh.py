"""The analytics worker: drain the queue the write path fills into the cubes, exactly once.

One :func:`refresh` call is one transaction: claim the oldest queue rows (PostgreSQL
``FOR UPDATE SKIP LOCKED``, so replicas can run it at the same time; SQLite's write lock), read the
events and adjustments they list, sum their deltas per cube row in Python, merge them into the cubes
and delete the queue rows. An event counts with its ``original_cost`` (as first recorded, never
changed) and each re-rating adds ``new - old``, so the cubes are exact whatever order inserts and
re-ratings are refreshed in.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from spendgate.analytics._measures import Cell, Delta, adjustment_delta, event_delta
from spendgate.errors import InvalidUsageError
from spendgate.ledger._analytics_cubes import CubeWriter, prune
from spendgate.ledger._analytics_queue import Pending, claim, delete, engine_of, read_adjustments, read_events
from spendgate.ledger._analytics_queue import pending as queue_pending
from spendgate.ledger._analytics_schema import (
    CUBES,
    ENTITY,
    ENTITY_MODEL,
    MAIN,
    SERIES,
    VALUE_LIMIT,
    CubeSpec,
)
from spendgate.ledger._store import UsageStore

__all__ = ["Pending", "RefreshJob", "entity_values", "pending", "prune_cubes", "refresh"]

#: Default cap on the events and adjustments one refresh transaction takes.
DEFAULT_MAX_EVENTS = 20_000


def entity_values(row: Any) -> list[tuple[str, str]]:
    """The (dimension, value) pairs an event counts under in the entity cubes."""
    out: list[tuple[str, str]] = []
    if row.user_id:
        out.append(("user", row.user_id))
    if row.api_key_id:
        out.append(("api_key", row.api_key_id))
    if row.session_id:
        out.append(("session", row.session_id))
    if row.tags:
        for key, value in row.tags.items():
            tag = f"{key}={value}"
            if len(tag) <= VALUE_LIMIT:
                out.append(("tag", tag))
    return out


def _buckets(row: Any) -> tuple[datetime, datetime]:
    minute = row.timestamp.replace(second=0, microsecond=0)
    return minute, minute.replace(minute=0)


def _day(hour: datetime) -> datetime:
    return hour.replace(hour=0)


class _Deltas:
    """Cube row deltas of one refresh batch.

    Each event is added to its finest rows only (series minute, main hour, entity hour, entity-model
    day); the coarser rows (series hour/day, main day, entity day) are rolled up from those.
    """

    def __init__(self) -> None:
        self.cells: dict[str, dict[tuple[Any, ...], Cell]] = {name: {} for name in CUBES}

    def _cell(self, spec: CubeSpec, key: tuple[Any, ...]) -> Cell:
        cells = self.cells[spec.name]
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = Cell(spec.sketches)
        return cell

    def add(self, row: Any, delta: Delta) -> None:
        minute, hour = _buckets(row)
        team, currency = row.team_id or "", row.currency
        self._cell(SERIES, ("minute", minute, currency)).add(delta)
        self._cell(MAIN, ("hour", hour, team, row.provider, row.model, row.request_type or "", currency)).add(delta)
        day = _day(hour)
        for dimension, value in entity_values(row):
            self._cell(ENTITY, ("hour", dimension, hour, value, team, currency)).add(delta)
            self._cell(ENTITY_MODEL, ("day", dimension, day, value, team, row.provider, row.model, currency)).add(delta)

    def roll_up(self) -> None:
        """Derive the coarser rows from the finest ones."""
        for key, cell in list(self.cells[MAIN.name].items()):
            _, hour, *rest = key
            self._cell(MAIN, ("day", _day(hour), *rest)).add_cell(cell)
            self._cell(SERIES, ("hour", hour, rest[-1])).add_cell(cell)
        for key, cell in list(self.cells[MAIN.name].items()):
            if key[0] == "day":
                self._cell(SERIES, ("day", key[1], key[-1])).add_cell(cell)
        for key, cell in list(self.cells[ENTITY.name].items()):
            _, dimension, hour, *rest = key
            self._cell(ENTITY, ("day", dimension, _day(hour), *rest)).add_cell(cell)


@functools.cache
def _writer(dialect: str, name: str) -> CubeWriter:
    return CubeWriter(dialect, CUBES[name])


def _merge(conn: sa.Connection, deltas: _Deltas) -> None:
    deltas.roll_up()
    for spec in CUBES.values():
        cells = deltas.cells[spec.name]
        keys = sorted(cells)  # one lock order for every worker
        writer = _writer(conn.dialect.name, spec.name)
        writer.upsert(conn, [(*key, *cells[key].values) for key in keys])
        if not spec.sketches:
            continue
        stored = writer.read_sketches(conn, keys)
        updates = []
        for key in keys:
            sketches = cells[key].sketches
            assert sketches is not None  # sketch cubes build sketch cells
            texts = stored.get(key, (None, None, None))
            merged = [delta.added_to(text) or None for text, delta in zip(texts, sketches, strict=True)]
            updates.append((*key, *merged))
        writer.write_sketches(conn, updates)


def _refresh(conn: sa.Connection, max_events: int) -> int:
    claimed = claim(conn, max_events)
    if not claimed:
        return 0
    deltas = _Deltas()
    event_ids = [i for row in claimed if row.kind == "events" for i in row.ids]
    adjustment_ids = [i for row in claimed if row.kind == "adjustments" for i in row.ids]
    for event in read_events(conn, event_ids):
        deltas.add(event, event_delta(event, event.original_cost))
    for adjustment in read_adjustments(conn, adjustment_ids):
        deltas.add(adjustment, adjustment_delta(adjustment.old_units, adjustment.new_units))
    _merge(conn, deltas)
    delete(conn, [row.id for row in claimed])
    return len(event_ids) + len(adjustment_ids)


def refresh(store: UsageStore, *, max_events: int = DEFAULT_MAX_EVENTS) -> int:
    """Move the oldest queued events and re-ratings (about ``max_events``) into the cubes, in one transaction.

    Returns how many events and adjustments the claimed queue rows listed (0: nothing was queued,
    or other workers hold every queued row). Safe to run from several processes at once.
    """
    if max_events < 1:
        raise InvalidUsageError("max_events", f"must be at least 1, got {max_events!r}")
    return engine_of(store).write("refresh analytics in", lambda conn: _refresh(conn, max_events))


def pending(store: UsageStore) -> Pending:
    """The backlog not yet in the cubes: queue rows, events/adjustments they list, oldest ``created_at``."""
    with engine_of(store).transaction("read the analytics backlog of") as conn:
        return queue_pending(conn)


def prune_cubes(store: UsageStore, granularity: str, before: datetime) -> int:
    """Delete cube rows of ``granularity`` (minute, hour, day) whose bucket starts before ``before``.

    Queries no longer see pruned buckets (prune minute rows first, day rows last). Returns the rows deleted.
    """
    if granularity not in ("minute", "hour", "day"):
        raise InvalidUsageError("granularity", f"must be minute, hour or day, got {granularity!r}")
    if before.tzinfo is None:
        raise InvalidUsageError("before", "must be timezone-aware")
    return engine_of(store).write("prune analytics cubes in", lambda conn: prune(conn, granularity, before))


class RefreshJob:
    """What the service runs every few seconds: refresh until the queue is drained (or ``max_batches``).

    ``job()`` returns how many events and adjustments it moved into the cubes.
    """

    def __init__(self, store: UsageStore, *, max_events: int = DEFAULT_MAX_EVENTS, max_batches: int = 50) -> None:
        self.store = store
        self.max_events = max_events
        self.max_batches = max_batches

    def __call__(self) -> int:
        total = 0
        for _ in range(self.max_batches):
            moved = refresh(self.store, max_events=self.max_events)
            if moved == 0:
                break
            total += moved
        return total
