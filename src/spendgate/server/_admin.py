"""The admin API under ``/api/v1``: users, teams, keys, limits, controls, prices, usage and the audit log.

One router module per resource (``_adm_*.py``); this one puts them together. Roles: admin (everything),
viewer (every GET), member (their own usage, budget status and keys; rotating their own key). See docs/api.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from spendgate.server import (
    _adm_alerts,
    _adm_analytics,
    _adm_audit,
    _adm_controls,
    _adm_insights,
    _adm_keys,
    _adm_limits,
    _adm_me,
    _adm_prices,
    _adm_privacy,
    _adm_teams,
    _adm_usage,
    _adm_users,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")
_MODULES = (_adm_me, _adm_users, _adm_teams, _adm_keys, _adm_limits, _adm_controls, _adm_prices, _adm_usage,
            _adm_insights, _adm_audit, _adm_alerts, _adm_analytics, _adm_privacy)  # fmt: skip
for _module in _MODULES:
    router.include_router(_module.router)
