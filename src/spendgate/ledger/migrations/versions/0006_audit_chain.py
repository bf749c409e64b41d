"""The audit log becomes a hash chain (``prev_hash``, ``hash``) and append-only (triggers refuse
UPDATE and DELETE). Existing entries are chained in id order.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from spendgate.ledger._audit import GENESIS, entry_hash
from spendgate.ledger._schema import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MESSAGE = "audit_log is append-only"
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION spendgate_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{_MESSAGE}';
END;
$$ LANGUAGE plpgsql
"""


def _backfill() -> None:
    conn = op.get_bind()
    t = sa.table(
        "audit_log", sa.column("id", sa.BigInteger()), sa.column("at", UTCDateTime()),
        sa.column("actor", sa.String()), sa.column("action", sa.String()), sa.column("target", sa.String()),
        sa.column("body", sa.Text()), sa.column("prev_hash", sa.String()), sa.column("hash", sa.String()),
    )  # fmt: skip
    prev = GENESIS
    rows = conn.execute(sa.select(t.c.id, t.c.at, t.c.actor, t.c.action, t.c.target, t.c.body).order_by(t.c.id)).all()
    for row in rows:
        digest = entry_hash(prev, row.at, row.actor, row.action, row.target, row.body)
        conn.execute(sa.update(t).where(t.c.id == row.id).values(prev_hash=prev, hash=digest))
        prev = digest


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _backfill()
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(length=64), nullable=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION spendgate_audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS spendgate_audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
