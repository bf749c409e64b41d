"""What the gateway answers besides the upstream's own responses: refusals, errors and spendgate headers.

Status codes for a decision that does not allow the call (answered before anything is forwarded):

=================  ======  ==========================================================================
action             status  error ``type``
=================  ======  ==========================================================================
deny               402     ``budget_exceeded``: a hard limit (or a tier budget) is exhausted
cache_only         402     ``budget_exceeded``: only cached answers are allowed and there is none
throttle           429     ``rate_limited``: a rate limit or a tier's throttle band; retry later
queue              429     ``queued``: the tier budget is exhausted and calls are queued
emergency_stop     429     ``emergency_stop``: an emergency stop is in force until its cooldown ends
=================  ======  ==========================================================================

Every refusal carries ``Retry-After`` when the decision knows when to retry, and its JSON error holds
the decision's explanation (``authorization.to_dict()``: the limit, spent, remaining, resets_at, ...).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi.responses import JSONResponse

from spendgate.budgets import Action, Metric
from spendgate.meter import Authorization
from spendgate.server._gw_routing import Wire
from spendgate.usage import Usage

__all__ = ["REFUSALS", "budget_headers", "error_body", "error_response", "refusal", "remaining_after"]

#: Decision action → (HTTP status, error type) for calls that are not allowed.
REFUSALS: dict[Action, tuple[int, str]] = {
    Action.DENY: (402, "budget_exceeded"),
    Action.CACHE_ONLY: (402, "budget_exceeded"),
    Action.THROTTLE: (429, "rate_limited"),
    Action.QUEUE: (429, "queued"),
    Action.EMERGENCY_STOP: (429, "emergency_stop"),
}


def error_body(wire: Wire, type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """``{"error": {...}}``; for the Anthropic wire also ``"type": "error"`` at the top, as Anthropic sends."""
    error = {"type": type_, "message": message, **{k: v for k, v in extra.items() if v is not None}}
    return {"type": "error", "error": error} if wire == "anthropic" else {"error": error}


def error_response(
    wire: Wire, status: int, type_: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(wire, type_, message, **extra), status_code=status, headers=headers)


def _decimal(value: Decimal) -> str:
    return format(value.normalize() if value else Decimal(0), "f")


def budget_headers(auth: Authorization, remaining: Decimal | None = None) -> dict[str, str]:
    """``x-spendgate-action`` and, when a limit binds, its id and what it has left (``remaining``, or the
    decision's figure before the call)."""
    headers = {"x-spendgate-action": auth.action.value}
    limit, before = auth.binding_remaining()
    left = remaining if remaining is not None else before
    if limit is not None and left is not None:
        headers["x-spendgate-budget-limit"] = limit.id
        headers["x-spendgate-budget-remaining"] = _decimal(left)
    return headers


def remaining_after(auth: Authorization, usage: Usage, cost: Decimal | None) -> Decimal | None:
    """What the binding limit has left after a settled call (None when unknown)."""
    limit, before = auth.binding_remaining()
    if limit is None or before is None or limit.per_request:
        return before
    used: Decimal | int | None
    match limit.metric:
        case Metric.COST:
            used = cost
        case Metric.INPUT_TOKENS:
            used = usage.input_tokens
        case Metric.OUTPUT_TOKENS:
            used = usage.output_tokens
        case Metric.TOTAL_TOKENS:
            used = usage.total_tokens
        case _:
            used = 1
    return None if used is None else max(Decimal(0), before - used)


def refusal(wire: Wire, auth: Authorization) -> JSONResponse:
    """The answer to a call the budgets do not allow: 402 or 429 (see the module doc), nothing forwarded."""
    status, type_ = REFUSALS.get(auth.action, (402, "budget_exceeded"))
    headers = budget_headers(auth)
    if auth.retry_after_s is not None:
        headers["Retry-After"] = str(auth.retry_after_s)
    details = auth.to_dict()
    details.pop("checks", None)  # every limit's figures: in the ledger / budget status, not in each refusal
    message = auth.reason or f"the request was refused: {auth.action.value}"
    return error_response(wire, status, type_, message, headers=headers, **details)
