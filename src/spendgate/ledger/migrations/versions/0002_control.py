"""Control plane: control objects (limits, grants, breakers), threshold crossings, request queue, audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "control_objects",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("kind", "id", name="pk_control_objects"),
    )
    op.create_table(
        "threshold_crossings",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("limit_id", sa.String(length=200), nullable=False),
        sa.Column("window_key", sa.String(length=200), nullable=False),
        sa.Column("threshold", sa.String(length=16), nullable=False),
        _at("crossed_at"),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_threshold_crossings"),
        sa.UniqueConstraint("limit_id", "window_key", "threshold", name="uq_threshold_crossings"),
    )
    op.create_index("ix_threshold_crossings_crossed_at", "threshold_crossings", ["crossed_at"])
    op.create_table(
        "request_queue",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _at("created_at"),
        _at("run_after"),
        _at("updated_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_request_queue"),
    )
    op.create_index("ix_request_queue_ready", "request_queue", ["status", "run_after", "priority"])
    op.create_table(
        "audit_log",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        _at("at"),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=400), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("request_queue")
    op.drop_table("threshold_crossings")
    op.drop_table("control_objects")
