"""Admin API: users (the seeds' profile: id, username, email, tier, team, active flag, preferences, metadata)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from spendgate.errors import InvalidUsageError
from spendgate.server._adm_common import Public, Viewer, actor_of, errors, not_found
from spendgate.server._deps import Admin, Caller, Services, ServicesDep, own
from spendgate.server._errors import ApiError
from spendgate.server._identity import User

__all__ = ["UserCreate", "UserPublic", "UserUpdate", "check_team", "router"]

router = APIRouter(prefix="/users", tags=["users"])

_Text = Field(default=None, min_length=1, max_length=200)


class UserUpdate(BaseModel):
    """The fields a PATCH may change (only those sent change; ``null`` clears a text field)."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = _Text
    email: str | None = _Text
    tier: str | None = _Text
    team_id: str | None = _Text
    is_active: bool | None = None
    preferences: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class UserCreate(UserUpdate):
    user_id: str = Field(min_length=1, max_length=200)
    is_active: bool | None = True


class UserPublic(Public):
    user_id: str
    username: str | None
    email: str | None
    tier: str | None
    team_id: str | None
    is_active: bool
    preferences: dict[str, Any]
    metadata: dict[str, Any]
    created_at: str | None


def check_team(svc: Services, team_id: str | None, field: str = "team_id") -> None:
    """Refuse a reference to a team that does not exist (400 naming ``field``)."""
    if team_id is not None and svc.identity.get_team(team_id) is None:
        raise InvalidUsageError(field, f"no team {team_id!r}: create it first")


def _user(svc: Services, user_id: str) -> User:
    user = svc.identity.get_user(user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


@router.post("", status_code=201, summary="Create a user", response_model=UserPublic, responses=errors(400, 409))
def create_user(body: UserCreate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    if svc.identity.get_user(body.user_id) is not None:
        raise ApiError(409, "conflict", f"user {body.user_id!r} already exists", field="user_id")
    check_team(svc, body.team_id)
    values = {k: v for k, v in body.model_dump().items() if v is not None}
    user = svc.identity.put_user(User(**values), actor=actor_of(principal), create=True)
    return asdict(user)


@router.get("", summary="List users (admin, viewer)", response_model=list[UserPublic], responses=errors())
def list_users(_: Viewer, svc: ServicesDep) -> list[dict[str, Any]]:
    return [asdict(user) for user in svc.identity.list_users()]


@router.get(
    "/{user_id}",
    summary="Get a user (members: only themselves)",
    response_model=UserPublic,
    responses=errors(404),
)
def get_user(user_id: str, principal: Caller, svc: ServicesDep) -> dict[str, Any]:
    own(principal, user_id)
    return asdict(_user(svc, user_id))


@router.patch("/{user_id}", summary="Update a user", response_model=UserPublic, responses=errors(400, 404))
def update_user(user_id: str, body: UserUpdate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    current = _user(svc, user_id)
    changes = body.model_dump(exclude_unset=True)
    if "team_id" in changes:
        check_team(svc, changes["team_id"])
    for name in ("is_active", "preferences", "metadata"):
        if name in changes and changes[name] is None:
            raise InvalidUsageError(name, "may not be null")
    updated = User(**{**asdict(current), **changes})
    return asdict(svc.identity.put_user(updated, actor=actor_of(principal)))


@router.delete(
    "/{user_id}",
    status_code=204,
    summary="Delete a user and revoke their API keys (their usage stays in the ledger)",
    responses=errors(404),
)
def delete_user(user_id: str, principal: Admin, svc: ServicesDep) -> Response:
    actor = actor_of(principal)
    if not svc.identity.delete_user(user_id, actor=actor):
        raise not_found("user", user_id)
    for key in svc.identity.list_keys():
        if key.user_id == user_id and key.revoked_at is None:
            svc.identity.revoke_key(key.key_id, actor=actor)
    return Response(status_code=204)
