"""The gateway routes: OpenAI's ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models`` and Anthropic's
``/v1/messages``, authenticated by spendgate API keys, metered and governed by the budgets.

Point an OpenAI or Anthropic SDK at the service with a spendgate key (see ``docs/gateway.md``). Each call
runs identify → estimate → authorize → forward → settle (:mod:`._gw_flow`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from spendgate.server._deps import Caller, Services, ServicesDep
from spendgate.server._errors import ApiError
from spendgate.server._gw_flow import ANTHROPIC_API, CHAT_API, EMBEDDINGS_API, Api, GatewayState, exchange
from spendgate.server._gw_routing import resolve, upstream_headers, upstream_url
from spendgate.server._gw_upstream import TRANSPORT_ERRORS, UpstreamClient, UpstreamFailure
from spendgate.server._identity import Principal
from spendgate.server._response_cache import open_response_cache
from spendgate.settings import Upstream

__all__ = ["router"]

log = logging.getLogger("spendgate.server.gateway")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The gateway's shared state: one upstream connection pool and one response cache per app."""
    svc: Services = app.state.services
    settings = svc.settings
    cache = open_response_cache(settings.response_cache_url, svc.meter.clock,
                                ttl=timedelta(seconds=settings.response_cache_ttl_s),
                                max_entries=settings.response_cache_max_entries)  # fmt: skip
    state = GatewayState(client=UpstreamClient(), cache=cache, environ=os.environ,
                         inline_meter=svc.meter.nonblocking)  # fmt: skip
    app.state.gateway = state
    try:
        yield
    finally:
        await state.client.aclose()
        await cache.aclose()


router = APIRouter(lifespan=_lifespan, tags=["gateway"])


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": {"error": {"type": "...",
            "message": "..."}}}}}  # fmt: skip


#: The errors every metered route may answer with (see docs/gateway.md).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Invalid request (the `field` is named) or a model no upstream serves."),
    401: _error("Missing, invalid, expired or revoked spendgate API key."),
    402: _error("A budget is exhausted (DENY): the error names the limit, spent, remaining, resets_at; Retry-After."),
    429: _error("Throttled by a rate limit, queued, or an emergency stop (Retry-After); or the upstream's 429."),
    502: _error("The upstream could not be reached or sent an invalid response."),
    504: _error("The upstream did not answer within its timeout."),
}


def _body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties, "additionalProperties": True}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_MESSAGES = {"type": "array", "items": {"type": "object"}}
CHAT_BODY = _body(
    ["model", "messages"], {"model": {"type": "string"}, "messages": _MESSAGES, "stream": {"type": "boolean"}}
)
MESSAGES_BODY = _body(
    ["model", "messages", "max_tokens"],
    {
        "model": {"type": "string"},
        "messages": _MESSAGES,
        "max_tokens": {"type": "integer"},
        "stream": {"type": "boolean"},
    },
)


async def _run(api: Api, request: Request, principal: Principal, svc: Services) -> Response:
    """(In production `GatewayApp` answers these routes before FastAPI routes them: same handler.)"""
    return await exchange(api, svc, request.app.state.gateway, request, principal)


@router.post(
    "/v1/chat/completions",
    summary="Chat completion (OpenAI wire format), metered and governed",
    description="OpenAI's chat completions API, streamed (SSE) or whole. Headers `x-spendgate-*` report the "
    "cost, the model used and the remaining budget; `x-spendgate-cache: on` opts in to the response cache.",
    responses=ERRORS,
    openapi_extra=CHAT_BODY,
)
async def chat_completions(request: Request, principal: Caller, svc: ServicesDep) -> Response:
    return await _run(CHAT_API, request, principal, svc)


@router.post(
    "/v1/embeddings",
    summary="Embeddings (OpenAI wire format), metered and governed",
    responses=ERRORS,
    openapi_extra=_body(["model", "input"], {"model": {"type": "string"}, "input": {}}),
)
async def embeddings(request: Request, principal: Caller, svc: ServicesDep) -> Response:
    return await _run(EMBEDDINGS_API, request, principal, svc)


@router.post(
    "/v1/messages",
    summary="Messages (Anthropic wire format), metered and governed",
    description='Anthropic\'s Messages API, streamed (SSE) or whole; errors also carry `"type": "error"`.',
    responses=ERRORS,
    openapi_extra=MESSAGES_BODY,
)
async def messages(request: Request, principal: Caller, svc: ServicesDep) -> Response:
    return await _run(ANTHROPIC_API, request, principal, svc)


def _created(item: dict[str, Any]) -> int:
    created = item.get("created")
    if isinstance(created, int) and not isinstance(created, bool):
        return created
    try:
        return int(datetime.fromisoformat(str(item.get("created_at"))).timestamp())
    except ValueError:
        return 0


async def _models_of(state: GatewayState, request: Request, provider: str, upstream: Upstream,
                     upstreams: dict[str, Upstream]) -> list[dict[str, Any]] | None:  # fmt: skip
    """One upstream's models in OpenAI's shape (None if it could not be asked)."""
    try:
        headers = upstream_headers(provider, upstream, request.headers, state.environ)
        response = await state.client.fetch("GET", upstream_url(upstream, "/models"), headers=headers, content=None,
                                            timeout_s=upstream.timeout_s)  # fmt: skip
        listed = json.loads(response.content).get("data")
    except (ApiError, UpstreamFailure, AttributeError, *TRANSPORT_ERRORS) as exc:
        log.warning("could not list the models of %s: %r", provider, exc)
        return None
    out: list[dict[str, Any]] = []
    for item in listed if isinstance(listed, list) else ():
        name = item.get("id") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        try:
            routed = resolve(upstreams, name).provider == provider
        except ApiError:
            routed = False
        out.append({"id": name if routed else f"{provider}/{name}", "object": "model", "created": _created(item),
                    "owned_by": item.get("owned_by") or provider})  # fmt: skip
    return out


@router.get(
    "/v1/models",
    summary="Models of every configured upstream (OpenAI wire format)",
    description="Each model is listed under the name that routes to it: as the upstream names it when its "
    "prefix routes there, else as `provider/model`. Upstreams that cannot be reached are left out.",
    responses={401: ERRORS[401], 502: _error("No upstream could be reached.")},
)
async def list_models(request: Request, principal: Caller, svc: ServicesDep) -> dict[str, Any]:
    state: GatewayState = request.app.state.gateway
    upstreams = svc.settings.upstreams
    found = await asyncio.gather(*(_models_of(state, request, p, u, upstreams) for p, u in upstreams.items()))
    if upstreams and all(models is None for models in found):
        raise ApiError(502, "upstream_unavailable", "no upstream could list its models")
    return {"object": "list", "data": [model for models in found if models for model in models]}
