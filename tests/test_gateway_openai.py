"""The OpenAI wire format through the gateway, with the official SDK: chat (whole, streamed), embeddings, models."""

from __future__ import annotations

import re
from typing import Any

from spendgate import Usage
from spendgate.testing import FakeReply, Fault
from test_gateway_support import HI, UPSTREAM_KEY, Gateway, fake, gw

__all__ = ["fake", "gw"]


def test_chat_completion_is_forwarded_metered_and_priced_exactly(gw: Gateway) -> None:
    gw.meter.set_limit(scope="user", scope_id="ann", amount="5")
    raw = gw.openai(default_headers={"User-Agent": "gw-test/1"}).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HI, max_tokens=50
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "This is a fake reply."
    assert reply.usage is not None
    usage = Usage(input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens)
    cost = gw.cost("openai", "gpt-4o", usage)
    assert raw.headers["x-spendgate-cost"] == format(cost, "f")
    assert raw.headers["x-spendgate-model-used"] == "gpt-4o" and raw.headers["x-spendgate-action"] == "allow"
    assert raw.headers["x-spendgate-budget-remaining"] == format((5 - cost).normalize(), "f")
    upstream = gw.fake.requests[-1]
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the gateway's key, not the client's
    assert gw.key not in str(upstream.headers) and upstream.body["model"] == "gpt-4o"

    event = gw.event(raw.headers["x-spendgate-reservation"])
    assert (event.usage.input_tokens, event.usage.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert event.cost == cost and not event.tokens_estimated and event.success
    assert (event.user_id, event.team_id, event.api_key_id) == ("ann", "ml", gw.api_key.key_id)
    assert (event.request_type, event.status_code, event.endpoint) == ("chat", 200, "/v1/chat/completions")
    assert event.client_ip == "127.0.0.1" and event.user_agent == "gw-test/1"
    assert event.request_bytes and event.response_bytes and event.latency_ms is not None
    assert event.prompt_hash is not None and re.fullmatch(r"[0-9a-f]{64}", event.prompt_hash)
    assert gw.meter.budget_status(user_id="ann")[0].spent == cost


def test_explicit_provider_prefix_picks_the_upstream(gw: Gateway) -> None:
    reply = gw.openai().chat.completions.create(model="openai/gpt-4o-mini", messages=HI)
    assert reply.choices[0].message.content and gw.fake.requests[-1].body["model"] == "gpt-4o-mini"
    assert gw.events()[-1].model == "gpt-4o-mini"


def _stream(gw: Gateway, **kwargs: Any) -> tuple[dict[str, str], list[Any]]:
    with gw.openai().chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HI, stream=True, **kwargs
    ) as response:
        return dict(response.headers), list(response.parse())


def test_stream_without_include_usage_hides_the_usage_chunk_but_is_metered_exactly(gw: Gateway) -> None:
    headers, chunks = _stream(gw)
    assert headers["content-type"].startswith("text/event-stream")
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "This is a fake reply."
    assert gw.fake.requests[-1].body["stream_options"] == {"include_usage": True}  # asked upstream
    expected = gw.meter.count_tokens("openai", "gpt-4o", messages=HI).total
    event = gw.event(headers["x-spendgate-reservation"])
    assert event.usage.input_tokens == expected and event.usage.output_tokens == 6 and not event.tokens_estimated
    assert event.cost == gw.cost("openai", "gpt-4o", Usage(input_tokens=expected, output_tokens=6))
    assert event.response_bytes and event.status_code == 200 and headers["x-spendgate-model-used"] == "gpt-4o"


def test_stream_with_include_usage_shows_exactly_the_usage_chunk_it_asked_for(gw: Gateway) -> None:
    headers, chunks = _stream(gw, stream_options={"include_usage": True})
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert sum(1 for c in chunks if c.usage is not None) == 1
    event = gw.event(headers["x-spendgate-reservation"])
    assert event.usage.input_tokens == last.usage.prompt_tokens
    assert event.usage.output_tokens == last.usage.completion_tokens


def test_stream_without_reported_usage_is_estimated(gw: Gateway) -> None:
    gw.fake.script(FakeReply(text="one two three", fault=Fault.NO_USAGE))
    headers, chunks = _stream(gw)
    event = gw.event(headers["x-spendgate-reservation"])
    assert event.tokens_estimated and event.usage.output_tokens == 3 and len(chunks) >= 3


def test_embeddings_are_metered(gw: Gateway) -> None:
    raw = gw.openai().embeddings.with_raw_response.create(model="text-embedding-3-small", input=["hello", "world"])
    result = raw.parse()
    assert len(result.data) == 2 and len(result.data[0].embedding) == 1536
    event = gw.event(raw.headers["x-spendgate-reservation"])
    assert event.request_type == "embeddings" and event.usage.input_tokens == result.usage.prompt_tokens == 2
    assert event.cost == gw.cost("openai", "text-embedding-3-small", Usage(input_tokens=2))
    assert raw.headers["x-spendgate-cost"] == format(event.cost, "f")


def test_models_lists_every_upstream_under_a_routable_name(gw: Gateway) -> None:
    ids = {m.id for m in gw.openai().models.list()}
    assert {"gpt-4o", "text-embedding-3-small", "claude-sonnet-4-6"} <= ids
    assert "openai/o3-mini" in ids  # o3 is not among this gateway's openai prefixes: named explicitly
    assert gw.events() == []  # listing models costs nothing
