"""Analytics: the queue the write path fills and the cubes the refresh worker builds from it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_SUMS = (
    "requests", "successes", "failures", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost", "unpriced_requests", "estimated_requests",
    "cached_requests", "cache_savings", "latency_sum", "latency_requests",
)  # fmt: skip
_FLOATS = ("latency_sq", "cost_sq", "tokens_sq")
_EXTREMES = ("latency_min", "tokens_min", "latency_max", "tokens_max")
_SKETCHES = ("latency_sketch", "cost_sketch", "tokens_sketch")
# (table, primary key, has sketches)
_CUBES = (
    ("analytics_series", ("granularity", "bucket_start", "currency"), True),
    (
        "analytics_main",
        ("granularity", "bucket_start", "team_id", "provider", "model", "request_type", "currency"),
        True,
    ),
    ("analytics_entities", ("granularity", "dimension", "bucket_start", "value", "team_id", "currency"), False),
    (
        "analytics_entity_models",
        ("granularity", "dimension", "bucket_start", "value", "team_id", "provider", "model", "currency"),
        False,
    ),
)


def _key_column(name: str) -> sa.Column[object]:
    if name == "bucket_start":
        return sa.Column(name, sa.DateTime(timezone=True), nullable=False)
    length = {"granularity": 8, "currency": 3, "value": 400}.get(name, 200)
    return sa.Column(name, sa.String(length=length), nullable=False)


def upgrade() -> None:
    op.create_table(
        "analytics_queue",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_analytics_queue"),
    )
    for name, key, sketches in _CUBES:
        ordered = ("granularity", "bucket_start", *(k for k in key if k not in ("granularity", "bucket_start")))
        op.create_table(
            name,
            *(_key_column(k) for k in ordered),
            *(sa.Column(s, sa.BigInteger(), nullable=False) for s in _SUMS),
            *(sa.Column(f, sa.Float(), nullable=False) for f in _FLOATS),
            *(sa.Column(e, sa.BigInteger(), nullable=True) for e in _EXTREMES),
            *((sa.Column(s, sa.Text(), nullable=True) for s in _SKETCHES) if sketches else ()),
            sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"),
        )


def downgrade() -> None:
    for name, _key, _sketches in reversed(_CUBES):
        op.drop_table(name)
    op.drop_table("analytics_queue")
