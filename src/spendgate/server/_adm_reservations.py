"""Reservations of the remote metering API, kept in the control store so any replica can settle them.

``POST /api/v1/authorize`` answers a reservation id; the holds behind it must be found again by
``/settle`` or ``/release``, possibly on another replica. So the minimal authorization data (decision
action and model, request context, holds and rate-limit slots, when it was made) is stored as a
control object of kind ``reservation`` and rebuilt into an :class:`Authorization` at settle. Settling
removes it. Records older than ``Settings.hold_ttl_s`` (when the counters' holds lapse too) are swept;
a settle after that finds no reservation: the caller then records the usage with ``POST /api/v1/events``
(its ``event_id`` the reservation id, so nothing is counted twice).
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.budgets import Action, Decision, Limit, RequestContext
from spendgate.meter import Authorization, Meter
from spendgate.meter._authorization import Hold, RateHold  # not re-exported by spendgate.meter

__all__ = ["KIND", "Reservations"]

KIND = "reservation"
_FORMAT = 1


def _plain(value: Any) -> Any:
    if isinstance(value, Limit):
        return value.to_dict()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def _dump(item: Hold | RateHold) -> dict[str, Any]:
    return {f.name: _plain(getattr(item, f.name)) for f in fields(item)}


def _hold(body: dict[str, Any]) -> Hold:
    return Hold(
        **{**body, "limit": Limit.from_dict(body["limit"]), "effective_amount": Decimal(body["effective_amount"])}
    )


class Reservations:
    """Save, find and drop the authorizations of remote callers (a thin layer over the control store)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.control = meter.store.control
        self.ttl = timedelta(seconds=meter.settings.hold_ttl_s)

    def save(self, auth: Authorization, *, actor: str) -> datetime:
        """Store an allowed authorization; returns when its holds lapse."""
        ctx = auth.ctx
        authorized_at = auth.authorized_at or self.meter.clock.now()
        body = {
            "format": _FORMAT,
            "reservation_id": auth.reservation_id,
            "action": auth.action.value,
            "provider": auth.provider,
            "model": auth.model,
            "requested_provider": auth.requested_provider,
            "requested_model": auth.requested_model,
            "ctx": {f.name: getattr(ctx, f.name) for f in fields(ctx) if f.name != "tags"} | {"tags": dict(ctx.tags)},
            "holds": [_dump(hold) for hold in auth.holds],
            "rate_holds": [_dump(hold) for hold in auth.rate_holds],
            "authorized_at": authorized_at.isoformat(),
        }
        self.control.put(KIND, auth.reservation_id, body, actor=actor, create_only=True)
        return authorized_at + self.ttl

    def load(self, reservation_id: str) -> Authorization | None:
        """The stored authorization, rebuilt (None when unknown, settled or swept)."""
        body = self.control.get(KIND, reservation_id)
        if body is None:
            return None
        decision = Decision(action=Action(body["action"]), provider=body["provider"], model=body["model"])
        return Authorization(
            decision=decision,
            reservation_id=body["reservation_id"],
            ctx=RequestContext(**body["ctx"]),
            requested_model=body["requested_model"],
            requested_provider=body["requested_provider"],
            estimate=None,
            holds=tuple(_hold(item) for item in body["holds"]),
            rate_holds=tuple(RateHold(**item) for item in body["rate_holds"]),
            authorized_at=datetime.fromisoformat(body["authorized_at"]),
        )

    def drop(self, reservation_id: str, *, actor: str) -> bool:
        return self.control.delete(KIND, reservation_id, actor=actor)

    def sweep(self, now: datetime) -> int:
        """Remove reservations whose holds have lapsed; returns how many."""
        swept = 0
        for body in self.control.list_objects(KIND):
            if datetime.fromisoformat(body["authorized_at"]) + self.ttl <= now:
                swept += self.drop(body["reservation_id"], actor="system:sweep")
        return swept
