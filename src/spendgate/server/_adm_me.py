"""``GET /api/v1/me``: who the caller's key is, so a client (the dashboard) knows what to show.

Answers the role, key, user, team and tier of the key (401 without a valid key), and the tier policies the
caller may read: every tier for admins and viewers (the Budgets page shows them), only the caller's own
tier for a member.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from spendgate.server._adm_common import errors
from spendgate.server._deps import Caller, ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["identity"])


@router.get("/me", summary="Who the key is: role, user, team, tier; the tier policies it may read", responses=errors())
def me(principal: Caller, svc: ServicesDep) -> dict[str, Any]:
    table = svc.meter.governor.policy.get().tiers
    if principal.can_read_all:
        tiers = [policy.to_dict() for policy in table.tiers.values()]
    else:
        tiers = [table.policy_for(principal.tier).to_dict()]
    return {
        "role": principal.role,
        "key_id": principal.key_id,
        "user_id": principal.user_id,
        "team_id": principal.team_id,
        "tier": principal.tier,
        "can_read_all": principal.can_read_all,
        "default_tier": table.default_tier,
        "tiers": tiers,
    }
