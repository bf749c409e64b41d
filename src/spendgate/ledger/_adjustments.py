"""Re-rating storage: change the current cost of stored events, keep the history, fix the rollups.

The ledger only stores: the Meter decides the new costs. Each change writes a ``cost_adjustments``
row, updates the event's current ``cost``/``price_version`` (``original_cost`` never changes) and
moves the rollups by the difference, all in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from spendgate.errors import LedgerError
from spendgate.ledger import _analytics_queue
from spendgate.ledger._event import TEXT_LIMITS
from spendgate.ledger._money import quantize
from spendgate.ledger._rollups import RollupAccumulator, RollupUpsert, rollup_dims
from spendgate.ledger._schema import cost_adjustments, usage_events
from spendgate.ledger._validate import check_aware, check_money, check_optional_text, check_text

__all__ = ["AdjustmentRecord", "CostAdjustment", "apply_adjustments", "list_adjustments"]

MAX_REASON_LENGTH = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class CostAdjustment:
    """Change event ``event_id``'s cost from ``old_cost`` to ``new_cost`` (``None`` = unpriced).

    ``old_cost`` and ``old_price_version`` are what the caller read: the store checks them against the
    event's current values and refuses the whole batch when they differ (someone else re-rated it in
    between), so concurrent re-rating never loses an update. ``created_at`` defaults to the store's clock.
    """

    event_id: str
    old_cost: Decimal | None
    new_cost: Decimal | None
    old_price_version: str | None
    new_price_version: str | None
    reason: str = "rerate"
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        check_text("event_id", self.event_id, TEXT_LIMITS["event_id"])
        for name in ("old_cost", "new_cost"):
            object.__setattr__(self, name, check_money(name, getattr(self, name)))
        for name in ("old_price_version", "new_price_version"):
            check_optional_text(name, getattr(self, name), TEXT_LIMITS["price_version"])
        check_text("reason", self.reason, MAX_REASON_LENGTH)
        if self.created_at is not None:
            object.__setattr__(self, "created_at", check_aware("created_at", self.created_at))


@dataclass(frozen=True, slots=True, kw_only=True)
class AdjustmentRecord:
    """One stored cost change of one event."""

    id: int
    event_id: str
    old_cost: Decimal | None
    new_cost: Decimal | None
    old_price_version: str | None
    new_price_version: str | None
    reason: str
    created_at: datetime


def apply_adjustments(conn: sa.Connection, adjustments: Sequence[CostAdjustment], now: datetime) -> int:
    """Apply ``adjustments`` in order; returns how many changed an event (no-ops are skipped).

    An unknown event id raises :class:`LedgerError` before anything is written.
    """
    for item in adjustments:
        if not isinstance(item, CostAdjustment):
            raise TypeError(f"expected CostAdjustment, got {type(item).__name__}")
    t = usage_events
    ids = sorted({a.event_id for a in adjustments})
    columns = (
        t.c.event_id,
        t.c.timestamp,
        t.c.user_id,
        t.c.team_id,
        t.c.api_key_id,
        t.c.provider,
        t.c.model,
        t.c.currency,
        t.c.cost,
        t.c.price_version,
    )
    current: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        query = sa.select(*columns).where(t.c.event_id.in_(ids[start : start + 500])).order_by(t.c.event_id)
        for row in conn.execute(query.with_for_update()).mappings():
            current[row["event_id"]] = dict(row)
    missing = [event_id for event_id in ids if event_id not in current]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise LedgerError(f"cannot adjust unknown events: {shown}; nothing was changed")

    acc = RollupAccumulator()
    history: list[dict[str, Any]] = []
    for item in adjustments:
        state = current[item.event_id]
        old_cost, new_cost = _stored(item.old_cost), _stored(item.new_cost)
        if (state["cost"], state["price_version"]) != (old_cost, item.old_price_version):
            raise LedgerError(
                f"event {item.event_id!r} changed since it was read: its cost is {state['cost']} (price version"
                f" {state['price_version']}), the adjustment expected {old_cost} ({item.old_price_version});"
                " nothing was changed: read it again and retry"
            )
        if (old_cost, item.old_price_version) == (new_cost, item.new_price_version):
            continue
        dims = rollup_dims(
            *(state[name] for name in ("user_id", "team_id", "api_key_id", "provider", "model", "currency"))
        )
        acc.add_cost_change(state["timestamp"], dims, state["cost"], new_cost)
        history.append(
            {
                "event_id": item.event_id,
                "old_cost": state["cost"],
                "new_cost": new_cost,
                "old_price_version": state["price_version"],
                "new_price_version": item.new_price_version,
                "reason": item.reason,
                "created_at": item.created_at or now,
            }
        )
        state["cost"], state["price_version"], state["changed"] = new_cost, item.new_price_version, True
    if not history:
        return 0
    changed = [s for s in current.values() if s.get("changed")]
    conn.execute(
        sa.update(t)
        .where(t.c.event_id == sa.bindparam("b_event_id"))
        .values(cost=sa.bindparam("b_cost"), price_version=sa.bindparam("b_price_version")),
        [{"b_event_id": s["event_id"], "b_cost": s["cost"], "b_price_version": s["price_version"]} for s in changed],
    )
    written = conn.execute(sa.insert(cost_adjustments).returning(cost_adjustments.c.id), history)
    _analytics_queue.enqueue(conn, "adjustments", sorted(row[0] for row in written), now)
    RollupUpsert(conn.dialect.name).execute(conn, acc)
    return len(history)


def _stored(cost: Decimal | None) -> Decimal | None:
    """``cost`` as the ledger stores it (12 decimal places)."""
    return None if cost is None else quantize(cost)


def list_adjustments(conn: sa.Connection, event_id: str | None, since: datetime | None) -> list[AdjustmentRecord]:
    """Stored adjustments, oldest first, optionally for one event and/or from ``since`` on."""
    t = cost_adjustments
    query = sa.select(t).order_by(t.c.id)
    if event_id is not None:
        query = query.where(t.c.event_id == event_id)
    if since is not None:
        query = query.where(t.c.created_at >= check_aware("since", since))
    return [AdjustmentRecord(**row) for row in conn.execute(query).mappings()]
