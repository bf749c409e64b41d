"""Streams through instrumented SDK clients against `FakeUpstream`: the caller sees exactly the chunks it
would see without spendgate, and the call settles when the stream ends, is closed, or breaks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spendgate import BudgetExceeded, Meter, Usage
from spendgate.integrations import AsyncMeteredStream, MeteredStream, instrument
from spendgate.integrations._call import Call, Identity
from spendgate.integrations._endpoints import OPENAI_CHAT
from spendgate.integrations._streams import StreamTally
from spendgate.testing import FakeReply, FakeUpstream, Fault
from test_integrations_support import (  # fixtures are registered by being imported
    ANTHROPIC,
    FLAVORS,
    HI,
    OPENAI,
    WORDS,
    Flavor,
    cost_of,
    fake,
    meter,
    only_event,
    reserved,
    strip_ids,
)

__all__ = ["fake", "meter"]

STREAM_CASES = [
    pytest.param(OPENAI, False, id="openai-usage-not-asked"),
    pytest.param(OPENAI, True, id="openai-usage-asked"),
    pytest.param(ANTHROPIC, False, id="anthropic"),
]


def stream_request(flavor: Flavor, ask_usage: bool = False, **extra: Any) -> dict[str, Any]:
    request = flavor.request(stream=True, **extra)
    if ask_usage:
        request["stream_options"] = {"include_usage": True}
    return request


def delivered_text(chunks: list[Any]) -> str:
    """The text the caller received from OpenAI chunks or Anthropic events."""
    parts = []
    for chunk in chunks:
        for choice in getattr(chunk, "choices", None) or ():
            parts.append(choice.delta.content or "")
        delta = getattr(chunk, "delta", None)
        if getattr(chunk, "type", None) == "content_block_delta" and delta is not None:
            parts.append(delta.text)
    return "".join(parts)


# -- complete streams -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flavor", "ask_usage"), STREAM_CASES)
def test_stream_passes_chunks_through_and_settles_reported_usage(
    flavor: Flavor, ask_usage: bool, fake: FakeUpstream, meter: Meter
) -> None:
    reply = FakeReply(chunks=WORDS[:5], usage=flavor.scripted)
    fake.script(reply, reply)
    with flavor.client(fake) as plain, flavor.client(fake) as metered:
        instrument(metered, meter, user_id="ann")
        expected = list(flavor.create(plain)(**stream_request(flavor, ask_usage)))
        stream = flavor.create(metered)(**stream_request(flavor, ask_usage))
        assert isinstance(stream, MeteredStream) and stream.response.status_code == 200
        seen = list(stream)
    assert strip_ids(seen) == strip_ids(expected)
    if flavor is OPENAI:
        assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
        assert any(chunk.usage is not None for chunk in seen) is ask_usage
    event = only_event(meter)
    assert event.event_id == stream.authorization.reservation_id
    assert event.usage == flavor.scripted and not event.tokens_estimated and event.success
    assert event.cost == cost_of(meter, flavor.provider, flavor.model, flavor.scripted)


@pytest.mark.parametrize(("flavor", "ask_usage"), STREAM_CASES)
def test_async_stream_passes_chunks_through_and_settles(
    flavor: Flavor, ask_usage: bool, fake: FakeUpstream, meter: Meter
) -> None:
    reply = FakeReply(chunks=WORDS[:5], usage=flavor.scripted)
    fake.script(reply, reply)

    async def main() -> tuple[list[Any], list[Any]]:
        async with flavor.async_client(fake) as plain, flavor.async_client(fake) as metered:
            instrument(metered, meter)
            expected = [chunk async for chunk in await flavor.create(plain)(**stream_request(flavor, ask_usage))]
            stream = await flavor.create(metered)(**stream_request(flavor, ask_usage))
            assert isinstance(stream, AsyncMeteredStream)
            async with stream:
                seen = [chunk async for chunk in stream]
            return expected, seen

    expected, seen = asyncio.run(main())
    assert strip_ids(seen) == strip_ids(expected)
    event = only_event(meter)
    assert event.usage == flavor.scripted and not event.tokens_estimated


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(FakeReply(chunks=WORDS[:7], fault=Fault.NO_USAGE), id="no-usage"),
        pytest.param(FakeReply(chunks=WORDS[:7], fault=Fault.TRUNCATE, fault_after=4), id="truncated"),
    ],
)
def test_stream_without_provider_usage_is_counted(reply: FakeReply, fake: FakeUpstream, meter: Meter) -> None:
    fake.script(reply)
    with OPENAI.client(fake) as client:
        instrument(client, meter)
        seen = list(client.chat.completions.create(**stream_request(OPENAI)))
    text = delivered_text(seen)
    assert text and fake.pending == 0
    event = only_event(meter)
    assert event.usage == Usage(
        input_tokens=meter.count_tokens("openai", "gpt-4o", messages=HI).total,
        output_tokens=meter.count_tokens("openai", "gpt-4o", text=text).total,
    )
    assert event.tokens_estimated and event.success


# -- closed early -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_early_close_charges_what_was_produced(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(chunks=WORDS, usage=flavor.scripted))
    seen: list[Any] = []
    with flavor.client(fake) as client:
        instrument(client, meter, user_id="bo")
        with flavor.create(client)(**stream_request(flavor)) as stream:
            for chunk in stream:
                seen.append(chunk)
                if len(seen) == 6:
                    break
    event = only_event(meter)
    usage, text = event.usage, delivered_text(seen)
    assert text and event.tokens_estimated and event.success
    assert 0 < usage.output_tokens < flavor.scripted.output_tokens
    if flavor is OPENAI:  # exact tokenizer: the charge is exactly the text delivered, input as counted
        assert usage.output_tokens == meter.count_tokens("openai", "gpt-4o", text=text).total
        assert usage.input_tokens == meter.count_tokens("openai", "gpt-4o", messages=HI).total
    else:  # Anthropic reported the input (and its cache) in message_start
        assert (usage.input_tokens, usage.cache_read_tokens) == (1200, 800)
    assert event.cost == cost_of(meter, flavor.provider, flavor.model, usage)


def test_close_after_the_last_choice_reads_the_usage_chunk(fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(chunks=WORDS[:3], usage=OPENAI.scripted))
    with OPENAI.client(fake) as client:
        instrument(client, meter)
        stream = client.chat.completions.create(**stream_request(OPENAI))
        for chunk in stream:
            if chunk.choices[0].finish_reason is not None:
                break
        stream.close()
        stream.close()  # twice: settled once
    event = only_event(meter)
    assert event.usage == OPENAI.scripted and not event.tokens_estimated


@pytest.mark.parametrize("flavor", FLAVORS)
def test_async_early_close_charges_what_was_produced(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(chunks=WORDS, usage=flavor.scripted))

    async def main() -> None:
        async with flavor.async_client(fake) as client:
            instrument(client, meter)
            stream = await flavor.create(client)(**stream_request(flavor))
            await stream.__anext__()
            await stream.__anext__()
            await stream.close()

    asyncio.run(main())
    event = only_event(meter)
    assert event.tokens_estimated and event.success
    assert event.usage.total_tokens > 0 and event.usage.output_tokens < flavor.scripted.output_tokens


# -- broken streams ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize(
    ("fault", "kind"),
    [(Fault.DISCONNECT, "connection"), (Fault.RESET, "connection"), (Fault.MALFORMED, "bad_response")],
)
def test_stream_broken_midway_releases_with_partial_usage(
    flavor: Flavor, fault: Fault, kind: str, fake: FakeUpstream, meter: Meter
) -> None:
    meter.set_limit(scope="user", scope_id="cy", amount="10")
    fake.script(FakeReply(chunks=WORDS, usage=flavor.scripted, fault=fault, fault_after=8))
    seen: list[Any] = []
    with flavor.client(fake) as client:
        instrument(client, meter, user_id="cy")
        stream = flavor.create(client)(**stream_request(flavor))
        with pytest.raises(Exception) as caught:  # noqa: PT011  # each SDK raises its own type here
            seen.extend(stream)
    event = only_event(meter)
    assert (event.success, event.error_kind) == (False, kind), caught.value
    assert reserved(meter, user_id="cy") == 0
    assert event.usage.output_tokens < flavor.scripted.output_tokens
    if fault is not Fault.RESET:  # a reset may lose the events in flight; the others deliver them all
        assert seen and event.usage.output_tokens > 0 and event.tokens_estimated
        assert event.cost is not None and meter.budget_status(user_id="cy")[0].spent == event.cost > 0


@pytest.mark.parametrize("flavor", FLAVORS)
def test_async_stream_broken_midway_releases(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="cy", amount="10")
    fake.script(FakeReply(chunks=WORDS, fault=Fault.DISCONNECT, fault_after=6))

    async def main() -> None:
        async with flavor.async_client(fake) as client:
            instrument(client, meter, user_id="cy")
            stream = await flavor.create(client)(**stream_request(flavor))
            with pytest.raises(Exception):  # noqa: PT011, B017  # each SDK raises its own type here
                async for _ in stream:
                    pass

    asyncio.run(main())
    event = only_event(meter)
    assert (event.success, event.error_kind) == (False, "connection") and event.usage.output_tokens > 0
    assert reserved(meter, user_id="cy") == 0


# -- the SDKs' stream helpers -----------------------------------------------------------------------------


def test_anthropic_stream_helper(fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(chunks=WORDS[:4], usage=ANTHROPIC.scripted))
    with ANTHROPIC.client(fake) as client:
        instrument(client, meter, user_id="di")
        manager = client.messages.stream(**ANTHROPIC.request())
        assert fake.requests == []  # nothing is sent (or held) before the manager is entered
        with manager as stream:
            assert stream.get_final_text() == "".join(WORDS[:4])
    event = only_event(meter)
    assert event.usage == ANTHROPIC.scripted and event.user_id == "di" and not event.tokens_estimated


def test_async_anthropic_stream_helper_and_refusal(fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(chunks=WORDS[:4], usage=ANTHROPIC.scripted))

    async def main() -> None:
        async with ANTHROPIC.async_client(fake) as client:
            instrument(client, meter, user_id="di")
            async with client.messages.stream(**ANTHROPIC.request()) as stream:
                assert await stream.get_final_text() == "".join(WORDS[:4])
            meter.emergency_stop(reason="stop")
            with pytest.raises(BudgetExceeded):
                async with client.messages.stream(**ANTHROPIC.request()):
                    pass  # pragma: no cover - never entered

    asyncio.run(main())
    assert len(fake.requests) == 1 and only_event(meter).usage == ANTHROPIC.scripted


def test_anthropic_stream_helper_failing_to_open_releases(fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(status=529))
    with ANTHROPIC.client(fake) as client:
        instrument(client, meter)
        with pytest.raises(ANTHROPIC.sdk.APIStatusError), client.messages.stream(**ANTHROPIC.request()):
            pass  # pragma: no cover - never entered
    assert only_event(meter).error_kind == "upstream_error"


def test_openai_stream_helper_is_metered_once(fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(chunks=WORDS[:3], usage=OPENAI.scripted))
    with OPENAI.client(fake) as client:
        instrument(client, meter)
        with client.chat.completions.stream(model="gpt-4o", messages=HI) as stream:
            completion = stream.get_final_completion()
    assert completion.choices[0].message.content == "".join(WORDS[:3])
    assert only_event(meter).usage == OPENAI.scripted


@pytest.mark.parametrize(
    ("reply", "estimated"),
    [
        pytest.param(FakeReply(chunks=WORDS[:3], fault=Fault.NO_USAGE), True, id="no-usage-chunk"),
        pytest.param(FakeReply(chunks=WORDS[:3], fault=Fault.DISCONNECT, fault_after=5), True, id="broken-after"),
        pytest.param(FakeReply(chunks=WORDS[:3], usage=OPENAI.scripted), False, id="usage-chunk"),
    ],
)
def test_async_close_after_the_last_choice(reply: FakeReply, estimated: bool, fake: FakeUpstream, meter: Meter) -> None:
    fake.script(reply)

    async def main() -> None:
        async with OPENAI.async_client(fake) as client:
            instrument(client, meter)
            stream = await client.chat.completions.create(**stream_request(OPENAI))
            async for chunk in stream:
                if chunk.choices[0].finish_reason is not None:
                    break
            await stream.close()

    asyncio.run(main())
    event = only_event(meter)
    assert event.success and event.tokens_estimated is estimated
    assert (event.usage == OPENAI.scripted) is not estimated


def test_sync_close_when_the_usage_chunk_never_comes(fake: FakeUpstream, meter: Meter) -> None:
    fake.script(
        FakeReply(chunks=WORDS[:3], fault=Fault.NO_USAGE),
        FakeReply(chunks=WORDS[:3], fault=Fault.DISCONNECT, fault_after=5),
    )
    with OPENAI.client(fake) as client:
        instrument(client, meter)
        for _ in range(2):
            with client.chat.completions.create(**stream_request(OPENAI)) as stream:
                for chunk in stream:
                    if chunk.choices[0].finish_reason is not None:
                        break
            assert not hasattr(stream, "__no_such_dunder__")
    events = list(meter.events())
    assert len(events) == 2 and all(e.success and e.tokens_estimated for e in events)
    text = meter.count_tokens("openai", "gpt-4o", text="".join(WORDS[:3])).total
    assert {e.usage.output_tokens for e in events} == {text}


def test_async_anthropic_stream_helper_failing_to_open_releases(fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(status=500))

    async def main() -> None:
        async with ANTHROPIC.async_client(fake) as client:
            instrument(client, meter)
            with pytest.raises(ANTHROPIC.sdk.InternalServerError):
                async with client.messages.stream(**ANTHROPIC.request()):
                    pass  # pragma: no cover - never entered

    asyncio.run(main())
    assert only_event(meter).error_kind == "upstream_error"


def test_reported_usage_that_cannot_be_right_is_estimated(meter: Meter) -> None:
    call = Call(counter=meter.tokens, provider="openai", model="gpt-4o", endpoint=OPENAI_CHAT,
                identity=Identity(), kwargs=OPENAI.request(stream=True), stream=True)  # fmt: skip
    tally = StreamTally(call, meter.authorize(**call.authorize_kwargs()))
    assert tally.observe({"choices": [{"index": 0, "delta": {"content": "Hello there"}}]})
    assert not tally.observe(
        {"choices": [], "usage": {"prompt_tokens": 1, "prompt_tokens_details": {"cached_tokens": 5}}}
    )
    usage, estimated = tally.usage()
    assert estimated and usage == Usage(input_tokens=call.input_tokens, output_tokens=2)
