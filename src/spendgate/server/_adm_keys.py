"""Admin API: API keys. The secret is in the answer to create and rotate only; lists and gets never show it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from spendgate.errors import InvalidUsageError
from spendgate.server._adm_common import Public, actor_of, aware, errors, not_found
from spendgate.server._adm_users import check_team
from spendgate.server._deps import Admin, Caller, Services, ServicesDep
from spendgate.server._errors import ApiError
from spendgate.server._identity import ApiKey, Principal, Role

__all__ = ["KeyCreate", "KeyCreated", "KeyPublic", "router"]

router = APIRouter(prefix="/keys", tags=["keys"])


class KeyCreate(BaseModel):
    """A new key: its role, owner, label and optional expiry (an aware datetime)."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    user_id: str | None = Field(default=None, min_length=1, max_length=200)
    team_id: str | None = Field(default=None, min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = None
    cache: bool = False
    """Gateway calls with this key use the response cache without the per-request header."""
    tags: dict[str, str] = Field(default_factory=dict)
    """Recorded on every call made with this key (a request's `x-spendgate-tags` override them)."""


class KeyPublic(Public):
    """A key's record: never its secret."""

    key_id: str
    role: Role
    user_id: str | None
    team_id: str | None
    name: str | None
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    cache: bool = False
    tags: dict[str, str] = Field(default_factory=dict)


class KeyCreated(KeyPublic):
    key: str
    """The secret token: shown this once, only its hash is kept."""


def _created(key: ApiKey, token: str) -> dict[str, Any]:
    return {**key.public(), "key": token}


def _visible_key(svc: Services, principal: Principal, key_id: str) -> ApiKey:
    """The key, if the caller may see it: admins and viewers any; members their own user's keys (404 else)."""
    key = svc.identity.get_key(key_id)
    if key is None or not (principal.can_read_all or (key.user_id is not None and key.user_id == principal.user_id)):
        raise not_found("API key", key_id)
    return key


@router.post(
    "",
    status_code=201,
    summary="Create an API key (the secret is returned once)",
    response_model=KeyCreated,
    responses=errors(400),
)
def create_key(body: KeyCreate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    if body.user_id is not None and svc.identity.get_user(body.user_id) is None:
        raise InvalidUsageError("user_id", f"no user {body.user_id!r}: create it first")
    check_team(svc, body.team_id)
    expires_at = aware("expires_at", body.expires_at)
    if expires_at is not None and expires_at <= svc.meter.clock.now():
        raise InvalidUsageError("expires_at", "must be in the future")
    team_id = body.team_id
    if team_id is None and body.user_id is not None:
        user = svc.identity.get_user(body.user_id)
        team_id = None if user is None else user.team_id
    key, token = svc.identity.create_key(
        role=body.role,
        actor=actor_of(principal),
        user_id=body.user_id,
        team_id=team_id,
        name=body.name,
        expires_at=expires_at,
        cache=body.cache,
        tags=body.tags,
    )
    return _created(key, token)


@router.get(
    "",
    summary="List API keys (members: their own)",
    response_model=list[KeyPublic],
    responses=errors(),
)
def list_keys(principal: Caller, svc: ServicesDep, user_id: str | None = None) -> list[dict[str, Any]]:
    keys = svc.identity.list_keys()
    if not principal.can_read_all:
        if user_id is not None and user_id != principal.user_id:
            raise ApiError(403, "permission_error", "members can only list their own keys")
        user_id = principal.user_id
    return [key.public() for key in keys if user_id is None or key.user_id == user_id]


@router.get(
    "/{key_id}",
    summary="Get an API key (members: their own)",
    response_model=KeyPublic,
    responses=errors(404),
)
def get_key(key_id: str, principal: Caller, svc: ServicesDep) -> dict[str, Any]:
    return _visible_key(svc, principal, key_id).public()


@router.post(
    "/{key_id}/revoke",
    summary="Revoke an API key (it stops working at once; idempotent)",
    response_model=KeyPublic,
    responses=errors(404),
)
def revoke_key(key_id: str, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    key = svc.identity.revoke_key(key_id, actor=actor_of(principal))
    if key is None:
        raise not_found("API key", key_id)
    return key.public()


@router.post(
    "/{key_id}/rotate",
    status_code=201,
    summary="Rotate an API key: revoke it and issue a new one with the same owner (members: their own)",
    response_model=KeyCreated,
    responses=errors(404, 409),
)
def rotate_key(key_id: str, principal: Caller, svc: ServicesDep) -> dict[str, Any]:
    if principal.role == "viewer":
        raise ApiError(403, "permission_error", "viewer keys are read-only")
    key = _visible_key(svc, principal, key_id)
    if key.revoked_at is not None:
        raise ApiError(409, "conflict", f"API key {key_id!r} is revoked: create a new one")
    if key.expires_at is not None and datetime.fromisoformat(key.expires_at) <= svc.meter.clock.now():
        raise ApiError(409, "conflict", f"API key {key_id!r} has expired: create a new one")
    rotated = svc.identity.rotate_key(key_id, actor=actor_of(principal))
    if rotated is None:  # deleted meanwhile
        raise not_found("API key", key_id)
    return _created(*rotated)
