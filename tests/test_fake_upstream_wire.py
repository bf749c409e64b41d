"""FakeUpstream on the wire (raw HTTP/1.1: keep-alive, chunked SSE frames, error shapes) and its pure parts."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from spendgate.errors import ConfigurationError
from spendgate.testing import FakeClock, FakeReply, FakeRequest, FakeToolCall, FakeUpstream, Fault, ScriptedReply
from spendgate.testing._fake_turn import fit_text, split_text
from spendgate.testing._fake_wire import error_body
from spendgate.tokens import TokenCounter

COUNTER = TokenCounter()
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
CLAUDE: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "Hi"}],
}
JSON_AUTH = {"content-type": "application/json", "authorization": "Bearer k"}


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(clock=FakeClock(datetime(2026, 5, 1, tzinfo=UTC))) as upstream:
        yield upstream


@pytest.fixture
def conn(fake: FakeUpstream) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=5)
    yield connection
    connection.close()


def call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=JSON_AUTH if headers is None else headers)
    response = conn.getresponse()
    return response, response.read()


def sse_frames(raw: bytes) -> list[str]:
    text = raw.decode()
    assert text.endswith("\n\n")
    return text[:-2].split("\n\n")


# ---- the wire ----------------------------------------------------------------------------------------


def test_binds_loopback_and_urls(fake: FakeUpstream) -> None:
    assert fake.url.startswith("http://127.0.0.1:")
    assert int(fake.url.rsplit(":", 1)[1]) > 0
    assert fake.openai_base_url == fake.url + "/v1"
    assert fake.anthropic_base_url == fake.url


def test_keep_alive_serves_several_requests_on_one_connection(conn: http.client.HTTPConnection) -> None:
    first, _ = call(conn, "POST", "/v1/chat/completions", CHAT)
    sock = conn.sock
    second, body = call(conn, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    third, _ = call(conn, "GET", "/v1/models")
    assert (first.status, second.status, third.status) == (200, 200, 200)
    assert first.version == 11
    assert second.getheader("transfer-encoding") == "chunked"
    assert conn.sock is sock  # never reconnected
    assert body.endswith(b"data: [DONE]\n\n")


def test_openai_sse_frames(conn: http.client.HTTPConnection, fake: FakeUpstream) -> None:
    response, raw = call(conn, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert response.getheader("content-type") == "text/event-stream; charset=utf-8"
    assert response.getheader("x-request-id") == "req_fake000000"
    frames = sse_frames(raw)
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    assert all(f.startswith("data: {") for f in frames[:-1])
    assert "usage" not in chunks[0]  # only when usage is asked for
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[0]["created"] == int(datetime(2026, 5, 1, tzinfo=UTC).timestamp())


def test_anthropic_sse_frames(conn: http.client.HTTPConnection) -> None:
    response, raw = call(conn, "POST", "/v1/messages", {**CLAUDE, "stream": True}, {"x-api-key": "k"})
    assert response.getheader("request-id") == "req_fake000000"
    frames = sse_frames(raw)
    for frame in frames:
        event_line, data_line = frame.split("\n")
        event = event_line.removeprefix("event: ")
        assert json.loads(data_line.removeprefix("data: "))["type"] == event
    assert frames[-1] == 'event: message_stop\ndata: {"type":"message_stop"}'


def test_truncated_stream_has_no_terminator_on_the_wire(conn: http.client.HTTPConnection, fake: FakeUpstream) -> None:
    fake.script(FakeReply(fault=Fault.TRUNCATE), FakeReply(fault=Fault.TRUNCATE))
    _, openai_raw = call(conn, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    _, claude_raw = call(conn, "POST", "/v1/messages", {**CLAUDE, "stream": True})
    assert openai_raw and b"[DONE]" not in openai_raw
    assert claude_raw and b"message_stop" not in claude_raw
    assert b"message_delta" in claude_raw


def test_chunked_request_body(conn: http.client.HTTPConnection) -> None:
    def pieces() -> Iterator[bytes]:
        data = json.dumps(CHAT).encode()
        yield data[:10]
        yield data[10:]

    conn.request("POST", "/v1/chat/completions", body=pieces(), headers=JSON_AUTH, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["object"] == "chat.completion"


def raw_exchange(fake: FakeUpstream, request: bytes) -> bytes:
    """Send ``request`` bytes on a fresh socket and read until the server closes or 2 s pass."""
    with socket.create_connection(("127.0.0.1", int(fake.url.rsplit(":", 1)[1])), timeout=2) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_chunked_body_with_extensions_and_trailers(fake: FakeUpstream) -> None:
    body = json.dumps(CHAT).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x;ext=1\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n"
        % (len(body), body)
    )
    reply = raw_exchange(fake, request)
    assert reply.startswith(b"HTTP/1.1 200")
    assert fake.requests[0].body == CHAT


@pytest.mark.parametrize("length", [b"abc", b"-5", b"999999999999"])
def test_bad_content_length(fake: FakeUpstream, length: bytes) -> None:
    reply = raw_exchange(
        fake, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 400")
    assert fake.requests == []


def test_a_client_reset_leaves_no_traceback(fake: FakeUpstream, capfd: pytest.CaptureFixture[str]) -> None:
    sock = socket.create_connection(("127.0.0.1", int(fake.url.rsplit(":", 1)[1])), timeout=2)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x")  # an unfinished request line
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # abortive close: the server's read fails with a reset
    conn = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=5)
    response, _ = call(conn, "GET", "/v1/models")
    conn.close()
    fake.stop()  # joins every handler thread, so the reset has been handled
    assert response.status == 200
    assert "Traceback" not in capfd.readouterr().err


def test_unknown_route_and_bad_json(conn: http.client.HTTPConnection, fake: FakeUpstream) -> None:
    fake.script(FakeReply(text="kept for a real route"))
    response, body = call(conn, "POST", "/v1/nowhere", CHAT)
    assert response.status == 404
    assert json.loads(body)["error"]["message"] == "Invalid URL (POST /v1/nowhere)"
    response, body = call(conn, "POST", "/v1/messages/nowhere", CHAT)
    assert json.loads(body)["error"]["type"] == "not_found_error"
    response, body = call(conn, "POST", "/v1/chat/completions", b"{not json")
    assert response.status == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert fake.pending == 1  # none of these used the scripted reply
    response, body = call(conn, "POST", "/v1/chat/completions", [1, 2])
    assert response.status == 400  # a real route takes the scripted reply, then finds the body wrong
    assert fake.pending == 0
    assert len(fake.requests) == 4


def test_a_missing_key_is_refused(conn: http.client.HTTPConnection) -> None:
    response, body = call(conn, "POST", "/v1/chat/completions", CHAT, {"content-type": "application/json"})
    assert response.status == 401
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
    response, body = call(conn, "POST", "/v1/messages", CLAUDE, {"content-type": "application/json"})
    assert json.loads(body)["error"] == {"type": "authentication_error", "message": "x-api-key header is required"}


def test_anthropic_validation_and_count_tokens(conn: http.client.HTTPConnection) -> None:
    no_max = {k: v for k, v in CLAUDE.items() if k != "max_tokens"}
    response, body = call(conn, "POST", "/v1/messages", no_max)
    assert response.status == 400
    assert json.loads(body)["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    response, body = call(conn, "POST", "/v1/messages", {**CLAUDE, "model": ""})
    assert json.loads(body)["error"]["message"] == "you must provide a model parameter"
    response, body = call(conn, "POST", "/v1/messages/count_tokens", {**no_max, "system": "Be brief."})
    expected = COUNTER.count("anthropic", CLAUDE["model"], messages=CLAUDE["messages"], system="Be brief.").total
    assert json.loads(body) == {"input_tokens": expected}


def test_anthropic_model_list(conn: http.client.HTTPConnection, fake: FakeUpstream) -> None:
    _, body = call(conn, "GET", "/v1/models", headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    page = json.loads(body)
    assert [m["id"] for m in page["data"]] == list(fake.models)
    assert page["first_id"] == fake.models[0]
    assert page["data"][0]["created_at"] == "2026-05-01T00:00:00Z"
    assert page["has_more"] is False


def test_embedding_validation(conn: http.client.HTTPConnection) -> None:
    for bad in ({"model": "text-embedding-3-small"}, {"model": "text-embedding-3-small", "input": [1.5]}):
        response, body = call(conn, "POST", "/v1/embeddings", bad)
        assert response.status == 400
        assert json.loads(body)["error"]["param"] == "input"
    response, body = call(conn, "POST", "/v1/embeddings", {"model": "m", "input": [5, 6, 7], "dimensions": 3})
    reply = json.loads(body)
    assert len(reply["data"]) == 1  # one input given as token ids
    assert reply["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_tools_must_be_a_list(conn: http.client.HTTPConnection) -> None:
    response, body = call(conn, "POST", "/v1/chat/completions", {**CHAT, "tools": {"not": "a list"}})
    assert response.status == 400
    assert json.loads(body)["error"]["param"] == "tools"


# ---- life cycle --------------------------------------------------------------------------------------


def test_life_cycle() -> None:
    fake = FakeUpstream()
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.url
    fake.stop()  # stopping a fake that never started is harmless
    fake.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            fake.start()
        port = int(fake.url.rsplit(":", 1)[1])
    finally:
        fake.stop()
    fake.stop()
    with FakeUpstream(port=port) as again:  # the port is free again
        assert again.url.endswith(f":{port}")


def test_stop_ends_idle_keep_alive_connections_and_pending_delays() -> None:
    fake = FakeUpstream(latency_s=30).start()
    idle = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=5)
    try:
        fake.latency_s = 0
        call(idle, "GET", "/v1/models")  # the connection stays open, its handler waits for more
        fake.latency_s = 30
        waiting = http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=5)
        waiting.request("GET", "/v1/models", headers=JSON_AUTH)
        started = datetime.now(UTC)
        fake.stop()
        assert (datetime.now(UTC) - started).total_seconds() < 5
        with pytest.raises((http.client.HTTPException, OSError)):
            waiting.getresponse()
        waiting.close()
    finally:
        idle.close()
        fake.stop()


@pytest.mark.parametrize(
    "kwargs",
    [{"include_usage": "sometimes"}, {"cached_tokens": -1}, {"latency_s": -0.5}],
)
def test_invalid_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        FakeUpstream(**kwargs)


def test_main_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "spendgate.testing._fake_upstream", "--port", "0", "--reply-text", "Hi from main."],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fake upstream on http://127.0.0.1:")
        url = line.split()[3]
        conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=5)
        _, body = call(conn, "POST", "/v1/chat/completions", CHAT)
        conn.close()
        assert json.loads(body)["choices"][0]["message"]["content"] == "Hi from main."
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# ---- value objects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 99},
        {"status": 600},
        {"status": True},
        {"text": "ab", "chunks": ["a", "c"]},
        {"chunks": ["a", 1]},
        {"latency_s": -1},
        {"chunk_delay_s": float("nan")},
        {"retry_after": -2},
        {"fault_after": -1},
    ],
)
def test_invalid_replies(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        FakeReply(**kwargs)


def test_reply_normalises_its_fields() -> None:
    reply = ScriptedReply(chunks=["a", "b"], tool_calls=[FakeToolCall("f")], fault="reset")  # type: ignore[arg-type]
    assert reply.reply_text == "ab"
    assert reply.chunks == ("a", "b")
    assert reply.tool_calls == (FakeToolCall("f"),)
    assert reply.fault is Fault.RESET
    assert FakeReply().reply_text is None
    assert ScriptedReply is FakeReply


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]"])
def test_invalid_tool_calls(arguments: str) -> None:
    with pytest.raises(ConfigurationError):
        FakeToolCall("f", arguments)
    with pytest.raises(ConfigurationError):
        FakeToolCall("")


def test_tool_call_arguments() -> None:
    call = FakeToolCall("f", {"b": 1, "a": [True]})
    assert call.arguments_json == '{"b":1,"a":[true]}'
    assert FakeToolCall("f", call.arguments_json).arguments_object == {"b": 1, "a": [True]}


@pytest.mark.parametrize(
    ("headers", "key", "provider"),
    [
        ({"authorization": "Bearer sk-1"}, "sk-1", "openai"),
        ({"authorization": "Basic abc"}, None, "openai"),
        ({"authorization": "Bearer "}, None, "openai"),
        ({"x-api-key": "ant", "anthropic-version": "2023-06-01"}, "ant", "anthropic"),
        ({}, None, "openai"),
    ],
)
def test_request_properties(headers: dict[str, str], key: str | None, provider: str) -> None:
    request = FakeRequest("GET", "/v1/models", "", headers, None, b"", datetime(2026, 1, 1, tzinfo=UTC), 0)
    assert request.api_key == key
    assert request.provider == provider
    assert request.model is None
    assert request.stream is False


# ---- text fitting ------------------------------------------------------------------------------------


def count_o200k(text: str) -> int:
    return COUNTER.count_text("openai", "gpt-4o", text).total


def test_split_text_keeps_every_character() -> None:
    text = "  Hello,  wide\nworld! "
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert pieces[1:3] == ("Hello,  ", "wide\n")


@pytest.mark.parametrize("limit", [1, 2, 5, 17, 40])
def test_fit_text_cuts_to_the_limit(limit: int) -> None:
    text = "The quick brown fox jumps over the lazy dog near the riverbank."
    fitted, hit = fit_text(text, limit, count_o200k)
    assert text.startswith(fitted)
    assert hit is (count_o200k(text) > limit)
    assert count_o200k(fitted) == min(limit, count_o200k(text))


def test_fit_text_without_limit_or_text() -> None:
    assert fit_text("abc", None, count_o200k) == ("abc", False)
    assert fit_text("", 10, count_o200k, fill=True) == ("", False)


@pytest.mark.parametrize(("text", "limit"), [("Fake.", 23), ("a", 4)])
def test_fit_text_fill_reaches_the_limit_exactly(text: str, limit: int) -> None:
    fitted, hit = fit_text(text, limit, count_o200k, fill=True)
    assert hit
    assert fitted.startswith(f"{text} {text}")
    assert count_o200k(fitted) == limit


def test_error_bodies() -> None:
    assert error_body("openai", 418)["error"] == {
        "message": "HTTP 418 (fake upstream).",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert error_body("openai", 502)["error"]["type"] == "server_error"
    assert error_body("anthropic", 502, "down") == {"type": "error", "error": {"type": "api_error", "message": "down"}}
    assert error_body("anthropic", 413)["error"]["type"] == "request_too_large"


def test_testing_exports_are_sorted_and_resolve() -> None:
    from spendgate import testing

    assert testing.__all__ == sorted(testing.__all__)
    assert all(hasattr(testing, name) for name in testing.__all__)
    public = {
        name
        for name, value in vars(testing).items()
        if not name.startswith("_") and str(getattr(value, "__module__", "")).startswith("spendgate")
    }
    assert public <= set(testing.__all__)
