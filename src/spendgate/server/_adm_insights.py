"""Insights API: month-end forecast with a confidence band, anomalies, cost recommendations.

Admins and viewers see everything; members only their own traffic (their user id is pinned, and of
anomalies they see those of their own ``user:<id>`` scope). Detecting anomalies is for admins.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from spendgate.analytics._anomaly import (
    AnomalyConfig,
    Metric,
    detect_anomalies,
    list_anomalies,
    record_anomalies,
    target_hours,
)
from spendgate.analytics._forecast import forecast_month, limit_run_outs
from spendgate.analytics._recommend import RecommendationConfig, recommend
from spendgate.server._adm_common import actor_of, aware, errors
from spendgate.server._adm_usage import budget_statuses
from spendgate.server._deps import Admin, Caller, ServicesDep, own
from spendgate.server._errors import ApiError

__all__ = ["DetectRequest", "router"]

router = APIRouter(tags=["insights"])

_PERIOD = timedelta(days=30)


def _forecast(
    principal: Caller,
    svc: ServicesDep,
    user_id: str | None,
    team_id: str | None,
    api_key_id: str | None,
    provider: str | None,
    model: str | None,
) -> dict[str, Any]:
    user_id = own(principal, user_id)
    svc.meter.flush()
    now = svc.meter.clock.now()
    scope = {"user_id": user_id, "team_id": team_id, "api_key_id": api_key_id, "provider": provider, "model": model}
    forecast = forecast_month(svc.meter.store, now, scope=scope)
    statuses = budget_statuses(svc, user_id, team_id, api_key_id, provider, model)
    return {**forecast.to_dict(), "limits": [item.to_dict() for item in limit_run_outs(statuses, now)]}


@router.get(
    "/usage/forecast",
    summary="Month-end spend forecast with a confidence band, and when each applicable limit runs out",
    responses=errors(400),
)
@router.get(
    "/projection",
    summary="The month-end forecast (same answer as /usage/forecast)",
    responses=errors(400),
)
def usage_forecast(
    principal: Caller,
    svc: ServicesDep,
    user_id: str | None = None,
    team_id: str | None = None,
    api_key_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Linear trend plus day-of-week effects fitted on the daily rollups (see docs/insights.md)."""
    return _forecast(principal, svc, user_id, team_id, api_key_id, provider, model)


@router.get("/anomalies", summary="Stored anomalies, oldest hour first", responses=errors(400))
def anomalies(
    principal: Caller,
    svc: ServicesDep,
    since: datetime | None = None,
    until: datetime | None = None,
    scope: str | None = None,
    metric: Metric | None = None,
    detected_since: datetime | None = None,
) -> dict[str, Any]:
    """Hours in ``[since, until)``; ``scope`` like ``global``, ``team:ml``, ``model:gpt-4o``; members: their own."""
    scopes = None
    if not principal.can_read_all:
        mine = f"user:{principal.user_id}"
        if scope is not None and scope != mine:
            raise ApiError(403, "permission_error", "members can only see anomalies of their own usage")
        scopes = [mine]
    found = list_anomalies(
        svc.meter.store.control,
        since=aware("since", since),
        until=aware("until", until),
        scope=scope,
        metric=metric,
        scopes=scopes,
        detected_since=aware("detected_since", detected_since),
    )
    return {"anomalies": [item.to_dict() for item in found]}


class DetectRequest(BaseModel):
    """Which complete UTC hours to evaluate (default: the last complete hour; at most a week per call)."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = None
    until: datetime | None = None


@router.post(
    "/anomalies/detect",
    summary="Detect anomalies in complete hours and store the new ones (admin)",
    responses=errors(400),
)
def detect(principal: Admin, svc: ServicesDep, body: DetectRequest | None = None) -> dict[str, Any]:
    request = body or DetectRequest()
    since, until = aware("since", request.since), aware("until", request.until)
    svc.meter.flush()
    now = svc.meter.clock.now()
    config = AnomalyConfig()
    hours = target_hours(now, since, until, config)
    found = detect_anomalies(svc.meter.store, now, since=since, until=until, config=config)
    new = record_anomalies(svc.meter.store.control, found, actor=actor_of(principal))
    return {
        "since": hours[0].isoformat(),
        "until": (hours[-1] + timedelta(hours=1)).isoformat(),
        "hours": len(hours),
        "detected": [item.to_dict() for item in found],
        "new": [item.id for item in new],
    }


@router.get(
    "/recommendations",
    summary="Ways to spend less, each with its savings on the period's actual traffic",
    responses=errors(400),
)
def recommendations(
    principal: Caller,
    svc: ServicesDep,
    since: datetime | None = None,
    until: datetime | None = None,
    user_id: str | None = None,
    team_id: str | None = None,
    api_key_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    min_savings: Decimal | None = None,
    min_confidence: float | None = None,
) -> dict[str, Any]:
    """Over ``[since, until)`` (default: the last 30 days); only those above the savings and confidence floors."""
    user_id = own(principal, user_id)
    svc.meter.flush()
    end = aware("until", until) or svc.meter.clock.now()
    start = aware("since", since)
    if start is None:
        try:
            start = end - _PERIOD
        except OverflowError:
            raise ApiError(400, "invalid_request_error", "until is out of range", field="until") from None
    if start >= end:
        raise ApiError(400, "invalid_request_error", "since must be before until", field="since")
    floors: dict[str, Any] = {}
    if min_savings is not None:
        floors["min_savings"] = min_savings
    if min_confidence is not None:
        floors["min_confidence"] = min_confidence
    report = recommend(
        svc.meter.store,
        svc.meter.prices,
        since=start,
        until=end,
        user_id=user_id,
        team_id=team_id,
        api_key_id=api_key_id,
        provider=provider,
        model=model,
        config=RecommendationConfig(**floors),
        chains=svc.meter.governor.policy.get().chains,
    )
    return report.to_dict()
