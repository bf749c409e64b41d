"""What the admin and metering routers share: roles, OpenAPI error responses, JSON helpers, the audit actor.

Money leaves the service as an exact decimal string (``format(value, "f")``), never a float.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict

from spendgate.budgets import Scope
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageSummary
from spendgate.server._deps import Caller
from spendgate.server._errors import ApiError
from spendgate.server._identity import Principal

__all__ = [
    "ErrorResponse",
    "Public",
    "Viewer",
    "Writer",
    "actor_of",
    "aware",
    "errors",
    "money",
    "not_found",
    "parse_scope",
    "summary_dict",
]


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    """Every error answer: ``{"error": {"type", "message", "field"?}}``."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Invalid request: `error.field` names the offending field",
    401: "No API key, or an invalid, expired or revoked one",
    403: "The key's role may not do this",
    404: "No such object",
    409: "It already exists, or its state does not allow this",
    413: "More events than one batch may hold",
    503: "The ledger database is unavailable (retry after `Retry-After` seconds)",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route's error statuses (401, 403 and 503 are always included)."""
    chosen = sorted({401, 403, 503, *codes})
    return {code: {"model": ErrorResponse, "description": _DESCRIPTIONS[code]} for code in chosen}


def viewer(principal: Caller) -> Principal:
    """Admins and viewers (every read); members are refused with 403."""
    if not principal.can_read_all:
        raise ApiError(403, "permission_error", "this needs an admin or viewer key")
    return principal


def writer(principal: Caller) -> Principal:
    """Keys that may report usage (admins and members); viewers are read-only (403)."""
    if principal.role == "viewer":
        raise ApiError(403, "permission_error", "viewer keys are read-only")
    return principal


Viewer = Annotated[Principal, Depends(viewer)]
Writer = Annotated[Principal, Depends(writer)]


def actor_of(principal: Principal) -> str:
    """Who the audit log names for a change: ``key:<key id>`` (``key:master`` for the master key)."""
    return f"key:{principal.key_id}" if principal.key_id else principal.role


def not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no {kind} {object_id!r}")


def money(value: Decimal | None) -> str | None:
    """An exact decimal string without exponent or trailing zeros (``"0.0035"``), or None."""
    return None if value is None else format(value.normalize(), "f")


def aware(name: str, value: datetime | None) -> datetime | None:
    """Refuse a naive datetime from a query or body (400 naming ``name``)."""
    if value is not None and value.tzinfo is None:
        raise InvalidUsageError(name, "must include a time zone, e.g. 2026-03-01T00:00:00Z")
    return value


def parse_scope(scope: str, scope_id: str | None = None) -> Scope:
    """``"user:alice/provider:openai"`` or ``"global"``; with ``scope_id``, the ``set_limit`` form (``"user"``)."""
    return Scope.of(scope, scope_id) if scope_id is not None else Scope.parse(scope)


def summary_dict(summary: UsageSummary) -> dict[str, Any]:
    """A usage summary as JSON (cost as an exact decimal string)."""
    return {
        "requests": summary.requests,
        "successes": summary.successes,
        "failures": summary.failures,
        "input_tokens": summary.input_tokens,
        "output_tokens": summary.output_tokens,
        "cache_read_tokens": summary.cache_read_tokens,
        "cache_write_tokens": summary.cache_write_tokens,
        "reasoning_tokens": summary.reasoning_tokens,
        "cost": money(summary.cost),
        "currency": summary.currency or "USD",
        "unpriced_requests": summary.unpriced_requests,
        "estimated_requests": summary.estimated_requests,
        "cached_requests": summary.cached_requests,
        "avg_latency_ms": summary.avg_latency_ms,
    }


class Public(BaseModel):
    """Base of the ``XPublic`` answer schemas (validated from stored dicts; keys they do not name are dropped)."""

    model_config = ConfigDict(extra="ignore")
