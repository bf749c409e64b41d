"""Initial ledger schema: usage events, rollups, cost adjustments, price overrides.

Money columns are BIGINT counts of 1e-12 currency units; audio/processing seconds are BIGINT
microseconds (see ``spendgate.ledger._schema``).

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOKEN_COLUMNS = (
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
_OPTIONAL_TEXT = (
    ("model_used", 200),
    ("price_version", 200),
    ("user_id", 200),
    ("team_id", 200),
    ("api_key_id", 200),
    ("session_id", 200),
    ("request_type", 200),
    ("service_tier", 200),
    ("error_kind", 200),
    ("action", 200),
    ("prompt_hash", 200),
    ("client_ip", 200),
    ("user_agent", 2000),
    ("service", 200),
    ("endpoint", 2000),
)
_ROLLUP_SUMS = (
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


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _TOKEN_COLUMNS),
        sa.Column("audio_seconds", sa.BigInteger(), nullable=False),
        sa.Column("processing_seconds", sa.BigInteger(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=True),
        sa.Column("original_cost", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("original_price_version", sa.String(length=200), nullable=True),
        sa.Column("cost_estimated", sa.Boolean(), nullable=False),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        *(sa.Column(name, sa.String(length=length), nullable=True) for name, length in _OPTIONAL_TEXT),
        sa.Column("tags", _json(), nullable=True),
        sa.Column("metadata", _json(), nullable=True),
        sa.Column("latency_ms", sa.BigInteger(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("cache_savings", sa.BigInteger(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("request_bytes", sa.BigInteger(), nullable=True),
        sa.Column("response_bytes", sa.BigInteger(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_usage_events"),
    )
    op.create_index("ix_usage_events_timestamp", "usage_events", ["timestamp"])
    op.create_index("ix_usage_events_user_timestamp", "usage_events", ["user_id", "timestamp"])
    op.create_index("ix_usage_events_team_timestamp", "usage_events", ["team_id", "timestamp"])
    op.create_index("ix_usage_events_api_key_timestamp", "usage_events", ["api_key_id", "timestamp"])
    op.create_index("ix_usage_events_provider_model_timestamp", "usage_events", ["provider", "model", "timestamp"])

    op.create_table(
        "usage_rollups",
        sa.Column("granularity", sa.String(length=8), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        *(
            sa.Column(name, sa.String(length=200), nullable=False)
            for name in ("user_id", "team_id", "api_key_id", "provider", "model")
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in _ROLLUP_SUMS),
        sa.PrimaryKeyConstraint(
            "granularity",
            "bucket_start",
            "user_id",
            "team_id",
            "api_key_id",
            "provider",
            "model",
            "currency",
            name="pk_usage_rollups",
        ),
    )

    op.create_table(
        "cost_adjustments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("old_cost", sa.BigInteger(), nullable=True),
        sa.Column("new_cost", sa.BigInteger(), nullable=True),
        sa.Column("old_price_version", sa.String(length=200), nullable=True),
        sa.Column("new_price_version", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cost_adjustments"),
    )
    op.create_index("ix_cost_adjustments_event_id", "cost_adjustments", ["event_id"])
    op.create_index("ix_cost_adjustments_created_at", "cost_adjustments", ["created_at"])

    op.create_table(
        "price_overrides",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_price_overrides"),
    )
    op.create_index("ix_price_overrides_provider_model", "price_overrides", ["provider", "model", "effective_from"])


def downgrade() -> None:
    op.drop_table("price_overrides")
    op.drop_table("cost_adjustments")
    op.drop_table("usage_rollups")
    op.drop_table("usage_events")
