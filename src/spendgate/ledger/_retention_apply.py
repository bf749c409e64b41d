"""Applying a :class:`RetentionPolicy` to a SQL ledger, and restoring archived events.

Order of a run (each step safe to interrupt and re-run):

1. with an archive directory, for each UTC day before the raw cutoff that still has events: write the
   day's events to its archive file (merged with any file a previous run left) and verify it;
2. call ``before_delete`` once (e.g. let analytics cubes catch up on the raw events first);
3. delete the archived (or, without an archive, the expired) events and their cost adjustments,
   ``batch_size`` events per transaction, only ids the verified archive holds;
4. delete rollups of buckets before the aggregate cutoff, and threshold crossings before it, then call
   ``prune_aggregates(cutoff)`` (anomalies, cubes...).

Rollups are never touched by step 3: they were written with the events and stay exact without them.
The cutoffs reached are kept as the control object ``("retention", "watermark")``; restoring an archive
reads it to know whether the restored events' rollups still exist (kept) or were pruned (re-added).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from spendgate.errors import LedgerError
from spendgate.ledger._adjustments import AdjustmentRecord
from spendgate.ledger._bulk import BulkInsert
from spendgate.ledger._control import ControlStore
from spendgate.ledger._engine import LedgerEngine
from spendgate.ledger._retention import WATERMARK, RetentionPolicy, RetentionReport, day_start, read_watermark
from spendgate.ledger._retention_archive import ArchivedEvent, archive_lock, read_archive, write_day
from spendgate.ledger._rollups import RollupAccumulator, RollupUpsert
from spendgate.ledger._rows import event_to_row, row_to_stored
from spendgate.ledger._schema import cost_adjustments, threshold_crossings, usage_events, usage_rollups
from spendgate.ledger._sql import SqlUsageStore
from spendgate.ledger._store import UsageStore

__all__ = ["RestoreReport", "apply_retention", "restore_archive"]

log = logging.getLogger("spendgate.ledger")

#: The control object holding the cutoffs retention has reached.
_DAY = timedelta(days=1)
_CHUNK = 500  # ids per IN (...) list


def _engine(store: UsageStore) -> LedgerEngine:
    if not isinstance(store, SqlUsageStore):
        raise LedgerError(f"retention needs a SQL ledger opened with open_store(), got {type(store).__name__}")
    return store._engine  # the ledger package's own store: retention is part of the ledger


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _advance_watermark(control: ControlStore, raw: datetime, aggregates: datetime | None) -> None:
    old_raw, old_aggregates = read_watermark(control)
    new_raw = raw if old_raw is None else max(raw, old_raw)
    new_aggregates = old_aggregates if aggregates is None else max(aggregates, old_aggregates or aggregates)
    if (new_raw, new_aggregates) != (old_raw, old_aggregates):
        body = {"raw_before": new_raw.isoformat(),
                "aggregates_before": None if new_aggregates is None else new_aggregates.isoformat()}  # fmt: skip
        control.put(*WATERMARK, body, actor="retention")


# -- counting (dry run) ---------------------------------------------------------------------------------


def _count(conn: sa.Connection, table: sa.Table, condition: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar_one())


def _dry_run(engine: LedgerEngine, report: RetentionReport) -> RetentionReport:
    expired = usage_events.c.timestamp < report.raw_cutoff
    with engine.transaction("count expired rows in", repeatable=True) as conn:
        report.events_deleted = _count(conn, usage_events, expired)
        ids = sa.select(usage_events.c.event_id).where(expired)
        report.adjustments_deleted = _count(conn, cost_adjustments, cost_adjustments.c.event_id.in_(ids))
        if report.aggregate_cutoff is not None:
            report.rollups_deleted = _count(conn, usage_rollups, usage_rollups.c.bucket_start < report.aggregate_cutoff)
            report.crossings_deleted = _count(
                conn, threshold_crossings, threshold_crossings.c.crossed_at < report.aggregate_cutoff
            )
    return report


# -- raw events ---------------------------------------------------------------------------------------


def _delete_events(engine: LedgerEngine, ids: Sequence[str], batch_size: int) -> tuple[int, int]:
    """Delete events and their adjustments, ``batch_size`` ids per transaction: (events, adjustments)."""
    events = adjustments = 0
    for batch in _chunks(ids, batch_size):

        def work(conn: sa.Connection, batch: Sequence[str] = batch) -> tuple[int, int]:
            done_events = done_adjustments = 0
            for chunk in _chunks(batch, _CHUNK):
                done_adjustments += conn.execute(
                    sa.delete(cost_adjustments).where(cost_adjustments.c.event_id.in_(chunk))
                ).rowcount
                done_events += conn.execute(sa.delete(usage_events).where(usage_events.c.event_id.in_(chunk))).rowcount
            return done_events, done_adjustments

        done = engine.write("delete expired events from", work)
        events, adjustments = events + done[0], adjustments + done[1]
    return events, adjustments


def _next_day(engine: LedgerEngine, after: datetime, cutoff: datetime) -> datetime | None:
    """The UTC day of the oldest event in ``[after, cutoff)``, or None."""
    t = usage_events.c.timestamp
    with engine.transaction("find expired events in") as conn:
        oldest = conn.execute(sa.select(sa.func.min(t)).where(t >= after, t < cutoff)).scalar_one_or_none()
    return None if oldest is None else day_start(oldest)


def _read_day(engine: LedgerEngine, day: datetime) -> list[ArchivedEvent]:
    t = usage_events
    with engine.transaction("read expired events from", repeatable=True) as conn:
        query = (
            sa.select(t).where(t.c.timestamp >= day, t.c.timestamp < day + _DAY).order_by(t.c.timestamp, t.c.event_id)
        )
        stored = [row_to_stored(row) for row in conn.execute(query).mappings()]
        history: dict[str, list[AdjustmentRecord]] = {}
        ids = [item.event.event_id for item in stored]
        for chunk in _chunks(ids, _CHUNK):
            a = cost_adjustments
            rows = conn.execute(sa.select(a).where(a.c.event_id.in_(chunk)).order_by(a.c.id)).mappings()
            for row in rows:
                history.setdefault(row["event_id"], []).append(AdjustmentRecord(**row))
    return [ArchivedEvent(item, tuple(history.get(item.event.event_id, ()))) for item in stored]


def _archive_and_delete(
    engine: LedgerEngine, policy: RetentionPolicy, report: RetentionReport, before_delete: Callable[[], None]
) -> None:
    directory = policy.archive_dir
    assert directory is not None
    cursor = datetime.min.replace(tzinfo=report.raw_cutoff.tzinfo)
    with archive_lock(directory):
        while (day := _next_day(engine, cursor, report.raw_cutoff)) is not None:
            events = _read_day(engine, day)
            path, archived = write_day(directory, day.date(), events)
            report.events_archived += len(events)
            report.archive_files.append(path)
            before_delete()
            ids = [item.stored.event.event_id for item in events if item.stored.event.event_id in archived]
            deleted, adjustments = _delete_events(engine, ids, policy.batch_size)
            report.events_deleted += deleted
            report.adjustments_deleted += adjustments
            cursor = day + _DAY


def _delete_expired(engine: LedgerEngine, policy: RetentionPolicy, report: RetentionReport) -> None:
    t = usage_events
    while True:
        with engine.transaction("find expired events in") as conn:
            query = sa.select(t.c.event_id).where(t.c.timestamp < report.raw_cutoff).limit(policy.batch_size)
            ids = list(conn.execute(query).scalars())
        if not ids:
            return
        deleted, adjustments = _delete_events(engine, ids, policy.batch_size)
        report.events_deleted += deleted
        report.adjustments_deleted += adjustments


def apply_retention(
    store: UsageStore,
    policy: RetentionPolicy,
    now: datetime,
    *,
    dry_run: bool = False,
    before_delete: Callable[[], None] | None = None,
    prune_aggregates: Callable[[datetime], int] | None = None,
) -> RetentionReport:
    """Archive (when ``policy.archive_dir`` is set) and delete what ``policy`` says has expired at ``now``.

    ``dry_run`` counts what would go and changes nothing (no archive, no hooks). ``before_delete`` runs
    once before the first raw event is deleted; ``prune_aggregates(cutoff)`` runs after the rollups
    are pruned and returns how many items it removed. Safe to re-run after a crash at any point.
    Raises :class:`~spendgate.errors.LedgerError` when the ledger or the archive cannot be written.
    """
    engine = _engine(store)
    report = RetentionReport(raw_cutoff=policy.raw_cutoff(now), aggregate_cutoff=policy.aggregate_cutoff(now),
                             dry_run=dry_run)  # fmt: skip
    if dry_run:
        return _dry_run(engine, report)
    called = False

    def before() -> None:
        nonlocal called
        if not called and before_delete is not None:
            before_delete()
        called = True

    if policy.archive_dir is not None:
        _archive_and_delete(engine, policy, report, before)
    else:
        before()
        _delete_expired(engine, policy, report)
    cutoff = report.aggregate_cutoff
    if cutoff is not None:

        def prune(conn: sa.Connection) -> tuple[int, int]:
            rollups = conn.execute(sa.delete(usage_rollups).where(usage_rollups.c.bucket_start < cutoff)).rowcount
            tc = threshold_crossings
            return rollups, conn.execute(sa.delete(tc).where(tc.c.crossed_at < cutoff)).rowcount

        report.rollups_deleted, report.crossings_deleted = engine.write("delete expired aggregates from", prune)
        if prune_aggregates is not None:
            report.hook_pruned = prune_aggregates(cutoff)
    # After the deletes: a restore trusts the aggregate watermark to mean "these rollups are gone".
    _advance_watermark(store.control, report.raw_cutoff, cutoff)
    log.info("retention: %s", report.to_dict())
    return report


# -- restoring ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What restoring an archive file did."""

    restored: int
    duplicates: int
    rollups_added: int
    """Restored events whose rollups had been pruned too, and were added back."""


def _event_row(item: ArchivedEvent) -> dict[str, Any]:
    row = event_to_row(item.stored.event, item.stored.recorded_at)
    row["original_cost"] = item.stored.original_cost
    row["original_price_version"] = item.stored.original_price_version
    return row


def restore_archive(store: UsageStore, path: Path, *, batch_size: int = 1000) -> RestoreReport:
    """Put the events of one archive file back in the ledger (ids already there are left alone).

    Their rollups are left as they are when retention kept them (the rollups still count these events);
    for events older than the aggregate watermark (their rollups were pruned) they are added back.
    """
    engine = _engine(store)
    _, aggregates_before = read_watermark(store.control)
    insert = BulkInsert(engine.dialect, usage_events)
    statement = insert.statement.on_conflict_do_nothing(index_elements=["event_id"]).returning(usage_events.c.event_id)
    upsert = RollupUpsert(engine.dialect)
    restored = duplicates = rollups_added = 0
    items = list(read_archive(path))
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]

        def work(conn: sa.Connection, batch: list[ArchivedEvent] = batch) -> tuple[int, int]:
            inserted = {row[0] for row in conn.execute(statement, insert.parameters([_event_row(i) for i in batch]))}
            history = [
                {name: getattr(a, name) for name in ("event_id", "old_cost", "new_cost", "old_price_version",
                                                      "new_price_version", "reason", "created_at")}
                for item in batch if item.stored.event.event_id in inserted for a in item.adjustments
            ]  # fmt: skip
            if history:
                conn.execute(sa.insert(cost_adjustments), history)
            acc = RollupAccumulator()
            added = 0
            for item in batch:
                event = item.stored.event
                if event.event_id in inserted and aggregates_before is not None and event.timestamp < aggregates_before:
                    acc.add_event(event)
                    added += 1
            upsert.execute(conn, acc)
            return len(inserted), added

        count, added = engine.write("restore archived events to", work)
        restored, duplicates, rollups_added = restored + count, duplicates + len(batch) - count, rollups_added + added
    return RestoreReport(restored, duplicates, rollups_added)
