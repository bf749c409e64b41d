"""Request bodies over ``max_request_bytes`` are refused with 413 before they are parsed or forwarded.

A declared ``Content-Length`` over the limit is answered at once, without reading the body; a chunked
body is read first (as the app would) and refused as soon as it passes the limit. The gateway's hot routes (which skip
the middleware) apply the same limit while they read (``_gw_request.read_json``).
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spendgate.server._errors import ApiError

__all__ = ["BodyLimit", "declared_length", "too_large"]


def too_large(limit: int) -> ApiError:
    return ApiError(
        413, "request_too_large", f"the request body is larger than {limit} bytes (max_request_bytes)", field="body"
    )


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (None when absent or not a number)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``limit`` bytes (module docstring)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.limit:
            error = too_large(self.limit)
            await JSONResponse(error.body, status_code=error.status)(scope, receive, send)
            return
        if declared is not None or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        # Chunked: read it all first (the app would), so the refusal is ours, not a parse error of the app's.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                await self.app(scope, _replay([], message), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                error = too_large(self.limit)
                await JSONResponse(error.body, status_code=error.status)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)


def _replay(chunks: list[bytes], last: Message | None, then: Receive | None = None) -> Receive:
    """A ``receive`` that gives the body read so far in one message (or ``last``), then defers to ``then``."""
    pending: list[Message] = [last] if last is not None else [{"type": "http.request", "body": b"".join(chunks)}]

    async def receive() -> Message:
        if pending:
            return pending.pop()
        if then is None:
            return {"type": "http.disconnect"}
        return await then()

    return receive
