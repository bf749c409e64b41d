"""Refused API keys, counted per minute and client address, for the ``failed_auth`` security rules.

A process that refuses a key (missing, unknown, expired or revoked) calls :meth:`AuthFailures.record`,
which only bumps an in-memory counter: nothing slow runs on the request path, and a flood of bad keys
costs no database writes per request. :meth:`AuthFailures.flush` (run by the alerting job before each
round, and on shutdown) adds the counts to ``auth_failures`` rows keyed by (minute, address), so the
replicas of a service add up in one table. A flush that fails keeps its counts for the next one.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from spendgate.alerts._store import engine_of
from spendgate.ledger._alerts_schema import auth_failures

__all__ = ["AuthFailures", "failures_by_address", "prune_auth_failures"]

_MAX_ADDRESS = 64
#: Distinct (minute, address) pairs held between flushes; beyond it new addresses count as "(overflow)".
MAX_PENDING = 10_000
OVERFLOW = "(overflow)"


def _minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)


class AuthFailures:
    """Counts of refused keys not yet written to the ledger. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[datetime, str]] = Counter()

    def record(self, address: str | None, now: datetime) -> None:
        """Count one refused key from ``address`` (None when unknown) at ``now``."""
        key = (_minute(now), (address or "")[:_MAX_ADDRESS])
        with self._lock:
            if key not in self._counts and len(self._counts) >= MAX_PENDING:
                key = (key[0], OVERFLOW)
            self._counts[key] += 1

    def pending(self) -> int:
        """Refusals counted and not flushed yet."""
        with self._lock:
            return sum(self._counts.values())

    def flush(self, store: object) -> int:
        """Add the pending counts to the ledger of ``store``; how many refusals were written."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        try:
            engine_of(store).write("record failed authentications in", lambda conn: _add(conn, counts))
        except Exception:
            with self._lock:
                self._counts.update(counts)
            raise
        return sum(counts.values())


def _add(conn: sa.Connection, counts: Counter[tuple[datetime, str]]) -> None:
    t = auth_failures
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    rows = [{"minute": m, "client_ip": ip, "failures": n} for (m, ip), n in sorted(counts.items())]
    stmt = insert(t)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[t.c.minute, t.c.client_ip], set_={"failures": t.c.failures + stmt.excluded.failures}
        ),
        rows,
    )


def failures_by_address(store: object, since: datetime, until: datetime) -> list[tuple[str, int]]:
    """Refused keys per client address in the minutes that overlap ``[since, until]``, most first (counts
    are kept per minute, so the window is widened to whole minutes)."""
    t = auth_failures
    total = sa.func.sum(t.c.failures)
    query = (
        sa.select(t.c.client_ip, total)
        .where(t.c.minute >= _minute(since), t.c.minute <= until)
        .group_by(t.c.client_ip)
        .order_by(total.desc(), t.c.client_ip)
    )
    with engine_of(store).transaction("count failed authentications in") as conn:
        return [(str(ip), int(n)) for ip, n in conn.execute(query).all()]


def prune_auth_failures(store: object, before: datetime) -> int:
    """Delete the counts of minutes before ``before``; how many rows went."""
    t = auth_failures

    def work(conn: sa.Connection) -> int:
        return int(conn.execute(sa.delete(t).where(t.c.minute < before)).rowcount or 0)

    return engine_of(store).write("prune failed authentications in", work)
