"""Admin API: the audit log of every change (who, what, which object, before and after)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from spendgate.ledger import verify_audit_chain
from spendgate.server._adm_common import aware, errors
from spendgate.server._deps import Admin, ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["audit"])

_SCAN = 10_000
"""Entries read per request before the filters apply (page on with ``since``)."""


@router.get("/audit", summary="The audit log, oldest first (admin)", responses=errors(400))
def audit_log(
    _: Admin,
    svc: ServicesDep,
    since: datetime | None = None,
    actor: str | None = None,
    action: str | None = Query(default=None, description="An action ('user.create') or its kind ('user')"),
    target: str | None = None,
    include_reservations: bool = Query(default=False, description="Also list metering reservations"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    """Entries from ``since`` on; reservations of the metering API are left out unless asked for."""
    found: list[dict[str, Any]] = []
    for entry in svc.meter.store.control.audit_entries(since=aware("since", since), limit=_SCAN):
        if not include_reservations and entry.action.startswith("reservation."):
            continue
        if actor is not None and entry.actor != actor:
            continue
        if action is not None and entry.action != action and entry.action.split(".", 1)[0] != action:
            continue
        if target is not None and entry.target != target:
            continue
        at = entry.at.isoformat()
        found.append({"id": entry.id, "at": at, "actor": entry.actor, "action": entry.action, "target": entry.target,
                      "body": entry.body, "hash": entry.hash})  # fmt: skip
        if len(found) == limit:
            break
    return {"entries": found, "next_since": found[-1]["at"] if len(found) == limit else None}


@router.get("/audit/verify", summary="Recompute the audit log's hash chain (admin)", responses=errors())
def audit_verify(_: Admin, svc: ServicesDep) -> dict[str, object]:
    """``ok`` with the number of entries and the head hash, or the first entry that does not fit and why."""
    return verify_audit_chain(svc.meter.store).to_dict()
