"""Streaming a response through the gateway: events pass as they arrive, the call settles once at the end.

:class:`Relay` forwards each upstream SSE event as soon as it is complete (no buffering beyond one event),
feeds it to the shared :class:`~spendgate.integrations._streams.StreamTally` (which counts the output
and hides an OpenAI usage chunk the client did not ask for), and ends the call exactly once:

* the upstream stream ends → settle with the provider's usage (estimated only if it sent none), before
  the final event (``[DONE]``, ``message_stop``) is forwarded, so the client never sees an end that is
  not yet in the ledger;
* the upstream fails mid-stream (reset, timeout, malformed event, an ``error`` event) → release the
  hold charging what was produced, record the failure's kind, and send the client an SSE error event
  its SDK raises (the status line was already sent);
* the client goes away → stop reading the upstream and settle what was produced so far
  (``tokens_estimated`` unless the provider's usage had arrived; ``status_code`` 499).

:class:`RelayResponse` makes the last case deterministic: whatever ends the response, it closes the
relay before returning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from spendgate.integrations._call import Call
from spendgate.integrations._streams import StreamTally
from spendgate.meter import Authorization, Meter
from spendgate.server._gw_routing import Wire
from spendgate.server._gw_sse import SseSplitter, error_event, event_data
from spendgate.server._gw_upstream import TRANSPORT_ERRORS, UpstreamStream, failure_from_exception

__all__ = ["CLIENT_CLOSED", "Relay", "RelayResponse"]

log = logging.getLogger("spendgate.server.gateway")
T = TypeVar("T")

#: The ``status_code`` recorded for a stream the client left before its end (nginx's convention).
CLIENT_CLOSED = 499


def _error_kind(error: Any) -> str:
    kind = error.get("type") if isinstance(error, dict) else None
    return "rate_limited" if isinstance(kind, str) and "rate_limit" in kind else "upstream_5xx"


class Relay:
    """One upstream stream on its way to the client, and the metering of its end."""

    def __init__(
        self,
        *,
        response: UpstreamStream,
        wire: Wire,
        provider: str,
        call: Call,
        auth: Authorization,
        meter: Meter,
        fields: Callable[..., dict[str, Any]],
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
    ) -> None:
        self.response = response
        self.wire = wire
        self.provider = provider
        self.auth = auth
        self.meter = meter
        self.tally = StreamTally(call, auth)
        self._fields = fields
        self._run = run
        self._splitter = SseSplitter()
        self.sent = 0
        """Bytes forwarded to the client."""
        self.ended = False
        """Whether the call was settled or released."""
        self.upstream_error: str | None = None
        """The kind of an ``error`` event the upstream sent mid-stream."""
        self.terminal = False
        """Whether the stream's last event (``[DONE]``, ``message_stop``) arrived."""

    def _take(self, event: bytes) -> bytes | None:
        """The bytes to forward for one upstream event (None: hidden); raises ValueError on bad JSON."""
        name, data = event_data(event)
        if data is None:
            return event
        if data.strip() == "[DONE]":
            self.terminal = True
            return event
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            return event
        if chunk.get("type") == "message_stop":
            self.terminal = True
        if name == "error" or ("error" in chunk and "choices" not in chunk):
            self.upstream_error = _error_kind(chunk.get("error"))
            return event
        return event if self.tally.observe(chunk) else None

    def _out(self, data: bytes) -> bytes:
        self.sent += len(data)
        return data

    async def events(self) -> AsyncGenerator[bytes, None]:
        """The client's body: upstream events as they arrive, then (on a failure) one error event."""
        try:
            async for data in self.response.aiter_bytes():
                for event in self._splitter.feed(data):
                    out = self._take(event)
                    if self.terminal and not self.ended:
                        await self._completed()  # in the ledger before the client sees the end
                    if out is not None:
                        yield self._out(out)
            rest = self._splitter.rest()
        except TRANSPORT_ERRORS as exc:
            failure = failure_from_exception(exc, self.wire, self.provider)
            await self._failed(failure.kind, failure.status)
            yield self._out(error_event(self.wire, failure.error()))
            return
        finally:
            with anyio.CancelScope(shield=True):
                await self.response.aclose()
        if rest.strip():
            yield self._out(rest)
        if not self.ended:
            await self._completed()

    def _partial(self) -> tuple[dict[str, Any], Any]:
        usage, estimated = self.tally.usage()
        return ({"tokens_estimated": True} if estimated else {}), usage

    async def _completed(self) -> None:
        if self.upstream_error is not None:
            await self._failed(self.upstream_error, self.response.status_code)
            return
        self.ended = True
        extra, usage = self._partial()
        fields = self._fields(status_code=self.response.status_code, response_bytes=self.sent, **extra)
        await self._run(lambda: self.meter.settle(self.auth, usage, **fields))

    async def _failed(self, kind: str, status: int) -> None:
        self.ended = True
        extra, usage = self._partial()
        partial = usage if usage.total_tokens else None
        if partial is None:
            extra = {}
        fields = self._fields(status_code=status, response_bytes=self.sent, **extra)
        log.info("stream from %s failed (%s) for %s", self.provider, kind, self.auth.reservation_id)
        await self._run(lambda: self.meter.release(self.auth, partial_usage=partial, error_kind=kind, **fields))

    async def finish(self) -> None:
        """The response is over: if the stream did not end, the client left; settle what was produced."""
        with anyio.CancelScope(shield=True):
            await self.response.aclose()
            if self.ended:
                return
            self.ended = True
            extra, usage = self._partial()
            fields = self._fields(status_code=CLIENT_CLOSED, response_bytes=self.sent, **extra)
            log.info("client left the stream %s; settling what was produced", self.auth.reservation_id)
            await self._run(lambda: self.meter.settle(self.auth, usage, **fields))


class RelayResponse(StreamingResponse):
    """An SSE response of a :class:`Relay` that always closes the relay when the response ends."""

    def __init__(self, relay: Relay, *, headers: dict[str, str]) -> None:
        self._events = relay.events()
        super().__init__(self._events, media_type="text/event-stream", headers=headers)
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
                await self.relay.finish()
