"""The audit log as a hash chain: each entry's ``hash`` covers its fields and the previous entry's hash.

Changing, removing or reordering any entry breaks every hash after it, and :func:`verify_audit_chain`
finds the first entry that no longer fits. The database refuses ``UPDATE`` and ``DELETE`` on
``audit_log`` (triggers from migration 0006), so the log is append-only for the application's own
connections too; the chain catches what a superuser could still do by hand.

Appending holds the chain's head while the transaction runs (SQLite: the write lock every write
transaction takes up front; PostgreSQL: ``pg_advisory_xact_lock``), so entries from concurrent writers
and replicas chain in the order of their ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from spendgate.ledger._engine import LedgerEngine, engine_of
from spendgate.ledger._schema import audit_log

__all__ = ["GENESIS", "AuditVerification", "append_audit", "entry_hash", "verify_audit_chain"]

#: The "previous hash" of the first entry.
GENESIS = "0" * 64
_LOCK_KEY = 0x5347_4155  # "SGAU": the audit chain's advisory lock on PostgreSQL
_PAGE = 5000


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, target: str, body: str) -> str:
    """SHA-256 (hex) of the previous hash and the entry's fields, unit-separated; ``at`` in UTC ISO form."""
    stamp = at.astimezone(UTC).isoformat(timespec="microseconds")
    text = "\x1f".join((prev_hash, stamp, actor, action, target, body))
    return hashlib.sha256(text.encode()).hexdigest()


def append_audit(conn: sa.Connection, at: datetime, actor: str, action: str, target: str, body: str) -> None:
    """Append one entry to the chain, in the caller's (write) transaction."""
    t = audit_log
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    head = conn.execute(sa.select(t.c.hash).order_by(t.c.id.desc()).limit(1)).scalar_one_or_none()
    prev = head or GENESIS
    at = at.astimezone(UTC)
    digest = entry_hash(prev, at, actor, action, target, body)
    conn.execute(
        sa.insert(t),
        {"at": at, "actor": actor, "action": action, "target": target, "body": body, "prev_hash": prev, "hash": digest},
    )


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The outcome of :func:`verify_audit_chain`."""

    ok: bool
    entries: int
    """Entries checked (up to and including the first bad one)."""
    head: str
    """The hash of the last entry checked (GENESIS for an empty log)."""
    bad_id: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"ok": self.ok, "entries": self.entries, "head": self.head, "bad_id": self.bad_id, "reason": self.reason}


def _rows(engine: LedgerEngine) -> Iterator[sa.Row[tuple[object, ...]]]:
    t = audit_log
    after = None
    while True:
        query = sa.select(t).order_by(t.c.id).limit(_PAGE)
        if after is not None:
            query = query.where(t.c.id > after)
        with engine.transaction("read the audit log of") as conn:
            page = conn.execute(query).all()
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1].id


def verify_audit_chain(store: object) -> AuditVerification:
    """Recompute every entry's hash in id order; the first entry that does not match ends the check.
    ``store``: a SQL usage store (or its engine). A log cut short at its end still verifies: compare
    ``head`` with one noted earlier to catch that."""
    prev, count = GENESIS, 0
    for row in _rows(engine_of(store, "the audit chain")):
        count += 1
        if row.prev_hash != prev:
            reason = "its previous hash is not the hash of the entry before it (removed or reordered entries)"
            return AuditVerification(False, count, prev, row.id, reason)
        expected = entry_hash(prev, row.at, row.actor, row.action, row.target, row.body)
        if row.hash != expected:
            return AuditVerification(False, count, prev, row.id, "its fields do not match its hash (edited entry)")
        prev = row.hash
    return AuditVerification(True, count, prev)
