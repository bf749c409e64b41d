"""Per-user data keys for personal data (crypto-shredding on erasure).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pii_keys",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("wrapped", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.current_timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_pii_keys"),
    )


def downgrade() -> None:
    op.drop_table("pii_keys")
