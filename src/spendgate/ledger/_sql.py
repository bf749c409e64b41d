"""The SQLAlchemy Core backend of :class:`~spendgate.ledger.UsageStore` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from spendgate.clock import Clock, SystemClock
from spendgate.errors import LedgerError
from spendgate.ledger import _adjustments, _analytics_queue, _overrides, _queries, _rollups
from spendgate.ledger._adjustments import AdjustmentRecord, CostAdjustment
from spendgate.ledger._bulk import BulkInsert
from spendgate.ledger._control import SqlControlStore
from spendgate.ledger._engine import LedgerEngine
from spendgate.ledger._event import RecordResult, StoredEvent, UsageEvent
from spendgate.ledger._group_commit import GroupCommitter
from spendgate.ledger._query import Dimension, EventFilter, Granularity, RollupRow, UsageSummary
from spendgate.ledger._retention import read_watermark
from spendgate.ledger._rows import event_to_row, row_to_stored
from spendgate.ledger._schema import usage_events
from spendgate.ledger._validate import check_aware

__all__ = ["SqlUsageStore"]


class _EventInsert:
    """``INSERT ... ON CONFLICT (event_id) DO NOTHING RETURNING event_id``: the ids actually stored."""

    def __init__(self, dialect_name: str) -> None:
        self._bulk = BulkInsert(dialect_name, usage_events)
        self._statement = self._bulk.statement.on_conflict_do_nothing(index_elements=["event_id"]).returning(
            usage_events.c.event_id
        )

    def execute(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> set[str]:
        return {row[0] for row in conn.execute(self._statement, self._bulk.parameters(rows))}


class SqlUsageStore:
    """A durable, idempotent usage ledger on SQLite or PostgreSQL. Thread-safe.

    Build it with :func:`~spendgate.ledger.open_store`. Writes from concurrent threads share
    transactions (group commit); when :meth:`record` returns, the event is committed.
    """

    def __init__(self, engine: LedgerEngine, *, clock: Clock | None = None, max_batch: int = 5000) -> None:
        self._engine = engine
        self._clock: Clock = clock or SystemClock()
        self._insert = _EventInsert(engine.dialect)
        self._upsert = _rollups.RollupUpsert(engine.dialect)
        self._committer: GroupCommitter[UsageEvent, RecordResult] = GroupCommitter(
            self._write_events, max_batch=max_batch
        )
        self._closed = False
        self.control = SqlControlStore(engine, self._clock)
        """Limits, grants, breakers, threshold crossings, the request queue and the audit log."""

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.safe_url

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect

    @property
    def batches_written(self) -> int:
        """How many write transactions recorded events (fewer than calls when commits were shared)."""
        return self._committer.batches

    def close(self) -> None:
        """Close every database connection; the store cannot be used afterwards."""
        self._closed = True
        self._engine.dispose()

    def __enter__(self) -> SqlUsageStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqlUsageStore({self.url!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise LedgerError(f"the usage store for {self.url} is closed")

    # -- writing ---------------------------------------------------------------------------------

    def record(self, event: UsageEvent) -> RecordResult:
        """Store ``event`` durably; ``duplicate=True`` when its id was already stored."""
        return self.record_many((event,))[0]

    def record_many(self, events: Iterable[UsageEvent]) -> list[RecordResult]:
        """Store ``events`` durably (in one shared transaction); one result per event, in order.

        Within the batch, the first event with a given id wins and later ones are duplicates.
        """
        self._check_open()
        batch = list(events)
        for event in batch:
            if not isinstance(event, UsageEvent):
                raise TypeError(f"expected UsageEvent, got {type(event).__name__}")
        return self._committer.submit(batch)

    def _write_events(self, events: list[UsageEvent]) -> list[RecordResult]:
        first: dict[str, UsageEvent] = {}
        for event in events:
            first.setdefault(event.event_id, event)
        unique = [first[event_id] for event_id in sorted(first)]  # a stable lock order across writers
        recorded_at = self._clock.now()
        rows = [event_to_row(event, recorded_at) for event in unique]

        def work(conn: sa.Connection) -> set[str]:
            inserted = self._insert.execute(conn, rows)
            acc = _rollups.RollupAccumulator()
            for event in unique:
                if event.event_id in inserted:
                    acc.add_event(event)
            self._upsert.execute(conn, acc)
            _analytics_queue.enqueue(conn, "events", sorted(inserted), recorded_at)
            return inserted

        inserted = self._engine.write("write usage events to", work)
        results: list[RecordResult] = []
        claimed: set[str] = set()
        for event in events:
            duplicate = event.event_id in claimed or event.event_id not in inserted
            claimed.add(event.event_id)
            results.append(RecordResult(event.event_id, duplicate))
        return results

    def apply_adjustments(self, adjustments: Sequence[CostAdjustment]) -> int:
        """Re-rate stored events in one transaction; returns how many events changed.

        Each change keeps the event's original cost, writes a ``cost_adjustments`` row and moves the
        rollups by the difference (an unpriced event that gets a price leaves ``unpriced_requests``).
        Unknown event ids, or an ``old_cost``/``old_price_version`` that no longer matches the event
        (re-rated by someone else meanwhile), raise :class:`LedgerError` and change nothing.
        """
        self._check_open()
        items = list(adjustments)
        if not items:
            return 0
        now = self._clock.now()
        return self._engine.write("adjust costs in", lambda conn: _adjustments.apply_adjustments(conn, items, now))

    def save_price_override(
        self, id: str, provider: str, model: str, effective_from: datetime, body: Mapping[str, Any]
    ) -> None:
        """Store one price override version (JSON ``body``); an existing ``id`` is refused."""
        self._check_open()
        now = self._clock.now()
        with self._engine.transaction("save a price override to", write=True) as conn:
            _overrides.save_price_override(
                conn,
                override_id=id,
                provider=provider,
                model=model,
                effective_from=effective_from,
                body=body,
                now=now,
            )

    def rebuild_rollups(self) -> int:
        """Recompute every rollup row from the raw events (after bulk repairs); returns the row count."""
        self._check_open()

        def work(conn: sa.Connection) -> int:
            if conn.dialect.name == "postgresql":  # hold off writers while the sums are rebuilt
                conn.execute(sa.text("LOCK TABLE usage_events IN SHARE MODE"))
            return _rollups.rebuild_rollups(conn, self._kept_since())

        return self._engine.write("rebuild rollups in", work)

    def _kept_since(self) -> datetime | None:
        """Where raw events start (retention deleted those before); rollups before it outlive them."""
        return read_watermark(self.control)[0]

    # -- reading ---------------------------------------------------------------------------------

    def get(self, event_id: str) -> UsageEvent | None:
        """The event with ``event_id`` (current cost), or ``None``."""
        stored = self.get_stored(event_id)
        return None if stored is None else stored.event

    def get_stored(self, event_id: str) -> StoredEvent | None:
        """The event with ``event_id`` plus its original cost and recording time, or ``None``."""
        self._check_open()
        with self._engine.transaction("read from") as conn:
            row = conn.execute(sa.select(usage_events).where(usage_events.c.event_id == event_id)).mappings().first()
        return None if row is None else row_to_stored(row)

    def iter_events(self, filter: EventFilter | None = None, *, batch_size: int = 1000) -> Iterator[UsageEvent]:
        """Matching events ordered by (timestamp, event_id), streamed ``batch_size`` rows at a time."""
        self._check_open()
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        with self._engine.transaction("read events from") as conn:
            yield from _queries.iter_events(conn, filter, batch_size)

    def count(self, filter: EventFilter | None = None) -> int:
        """How many events match ``filter``."""
        self._check_open()
        with self._engine.transaction("count events in") as conn:
            return _queries.count_events(conn, filter)

    def summary(self, filter: EventFilter | None = None) -> UsageSummary:
        """Totals over the events matching ``filter``."""
        self._check_open()
        with self._engine.transaction("summarize usage in") as conn:
            return _queries.summarize(conn, filter)

    def totals_by(
        self, dimension: Dimension, filter: EventFilter | None = None
    ) -> list[tuple[str | None, UsageSummary]]:
        """Totals per value of ``dimension`` (``None`` for events without one), by cost descending."""
        self._check_open()
        with self._engine.transaction("summarize usage in") as conn:
            return _queries.totals_by(conn, dimension, filter)

    def rollups(
        self, granularity: Granularity, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[RollupRow]:
        """Rollup rows of one granularity with ``since <= bucket_start < until``."""
        self._check_open()
        if granularity not in _rollups.GRANULARITIES:
            raise ValueError(f"granularity must be 'hour' or 'day', got {granularity!r}")
        since = None if since is None else check_aware("since", since)
        until = None if until is None else check_aware("until", until)
        with self._engine.transaction("read rollups from") as conn:
            return _rollups.read_rollups(conn, granularity, since, until)

    def check_rollups(self) -> list[str]:
        """Differences between the rollups and the raw events (empty when consistent)."""
        self._check_open()
        with self._engine.transaction("check rollups in", repeatable=True) as conn:
            return _rollups.check_rollups(conn, self._kept_since())

    def adjustments(self, event_id: str | None = None, since: datetime | None = None) -> list[AdjustmentRecord]:
        """Stored cost adjustments, oldest first, optionally for one event and from ``since`` on."""
        self._check_open()
        with self._engine.transaction("read cost adjustments from") as conn:
            return _adjustments.list_adjustments(conn, event_id, since)

    def list_price_overrides(self) -> list[dict[str, Any]]:
        """The body of every stored price override version (as saved), oldest ``effective_from`` first."""
        self._check_open()
        with self._engine.transaction("read price overrides from") as conn:
            return _overrides.list_price_overrides(conn)
