"""The :class:`UsageStore` protocol and :func:`open_store`, which picks a backend by URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.engine import URL

from spendgate.clock import Clock
from spendgate.errors import ConfigurationError, LedgerError
from spendgate.ledger._adjustments import AdjustmentRecord, CostAdjustment
from spendgate.ledger._control import ControlStore
from spendgate.ledger._engine import Durability, LedgerEngine
from spendgate.ledger._event import RecordResult, StoredEvent, UsageEvent
from spendgate.ledger._migrate import current_revision, head_revision, migrate
from spendgate.ledger._query import Dimension, EventFilter, Granularity, RollupRow, UsageSummary
from spendgate.ledger._sql import SqlUsageStore

__all__ = ["UsageStore", "open_store"]


@runtime_checkable
class UsageStore(Protocol):
    """A durable, idempotent store of usage events. Implementations are thread-safe.

    Writing: :meth:`record` / :meth:`record_many` return once the events are committed; an id
    already stored is reported as a duplicate and changes nothing. Rollups (hourly, daily) are kept
    in the same transaction. Reading: filters, streamed scans, summaries and totals. Re-rating:
    :meth:`apply_adjustments`. Price overrides: stored as JSON versions.
    """

    @property
    def url(self) -> str: ...

    @property
    def control(self) -> ControlStore: ...

    def record(self, event: UsageEvent) -> RecordResult: ...

    def record_many(self, events: Iterable[UsageEvent]) -> list[RecordResult]: ...

    def get(self, event_id: str) -> UsageEvent | None: ...

    def get_stored(self, event_id: str) -> StoredEvent | None: ...

    def iter_events(self, filter: EventFilter | None = None, *, batch_size: int = 1000) -> Iterator[UsageEvent]: ...

    def count(self, filter: EventFilter | None = None) -> int: ...

    def summary(self, filter: EventFilter | None = None) -> UsageSummary: ...

    def totals_by(
        self, dimension: Dimension, filter: EventFilter | None = None
    ) -> list[tuple[str | None, UsageSummary]]: ...

    def rollups(
        self, granularity: Granularity, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[RollupRow]: ...

    def rebuild_rollups(self) -> int: ...

    def check_rollups(self) -> list[str]: ...

    def apply_adjustments(self, adjustments: Sequence[CostAdjustment]) -> int: ...

    def adjustments(self, event_id: str | None = None, since: datetime | None = None) -> list[AdjustmentRecord]: ...

    def save_price_override(
        self, id: str, provider: str, model: str, effective_from: datetime, body: Mapping[str, Any]
    ) -> None: ...

    def list_price_overrides(self) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> UsageStore: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def open_store(
    url: str | URL,
    *,
    durability: Durability = "process",
    create: bool = True,
    clock: Clock | None = None,
    max_batch: int = 5000,
    busy_timeout: float = 30.0,
) -> UsageStore:
    """Open the usage ledger at ``url``: ``sqlite:///path/usage.db`` or ``postgresql+psycopg://...``.

    ``durability="process"`` keeps every committed event through a crash or kill of the process;
    ``"power"`` also through a power cut (SQLite fsyncs every commit; on PostgreSQL that is the
    server's setting). ``create=True`` migrates the schema to the newest version first (safe when
    several processes start at once); with ``create=False`` a database that is not current is an
    error. ``max_batch`` caps the events written per shared transaction; ``busy_timeout`` (seconds)
    is how long to wait for a lock or a connection.

    Raises :class:`~spendgate.errors.ConfigurationError` for an unsupported URL or option and
    :class:`~spendgate.errors.LedgerError` when the database cannot be used.
    """
    if max_batch < 1:
        raise ConfigurationError(f"max_batch must be at least 1, got {max_batch!r}")
    engine = LedgerEngine(url, durability=durability, busy_timeout=busy_timeout)
    try:
        if create:
            migrate(engine)
        else:
            with engine.transaction("read the schema version of") as conn:
                revision = current_revision(conn)
            if revision != head_revision():
                raise LedgerError(
                    f"the ledger schema at {engine.safe_url} is at revision {revision or 'none'}, this spendgate"
                    f" needs {head_revision()}: run `spendgate db upgrade` (or open it with create=True)"
                )
        return SqlUsageStore(engine, clock=clock, max_batch=max_batch)
    except BaseException:
        engine.dispose()
        raise
