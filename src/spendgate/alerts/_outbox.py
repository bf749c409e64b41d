"""The delivery outbox: rows written with the alert change they announce, claimed and settled by a worker.

A claim takes due ``pending`` rows (``next_attempt_at <= now``), counts the attempt and pushes
``next_attempt_at`` one lease ahead, all in one transaction: on PostgreSQL with ``FOR UPDATE SKIP
LOCKED``, so concurrent workers claim disjoint rows; on SQLite under the database's write lock. A
worker that dies mid-send leaves the row to be claimed again when the lease ends (at-least-once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from spendgate.ledger._alerts_schema import alert_deliveries
from spendgate.ledger._engine import LedgerEngine

__all__ = ["Delivery", "DeliveryEvent", "Outbox", "insert_deliveries"]

#: What a delivery announces: an alert fired, escalated a level, or resolved.
DeliveryEvent = Literal["fired", "escalated", "resolved"]
_ERROR_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification of one alert event on one channel, and how sending it went."""

    id: int
    alert_id: str
    channel: str
    event: DeliveryEvent
    level: int
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "channel": self.channel,
            "event": self.event,
            "level": self.level,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
            "sent_at": None if self.sent_at is None else self.sent_at.isoformat(),
        }


def _delivery(row: Mapping[Any, Any]) -> Delivery:
    return Delivery(**{f.name: row[f.name] for f in fields(Delivery)})


def insert_deliveries(
    conn: sa.Connection, alert_id: str, channels: Iterable[str], event: DeliveryEvent, level: int, now: datetime
) -> None:
    """Queue one delivery per channel, due now (inside the caller's transaction)."""
    rows = [
        {"alert_id": alert_id, "channel": channel, "event": event, "level": level, "status": "pending",
         "attempts": 0, "created_at": now, "next_attempt_at": now, "last_error": None, "sent_at": None}
        for channel in channels
    ]  # fmt: skip
    if rows:
        conn.execute(sa.insert(alert_deliveries), rows)


class Outbox:
    """Claiming and settling deliveries on the ledger's engine."""

    def __init__(self, engine: LedgerEngine) -> None:
        self._engine = engine

    def claim(self, now: datetime, *, limit: int, lease: timedelta) -> list[Delivery]:
        """Take up to ``limit`` due deliveries, oldest first; each claim counts as an attempt."""
        t = alert_deliveries

        def work(conn: sa.Connection) -> list[Delivery]:
            query = (
                sa.select(t)
                .where(t.c.status == "pending", t.c.next_attempt_at <= now)
                .order_by(t.c.next_attempt_at, t.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).mappings().all()
            ids = [row["id"] for row in rows]
            if ids:
                conn.execute(
                    sa.update(t).where(t.c.id.in_(ids)).values(attempts=t.c.attempts + 1, next_attempt_at=now + lease)
                )
            return [_delivery({**row, "attempts": row["attempts"] + 1, "next_attempt_at": now + lease}) for row in rows]

        return self._engine.write("claim alert deliveries in", work)

    def _settle(self, delivery_id: int, **values: Any) -> None:
        t = alert_deliveries
        self._engine.write(
            "record an alert delivery in",
            lambda conn: conn.execute(sa.update(t).where(t.c.id == delivery_id).values(**values)),
        )

    def sent(self, delivery_id: int, now: datetime) -> None:
        """Record a successful send."""
        self._settle(delivery_id, status="sent", sent_at=now, last_error=None)

    def retry(self, delivery_id: int, error: str, at: datetime) -> None:
        """Record a failed attempt; the delivery is due again at ``at``."""
        self._settle(delivery_id, status="pending", next_attempt_at=at, last_error=error[:_ERROR_LIMIT])

    def failed(self, delivery_id: int, error: str) -> None:
        """Give up on a delivery, keeping its last error."""
        self._settle(delivery_id, status="failed", last_error=error[:_ERROR_LIMIT])

    def deliveries(self, *, alert_id: str | None = None, status: str | None = None) -> list[Delivery]:
        """Deliveries (of one alert, or in one status), oldest first."""
        t = alert_deliveries
        query = sa.select(t).order_by(t.c.id)
        if alert_id is not None:
            query = query.where(t.c.alert_id == alert_id)
        if status is not None:
            query = query.where(t.c.status == status)
        with self._engine.transaction("read alert deliveries from") as conn:
            return [_delivery(row) for row in conn.execute(query).mappings().all()]
