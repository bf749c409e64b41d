"""Fault injection through the official SDKs: provider error bodies, Retry-After, delays, resets,
disconnects, truncated and malformed streams, missing usage; each raises what the SDK raises for the
real thing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from spendgate.testing import FakeReply, FakeUpstream, Fault

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something."}]


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def oai(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0, timeout=5) as client:
        yield client


@pytest.fixture
def claude(fake: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0, timeout=5) as client:
        yield client


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model=GPT, messages=MESSAGES, **kwargs)


def message(client: anthropic.Anthropic, **kwargs: Any) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=100, messages=MESSAGES, **kwargs)


def chat_stream(client: openai.OpenAI, got: list[Any]) -> None:
    """Collect chunks into ``got`` as they arrive (so a test sees them even when the stream fails)."""
    got.extend(chat(client, stream=True, stream_options={"include_usage": True}))


def message_stream(client: anthropic.Anthropic, got: list[Any]) -> None:
    got.extend(message(client, stream=True))


# ---- HTTP errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "oai_error", "oai_type", "claude_error", "claude_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error", anthropic.BadRequestError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests", anthropic.RateLimitError, "rate_limit_error"),
        (500, openai.InternalServerError, "server_error", anthropic.InternalServerError, "api_error"),
        (503, openai.InternalServerError, "server_error", anthropic.ServiceUnavailableError, "api_error"),
        (529, openai.InternalServerError, "server_error", anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_error_statuses_have_the_provider_body(
    fake: FakeUpstream,
    oai: openai.OpenAI,
    claude: anthropic.Anthropic,
    status: int,
    oai_error: type[openai.APIStatusError],
    oai_type: str,
    claude_error: type[anthropic.APIStatusError],
    claude_type: str,
) -> None:
    fake.script(FakeReply(status=status, error="scripted failure"), FakeReply(status=status))
    with pytest.raises(oai_error) as caught:
        chat(oai)
    assert caught.value.status_code == status
    assert caught.value.type == oai_type
    assert caught.value.message.endswith("scripted failure")
    with pytest.raises(claude_error) as claude_caught:
        message(claude)
    assert claude_caught.value.status_code == status
    body = claude_caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == claude_type
    assert body["error"]["message"]
    assert claude_caught.value.response.headers["request-id"] == body["request_id"]


def test_rate_limit_has_retry_after(fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.script(FakeReply(status=429), FakeReply(status=429, retry_after=7, error_type="rate_limit_error"))
    with pytest.raises(openai.RateLimitError) as caught:
        chat(oai)
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    with pytest.raises(anthropic.RateLimitError) as claude_caught:
        message(claude)
    assert claude_caught.value.response.headers["retry-after"] == "7"


def test_sdk_retries_honour_retry_after(fake: FakeUpstream) -> None:
    fake.script(FakeReply(status=429, retry_after=0.01), FakeReply(status=503, retry_after=0.01))
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=2) as client:
        reply = chat(client)
    assert reply.choices[0].message.content == fake.reply_text
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1", "2"]


def test_extra_headers_and_error_type(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    fake.script(FakeReply(status=429, error_type="insufficient_quota", headers={"X-RateLimit-Remaining-Requests": "0"}))
    with pytest.raises(openai.RateLimitError) as caught:
        chat(oai)
    assert caught.value.type == "insufficient_quota"
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_bad_requests_are_rejected_like_the_provider(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=GPT, messages=[])
    assert caught.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=0)
    assert caught.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": 5}])  # type: ignore[misc,list-item]
    assert caught.value.param == "messages[0].content"
    with pytest.raises(openai.NotFoundError, match="Invalid URL"):
        oai.completions.create(model=GPT, prompt="legacy endpoint")


# ---- delays ------------------------------------------------------------------------------------------


def test_latency_makes_a_short_client_time_out(fake: FakeUpstream, claude: anthropic.Anthropic) -> None:
    fake.latency_s = 5
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0, timeout=0.2) as impatient:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            chat(impatient)
        assert time.monotonic() - started < 2
    fake.latency_s = 0
    fake.script(FakeReply(latency_s=5))
    with pytest.raises(anthropic.APITimeoutError):
        claude.with_options(timeout=0.2).messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES)


def test_latency_delays_a_patient_client(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    fake.script(FakeReply(latency_s=0.3))
    started = time.monotonic()
    chat(oai)
    assert time.monotonic() - started >= 0.3


def test_a_stalled_stream_times_out(fake: FakeUpstream) -> None:
    fake.script(FakeReply(chunk_delay_s=5))
    got: list[Any] = []
    # 1 s: room for the first event even on a loaded machine, far below the 5 s stall
    impatient = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0, timeout=1.0)
    with impatient, pytest.raises(openai.APITimeoutError):
        chat_stream(impatient, got)
    assert len(got) == 1  # the first event came at once, the second never did


def test_a_client_that_gave_up_does_not_break_the_fake(
    fake: FakeUpstream, oai: openai.OpenAI, capfd: pytest.CaptureFixture[str]
) -> None:
    fake.script(FakeReply(latency_s=0.3, chunk_delay_s=0.02))
    impatient = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0, timeout=0.1)
    with impatient, pytest.raises(openai.APITimeoutError):
        chat_stream(impatient, [])
    time.sleep(0.5)  # real time: let the fake finish writing into the connection the client closed
    assert chat(oai).choices[0].message.content == fake.reply_text
    fake.stop()
    assert "Traceback" not in capfd.readouterr().err


# ---- broken connections and streams --------------------------------------------------------------------


def test_reset_before_any_response(fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.script(FakeReply(fault=Fault.RESET), FakeReply(fault=Fault.RESET))
    with pytest.raises(openai.APIConnectionError):
        chat(oai)
    with pytest.raises(anthropic.APIConnectionError):
        message(claude)
    assert fake.pending == 0
    assert chat(oai).choices[0].message.content == fake.reply_text  # the fake itself is fine afterwards


def test_reset_mid_stream(fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.script(FakeReply(fault=Fault.RESET, fault_after=3), FakeReply(fault=Fault.RESET, fault_after=3))
    got: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        chat_stream(oai, got)
    assert len(got) <= 3
    claude_got: list[Any] = []
    # The Anthropic SDK lets transport errors inside a stream through unwrapped.
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        message_stream(claude, claude_got)
    assert len(claude_got) <= 3


def test_disconnect_mid_stream_delivers_what_was_sent(
    fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    fake.script(FakeReply(fault=Fault.DISCONNECT, fault_after=4), FakeReply(fault=Fault.DISCONNECT, fault_after=2))
    got: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        chat_stream(oai, got)
    assert len(got) == 4
    assert "".join(c.choices[0].delta.content or "" for c in got) == "This is a "
    claude_got: list[Any] = []
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        message_stream(claude, claude_got)
    assert [e.type for e in claude_got] == ["message_start", "content_block_start"]


@pytest.mark.parametrize("fault", [Fault.DISCONNECT, Fault.TRUNCATE])
def test_cut_body_without_stream(
    fault: Fault, fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    fake.script(FakeReply(fault=fault), FakeReply(fault=fault))
    with pytest.raises(openai.APIConnectionError):
        chat(oai)
    with pytest.raises(anthropic.APIConnectionError):
        message(claude)


def test_truncated_stream_ends_without_done(
    fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    fake.script(FakeReply(fault=Fault.TRUNCATE), FakeReply(fault=Fault.TRUNCATE, fault_after=5))
    got: list[Any] = []
    chat_stream(oai, got)  # ends quietly: only a missing [DONE] (and usage chunk) tells
    assert got[-1].usage is not None  # by default only [DONE] is cut
    assert got[-2].choices[0].finish_reason == "stop"
    raw = fake.requests[0]
    assert raw.body["stream"] is True
    events = list(message(claude, stream=True))
    assert [e.type for e in events][-1] == "content_block_delta"
    assert len(events) == 5
    assert "message_stop" not in {e.type for e in events}


def test_truncate_at_zero_sends_an_empty_stream(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    fake.script(FakeReply(fault=Fault.TRUNCATE, fault_after=0))
    got: list[Any] = []
    chat_stream(oai, got)
    assert got == []


def test_malformed_stream(fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.script(FakeReply(fault=Fault.MALFORMED, fault_after=2), FakeReply(fault=Fault.MALFORMED, fault_after=2))
    got: list[Any] = []
    with pytest.raises(json.JSONDecodeError):
        chat_stream(oai, got)
    assert len(got) == 2
    claude_got: list[Any] = []
    with pytest.raises(json.JSONDecodeError):
        message_stream(claude, claude_got)
    assert len(claude_got) == 2


def test_malformed_body(fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.script(FakeReply(fault=Fault.MALFORMED), FakeReply(fault=Fault.MALFORMED))
    with pytest.raises(json.JSONDecodeError):
        chat(oai)
    with pytest.raises(json.JSONDecodeError):
        message(claude)


def test_no_usage_even_when_asked(fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.script(*[FakeReply(fault=Fault.NO_USAGE)] * 5)
    got: list[Any] = []
    chat_stream(oai, got)
    assert got[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in got)
    assert "".join(c.choices[0].delta.content or "" for c in got) == fake.reply_text
    assert chat(oai).usage is None
    assert message(claude).usage is None
    events = list(message(claude, stream=True))
    assert events[-1].type == "message_stop"
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert start.message.usage is None
    assert delta.type == "message_delta"
    assert delta.usage is None
    assert (
        "usage"
        not in oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x").http_response.json()
    )
