"""Calling providers: one shared ``httpx2.AsyncClient`` per app, and every failure as an `UpstreamFailure`.

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
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from spendgate.server._gw_reply import error_body
from spendgate.server._gw_routing import Wire

__all__ = [
    "TRANSPORT_ERRORS",
    "UpstreamClient",
    "UpstreamFailure",
    "failure_from_exception",
    "failure_from_response",
    "kind_of_status",
]

#: Transport-level failures of an upstream call (everything else is a bug and is not hidden).
TRANSPORT_ERRORS = (httpx2.HTTPError, OSError, ValueError)

#: Upstream response headers a client may need (request ids for support tickets, retry hints).
PASSTHROUGH_HEADERS = ("retry-after", "x-request-id", "request-id", "openai-processing-ms")


def kind_of_status(status: int) -> str:
    """``rate_limited`` for 429, ``upstream_5xx`` for 5xx, else ``upstream_4xx``."""
    if status == 429:
        return "rate_limited"
    return "upstream_5xx" if status >= 500 else "upstream_4xx"


def passthrough(headers: httpx2.Headers) -> dict[str, str]:
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


def failure_from_response(status: int, body: bytes, headers: httpx2.Headers) -> UpstreamFailure:
    """An upstream error answer (status >= 400), passed through to the client as it came."""
    media_type = headers.get("content-type", "application/json")
    return UpstreamFailure(kind_of_status(status), status, body, passthrough(headers), status, media_type)


def failure_from_exception(exc: BaseException, wire: Wire, provider: str) -> UpstreamFailure:
    """A transport failure: 504 for a timeout, 502 for anything else (with a JSON error in the wire's shape)."""
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        kind, status, message = "timeout", 504, f"{provider} did not answer in time"
    elif isinstance(exc, json.JSONDecodeError | UnicodeDecodeError | httpx2.DecodingError):
        kind, status, message = "bad_response", 502, f"{provider} sent a response that is not valid JSON"
    else:
        kind, status, message = "connection", 502, f"the connection to {provider} failed: {type(exc).__name__}"
    body = json.dumps(error_body(wire, kind, message)).encode()
    return UpstreamFailure(kind, status, body)


class UpstreamClient:
    """The app's connection pool to every upstream; ``transport`` is for tests (e.g. a mock transport)."""

    def __init__(self, *, transport: httpx2.AsyncBaseTransport | None = None, max_connections: int = 512) -> None:
        limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 4)
        self._client = httpx2.AsyncClient(limits=limits, transport=transport, trust_env=False)

    async def send(
        self, method: str, url: str, *, headers: dict[str, str], content: bytes | None, timeout_s: float, stream: bool
    ) -> httpx2.Response:
        """Send one request; with ``stream`` the body is left to read (the caller must close the response).

        Raises `UpstreamFailure` for an error status (its body read) and lets transport errors through.
        """
        request = self._client.build_request(
            method, url, headers=headers, content=content, timeout=httpx2.Timeout(timeout_s)
        )
        response = await self._client.send(request, stream=stream)
        if response.status_code >= 400:
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            raise failure_from_response(response.status_code, body, response.headers)
        return response

    async def aclose(self) -> None:
        await self._client.aclose()
