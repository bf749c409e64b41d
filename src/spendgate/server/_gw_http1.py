"""A lean keep-alive HTTP/1.1 client for calling upstreams: asyncio protocols and the httptools parser.

The gateway spends most of its own time moving bytes between two sockets; a general-purpose client
(aiohttp) cost about a quarter of a forwarded call's CPU. `Http1Transport` does only what forwarding
needs: one request written in one ``write``, the response parsed by httptools (the parser uvicorn
uses), bodies delivered as they arrive (SSE streams included), connections kept per host and reused.

Behaviour a user can rely on:

* ``http://`` and ``https://`` (TLS verified against the system's CA store, or a given ``ssl`` context).
* ``timeout_s`` bounds connecting and every wait for bytes (a stream that stalls between events times
  out), not the whole call: `TimeoutError`.
* A connection that closes or breaks before its response is complete raises a `ConnectionError`
  (an `OSError`); a response the parser refuses raises `ConnectionError` too. A request is never sent
  twice: a POST to a model is not idempotent.
* An idle connection is dropped after ``idle_timeout_s`` (default 4 s, under uvicorn's 5 s keep-alive,
  which vLLM and many OpenAI-compatible servers run with) so a reused connection is not one the server
  is closing at that moment.
* At most ``max_connections`` requests are in flight; more wait for a connection (under ``timeout_s``).
* A body arriving faster than it is read is buffered up to 256 KiB, then the socket stops being read.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from spendgate.server._gw_deadlines import Deadlines

__all__ = ["Http1Transport", "ResponseHeaders"]

_PAUSE_AT = 256 * 1024
_RESUME_AT = 64 * 1024
_SAFE = str.maketrans("", "", "\r\n")


class ResponseHeaders(dict[str, str]):
    """Response headers by lower-case name; lookups ignore case (repeated headers are joined by ``, ``)."""

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)


@lru_cache(maxsize=256)
def _target(url: str) -> tuple[tuple[str, str, int], str, str]:
    """``((scheme, host, port), request target, Host header)`` for an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"cannot call {url!r}: only absolute http:// and https:// URLs are supported")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    host_header = host if port == default else f"{host}:{port}"
    path.encode("ascii")  # a path that is not ASCII is refused here (UnicodeEncodeError is a ValueError)
    return (parts.scheme, parts.hostname, port), path, host_header


def _head(method: str, target: str, host: str, headers: Mapping[str, str], length: int | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    for name, value in headers.items():
        lower = name.lower()
        if lower in ("host", "content-length", "transfer-encoding", "connection"):
            continue
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name.translate(_SAFE)!r} contains a line break")
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the response currently being read on it."""

    def __init__(self, deadlines: Deadlines) -> None:
        self.loop = deadlines.loop
        self.deadlines = deadlines
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        """Forget the previous response (the parser itself carries on to the next message)."""
        self.status = 0
        self.headers = ResponseHeaders()
        self._name = ""
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"the upstream sent a response that is not valid HTTP/1.1: {error}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.done:
            self._fail(exc if isinstance(exc, OSError) else ConnectionResetError("the upstream closed the connection"))

    # -- httptools callbacks --
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        found = dict.get(self.headers, key)
        dict.__setitem__(self.headers, key, text if found is None else f"{found}, {text}")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True
        self._wake()

    # -- used by the response --
    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout_s: float) -> None:
        """Wait until the parser reports progress (or the connection fails, or ``timeout_s`` passes)."""
        waiter = self.waiter = self.loop.create_future()
        self.deadlines.add(waiter, timeout_s)
        try:
            await waiter
        finally:
            self.deadlines.remove(waiter, timeout_s)
            self.waiter = None

    def send(self, data: bytes) -> None:
        """Write a request (a connection closed meanwhile fails the response instead)."""
        if self.transport is None or self.closed:
            self._fail(ConnectionResetError("the upstream closed the connection"))
            return
        self.transport.write(data)

    def take(self) -> bytes | None:
        """The next buffered body piece (None when there is none), resuming reading when drained."""
        if not self.chunks:
            return None
        data = self.chunks.popleft()
        self.buffered -= len(data)
        if self.paused and self.buffered < _RESUME_AT and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Response:
    """An `UpstreamStream` over the response being read on one connection."""

    __slots__ = ("_conn", "_key", "_open", "_pool", "_timeout_s")

    def __init__(self, conn: _Connection, pool: Http1Transport, key: tuple[str, str, int], timeout_s: float) -> None:
        self._conn, self._pool, self._key, self._timeout_s, self._open = conn, pool, key, timeout_s, True

    @property
    def status_code(self) -> int:
        return self._conn.status

    @property
    def headers(self) -> ResponseHeaders:
        return self._conn.headers

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            data = conn.take()
            if data is not None:
                yield data
                continue
            if conn.done:
                return
            if conn.error is not None:
                raise conn.error
            await conn.wait(self._timeout_s)

    async def read(self) -> bytes:
        """The whole body."""
        conn = self._conn
        while not conn.done:
            if conn.error is not None:
                raise conn.error
            await conn.wait(self._timeout_s)
        data = b"".join(conn.chunks)
        conn.chunks.clear()
        conn.buffered = 0
        return data

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._pool.give_back(self._key, self._conn)


class Http1Transport:
    """Sends requests over kept-alive HTTP/1.1 connections; usable as `UpstreamClient`'s transport."""

    def __init__(
        self,
        *,
        max_connections: int = 512,
        idle_timeout_s: float = 4.0,
        max_idle_per_host: int = 256,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._deadlines: Deadlines | None = None
        self._max_connections = max_connections
        self._idle_timeout_s = idle_timeout_s
        self._max_idle = max_idle_per_host
        self._ssl = ssl

    async def __call__(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout_s: float
    ) -> _Response:
        key, target, host = _target(url)
        head = _head(method, target, host, headers, None if body is None and method == "GET" else len(body or b""))
        slots = self._slots
        if slots is None:
            slots = self._slots = asyncio.Semaphore(self._max_connections)
        if slots.locked():
            await asyncio.wait_for(slots.acquire(), timeout_s)
        else:
            await slots.acquire()
        conn: _Connection | None = None
        try:
            conn = self._reuse(key) or await self._connect(key, timeout_s)
            conn.send(head + body if body else head)
            while not conn.head_done:
                if conn.error is not None:
                    raise conn.error
                await conn.wait(timeout_s)
        except BaseException:
            slots.release()
            if conn is not None:
                conn.close()
            raise
        return _Response(conn, self, key, timeout_s)

    def _reuse(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._idle_timeout_s:
                conn.reset()
                return conn
            conn.close()
        return None

    async def _connect(self, key: tuple[str, str, int], timeout_s: float) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls: ssl_module.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl or _default_tls()
        deadlines = self._deadlines
        if deadlines is None or deadlines.loop is not loop:
            deadlines = self._deadlines = Deadlines(loop)
        connecting = loop.create_connection(lambda: _Connection(deadlines), host, port, ssl=tls)
        _, conn = await asyncio.wait_for(connecting, timeout_s)
        return conn

    def give_back(self, key: tuple[str, str, int], conn: _Connection) -> None:
        """Return a connection after its response: kept if it was read to its end and may be reused."""
        assert self._slots is not None
        self._slots.release()
        if not conn.done or not conn.keep_alive or conn.closed or conn.error is not None or conn.chunks:
            conn.close()
            return
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def aclose(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


@lru_cache(maxsize=1)
def _default_tls() -> ssl_module.SSLContext:
    return ssl_module.create_default_context()
