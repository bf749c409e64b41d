"""What retention removes from alerting: resolved alerts (with their deliveries) and old refusal counts.

Open alerts (firing or acknowledged) are kept however old they are, and so are their deliveries.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from spendgate.alerts._auth_log import prune_auth_failures
from spendgate.alerts._store import engine_of
from spendgate.ledger._alerts_schema import alert_deliveries, alerts

__all__ = ["prune_alerting"]


def prune_alerting(store: object, before: datetime) -> int:
    """Delete alerts resolved before ``before`` with their deliveries, and the failed-authentication
    counts of minutes before it; how many rows went."""
    t, d = alerts, alert_deliveries

    def work(conn: sa.Connection) -> int:
        old = sa.select(t.c.id).where(t.c.status == "resolved", t.c.resolved_at < before)
        removed = conn.execute(sa.delete(d).where(d.c.alert_id.in_(old))).rowcount or 0
        return int(removed + (conn.execute(sa.delete(t).where(t.c.id.in_(old))).rowcount or 0))

    return engine_of(store).write("prune resolved alerts in", work) + prune_auth_failures(store, before)
