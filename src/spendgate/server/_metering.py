"""The remote metering API, for apps that call providers themselves.

``POST /api/v1/authorize`` decides on a call and reserves its worst case; ``/settle`` records what it
used; ``/release`` drops the hold of a call that failed; ``/events`` ingests finished calls in batches.
A refusal is a normal answer (200 with ``"allowed": false`` and ``Retry-After``), not an error: the
decision (DENY, THROTTLE, QUEUE, CACHE_ONLY, EMERGENCY_STOP) tells the caller what to do next.
Members are pinned to their own user (and team and key); admins may meter for anyone; viewers are read-only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from spendgate.errors import InvalidUsageError, SpendgateError, UnknownModelError
from spendgate.meter import Authorization, Recorded
from spendgate.server._adm_common import Writer, actor_of, errors, money
from spendgate.server._adm_reservations import Reservations
from spendgate.server._deps import Services, ServicesDep
from spendgate.server._errors import ApiError
from spendgate.server._identity import Principal, User
from spendgate.usage import Usage

log = logging.getLogger("spendgate.server")

__all__ = ["MAX_BATCH", "router"]

router = APIRouter(prefix="/api/v1", tags=["metering"])

MAX_BATCH = 1000
_SWEEP_EVERY = timedelta(seconds=60)


class AuthorizeRequest(BaseModel):
    """A call about to be made: who, which model, and its input (messages or a token count) and max output."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    user_id: str | None = Field(default=None, description="Admins: anyone; members: only themselves")
    team_id: str | None = None
    api_key_id: str | None = Field(default=None, description="Default: the caller's key")
    session_id: str | None = None
    tier: str | None = Field(default=None, description="Admins only; default: the user's tier")
    tags: dict[str, str] = Field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None
    text: str | None = None
    tools: list[dict[str, Any]] | None = None
    system: str | list[dict[str, Any]] | None = None
    input_tokens: int | None = Field(default=None, ge=0, description="Instead of messages/text")
    max_tokens: int | None = Field(default=None, ge=0)
    cache_available: bool = False


class _Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reservation_id: str = Field(min_length=1, max_length=200)
    latency_ms: int | None = Field(default=None, ge=0)
    request_type: str | None = None
    metadata: dict[str, Any] | None = None
    prompt_hash: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None


class SettleRequest(_Outcome):
    """What the call used (provider-reported), for the reservation ``/authorize`` answered."""

    usage: dict[str, int] = Field(description="Usage fields: input_tokens (with cached), output_tokens, ...")
    success: bool = True
    error_kind: str | None = None
    tokens_estimated: bool | None = None
    cached: bool | None = None


class ReleaseRequest(_Outcome):
    """A call that failed: drop its hold, charging ``partial_usage`` if some was consumed."""

    partial_usage: dict[str, int] | None = None
    error_kind: str = "error"


class EventBatch(BaseModel):
    """Finished calls, each the fields of ``Meter.record``: provider, model, usage, event_id (idempotency key), ..."""

    events: list[Any]


# -- who the call is for -------------------------------------------------------------------------------------


class _Identities:
    """Pins each call's user, team and key to what the caller may meter for (user lookups cached per request)."""

    def __init__(self, svc: Services, principal: Principal) -> None:
        self.svc = svc
        self.principal = principal
        self._users: dict[str, User | None] = {}

    def user(self, user_id: str) -> User | None:
        if user_id not in self._users:
            self._users[user_id] = self.svc.identity.get_user(user_id)
        return self._users[user_id]

    def pin(self, fields: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """``user_id``, ``team_id`` and ``api_key_id`` for the call: a member's own, or an admin's choice."""
        p = self.principal
        if p.is_admin:
            user_id, team_id = fields.get("user_id"), fields.get("team_id")
            if team_id is None and isinstance(user_id, str):
                user = self.user(user_id)
                team_id = None if user is None else user.team_id
            return {"user_id": user_id, "team_id": team_id, "api_key_id": fields.get("api_key_id") or p.key_id}
        pinned = {"user_id": p.user_id, "team_id": p.team_id, "api_key_id": p.key_id}
        for name, value in pinned.items():
            given = fields.get(name)
            if given is not None and given != value:
                raise ApiError(403, "permission_error", f"a member key meters only its own {name}", field=where + name)
        return pinned

    def tier(self, user_id: str | None, given: str | None) -> str | None:
        if not self.principal.is_admin:
            if given is not None:
                raise ApiError(403, "permission_error", "only admins may set the tier", field="tier")
            return self.principal.tier
        if given is not None or user_id is None:
            return given
        user = self.user(user_id)
        return None if user is None else user.tier


# -- routes ----------------------------------------------------------------------------------------------------


@router.post(
    "/authorize",
    summary="Decide on a call and reserve its worst-case cost (a refusal is 200 with allowed: false)",
    responses=errors(400),
)
def authorize(body: AuthorizeRequest, principal: Writer, svc: ServicesDep, request: Request) -> JSONResponse:
    who = _Identities(svc, principal)
    ids = who.pin(body.model_dump())
    extra = body.model_dump(include={"session_id", "messages", "text", "tools", "system", "input_tokens",
                                     "max_tokens", "cache_available", "tags"})  # fmt: skip
    extra["tags"] = {**principal.tags, **extra["tags"]}  # the key's tags, then the request's own
    auth = svc.meter.authorize(
        provider=body.provider, model=body.model, tier=who.tier(ids["user_id"], body.tier), **ids, **extra
    )
    answer = auth.to_dict()
    headers = None
    if auth.allowed:
        reservations = Reservations(svc.meter)
        answer["expires_at"] = reservations.save(auth, actor=actor_of(principal)).isoformat()
        _sweep(request, reservations)
    elif auth.retry_after_s is not None:
        headers = {"Retry-After": str(auth.retry_after_s)}
    return JSONResponse(answer, headers=headers)


def _sweep(request: Request, reservations: Reservations) -> None:
    """Remove lapsed reservations, at most once a minute per process."""
    now = reservations.meter.clock.now()
    due: datetime | None = getattr(request.app.state, "reservation_sweep_at", None)
    if due is None or now >= due:
        request.app.state.reservation_sweep_at = now + min(_SWEEP_EVERY, reservations.ttl)
        reservations.sweep(now)


def _recorded(recorded: Recorded) -> dict[str, Any]:
    cost = recorded.cost
    return {
        "event_id": recorded.event_id,
        "duplicate": recorded.duplicate,
        "cost": None if cost is None else money(cost.total),
        "currency": None if cost is None else cost.currency,
    }


def _reservation(svc: Services, principal: Principal, reservation_id: str) -> Authorization | dict[str, Any]:
    """The stored authorization, or the answer for one already settled or released (found in the ledger)."""
    auth = Reservations(svc.meter).load(reservation_id)
    if auth is not None:
        if not principal.is_admin and auth.ctx.user_id != principal.user_id:
            raise ApiError(403, "permission_error", "this reservation belongs to another user", field="reservation_id")
        return auth
    svc.meter.flush()
    event = svc.meter.store.get(reservation_id)
    if event is None or not (principal.is_admin or event.user_id == principal.user_id):
        raise ApiError(
            404,
            "reservation_not_found",
            f"no reservation {reservation_id!r}: never allowed, or lapsed after hold_ttl_s; record the usage with "
            "POST /api/v1/events (event_id = the reservation id)",
            field="reservation_id",
        )
    return {"event_id": event.event_id, "duplicate": True, "cost": money(event.cost), "currency": event.currency}


def _usage(value: Mapping[str, int] | None, field: str) -> Usage:
    try:
        return Usage.from_dict(value or {})
    except InvalidUsageError as exc:
        raise InvalidUsageError(f"{field}.{exc.field}", exc.message) from None


def _fields(body: _Outcome, *skip: str) -> dict[str, Any]:
    return body.model_dump(exclude={"reservation_id", *skip}, exclude_none=True)


@router.post(
    "/settle",
    summary="Record what an authorized call used and replace its hold (idempotent)",
    responses=errors(400, 404),
)
def settle(body: SettleRequest, principal: Writer, svc: ServicesDep) -> dict[str, Any]:
    found = _reservation(svc, principal, body.reservation_id)
    if isinstance(found, dict):
        return found
    recorded = svc.meter.settle(found, _usage(body.usage, "usage"), **_fields(body, "usage"))
    Reservations(svc.meter).drop(body.reservation_id, actor=actor_of(principal))
    return _recorded(recorded)


@router.post(
    "/release",
    summary="Drop the hold of a call that failed, charging partial usage if any (idempotent)",
    responses=errors(400, 404),
)
def release(body: ReleaseRequest, principal: Writer, svc: ServicesDep) -> dict[str, Any]:
    found = _reservation(svc, principal, body.reservation_id)
    if isinstance(found, dict):
        return found
    partial = _usage(body.partial_usage, "partial_usage")
    recorded = svc.meter.release(found, partial_usage=partial, **_fields(body, "partial_usage"))
    Reservations(svc.meter).drop(body.reservation_id, actor=actor_of(principal))
    assert recorded is not None  # a stored reservation was allowed
    return _recorded(recorded)


@router.post(
    "/events",
    summary=f"Record finished calls: up to {MAX_BATCH} per batch, all or nothing, idempotent by event_id",
    responses=errors(400, 413),
)
def record_events(body: EventBatch, principal: Writer, svc: ServicesDep) -> dict[str, Any]:
    if len(body.events) > MAX_BATCH:
        raise ApiError(413, "batch_too_large", f"at most {MAX_BATCH} events per batch, got {len(body.events)}",
                       field="events")  # fmt: skip
    who = _Identities(svc, principal)
    events: list[dict[str, Any]] = []
    for i, event in enumerate(body.events):
        if not isinstance(event, dict):
            raise InvalidUsageError(f"events[{i}]", "must be an object")
        pinned = {**event, **who.pin(event, f"events[{i}].")}
        own = event.get("tags")
        if principal.tags and (own is None or isinstance(own, Mapping)):  # the key's tags, then the event's own
            pinned["tags"] = {**principal.tags, **(own or {})}
        events.append(pinned)
    try:
        results = svc.meter.record_many(events)
    except UnknownModelError:
        _name_unpriced(svc, events)
        raise
    _create_unknown_users(svc, events, actor_of(principal))
    created = sum(not r.duplicate for r in results)
    return {
        "created": created,
        "duplicates": len(results) - created,
        "results": [{**_recorded(r), "status": "duplicate" if r.duplicate else "created"} for r in results],
    }


def _create_unknown_users(svc: Services, events: list[dict[str, Any]], actor: str) -> None:
    """Users that other systems' usage names but spendgate has not seen yet are created on the fly.

    The events are already recorded: a user that cannot be created (a race with another replica, an
    invalid id) never loses them.
    """
    seen: dict[str, str | None] = {}
    for event in events:
        user_id = event.get("user_id")
        if isinstance(user_id, str) and user_id not in seen:
            seen[user_id] = event.get("team_id") if isinstance(event.get("team_id"), str) else None
    for user_id, team_id in seen.items():
        if svc.identity.get_user(user_id) is None:
            try:
                svc.identity.put_user(User(user_id=user_id, team_id=team_id), actor=actor, create=True)
            except SpendgateError as exc:
                log.warning("could not create user %r named by recorded events: %s", user_id, exc)


def _name_unpriced(svc: Services, events: list[dict[str, Any]]) -> None:
    """Find the event whose model has no price and say which (only on that error path)."""
    for i, event in enumerate(events):
        try:
            svc.meter.validate(event)
        except UnknownModelError as exc:
            raise InvalidUsageError(f"events[{i}].model", str(exc)) from None
