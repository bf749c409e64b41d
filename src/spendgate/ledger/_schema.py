"""The ledger's tables (SQLAlchemy Core) and the column types that keep values exact.

Tables:

* ``usage_events``: one row per event, keyed by ``event_id``; keeps ``original_cost`` and
  ``original_price_version`` as first recorded next to the current ``cost``/``price_version``.
* ``usage_rollups``: sums per (granularity, UTC bucket, user, team, api key, provider, model,
  currency); unset dimensions are ``''`` so the primary key works on every backend.
* ``cost_adjustments``: one row per re-rated event change.
* ``price_overrides``: price override versions as JSON, never edited in place.
* ``control_objects``: budget limits, grants, circuit breakers, rate limits...: JSON bodies by
  (kind, id); ``spendgate.budgets`` defines them, the ledger does not interpret them.
* ``threshold_crossings``: each limit threshold crossed in a window, once (alerting reads them).
* ``request_queue``: requests deferred by a QUEUE decision, run later by a worker.
* ``audit_log``: who changed what (limits, grants, prices, breakers), append-only and hash-chained
  (``spendgate.ledger._audit``).

Money columns are :class:`Money` (a BIGINT count of 1e-12 units), never a float or a backend
NUMERIC, so SQLite and PostgreSQL store exactly the same integers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from spendgate.errors import LedgerError
from spendgate.ledger._event import OPTIONAL_TEXT_FIELDS, TEXT_LIMITS
from spendgate.ledger._money import MONEY_SCALE, SECONDS_SCALE, from_units, to_units

__all__ = [
    "ROLLUP_KEY_COLUMNS",
    "ROLLUP_SUM_COLUMNS",
    "TOKEN_COLUMNS",
    "FixedDecimal",
    "Money",
    "UTCDateTime",
    "audit_log",
    "control_objects",
    "cost_adjustments",
    "metadata",
    "price_overrides",
    "request_queue",
    "threshold_crossings",
    "usage_events",
    "usage_rollups",
]


class FixedDecimal(sa.types.TypeDecorator[Decimal]):
    """An exact ``Decimal`` stored as a BIGINT count of ``10**-scale`` units.

    Binding rounds half-even to ``scale`` places; reading gives the exact decimal back. A value a
    backend turned into a float (SQLite does on integer overflow) is refused, never guessed.
    """

    impl = sa.BigInteger
    cache_ok = True

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return to_units(value, self.scale)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise LedgerError(f"a stored amount overflowed 64 bits and became the float {value!r}")
        return from_units(int(value), self.scale)


class Money(FixedDecimal):
    """Money in 1e-12 units (pico-dollars for USD): at most about 9.2 million per value."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(MONEY_SCALE)


class Seconds(FixedDecimal):
    """Durations in microseconds."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(SECONDS_SCALE)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime: ``timestamptz`` on PostgreSQL, UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise LedgerError(f"naive datetime {value} cannot be stored: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _text(name: str, *, nullable: bool = True) -> sa.Column[str]:
    return sa.Column(name, sa.String(TEXT_LIMITS[name]), nullable=nullable)


_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

#: Token counts of an event, each in its own column (same names as :class:`~spendgate.usage.Usage`).
TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
    "input_image_tokens",
    "images",
    "web_searches",
)

metadata = sa.MetaData()

usage_events = sa.Table(
    "usage_events",
    metadata,
    _text("event_id", nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    _text("provider", nullable=False),
    _text("model", nullable=False),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in TOKEN_COLUMNS),
    sa.Column("audio_seconds", Seconds(), nullable=False),
    sa.Column("processing_seconds", Seconds(), nullable=False),
    sa.Column("cost", Money(), nullable=True),
    sa.Column("original_cost", Money(), nullable=True),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("original_price_version", sa.String(TEXT_LIMITS["price_version"]), nullable=True),
    sa.Column("cost_estimated", sa.Boolean, nullable=False),
    sa.Column("tokens_estimated", sa.Boolean, nullable=False),
    *(_text(name) for name in OPTIONAL_TEXT_FIELDS),
    sa.Column("tags", _JSON, nullable=True),
    sa.Column("metadata", _JSON, nullable=True),
    sa.Column("latency_ms", sa.BigInteger, nullable=True),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False),
    sa.Column("cache_savings", Money(), nullable=True),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("request_bytes", sa.BigInteger, nullable=True),
    sa.Column("response_bytes", sa.BigInteger, nullable=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("event_id", name="pk_usage_events"),
    sa.Index("ix_usage_events_timestamp", "timestamp"),
    sa.Index("ix_usage_events_user_timestamp", "user_id", "timestamp"),
    sa.Index("ix_usage_events_team_timestamp", "team_id", "timestamp"),
    sa.Index("ix_usage_events_api_key_timestamp", "api_key_id", "timestamp"),
    sa.Index("ix_usage_events_provider_model_timestamp", "provider", "model", "timestamp"),
)

#: The rollup primary key, in order.
ROLLUP_KEY_COLUMNS = (
    "granularity",
    "bucket_start",
    "user_id",
    "team_id",
    "api_key_id",
    "provider",
    "model",
    "currency",
)
#: The summed columns of a rollup row, in order.
ROLLUP_SUM_COLUMNS = (
    "requests",
    "successes",
    "failures",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "unpriced_requests",
    "estimated_requests",
    "latency_ms_sum",
    "latency_requests",
    "cached_requests",
)

usage_rollups = sa.Table(
    "usage_rollups",
    metadata,
    sa.Column("granularity", sa.String(8), nullable=False),
    sa.Column("bucket_start", UTCDateTime(), nullable=False),
    *(_text(name, nullable=False) for name in ("user_id", "team_id", "api_key_id", "provider", "model")),
    sa.Column("currency", sa.String(3), nullable=False),
    *(sa.Column(name, Money() if name == "cost" else sa.BigInteger, nullable=False) for name in ROLLUP_SUM_COLUMNS),
    # The key starts with (granularity, bucket_start): it also serves time-range scans.
    sa.PrimaryKeyConstraint(*ROLLUP_KEY_COLUMNS, name="pk_usage_rollups"),
)

cost_adjustments = sa.Table(
    "cost_adjustments",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False),
    _text("event_id", nullable=False),
    sa.Column("old_cost", Money(), nullable=True),
    sa.Column("new_cost", Money(), nullable=True),
    sa.Column("old_price_version", sa.String(TEXT_LIMITS["price_version"]), nullable=True),
    sa.Column("new_price_version", sa.String(TEXT_LIMITS["price_version"]), nullable=True),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_cost_adjustments"),
    sa.Index("ix_cost_adjustments_event_id", "event_id"),
    sa.Index("ix_cost_adjustments_created_at", "created_at"),
)

price_overrides = sa.Table(
    "price_overrides",
    metadata,
    sa.Column("id", sa.String(200), nullable=False),
    sa.Column("provider", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("effective_from", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_price_overrides"),
    sa.Index("ix_price_overrides_provider_model", "provider", "model", "effective_from"),
)

# -- the control plane: limits, grants, breakers (opaque JSON), threshold crossings, queue, audit --

_AUTO_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

control_objects = sa.Table(
    "control_objects",
    metadata,
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("id", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("kind", "id", name="pk_control_objects"),
)

threshold_crossings = sa.Table(
    "threshold_crossings",
    metadata,
    sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
    sa.Column("limit_id", sa.String(200), nullable=False),
    sa.Column("window_key", sa.String(200), nullable=False),
    sa.Column("threshold", sa.String(16), nullable=False),
    sa.Column("crossed_at", UTCDateTime(), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_threshold_crossings"),
    sa.UniqueConstraint("limit_id", "window_key", "threshold", name="uq_threshold_crossings"),
    sa.Index("ix_threshold_crossings_crossed_at", "crossed_at"),
)

request_queue = sa.Table(
    "request_queue",
    metadata,
    sa.Column("id", sa.String(200), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("run_after", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_request_queue"),
    sa.Index("ix_request_queue_ready", "status", "run_after", "priority"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("target", sa.String(400), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    sa.Index("ix_audit_log_at", "at"),
)
