"""When things go wrong: upstream errors, timeouts and resets (whole and mid-stream), clients that leave,
bad input and bad keys. The hold is always released, the failure recorded with its kind, never a 500."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from spendgate.ledger import UsageEvent
from spendgate.settings import Upstream
from spendgate.testing import FakeReply, FakeUpstream, Fault
from test_gateway_support import HI, KEY_ENV, MASTER, MODES, UPSTREAM_KEY, Gateway, eventually, fake, upstreams

__all__ = ["fake"]

CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": HI}


@pytest.fixture(params=MODES)
def gw(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeUpstream,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:  # fmt: skip
    """Every failure is tested with the meter on the event loop and in worker threads."""
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    gateway = Gateway(tmp_path, fake, mode=request.param).start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(params=MODES)
def slow_gw(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeUpstream,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:  # fmt: skip
    """A gateway whose upstreams time out after 0.3 s."""
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    gateway = Gateway(tmp_path, fake, mode=request.param, upstreams=upstreams(fake, timeout_s=0.3)).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def released(gw: Gateway) -> UsageEvent:
    """The last event, a failure, whose hold is back to zero."""
    event = eventually(lambda: next((e for e in reversed(gw.events()) if not e.success), None))
    assert all(status.reserved == 0 for status in gw.meter.budget_status(user_id="ann"))
    return event


@pytest.mark.parametrize(
    ("reply", "error", "kind"),
    [
        (FakeReply(status=500, error="boom"), openai.InternalServerError, "upstream_5xx"),
        (FakeReply(status=429, retry_after=7), openai.RateLimitError, "rate_limited"),
        (FakeReply(status=400, error="bad temperature"), openai.BadRequestError, "upstream_4xx"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_error_status_and_body_pass_through(
    gw: Gateway, reply: FakeReply, error: type[openai.APIStatusError], kind: str, stream: bool
) -> None:
    gw.meter.set_limit(scope="user", scope_id="ann", amount="5")
    gw.fake.script(reply)
    with pytest.raises(error) as raised:
        gw.openai().chat.completions.create(**CHAT, stream=stream)
    assert raised.value.status_code == reply.status
    if reply.error:
        assert reply.error in raised.value.message  # the upstream's own body
    if reply.status == 429:
        assert raised.value.response.headers["retry-after"] == "7"
    event = released(gw)
    assert event.error_kind == kind and event.status_code == reply.status and event.cost == 0


def test_timeout_answers_504(slow_gw: Gateway) -> None:
    slow_gw.fake.script(FakeReply(latency_s=1.0))
    with slow_gw.http() as http:
        answer = http.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 504 and answer.json()["error"]["type"] == "timeout"
    assert released(slow_gw).error_kind == "timeout"


def test_reset_and_refused_connections_answer_502(gw: Gateway) -> None:
    gw.fake.script(FakeReply(fault=Fault.RESET))
    with gw.http() as http:
        reset = http.post("/v1/chat/completions", json=CHAT)
    assert reset.status_code == 502 and reset.json()["error"]["type"] == "connection"
    assert released(gw).error_kind == "connection"


def test_an_unreachable_upstream_answers_502(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    dead = {"openai": Upstream(base_url=f"http://127.0.0.1:{port}/v1", api_key_env=KEY_ENV, models=["gpt-"])}
    gateway = Gateway(tmp_path, fake, upstreams=dead).start()
    try:
        with gateway.http() as http:
            answer = http.post("/v1/chat/completions", json={**CHAT, "stream": True})
            models = http.get("/v1/models")
        assert answer.status_code == 502 and released(gateway).error_kind == "connection"
        assert models.status_code == 502 and models.json()["error"]["type"] == "upstream_unavailable"
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (FakeReply(fault=Fault.RESET, fault_after=3), "connection"),
        (FakeReply(fault=Fault.DISCONNECT, fault_after=3), "connection"),
        (FakeReply(fault=Fault.MALFORMED, fault_after=3), "bad_response"),
    ],
)
def test_failure_mid_stream_releases_and_tells_the_client(gw: Gateway, reply: FakeReply, kind: str) -> None:
    gw.meter.set_limit(scope="user", scope_id="ann", amount="5")
    gw.fake.script(reply)
    stream = gw.openai().chat.completions.create(**CHAT, stream=True)  # the status line said 200
    with pytest.raises(openai.APIError) as raised:
        list(stream)
    assert not isinstance(raised.value, openai.APIStatusError)  # a stream error event, after a 200
    event = released(gw)
    assert event.error_kind == kind and event.status_code == 502
    assert event.usage.input_tokens > 0  # what the upstream processed is charged


def test_stall_mid_stream_is_a_timeout(slow_gw: Gateway) -> None:
    slow_gw.fake.script(FakeReply(chunk_delay_s=1.0))
    with slow_gw.anthropic() as client, pytest.raises(Exception) as raised:  # noqa: PT011 - the SDK's error type
        list(client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HI, stream=True))
    assert "did not answer in time" in str(raised.value)
    assert released(slow_gw).error_kind == "timeout"


def test_client_leaving_mid_stream_is_charged_for_what_was_produced(gw: Gateway) -> None:
    words = [f"w{i} " for i in range(40)]
    gw.fake.script(FakeReply(chunks=words, chunk_delay_s=0.05))
    full = gw.meter.count_tokens("openai", "gpt-4o", text="".join(words)).total
    with gw.http() as http, http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as answer:
        reservation = answer.headers["x-spendgate-reservation"]
        lines = answer.iter_lines()
        got = [line for line, _ in zip(lines, range(8), strict=False) if line.startswith("data:")]
    assert len(got) >= 3  # left after a few events; closing the stream drops the connection
    event = eventually(lambda: gw.find(reservation))
    assert event.tokens_estimated and event.status_code == 499 and event.success
    assert 0 < event.usage.output_tokens < full and event.cost and event.cost > 0
    assert all(status.reserved == 0 for status in gw.meter.budget_status(user_id="ann"))


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/chat/completions", b"{not json", "body"),
        ("/v1/chat/completions", b"[1, 2]", "body"),
        ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        ("/v1/chat/completions", b'{"model": "gpt-4o", "messages": "hi"}', "messages"),
        ("/v1/chat/completions", b'{"model": "gpt-4o", "messages": [{"role": "user"}], "max_tokens": "9"}',
         "max_tokens"),
        ("/v1/chat/completions", b'{"model": "llama-3", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        ("/v1/embeddings", b'{"model": "text-embedding-3-small", "input": {"a": 1}}', "input"),
        ("/v1/messages", b'{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}',
         "max_tokens"),
        ("/v1/chat/completions", b'{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}',
         "model"),
    ],
)  # fmt: skip
def test_bad_input_answers_400_naming_the_field(gw: Gateway, path: str, body: bytes, field: str) -> None:
    with gw.http() as http:
        answer = http.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == field
    assert gw.fake.requests == [] and gw.events() == []


def test_keys_are_required_and_the_master_key_works(gw: Gateway) -> None:
    for key in ("", "sg-nope-nope"):
        with gw.http(key) as http:
            answer = http.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 401 and answer.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        gw.openai("sg-wrong-key").models.list()
    assert gw.openai(MASTER).chat.completions.create(**CHAT).choices
    assert gw.events()[-1].api_key_id == "master" and gw.fake.requests[-1].headers["authorization"] != MASTER


def test_a_missing_upstream_key_answers_502_before_anything_is_spent(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    with gw.http() as http:
        answer = http.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 502 and KEY_ENV in answer.json()["error"]["message"]
    assert gw.fake.requests == [] and gw.events() == []


def test_openapi_documents_every_gateway_route(gw: Gateway) -> None:
    spec = httpx.get(f"{gw.url}/openapi.json").json()["paths"]
    for path, method in [("/v1/chat/completions", "post"), ("/v1/embeddings", "post"), ("/v1/messages", "post"),
                         ("/v1/models", "get")]:  # fmt: skip
        operation = spec[path][method]
        assert operation["summary"] and "401" in operation["responses"]
    chat = spec["/v1/chat/completions"]["post"]
    assert {"402", "429"} <= set(chat["responses"]) and chat["requestBody"]["required"]
