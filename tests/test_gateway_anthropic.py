"""Anthropic's Messages API through the gateway, with the official SDK: whole and streamed, cache tokens."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from spendgate import Usage
from spendgate.testing import FakeReply
from test_gateway_support import HI, UPSTREAM_KEY, Gateway, fake, gw

__all__ = ["fake", "gw"]

MODEL = "claude-sonnet-4-6"


def test_message_is_forwarded_with_the_gateway_key_and_metered(gw: Gateway) -> None:
    gw.fake.cached_tokens = 4
    raw = gw.anthropic().messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=HI)
    message = raw.parse()
    assert message.content[0].text == "This is a fake reply."  # type: ignore[union-attr]
    upstream = gw.fake.requests[-1]
    assert upstream.path == "/v1/messages" and upstream.headers["x-api-key"] == UPSTREAM_KEY
    assert upstream.headers["anthropic-version"]  # the SDK's version header is passed on
    # Anthropic reports cache reads outside input_tokens; the ledger counts them inside (spendgate's convention)
    assert message.usage.cache_read_input_tokens == 4
    usage = Usage.from_anthropic(input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens,
                                 cache_read_input_tokens=4)  # fmt: skip
    event = gw.event(raw.headers["x-spendgate-reservation"])
    assert event.usage.input_tokens == message.usage.input_tokens + 4 and event.usage.cache_read_tokens == 4
    assert event.cost == gw.cost("anthropic", MODEL, usage)
    assert raw.headers["x-spendgate-cost"] == format(event.cost, "f")
    assert event.request_type == "messages" and event.provider == "anthropic" and not event.tokens_estimated


def test_streamed_message_passes_every_event_and_settles_the_reported_usage(gw: Gateway) -> None:
    with gw.anthropic().messages.with_streaming_response.create(
        model=MODEL, max_tokens=64, messages=HI, stream=True
    ) as response:
        headers = dict(response.headers)
        events: list[Any] = list(response.parse())
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "message_delta" in kinds
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "This is a fake reply."
    delta = next(e for e in events if e.type == "message_delta")
    start = events[0]
    event = gw.event(headers["x-spendgate-reservation"])
    assert event.usage.output_tokens == delta.usage.output_tokens
    assert event.usage.input_tokens == start.message.usage.input_tokens
    assert not event.tokens_estimated and event.status_code == 200


def test_sdk_stream_helper_works_through_the_gateway(gw: Gateway) -> None:
    with gw.anthropic().messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "This is a fake reply."  # type: ignore[union-attr]
    event = gw.events()[-1]
    assert event.usage.output_tokens == final.usage.output_tokens and event.model == MODEL


def test_anthropic_errors_come_in_anthropics_shape(gw: Gateway) -> None:
    gw.fake.script(FakeReply(status=529))
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        gw.anthropic().messages.create(model=MODEL, max_tokens=8, messages=HI)
    assert overloaded.value.status_code == 529
    with pytest.raises(anthropic.BadRequestError) as wrong_api:
        gw.anthropic().messages.create(model="gpt-4o", max_tokens=8, messages=HI)
    body = wrong_api.value.body
    assert isinstance(body, dict) and body["error"]["field"] == "model"
    assert gw.events()[-1].error_kind == "upstream_5xx"
