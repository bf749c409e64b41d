"""FakeUpstream through the official SDKs: OpenAI and Anthropic clients (sync and async) parse every reply,
and the usage they read is what spendgate's own token counter gives for the same request."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import anthropic
import openai
import pytest

from spendgate.testing import FakeClock, FakeReply, FakeRequest, FakeToolCall, FakeUpstream
from spendgate.tokens import TokenCounter
from spendgate.usage import Usage

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GPT = "gpt-4o"
CLAUDE = "claude-sonnet-4-6"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLAUDE_TOOL: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
COUNTER = TokenCounter()


def openai_prompt_tokens(model: str = GPT, **kwargs: Any) -> int:
    return COUNTER.count("openai", model, messages=MESSAGES, **kwargs).total


def text_tokens(provider: str, model: str, text: str) -> int:
    return COUNTER.count_text(provider, model, text).total


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(clock=FakeClock(START)) as upstream:
        yield upstream


@pytest.fixture
def oai(fake: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture
def claude(fake: FakeUpstream) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant", max_retries=0, timeout=10) as client:
        yield client


# ---- OpenAI chat completions --------------------------------------------------------------------------


def test_chat_completion_usage_is_the_exact_openai_count(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.created == int(START.timestamp())
    assert reply.model == GPT
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == fake.reply_text
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == openai_prompt_tokens()
    assert reply.usage.completion_tokens == text_tokens("openai", GPT, fake.reply_text)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 0


def test_tools_in_the_prompt_are_counted(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=[WEATHER_TOOL])
    assert reply.usage is not None
    with_tools = openai_prompt_tokens("gpt-4o-mini", tools=[WEATHER_TOOL])
    assert reply.usage.prompt_tokens == with_tools
    assert with_tools > openai_prompt_tokens("gpt-4o-mini")


def test_max_completion_tokens_cuts_the_reply(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=GPT, messages=MESSAGES, max_completion_tokens=3)
    content = reply.choices[0].message.content or ""
    assert reply.choices[0].finish_reason == "length"
    assert fake.reply_text.startswith(content)
    assert len(content) < len(fake.reply_text)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == text_tokens("openai", GPT, content) == 3


def test_fill_max_tokens_uses_the_whole_budget(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    fake.fill_max_tokens = True
    reply = oai.chat.completions.create(model=GPT, messages=MESSAGES, max_tokens=50)
    content = reply.choices[0].message.content or ""
    assert content.startswith(f"{fake.reply_text} {fake.reply_text}")
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == text_tokens("openai", GPT, content) == 50


def test_several_choices_share_the_usage(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=GPT, messages=MESSAGES, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert {c.message.content for c in reply.choices} == {fake.reply_text}
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3 * text_tokens("openai", GPT, fake.reply_text)


def test_stream_without_usage_request_has_no_usage(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == fake.reply_text
    assert len(chunks) > 3  # streamed in pieces, not in one go
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_with_include_usage_ends_with_a_usage_chunk(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    )
    *content, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == openai_prompt_tokens()
    assert last.usage.completion_tokens == text_tokens("openai", GPT, fake.reply_text)
    assert all(c.usage is None and len(c.choices) == 1 for c in content)
    assert content[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("mode", "asked", "expected"), [("always", False, True), ("never", True, False)])
def test_include_usage_setting(fake: FakeUpstream, oai: openai.OpenAI, mode: Any, asked: bool, expected: bool) -> None:
    fake.include_usage = mode
    chunks = list(
        oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": asked})
    )
    assert (chunks[-1].usage is not None) is expected


def test_openai_tool_calls(oai: openai.OpenAI, fake: FakeUpstream) -> None:
    call = FakeToolCall("get_weather", {"city": "Paris"})
    fake.script(FakeReply(tool_calls=[call]), FakeReply(tool_calls=[call]))
    reply = oai.chat.completions.create(model=GPT, messages=MESSAGES, tools=[WEATHER_TOOL])
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert message.tool_calls is not None
    (made,) = message.tool_calls
    assert made.type == "function"
    assert made.id.startswith("call_")
    assert made.function.name == "get_weather"
    assert json.loads(made.function.arguments) == {"city": "Paris"}

    chunks = list(oai.chat.completions.create(model=GPT, messages=MESSAGES, tools=[WEATHER_TOOL], stream=True))
    deltas = [tc for c in chunks if c.choices and c.choices[0].delta.tool_calls for tc in c.choices[0].delta.tool_calls]
    assert deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    assert deltas[0].id == made.id.replace("000000", "000001")
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_scripted_tool_calls_need_declared_tools(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    fake.script(FakeReply(text="No tools here.", tool_calls=[FakeToolCall("get_weather")]))
    reply = oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].message.content == "No tools here."
    assert reply.choices[0].finish_reason == "stop"


# ---- scripting --------------------------------------------------------------------------------------


def test_scripted_text_chunks_model_and_usage(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    usage = Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=300, reasoning_tokens=50)
    fake.script(
        FakeReply(chunks=["Par", "is", "!"], model="gpt-4o-2024-08-06", usage=usage),
        FakeReply(text="Second."),
    )
    assert fake.pending == 2
    chunks = list(
        oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True})
    )
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == [
        "Par",
        "is",
        "!",
    ]
    assert {c.model for c in chunks} == {"gpt-4o-2024-08-06"}
    reported = chunks[-1].usage
    assert reported is not None
    assert (reported.prompt_tokens, reported.completion_tokens, reported.total_tokens) == (1000, 200, 1200)
    assert reported.prompt_tokens_details is not None
    assert reported.prompt_tokens_details.cached_tokens == 300
    assert reported.completion_tokens_details is not None
    assert reported.completion_tokens_details.reasoning_tokens == 50
    second = oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert second.choices[0].message.content == "Second."
    assert second.usage is not None
    assert second.usage.completion_tokens == text_tokens("openai", GPT, "Second.")
    third = oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert third.choices[0].message.content == fake.reply_text
    assert fake.pending == 0


def test_responder_sees_the_request_and_the_queue_wins(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    def echo(request: FakeRequest) -> FakeReply | None:
        last = request.body["messages"][-1]["content"]
        return None if last == "default please" else FakeReply(text=f"echo: {last}")

    fake.responder = echo
    fake.script(FakeReply(text="from the queue"))
    first = oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "hi"}])
    second = oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "hi"}])
    third = oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": "default please"}])
    assert first.choices[0].message.content == "from the queue"
    assert second.choices[0].message.content == "echo: hi"
    assert third.choices[0].message.content == fake.reply_text


def test_a_failing_responder_is_a_500_and_is_recorded(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    def broken(request: FakeRequest) -> FakeReply:
        raise KeyError("boom")

    fake.responder = broken
    with pytest.raises(openai.InternalServerError, match="responder raised KeyError"):
        oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert [type(e) for e in fake.errors] == [KeyError]


def test_cached_tokens_setting(fake: FakeUpstream, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.cached_tokens = 5
    reply = oai.chat.completions.create(model=GPT, messages=MESSAGES)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 5
    assert reply.usage.prompt_tokens == openai_prompt_tokens()  # cached tokens are part of the prompt
    message = claude.messages.create(model=CLAUDE, max_tokens=100, messages=[MESSAGES[1]])
    total = COUNTER.count("anthropic", CLAUDE, messages=[MESSAGES[1]]).total
    assert message.usage.cache_read_input_tokens == 5
    assert message.usage.input_tokens == total - 5  # Anthropic reports cache reads apart


def test_requests_are_recorded_and_reset(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model=GPT, messages=MESSAGES, temperature=0.5)
    oai.models.list()
    first, second = fake.requests
    assert (first.method, first.path, first.index) == ("POST", "/v1/chat/completions", 0)
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.api_key == "sk-test"
    assert first.provider == "openai"
    assert first.body["temperature"] == 0.5
    assert first.model == GPT
    assert first.stream is False
    assert first.time == START
    assert json.loads(first.raw_body) == first.body
    assert (second.method, second.path, second.body) == ("GET", "/v1/models", None)
    fake.script(FakeReply(text="left over"))
    fake.reset()
    assert fake.requests == []
    assert fake.pending == 0
    oai.models.list()
    assert [r.index for r in fake.requests] == [2]  # indexes keep counting, so ids stay unique


# ---- embeddings and models --------------------------------------------------------------------------


def test_embeddings(oai: openai.OpenAI) -> None:
    texts = ["hello world", "bonjour", "hello world"]
    reply = oai.embeddings.create(model="text-embedding-3-small", input=texts)  # the SDK asks for base64
    vectors = [d.embedding for d in reply.data]
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert all(len(v) == 1536 for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    assert math.isclose(math.fsum(x * x for x in vectors[1]), 1.0, rel_tol=1e-5)
    assert reply.usage.prompt_tokens == sum(text_tokens("openai", "text-embedding-3-small", t) for t in texts)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens
    floats = oai.embeddings.create(model="text-embedding-3-large", input="bonjour", encoding_format="float")
    assert len(floats.data[0].embedding) == 3072
    small = oai.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]], dimensions=8)
    assert [len(d.embedding) for d in small.data] == [8, 8]
    assert small.usage.prompt_tokens == 5  # token arrays count their length


def test_embedding_base64_is_packed_float32(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    packed = oai.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="base64", dimensions=4)
    encoded: Any = packed.data[0].embedding
    assert isinstance(encoded, str)  # asked for explicitly, the SDK hands the base64 text through
    unpacked = struct.unpack("<4f", base64.b64decode(encoded))
    floats = oai.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="float", dimensions=4)
    assert unpacked == pytest.approx(floats.data[0].embedding, rel=1e-6)
    assert fake.requests[0].body["encoding_format"] == "base64"


def test_models_list(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    models = list(oai.models.list())
    assert [m.id for m in models] == list(fake.models)
    assert {m.object for m in models} == {"model"}
    assert {m.owned_by for m in models} >= {"openai", "anthropic"}


# ---- Anthropic messages ------------------------------------------------------------------------------


def test_anthropic_message_usage_is_the_counter_estimate(fake: FakeUpstream, claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model=CLAUDE, max_tokens=200, system="You are terse.", messages=[MESSAGES[1]], extra_headers={"x-trace": "1"}
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == CLAUDE
    assert message.stop_reason == "end_turn"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == fake.reply_text
    expected_in = COUNTER.count("anthropic", CLAUDE, messages=[MESSAGES[1]], system="You are terse.").total
    assert message.usage.input_tokens == expected_in
    assert message.usage.output_tokens == text_tokens("anthropic", CLAUDE, fake.reply_text)
    assert message.usage.cache_creation_input_tokens == 0
    (request,) = fake.requests
    assert (request.provider, request.api_key, request.headers["x-trace"]) == ("anthropic", "sk-ant", "1")


def test_anthropic_max_tokens(claude: anthropic.Anthropic, fake: FakeUpstream) -> None:
    message = claude.messages.create(model=CLAUDE, max_tokens=2, messages=[MESSAGES[1]])
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text"
    assert message.usage.output_tokens == text_tokens("anthropic", CLAUDE, message.content[0].text) <= 2


def test_anthropic_stream_helper(fake: FakeUpstream, claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model=CLAUDE, max_tokens=200, messages=[MESSAGES[1]]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == fake.reply_text
    assert len(pieces) > 1
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == COUNTER.count("anthropic", CLAUDE, messages=[MESSAGES[1]]).total
    assert final.usage.output_tokens == text_tokens("anthropic", CLAUDE, fake.reply_text)


def test_anthropic_raw_event_sequence(claude: anthropic.Anthropic) -> None:
    events = list(claude.messages.create(model=CLAUDE, max_tokens=200, messages=[MESSAGES[1]], stream=True))
    kinds = [e.type for e in events]
    deltas = kinds.count("content_block_delta")
    assert deltas > 1
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start"
    assert start.message.usage.input_tokens == COUNTER.count("anthropic", CLAUDE, messages=[MESSAGES[1]]).total
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == text_tokens("anthropic", CLAUDE, "This is a fake reply.")


def test_anthropic_tool_use(fake: FakeUpstream, claude: anthropic.Anthropic) -> None:
    call = FakeToolCall("get_weather", '{"city": "Paris"}', id="toolu_fixed")
    fake.script(
        FakeReply(text="Let me check.", tool_calls=[call]),
        FakeReply(tool_calls=[FakeToolCall("get_weather", {"city": "Paris"})]),
    )
    message = claude.messages.create(model=CLAUDE, max_tokens=200, messages=[MESSAGES[1]], tools=[CLAUDE_TOOL])
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    block = message.content[1]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_fixed", "get_weather", {"city": "Paris"})
    with claude.messages.stream(model=CLAUDE, max_tokens=200, messages=[MESSAGES[1]], tools=[CLAUDE_TOOL]) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["tool_use"]
    assert final.content[0].type == "tool_use"
    assert final.content[0].input == {"city": "Paris"}
    assert final.content[0].id == "toolu_fake000001x0"
    assert final.stop_reason == "tool_use"


def test_scripted_usage_in_anthropic_shape(fake: FakeUpstream, claude: anthropic.Anthropic) -> None:
    fake.script(
        FakeReply(usage=Usage(input_tokens=1000, output_tokens=20, cache_read_tokens=300, cache_write_tokens=100))
    )
    message = claude.messages.create(model=CLAUDE, max_tokens=100, messages=[MESSAGES[1]])
    assert message.usage.input_tokens == 600
    assert message.usage.cache_read_input_tokens == 300
    assert message.usage.cache_creation_input_tokens == 100
    assert message.usage.output_tokens == 20
    reported = Usage.from_anthropic(
        input_tokens=message.usage.input_tokens,
        output_tokens=message.usage.output_tokens,
        cache_read_input_tokens=message.usage.cache_read_input_tokens or 0,
        cache_creation_input_tokens=message.usage.cache_creation_input_tokens or 0,
    )
    assert reported.input_tokens == 1000


# ---- auth --------------------------------------------------------------------------------------------


def test_a_required_key_is_enforced(fake: FakeUpstream) -> None:
    fake.api_key = "sk-right"
    bad = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as oai_error:
        bad.models.list()
    assert oai_error.value.code == "invalid_api_key"
    bad_claude = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-wrong", max_retries=0)
    with bad_claude, pytest.raises(anthropic.AuthenticationError) as claude_error:
        bad_claude.messages.create(model=CLAUDE, max_tokens=10, messages=[MESSAGES[1]])
    assert claude_error.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": "req_fake000001",
    }
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-right", max_retries=0) as good:
        assert [m.id for m in good.models.list()] == list(fake.models)


# ---- async clients -----------------------------------------------------------------------------------


def test_async_clients(fake: FakeUpstream) -> None:
    async def run() -> tuple[Any, ...]:
        async with (
            openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0) as aoai,
            anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="k", max_retries=0) as aclaude,
        ):
            whole = await aoai.chat.completions.create(model=GPT, messages=MESSAGES)
            stream = await aoai.chat.completions.create(
                model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
            message = await aclaude.messages.create(model=CLAUDE, max_tokens=100, messages=[MESSAGES[1]])
            async with aclaude.messages.stream(model=CLAUDE, max_tokens=100, messages=[MESSAGES[1]]) as astream:
                text = "".join([piece async for piece in astream.text_stream])
                final = await astream.get_final_message()
            return whole, chunks, message, text, final

    whole, chunks, message, text, final = asyncio.run(run())
    assert whole.choices[0].message.content == fake.reply_text
    assert whole.usage.prompt_tokens == openai_prompt_tokens()
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == fake.reply_text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert message.content[0].text == text == fake.reply_text
    assert final.usage.output_tokens == message.usage.output_tokens


# ---- concurrency -------------------------------------------------------------------------------------


def test_fifty_concurrent_requests_all_succeed(fake: FakeUpstream, oai: openai.OpenAI) -> None:
    """Every request waits at a barrier for the other 49: it only passes if all 50 are in flight at once."""
    workers = 50
    barrier = threading.Barrier(workers, timeout=15)

    def together(request: FakeRequest) -> FakeReply:
        barrier.wait()
        return FakeReply(text=f"reply {request.body['messages'][0]['content']}")

    fake.responder = together

    def call(i: int) -> str | None:
        stream = i % 2 == 1
        if stream:
            chunks = oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": str(i)}], stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return (
            oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": str(i)}])
            .choices[0]
            .message.content
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(call, range(workers)))
    assert results == [f"reply {i}" for i in range(workers)]
    assert fake.errors == []
    assert len(fake.requests) == workers
