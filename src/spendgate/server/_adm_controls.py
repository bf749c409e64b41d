"""Admin API: emergency stops (circuit breakers set by hand) and rate limits (rpm, tpm, concurrency)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from spendgate.server._adm_common import Public, Viewer, actor_of, errors, not_found, parse_scope
from spendgate.server._deps import Admin, ServicesDep

__all__ = ["RateLimitCreate", "RateLimitPublic", "StopCreate", "StopPublic", "router"]

router = APIRouter(tags=["limits"])


class StopCreate(BaseModel):
    """Stop every request in ``scope`` now, until ``cooldown_s`` passes (or for good until cleared)."""

    model_config = ConfigDict(extra="forbid")

    scope: str = "global"
    scope_id: str | None = None
    reason: str = Field(min_length=1, max_length=1000)
    cooldown_s: int | None = Field(default=None, gt=0, le=10 * 366 * 86_400)  # at most ten years


class StopPublic(Public):
    scope: str
    reason: str
    set_by: str
    since: str
    cooldown_until: str | None


class RateLimitCreate(BaseModel):
    """Requests per minute, tokens per minute and concurrent calls for a scope (at least one)."""

    model_config = ConfigDict(extra="forbid")

    scope: str
    scope_id: str | None = None
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    concurrent: int | None = Field(default=None, gt=0)


class RateLimitPublic(Public):
    id: str
    scope: str
    rpm: int | None
    tpm: int | None
    concurrent: int | None
    enabled: bool


@router.post(
    "/emergency-stops",
    status_code=201,
    summary="Stop all requests of a scope now (global by default)",
    response_model=StopPublic,
    responses=errors(400),
)
def set_stop(body: StopCreate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    breaker = svc.meter.emergency_stop(
        parse_scope(body.scope, body.scope_id),
        reason=body.reason,
        cooldown=None if body.cooldown_s is None else timedelta(seconds=body.cooldown_s),
        actor=actor_of(principal),
    )
    return breaker.to_dict()


@router.get(
    "/emergency-stops",
    summary="List emergency stops, set by hand or tripped by a rule (admin, viewer)",
    response_model=list[StopPublic],
    responses=errors(),
)
def list_stops(_: Viewer, svc: ServicesDep) -> list[dict[str, Any]]:
    return [stop.to_dict() for stop in svc.meter.emergency_stops()]


@router.delete(
    "/emergency-stops/{scope:path}",
    status_code=204,
    summary="Clear the emergency stop of a scope ('global', 'user:alice', ...)",
    responses=errors(400, 404),
)
def clear_stop(scope: str, principal: Admin, svc: ServicesDep) -> Response:
    if not svc.meter.clear_emergency_stop(parse_scope(scope), actor=actor_of(principal)):
        raise not_found("emergency stop", scope)
    return Response(status_code=204)


@router.post(
    "/rate-limits",
    status_code=201,
    summary="Set the rate limit of a scope (replaces the scope's previous one)",
    response_model=RateLimitPublic,
    responses=errors(400),
)
def set_rate_limit(body: RateLimitCreate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    rate = svc.meter.set_rate_limit(
        parse_scope(body.scope, body.scope_id),
        rpm=body.rpm,
        tpm=body.tpm,
        concurrent=body.concurrent,
        actor=actor_of(principal),
    )
    return rate.to_dict()


@router.get(
    "/rate-limits", summary="List rate limits (admin, viewer)", response_model=list[RateLimitPublic], responses=errors()
)
def list_rate_limits(_: Viewer, svc: ServicesDep) -> list[dict[str, Any]]:
    return [rate.to_dict() for rate in svc.meter.rate_limits()]


@router.delete(
    "/rate-limits/{rate_id:path}",
    status_code=204,
    summary="Remove a rate limit (by id, e.g. 'rate|user:alice')",
    responses=errors(404),
)
def delete_rate_limit(rate_id: str, principal: Admin, svc: ServicesDep) -> Response:
    if not svc.meter.remove_rate_limit(rate_id, actor=actor_of(principal)):
        raise not_found("rate limit", rate_id)
    return Response(status_code=204)
