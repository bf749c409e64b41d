"""Admin API: teams."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from spendgate.errors import InvalidUsageError
from spendgate.server._adm_common import Public, Viewer, actor_of, errors, not_found
from spendgate.server._deps import Admin, ServicesDep
from spendgate.server._errors import ApiError
from spendgate.server._identity import Team

__all__ = ["TeamCreate", "TeamPublic", "TeamUpdate", "router"]

router = APIRouter(prefix="/teams", tags=["teams"])


class TeamUpdate(BaseModel):
    """The fields a PATCH may change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    metadata: dict[str, Any] | None = None


class TeamCreate(TeamUpdate):
    team_id: str = Field(min_length=1, max_length=200)


class TeamPublic(Public):
    team_id: str
    name: str | None
    metadata: dict[str, Any]
    created_at: str | None


@router.post("", status_code=201, summary="Create a team", response_model=TeamPublic, responses=errors(400, 409))
def create_team(body: TeamCreate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    if svc.identity.get_team(body.team_id) is not None:
        raise ApiError(409, "conflict", f"team {body.team_id!r} already exists", field="team_id")
    values = {k: v for k, v in body.model_dump().items() if v is not None}
    return asdict(svc.identity.put_team(Team(**values), actor=actor_of(principal), create=True))


@router.get("", summary="List teams (admin, viewer)", response_model=list[TeamPublic], responses=errors())
def list_teams(_: Viewer, svc: ServicesDep) -> list[dict[str, Any]]:
    return [asdict(team) for team in svc.identity.list_teams()]


@router.get("/{team_id}", summary="Get a team (admin, viewer)", response_model=TeamPublic, responses=errors(404))
def get_team(team_id: str, _: Viewer, svc: ServicesDep) -> dict[str, Any]:
    team = svc.identity.get_team(team_id)
    if team is None:
        raise not_found("team", team_id)
    return asdict(team)


@router.patch("/{team_id}", summary="Update a team", response_model=TeamPublic, responses=errors(400, 404))
def update_team(team_id: str, body: TeamUpdate, principal: Admin, svc: ServicesDep) -> dict[str, Any]:
    current = svc.identity.get_team(team_id)
    if current is None:
        raise not_found("team", team_id)
    changes = body.model_dump(exclude_unset=True)
    if "metadata" in changes and changes["metadata"] is None:
        raise InvalidUsageError("metadata", "may not be null")
    updated = Team(**{**asdict(current), **changes})
    return asdict(svc.identity.put_team(updated, actor=actor_of(principal)))


@router.delete(
    "/{team_id}",
    status_code=204,
    summary="Delete a team (refused while users belong to it)",
    responses=errors(404, 409),
)
def delete_team(team_id: str, principal: Admin, svc: ServicesDep) -> Response:
    members = [user.user_id for user in svc.identity.list_users() if user.team_id == team_id]
    if members:
        raise ApiError(409, "conflict", f"team {team_id!r} still has users: {', '.join(members[:10])}")
    if not svc.identity.delete_team(team_id, actor=actor_of(principal)):
        raise not_found("team", team_id)
    return Response(status_code=204)
