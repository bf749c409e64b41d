"""The gateway's hot routes without the framework's per-request machinery.

``POST /v1/chat/completions``, ``/v1/embeddings`` and ``/v1/messages`` are declared as FastAPI routes (that
is where their OpenAPI description comes from, and they work there too), but FastAPI's per-request work
(its telemetry check, its middleware, route matching across every admin route, dependency
injection) costs more per call than much of the gateway's own. `GatewayApp` answers these three before
any of it: same handler, same errors (the app's exception handlers), same 500 for a bug. When FastAPI's
OpenTelemetry instrumentation is active (a tracer, meter or logger provider is configured), every request
takes FastAPI's own path, so gateway calls are traced as before.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from spendgate.server._deps import Services, gateway_caller
from spendgate.server._gw_flow import ANTHROPIC_API, CHAT_API, EMBEDDINGS_API, Api, GatewayState, exchange

__all__ = ["ROUTES", "GatewayApp", "answer"]

#: The routes answered here: path → API.
ROUTES: dict[str, Api] = {
    "/v1/chat/completions": CHAT_API,
    "/v1/embeddings": EMBEDDINGS_API,
    "/v1/messages": ANTHROPIC_API,
}

#: How long a look at whether FastAPI's telemetry is on holds (the look costs several µs per request).
TELEMETRY_CHECK_S = 1.0


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


def _server_error(app: Any, request: Request, exc: Exception) -> Any:
    """What Starlette's `ServerErrorMiddleware` answers for an unhandled error (the app's 500 handler, if any)."""
    handler = app.exception_handlers.get(500)
    if handler is not None:
        return handler(request, exc)
    errors = ServerErrorMiddleware(app, debug=app.debug)
    return errors.debug_response(request, exc) if app.debug else errors.error_response(request, exc)


async def _awaited(response: Any) -> Response:
    if inspect.isawaitable(response):
        response = await response
    result: Response = response
    return result


async def answer(app: Any, api: Api, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one call of a `ROUTES` route on ``app`` (a `GatewayApp`)."""
    request = Request(scope, receive, send)
    try:
        svc: Services = app.state.services
        state: GatewayState = app.state.gateway
        principal = await gateway_caller(request, svc)
        response = await exchange(api, svc, state, request, principal)
    except ClientDisconnect:  # the client left before its request had arrived: nobody to answer
        return
    except Exception as exc:
        handler = _handler(app, exc)
        if handler is None:  # a bug: the 500 Starlette answers, and raised for the server to log
            await (await _awaited(_server_error(app, request, exc)))(scope, receive, send)
            raise
        response = await _awaited(handler(request, exc))
    started = False

    async def sending(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    try:
        await response(scope, receive, sending)
    except Exception as exc:
        if not started:
            await (await _awaited(_server_error(app, request, exc)))(scope, receive, send)
        raise


class GatewayApp(FastAPI):
    """FastAPI, with `fast_routes` (POST) answered by `answer` before FastAPI's own per-request work.

    ``fast_routes`` is `ROUTES`; an empty dict sends every request through FastAPI's routing.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_routes: dict[str, Api] = dict(ROUTES)
        self._telemetry_seen = False
        self._telemetry_until = 0.0

    def _telemetry_on(self) -> bool:
        """Whether FastAPI's OpenTelemetry instrumentation is on (looked at once a `TELEMETRY_CHECK_S`)."""
        now = time.monotonic()
        if now >= self._telemetry_until:
            native = getattr(self, "_native_telemetry", None)
            self._telemetry_seen = native is not None and bool(native.enabled())
            self._telemetry_until = now + TELEMETRY_CHECK_S
        return self._telemetry_seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not self._telemetry_on():
            if self.root_path:
                scope["root_path"] = self.root_path
            api = self.fast_routes.get(_route_path(scope))
            if api is not None:
                scope["app"] = self
                await answer(self, api, scope, receive, send)
                return
        await super().__call__(scope, receive, send)
