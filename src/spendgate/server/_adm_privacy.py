"""Admin API for personal data: export everything about a user, and erase a user (GDPR articles 15 and 17).

Erasure anonymizes rather than deletes (``spendgate.ledger._privacy``): the user's events, rollups and
cube rows move to a random pseudonym, so every team and global total stays exact; their limits,
grants and threshold crossings go; their keys are revoked and re-pointed at the pseudonym; the user
record is deleted. The audit entries of the erasure name only the pseudonym (and key ids) and keep
no bodies; entries written before it are not rewritten (the log is append-only and hash-chained).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, replace
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from spendgate.analytics import RefreshJob
from spendgate.ledger._privacy import erase_user_crossings, erase_user_events, names_user, new_pseudonym, user_events
from spendgate.server._adm_common import actor_of, errors
from spendgate.server._adm_usage import export_chunks
from spendgate.server._deps import Admin, Caller, Services, ServicesDep, own

__all__ = ["router"]

router = APIRouter(tags=["privacy"])


def _profile(svc: Services, user_id: str) -> dict[str, Any]:
    user = svc.identity.get_user(user_id)
    keys = [key for key in svc.identity.list_keys() if key.user_id == user_id]
    limits = [limit for limit in svc.meter.limits() if names_user(limit.id, user_id)]
    limit_ids = {limit.id for limit in limits}
    targets = {f"user:{user_id}", *(f"api_key:{key.key_id}" for key in keys), *(f"limit:{i}" for i in limit_ids)}
    actors = {f"key:{key.key_id}" for key in keys}
    return {
        "user_id": user_id,
        "user": None if user is None else asdict(user),
        "keys": [key.public() for key in keys],
        "limits": [limit.to_dict() for limit in limits],
        "grants": [grant.to_dict() for grant in svc.meter.grants() if grant.limit_id in limit_ids],
        "audit": [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "body": e.body,
            }
            for e in svc.meter.store.control.audit_entries(limit=10_000_000)
            if e.target in targets or e.actor in actors
        ],
    }


def _attachment(name: str) -> str:
    """A Content-Disposition for ``name`` (any characters: an ASCII fallback plus the RFC 5987 form)."""
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def _document(svc: Services, user_id: str) -> Iterator[str]:
    head = json.dumps(_profile(svc, user_id), default=str, indent=None)
    yield head[:-1] + ', "events": '
    yield from export_chunks(user_events(svc.meter.store, user_id), "json")
    yield "}\n"


@router.get(
    "/users/{user_id}/export",
    summary="Everything stored about a user, as one JSON document (admins; members: themselves)",
    response_class=StreamingResponse,
    responses={**errors(), 200: {"content": {"application/json": {}}}},
)
def export_user(user_id: str, principal: Caller, svc: ServicesDep) -> StreamingResponse:
    """The user record, their keys (never secrets), limits, grants, audit entries and every event, streamed."""
    own(principal, user_id)
    svc.meter.flush()
    return StreamingResponse(
        _document(svc, user_id),
        media_type="application/json",
        headers={"Content-Disposition": _attachment(f"spendgate-user-{user_id}.json")},
    )


@router.post("/users/{user_id}/erase", summary="Erase a user: anonymize their usage, remove their data (admin)",
             responses=errors())  # fmt: skip
def erase_user(user_id: str, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    """Totals stay exact: events are re-attributed to a random pseudonym, never deleted."""
    actor, meter = actor_of(principal), svc.meter
    meter.flush()  # usage still in the journal reaches the ledger first
    drain = RefreshJob(meter.store, max_batches=1_000_000)
    drain()  # the cubes hold every event before their rows are renamed
    alias = new_pseudonym()
    erased = erase_user_events(meter.store, user_id, alias)
    drain()
    again = erase_user_events(meter.store, user_id, alias)  # rows a concurrent refresh wrote meanwhile
    control = meter.store.control
    limits = [limit.id for limit in meter.limits() if names_user(limit.id, user_id)]
    for grant in meter.grants():
        if grant.limit_id in limits:
            control.delete("grant", grant.id, actor=actor, audit_as=alias)
    for limit_id in limits:
        control.delete("limit", limit_id, actor=actor, audit_as=alias)
    meter.governor.policy.invalidate()
    keys = 0
    for key in svc.identity.list_keys():
        if key.user_id == user_id:
            revoked = replace(key, user_id=alias, revoked_at=key.revoked_at or meter.clock.now().isoformat())
            control.put("api_key", key.key_id, asdict(revoked), actor=actor, audit_as=key.key_id)
            keys += 1
    deleted = control.delete("user", user_id, actor=actor, audit_as=alias)
    shredded = svc.identity.sealer.shred(user_id)  # what older audit entries hold can no longer be opened
    svc.identity.forget()
    result = {
        "pseudonym": alias,
        "events": erased.events + again.events,
        "rollup_rows": erased.rollup_rows + again.rollup_rows,
        "cube_rows": erased.cube_rows + again.cube_rows,
        "threshold_crossings": erase_user_crossings(meter.store, user_id),
        "limits_removed": len(limits),
        "keys_revoked": keys,
        "user_deleted": deleted,
        "personal_data_key_destroyed": shredded,
    }
    meter.store.control.audit(actor, "user.erase", f"user:{alias}", result)
    return result
