"""The gateway's hot routes without the framework's per-request machinery (ASGI middleware).

``POST /v1/chat/completions``, ``/v1/embeddings`` and ``/v1/messages`` are declared as FastAPI routes (that
is where their OpenAPI description comes from, and they work there too), but FastAPI's route matching
across every admin route and its dependency injection cost more per call than the rest of the gateway's own
work. `GatewayFastPath` answers these three first: same handler, same errors (the app's exception
handlers), same body-size limit (it sits inside FastAPI's), nothing else in between.
"""

from __future__ import annotations

import inspect
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from spendgate.server._deps import Services, gateway_caller
from spendgate.server._gw_flow import ANTHROPIC_API, CHAT_API, EMBEDDINGS_API, Api, GatewayState, exchange

__all__ = ["ROUTES", "GatewayFastPath"]

#: The routes answered here: path → API.
ROUTES: dict[str, Api] = {
    "/v1/chat/completions": CHAT_API,
    "/v1/embeddings": EMBEDDINGS_API,
    "/v1/messages": ANTHROPIC_API,
}


def _route_path(scope: Scope) -> str:
    """The path within the app (as Starlette routes it: without the ``root_path`` it is mounted at)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _handler(app: Any, exc: Exception) -> Any:
    """The app's exception handler for ``exc`` (by its class, most specific first), or None."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


class GatewayFastPath:
    """Answers `ROUTES` (POST) directly; everything else goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = ROUTES.get(_route_path(scope)) if scope["type"] == "http" and scope["method"] == "POST" else None
        if api is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        app = scope["app"]
        try:
            svc: Services = app.state.services
            state: GatewayState = app.state.gateway
            principal = await gateway_caller(request, svc)
            response = await exchange(api, svc, state, request, principal)
        except ClientDisconnect:  # the client left before its request had arrived: nobody to answer
            return
        except Exception as exc:
            handler = _handler(app, exc)
            if handler is None:
                raise
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)
