"""The gateway's own HTTP/1.1 client against scripted raw-socket servers: framing, keep-alive, failures, TLS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trustme

from spendgate.server._gw_deadlines import Deadlines
from spendgate.server._gw_http1 import Http1Transport, ResponseHeaders, _target
from spendgate.server._gw_upstream import TRANSPORT_ERRORS, UpstreamClient, UpstreamFailure

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Server:
    """A local server answering each request with ``handler``; counts connections and keeps the requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and a content-length body), or None when the client closed the connection."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


@asynccontextmanager
async def serving(make: Callable[[Server], Handler], tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(lambda r, w: asyncio.sleep(0))
    server.handler = make(server)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def keep_answering(answer: bytes) -> Callable[[Server], Handler]:
    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await server.read_request(reader) is not None:
                writer.write(answer)
                await writer.drain()

        return handler

    return make


def answer_once(*pieces: bytes, pause_s: float = 0.0, close: bool = True) -> Callable[[Server], Handler]:
    def make(server: Server) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                if pause_s:
                    await asyncio.sleep(pause_s)
            if not close:
                await asyncio.sleep(5)

        return handler

    return make


async def body_of(transport: Http1Transport, url: str, **kwargs: Any) -> tuple[int, ResponseHeaders, bytes]:
    response = await transport(kwargs.get("method", "POST"), url, kwargs.get("headers", {}), b"{}", 5.0)
    try:
        pieces = [piece async for piece in response.aiter_bytes()]
    finally:
        await response.aclose()
    return response.status_code, response.headers, b"".join(pieces)


def test_content_length_body_and_keep_alive_reuse() -> None:
    async def scenario() -> None:
        async with serving(keep_answering(OK)) as server:
            transport = Http1Transport()
            url = f"http://127.0.0.1:{server.port}/v1/chat/completions?x=1"
            for _ in range(3):
                status, headers, body = await body_of(transport, url, headers={"Authorization": "Bearer k"})
                assert (status, body) == (200, b"{}")
                assert headers["Content-Type"] == "application/json" and "CONTENT-TYPE" in headers
            assert server.connections == 1  # one connection, kept alive and reused
            first = server.requests[0]
            assert first.startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:")
            assert b"Authorization: Bearer k\r\n" in first and first.endswith(b"content-length: 2\r\n\r\n{}")
            await transport.aclose()

    asyncio.run(scenario())


def test_chunked_stream_arrives_piece_by_piece() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    events = [b"data: 1\n\n", b"data: [DONE]\n\n"]
    chunks = [b"%x\r\n%s\r\n" % (len(e), e) for e in events] + [b"0\r\n\r\n"]

    async def scenario() -> None:
        async with serving(answer_once(head, *chunks, pause_s=0.05)) as server:
            transport = Http1Transport()
            response = await transport("POST", f"http://127.0.0.1:{server.port}/", {}, b"{}", 5.0)
            received = [piece async for piece in response.aiter_bytes()]
            await response.aclose()
            assert received == events  # each event as its own piece, as it was sent

    asyncio.run(scenario())


def test_body_until_close_and_connection_close_is_not_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello"

    async def scenario() -> None:
        async with serving(keep_answering(answer)) as server:
            transport = Http1Transport()
            url = f"http://127.0.0.1:{server.port}/"
            assert (await body_of(transport, url))[2] == b"hello"
            assert (await body_of(transport, url))[2] == b"hello"
            assert server.connections == 2

    asyncio.run(scenario())


def test_idle_connections_expire() -> None:
    async def scenario() -> None:
        async with serving(keep_answering(OK)) as server:
            transport = Http1Transport(idle_timeout_s=0.05)
            url = f"http://127.0.0.1:{server.port}/"
            await body_of(transport, url)
            await asyncio.sleep(0.1)
            await body_of(transport, url)
            assert server.connections == 2

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("pieces", "error"),
    [
        ((b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf",), ConnectionResetError),  # closed mid-body
        ((b"this is not http\r\n\r\n",), ConnectionError),
        ((), ConnectionResetError),  # closed before any answer
    ],
)
def test_broken_answers_raise_connection_errors(pieces: tuple[bytes, ...], error: type[Exception]) -> None:
    async def scenario() -> None:
        async with serving(answer_once(*pieces)) as server:
            transport = Http1Transport()
            with pytest.raises(error) as caught:
                await body_of(transport, f"http://127.0.0.1:{server.port}/")
            assert isinstance(caught.value, TRANSPORT_ERRORS)

    asyncio.run(scenario())


def test_timeouts_before_the_head_and_between_pieces() -> None:
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"

    async def scenario() -> None:
        async with serving(answer_once(close=False)) as silent:
            transport = Http1Transport()
            with pytest.raises(TimeoutError):
                await transport("POST", f"http://127.0.0.1:{silent.port}/", {}, b"{}", 0.1)
        async with serving(answer_once(head, b"2\r\nhi\r\n", close=False)) as stalls:
            response = await transport("POST", f"http://127.0.0.1:{stalls.port}/", {}, b"{}", 0.1)
            received: list[bytes] = []

            async def collect() -> None:
                async for piece in response.aiter_bytes():
                    received.append(piece)

            with pytest.raises(TimeoutError):
                await collect()
            await response.aclose()
            assert received == [b"hi"]

    asyncio.run(scenario())


def test_refused_connection_and_bad_requests() -> None:
    async def scenario() -> None:
        async with serving(keep_answering(OK)) as server:
            port = server.port
        transport = Http1Transport()
        with pytest.raises(ConnectionRefusedError):
            await transport("GET", f"http://127.0.0.1:{port}/", {}, None, 1.0)
        with pytest.raises(ValueError, match="line break"):
            await transport("GET", f"http://127.0.0.1:{port}/", {"x-evil": "a\r\nhost: b"}, None, 1.0)
        with pytest.raises(ValueError, match="only absolute http"):
            await transport("GET", "ftp://example.com/", {}, None, 1.0)

    asyncio.run(scenario())


def test_request_targets() -> None:
    assert _target("https://api.openai.com/v1/chat") == (
        ("https", "api.openai.com", 443),
        "/v1/chat",
        "api.openai.com",
    )
    assert _target("http://[::1]:8000") == (("http", "::1", 8000), "/", "[::1]:8000")


def test_connection_limit_makes_callers_wait() -> None:
    async def scenario() -> None:
        async with serving(keep_answering(OK)) as server:
            transport = Http1Transport(max_connections=1)
            url = f"http://127.0.0.1:{server.port}/"
            held = await transport("POST", url, {}, b"{}", 5.0)
            with pytest.raises(TimeoutError):  # the only connection is taken
                await transport("POST", url, {}, b"{}", 0.05)
            await held.read()
            await held.aclose()
            assert (await body_of(transport, url))[0] == 200
            assert server.connections == 1

    asyncio.run(scenario())


def test_a_large_body_read_slowly_pauses_the_socket() -> None:
    size = 2 * 1024 * 1024
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"x" * size

    async def scenario() -> None:
        async with serving(keep_answering(answer)) as server:
            transport = Http1Transport()
            response = await transport("POST", f"http://127.0.0.1:{server.port}/", {}, b"{}", 5.0)
            total, most_buffered = 0, 0
            async for piece in response.aiter_bytes():
                total += len(piece)
                await asyncio.sleep(0.001)
                most_buffered = max(most_buffered, response._conn.buffered)
            await response.aclose()
            assert total == size
            assert most_buffered < 1024 * 1024  # reading paused instead of buffering the whole body

    asyncio.run(scenario())


def test_tls_upstream_is_verified() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    async def scenario() -> None:
        async with serving(keep_answering(OK), tls=server_tls) as server:
            url = f"https://127.0.0.1:{server.port}/"
            trusting = Http1Transport(ssl=client_tls)
            assert await body_of(trusting, url) == (200, ResponseHeaders(
                {"content-type": "application/json", "content-length": "2"}), b"{}")  # fmt: skip
            await trusting.aclose()
            with pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs do not know this one
                await Http1Transport()("GET", url, {}, None, 5.0)

    asyncio.run(scenario())


def test_upstream_client_reads_error_answers_through_the_pool() -> None:
    answer = b'HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: 13\r\n\r\n{"error": {}}'

    async def scenario() -> None:
        async with serving(keep_answering(answer)) as server:
            client = UpstreamClient()
            with pytest.raises(UpstreamFailure) as failure:
                await client.fetch("POST", f"http://127.0.0.1:{server.port}/", headers={}, content=b"{}", timeout_s=5)
            assert (failure.value.kind, failure.value.headers) == ("rate_limited", {"retry-after": "7"})
            with pytest.raises(UpstreamFailure):
                await client.fetch("POST", f"http://127.0.0.1:{server.port}/", headers={}, content=b"{}", timeout_s=5)
            assert server.connections == 1  # an error answer read to its end leaves the connection reusable
            await client.aclose()

    asyncio.run(scenario())


def test_one_timer_keeps_the_deadlines_of_waits_with_different_timeouts() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        slow, quick, answered = loop.create_future(), loop.create_future(), loop.create_future()
        deadlines.add(slow, 0.3)
        deadlines.add(answered, 0.05)
        deadlines.add(quick, 0.1)  # later than `answered`, earlier than `slow`
        answered.set_result(None)
        deadlines.remove(answered, 0.05)
        started = loop.time()
        with pytest.raises(TimeoutError):
            await quick
        assert 0.09 <= loop.time() - started < 0.25 and not slow.done()
        with pytest.raises(TimeoutError):
            await slow
        assert loop.time() - started >= 0.29 and deadlines.pending() == 0
        assert answered.exception() is None

    asyncio.run(scenario())
