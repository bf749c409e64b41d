"""Refused API keys per minute and client address, for the failed-authentication alerts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_failures",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "client_ip", name="pk_auth_failures"),
    )


def downgrade() -> None:
    op.drop_table("auth_failures")
