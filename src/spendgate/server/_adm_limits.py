"""Admin API: budget limits and their grants (top-ups). Every change is audited with the caller as actor."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from spendgate.budgets import Limit, Metric, Period
from spendgate.server._adm_common import Public, Viewer, actor_of, aware, errors, money, not_found, parse_scope
from spendgate.server._deps import Admin, Services, ServicesDep

__all__ = ["GrantCreate", "GrantPublic", "LimitCreate", "LimitPublic", "LimitUpdate", "router"]

router = APIRouter(tags=["limits"])

_Money = Field(description='An exact decimal, best sent as a string: "25.00"')


class LimitUpdate(BaseModel):
    """What a PATCH may change on a stored limit (the rest defines its identity)."""

    model_config = ConfigDict(extra="forbid")

    amount: Decimal | None = _Money
    level: str | None = None
    thresholds: list[float] | None = None


class LimitCreate(BaseModel):
    """A limit: at most ``amount`` of ``metric`` per ``period`` for ``scope`` (see docs/budgets.md)."""

    model_config = ConfigDict(extra="forbid")

    scope: str = Field(description="'global', 'user:alice', 'team:ml/provider:openai' or, with scope_id, 'user'")
    scope_id: str | None = None
    metric: str = Metric.COST.value
    period: str = Period.DAY.value
    amount: Decimal = _Money
    level: str = "hard"
    thresholds: list[float] | None = None
    timezone: str = "UTC"
    rolling_seconds: int | None = None
    tier: str | None = None
    id: str = ""


class LimitPublic(Public):
    id: str
    scope: str
    metric: str
    period: str
    amount: str
    level: str
    thresholds: list[float]
    timezone: str
    rolling_seconds: int | None
    tier: str | None
    enabled: bool
    created_at: str | None


class GrantCreate(BaseModel):
    """A top-up of the limit by ``amount`` (its metric's unit) from ``starts_at`` (default now) to ``expires_at``."""

    model_config = ConfigDict(extra="forbid")

    amount: Decimal = _Money
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    recurring: str = "none"
    reason: str = ""
    id: str | None = Field(default=None, min_length=1, max_length=128)


class GrantPublic(Public):
    id: str
    limit_id: str
    amount: str
    starts_at: str
    expires_at: str | None
    recurring: str
    reason: str
    created_by: str


def limit_dict(limit: Limit) -> dict[str, Any]:
    """A limit as JSON with its amount as an exact decimal string."""
    return {**limit.to_dict(), "amount": money(limit.amount)}


def _stored(svc: Services, limit_id: str) -> Limit:
    body = svc.meter.store.control.get("limit", limit_id)
    if body is None:
        raise not_found("limit", limit_id)
    return Limit.from_dict(body)


@router.post(
    "/limits",
    status_code=201,
    summary="Create a limit, or replace the limit with the same id (200)",
    response_model=LimitPublic,
    responses={**errors(400), 200: {"model": LimitPublic, "description": "An existing limit was replaced"}},
)
def set_limit(body: LimitCreate, principal: Admin, svc: ServicesDep, response: Response) -> dict[str, Any]:
    before = {limit.id for limit in svc.meter.limits()}
    limit = svc.meter.set_limit(
        scope=parse_scope(body.scope, body.scope_id),
        metric=body.metric,
        period=body.period,
        amount=body.amount,
        level=body.level,
        thresholds=body.thresholds,
        timezone=body.timezone,
        rolling_seconds=body.rolling_seconds,
        tier=body.tier,
        id=body.id,
        actor=actor_of(principal),
    )
    if limit.id in before:
        response.status_code = 200
    return limit_dict(limit)


@router.get(
    "/limits", summary="List stored limits (admin, viewer)", response_model=list[LimitPublic], responses=errors()
)
def list_limits(_: Viewer, svc: ServicesDep) -> list[dict[str, Any]]:
    return [limit_dict(limit) for limit in svc.meter.limits()]


@router.post(
    "/limits/{limit_id:path}/grants",
    status_code=201,
    summary="Add a grant (top-up) to a limit",
    response_model=GrantPublic,
    responses=errors(400, 404),
)
def add_grant(limit_id: str, body: GrantCreate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    _stored(svc, limit_id)
    grant = svc.meter.add_grant(
        limit_id,
        body.amount,
        starts_at=aware("starts_at", body.starts_at),
        expires_at=aware("expires_at", body.expires_at),
        recurring=body.recurring,
        reason=body.reason,
        created_by=actor_of(principal),
        id=body.id,
    )
    return {**grant.to_dict(), "amount": money(grant.amount)}


@router.get(
    "/limits/{limit_id:path}/grants",
    summary="List a limit's grants (admin, viewer)",
    response_model=list[GrantPublic],
    responses=errors(404),
)
def list_grants(limit_id: str, _: Viewer, svc: ServicesDep) -> list[dict[str, Any]]:
    _stored(svc, limit_id)
    return [{**g.to_dict(), "amount": money(g.amount)} for g in svc.meter.grants(limit_id)]


@router.delete("/grants/{grant_id:path}", status_code=204, summary="Remove a grant", responses=errors(404))
def delete_grant(grant_id: str, principal: Admin, svc: ServicesDep) -> Response:
    if not svc.meter.remove_grant(grant_id, actor=actor_of(principal)):
        raise not_found("grant", grant_id)
    return Response(status_code=204)


@router.get(
    "/limits/{limit_id:path}", summary="Get a limit (admin, viewer)", response_model=LimitPublic, responses=errors(404)
)
def get_limit(limit_id: str, _: Viewer, svc: ServicesDep) -> dict[str, Any]:
    return limit_dict(_stored(svc, limit_id))


@router.patch(
    "/limits/{limit_id:path}",
    summary="Change a limit's amount, level or thresholds",
    response_model=LimitPublic,
    responses=errors(400, 404),
)
def update_limit(limit_id: str, body: LimitUpdate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    current = _stored(svc, limit_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    limit = svc.meter.set_limit(
        scope=current.scope,
        metric=current.metric.value,
        period=current.period.value,
        amount=changes.get("amount", current.amount),
        level=changes.get("level", current.level.value),
        thresholds=changes.get("thresholds", current.thresholds),
        timezone=current.timezone,
        rolling_seconds=current.rolling_seconds,
        tier=current.tier,
        id=current.id,
        actor=actor_of(principal),
    )
    return limit_dict(limit)


@router.delete("/limits/{limit_id:path}", status_code=204, summary="Remove a limit", responses=errors(404))
def delete_limit(limit_id: str, principal: Admin, svc: ServicesDep) -> Response:
    if not svc.meter.remove_limit(limit_id, actor=actor_of(principal)):
        raise not_found("limit", limit_id)
    return Response(status_code=204)
