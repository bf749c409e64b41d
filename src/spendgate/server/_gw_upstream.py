"""Calling providers: one shared connection pool per app, and every failure as an `UpstreamFailure`.

Failure kinds (the ledger's ``error_kind``) and what the client gets:

================  ===================================================================
kind              client answer
================  ===================================================================
rate_limited      the upstream's 429 status, body and ``Retry-After``
upstream_4xx      the upstream's status and body
upstream_5xx      the upstream's status and body
timeout           504 with a JSON error (no answer within ``Upstream.timeout_s``)
connection        502 with a JSON error (refused, reset, closed mid-body)
bad_response      502 with a JSON error (a success whose body is not JSON)
================  ===================================================================

``Upstream.timeout_s`` bounds getting a connection (from the pool, or a new one) and every wait for
bytes from the upstream (so a stream that stalls between events times out too), not the whole call.

An `UpstreamClient` can be given a `Transport` instead of its connection pool: tests use one to answer
with scripted bytes and failures without a server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from spendgate.server._gw_http1 import Http1Transport
from spendgate.server._gw_reply import error_body
from spendgate.server._gw_routing import Wire

__all__ = [
    "TRANSPORT_ERRORS",
    "Transport",
    "UpstreamClient",
    "UpstreamFailure",
    "UpstreamReply",
    "UpstreamStream",
    "failure_from_exception",
    "failure_from_response",
    "kind_of_status",
    "passthrough",
]

#: Transport-level failures of an upstream call (everything else is a bug and is not hidden): connection
#: failures are ``OSError``s, timeouts ``TimeoutError``s, an unusable URL or header a ``ValueError``.
TRANSPORT_ERRORS = (OSError, TimeoutError, ValueError)

#: Upstream response headers a client may need (request ids for support tickets, retry hints).
PASSTHROUGH_HEADERS = ("retry-after", "x-request-id", "request-id", "openai-processing-ms")


def kind_of_status(status: int) -> str:
    """``rate_limited`` for 429, ``upstream_5xx`` for 5xx, else ``upstream_4xx``."""
    if status == 429:
        return "rate_limited"
    return "upstream_5xx" if status >= 500 else "upstream_4xx"


def passthrough(headers: Mapping[str, str]) -> dict[str, str]:
    """The `PASSTHROUGH_HEADERS` an upstream sent (``headers`` looks names up case-insensitively)."""
    return {name: value for name in PASSTHROUGH_HEADERS if (value := headers.get(name)) is not None}


class UpstreamFailure(Exception):
    """A failed upstream call: its kind, and the status, body and headers to answer the client with."""

    def __init__(
        self,
        kind: str,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        upstream_status: int | None = None,
        media_type: str = "application/json",
    ) -> None:
        super().__init__(f"{kind}: {status}")
        self.kind = kind
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.upstream_status = upstream_status
        self.media_type = media_type

    def error(self) -> dict[str, Any]:
        """The failure as a JSON error object (for an SSE error event), from the body when it is one."""
        try:
            parsed = json.loads(self.body)
        except ValueError:
            parsed = None
        found = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(found, dict):
            return found
        return {"type": self.kind, "message": self.body.decode("utf-8", errors="replace")[:500]}


def failure_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamFailure:
    """An upstream error answer (status >= 400), passed through to the client as it came."""
    media_type = headers.get("content-type", "application/json")
    return UpstreamFailure(kind_of_status(status), status, body, passthrough(headers), status, media_type)


def failure_from_exception(exc: BaseException, wire: Wire, provider: str) -> UpstreamFailure:
    """A transport failure: 504 for a timeout, 502 for anything else (with a JSON error in the wire's shape)."""
    if isinstance(exc, TimeoutError):
        kind, status, message = "timeout", 504, f"{provider} did not answer in time"
    elif isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        kind, status, message = "bad_response", 502, f"{provider} sent a response that is not valid JSON"
    else:
        kind, status, message = "connection", 502, f"the connection to {provider} failed: {type(exc).__name__}"
    body = json.dumps(error_body(wire, kind, message)).encode()
    return UpstreamFailure(kind, status, body)


class UpstreamStream(Protocol):
    """An upstream answer whose body is still to be read; its owner must `aclose` it."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The response headers, looked up case-insensitively."""
        ...

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, in pieces as they arrive; raises one of `TRANSPORT_ERRORS` when the transfer fails."""
        ...

    async def aclose(self) -> None:
        """Give the connection back (or close it when the body was not read to its end); idempotent."""
        ...


#: ``(method, url, headers, body, timeout_s) -> UpstreamStream``: what sends a request (see `UpstreamClient`).
Transport = Callable[[str, str, dict[str, str], bytes | None, float], Awaitable[UpstreamStream]]


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """A successful upstream answer read whole."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes


class UpstreamClient:
    """The app's connections to every upstream (keep-alive, `Http1Transport`), opened on first use.

    ``transport``, when given, sends every request instead (tests use it to script answers).
    """

    def __init__(self, *, transport: Transport | None = None, max_connections: int = 512) -> None:
        self._pool: Http1Transport | None = None
        if transport is None:
            transport = self._pool = Http1Transport(max_connections=max_connections)
        self._transport: Transport = transport

    async def open(
        self, method: str, url: str, *, headers: dict[str, str], content: bytes | None, timeout_s: float
    ) -> UpstreamStream:
        """Send one request and return once the response's head has arrived; the caller must close it.

        Raises `UpstreamFailure` for an error status (its body read) and lets transport errors through.
        """
        stream = await self._transport(method, url, headers, content, timeout_s)
        if stream.status_code >= 400:
            try:
                body = await _read(stream)
            finally:
                await stream.aclose()
            raise failure_from_response(stream.status_code, body, stream.headers)
        return stream

    async def fetch(
        self, method: str, url: str, *, headers: dict[str, str], content: bytes | None, timeout_s: float
    ) -> UpstreamReply:
        """Send one request and read its whole answer (raises as :meth:`open` does, or if the body fails)."""
        stream = await self.open(method, url, headers=headers, content=content, timeout_s=timeout_s)
        try:
            body = await _read(stream)
        finally:
            await stream.aclose()
        return UpstreamReply(stream.status_code, stream.headers, body)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


async def _read(stream: UpstreamStream) -> bytes:
    read = getattr(stream, "read", None)
    if read is not None:
        body: bytes = await read()
        return body
    return b"".join([data async for data in stream.aiter_bytes()])
