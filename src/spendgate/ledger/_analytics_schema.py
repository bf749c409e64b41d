"""The analytics tables: a queue the write path fills, and the cubes a worker builds from it.

* ``analytics_queue``: one row per write transaction that stored events (``kind='events'``, body a
  JSON list of event ids) or re-rated them (``kind='adjustments'``, body a JSON list of
  ``cost_adjustments`` ids). ``spendgate.analytics.refresh`` drains it, exactly once.
* ``analytics_series``: totals per (granularity minute/hour/day, UTC bucket, currency).
* ``analytics_main``: per (hour/day, bucket, team, provider, model, request type, currency).
* ``analytics_entities``: per (hour/day, bucket, dimension, value, team, currency), where dimension
  is ``user``, ``api_key``, ``tag`` (value ``"k=v"``) or ``session``.
* ``analytics_entity_models``: per (day, bucket, dimension, value, team, provider, model, currency).

Every cube row holds the same measures (:data:`SUM_COLUMNS`, :data:`MIN_COLUMNS`, :data:`MAX_COLUMNS`,
:data:`FLOAT_COLUMNS`); the series and main cubes also hold percentile sketches (:data:`SKETCH_COLUMNS`).
Money (``cost``, ``cache_savings``) is a BIGINT count of 1e-12 units, as in ``usage_events``; the
float columns are sums of squares for standard deviations (statistics, never money). Unset
dimensions are ``''``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from spendgate.ledger._schema import UTCDateTime, metadata

__all__ = [
    "CUBES",
    "ENTITY",
    "ENTITY_MODEL",
    "FLOAT_COLUMNS",
    "MAIN",
    "MAX_COLUMNS",
    "MEASURE_COLUMNS",
    "MIN_COLUMNS",
    "MONEY_COLUMNS",
    "SERIES",
    "SKETCH_COLUMNS",
    "SUM_COLUMNS",
    "VALUE_LIMIT",
    "CubeSpec",
    "analytics_queue",
]

#: Summed integer measures, in the order the worker accumulates them.
SUM_COLUMNS = (
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
    "cached_requests",
    "cache_savings",
    "latency_sum",
    "latency_requests",
)
#: Integer sums that are money (1e-12 units).
MONEY_COLUMNS = ("cost", "cache_savings")
#: Sums of squares (floats) for standard deviations.
FLOAT_COLUMNS = ("latency_sq", "cost_sq", "tokens_sq")
#: Exact minimums and maximums of values that never change after recording.
MIN_COLUMNS = ("latency_min", "tokens_min")
MAX_COLUMNS = ("latency_max", "tokens_max")
#: Every non-sketch measure, in accumulator order.
MEASURE_COLUMNS = (*SUM_COLUMNS, *FLOAT_COLUMNS, *MIN_COLUMNS, *MAX_COLUMNS)
#: Percentile sketches (text, see ``spendgate.analytics``): latency ms, cost, tokens (input + output).
SKETCH_COLUMNS = ("latency_sketch", "cost_sketch", "tokens_sketch")

#: Longest entity value kept in the cubes (a longer ``"k=v"`` tag is only found by a raw scan).
VALUE_LIMIT = 400

_AUTO_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

analytics_queue = sa.Table(
    "analytics_queue",
    metadata,
    sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_analytics_queue"),
)


@dataclass(frozen=True, slots=True)
class CubeSpec:
    """One cube: its table, the granularities it keeps, its key dimensions, whether it has sketches."""

    name: str
    granularities: tuple[str, ...]
    dims: tuple[str, ...]
    sketches: bool
    table: sa.Table

    @property
    def key(self) -> tuple[str, ...]:
        """The primary key columns, in order."""
        return tuple(c.name for c in self.table.primary_key.columns)


def _measures(sketches: bool) -> list[sa.Column[object]]:
    columns: list[sa.Column[object]] = [sa.Column(name, sa.BigInteger, nullable=False) for name in SUM_COLUMNS]
    columns += [sa.Column(name, sa.Float, nullable=False) for name in FLOAT_COLUMNS]
    columns += [sa.Column(name, sa.BigInteger, nullable=True) for name in (*MIN_COLUMNS, *MAX_COLUMNS)]
    if sketches:
        columns += [sa.Column(name, sa.Text, nullable=True) for name in SKETCH_COLUMNS]
    return columns


def _dim(name: str) -> sa.Column[str]:
    return sa.Column(
        name, sa.String(3 if name == "currency" else VALUE_LIMIT if name == "value" else 200), nullable=False
    )


def _cube(name: str, granularities: tuple[str, ...], key: tuple[str, ...], sketches: bool) -> CubeSpec:
    dims = tuple(k for k in key if k not in ("granularity", "bucket_start"))
    table = sa.Table(
        name,
        metadata,
        sa.Column("granularity", sa.String(8), nullable=False),
        sa.Column("bucket_start", UTCDateTime(), nullable=False),
        *(_dim(d) for d in dims),
        *_measures(sketches),
        sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
    )
    return CubeSpec(name, granularities, dims, sketches, table)


SERIES = _cube("analytics_series", ("minute", "hour", "day"), ("granularity", "bucket_start", "currency"), True)
MAIN = _cube(
    "analytics_main",
    ("hour", "day"),
    ("granularity", "bucket_start", "team_id", "provider", "model", "request_type", "currency"),
    True,
)
ENTITY = _cube(
    "analytics_entities",
    ("hour", "day"),
    ("granularity", "dimension", "bucket_start", "value", "team_id", "currency"),
    False,
)
ENTITY_MODEL = _cube(
    "analytics_entity_models",
    ("day",),
    ("granularity", "dimension", "bucket_start", "value", "team_id", "provider", "model", "currency"),
    False,
)

#: Every cube by table name, smallest first (the planner tries them in this order).
CUBES: Mapping[str, CubeSpec] = {c.name: c for c in (SERIES, MAIN, ENTITY, ENTITY_MODEL)}
