"""Streaming accumulation: any chunking of a text counts the same as the whole text; tool calls,
multiple choices, Anthropic events and provider-reported usage are handled."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.errors import InvalidUsageError
from spendgate.tokens import TokenCounter, get_encoding
from spendgate.tokens._stream import last_boundary

CORPUS = "".join(
    p.read_text(encoding="utf-8") for p in sorted((Path(__file__).parent / "data" / "tokens").glob("*.txt"))
)
# Characters that stress the pre-tokenizers: whitespace kinds, "/", apostrophes, digits, CJK, emoji.
ALPHABET = [*"ab Z9'/.,-\n\r\t ", "  ", "\u00a0", "中", "é", "😀", "\u200d", "ll", "12345", "\u3000", "。", "\r\n"]
TARGETS = [("openai", "gpt-4o"), ("openai", "gpt-4"), ("anthropic", "claude-3-5-sonnet"), ("ollama", "llama3")]
COUNTER = TokenCounter()


def n(text: str) -> int:
    return len(get_encoding("o200k_base").encode_ordinary(text))


def _split(text: str, rnd: random.Random, max_chunk: int) -> list[str]:
    chunks, pos = [], 0
    while pos < len(text):
        step = rnd.randint(1, max_chunk)
        chunks.append(text[pos : pos + step])
        pos += step
    return chunks


@pytest.mark.parametrize(("provider", "model"), TARGETS)
@pytest.mark.parametrize("seed", range(4))
def test_random_splits_of_the_corpus_equal_the_whole(provider: str, model: str, seed: int) -> None:
    rnd = random.Random(seed)
    acc = COUNTER.stream(provider, model)
    seen = 0
    for i, chunk in enumerate(_split(CORPUS, rnd, max_chunk=12)):
        acc.add_text(chunk)
        seen += len(chunk)
        if i % 97 == 0:  # reading midway is right and does not disturb the rest
            assert acc.output_tokens == COUNTER.count_text(provider, model, CORPUS[:seen]).total
    whole = COUNTER.count_text(provider, model, CORPUS)
    result = acc.result()
    assert (result.text, result.total) == (whole.total, whole.total)
    assert (result.exact, result.method) == (whole.exact, whole.method)


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=40),
)
def test_any_chunking_counts_like_the_whole_text(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    for provider, model in TARGETS[:3]:
        acc = COUNTER.stream(provider, model)
        pos, seen = 0, ""
        for cut in cuts * (len(text) // max(sum(cuts), 1) + 1):
            if pos >= len(text):
                break
            chunk = text[pos : pos + cut]
            pos += cut
            seen += chunk
            acc.add_text(chunk)
            assert acc.output_tokens == COUNTER.count_text(provider, model, seen).total
        assert acc.output_tokens == COUNTER.count_text(provider, model, text).total


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ALPHABET), min_size=2, max_size=30))
def test_boundaries_are_safe(pieces: list[str]) -> None:
    text = "".join(pieces)
    cut = last_boundary(text)
    assert 0 <= cut < len(text)
    if cut:
        for name in ("o200k_base", "cl100k_base"):
            encode = get_encoding(name).encode_ordinary
            assert len(encode(text[:cut])) + len(encode(text[cut:])) == len(encode(text))


def test_boundaries() -> None:
    assert last_boundary("hello world") == 5
    assert last_boundary("a  b") == 1  # before the whitespace run, not inside it
    assert last_boundary("line\nnext") == 5
    assert last_boundary("x\n/path") == 0  # "\n/" may join punctuation before it: no cut
    assert last_boundary("x.\n\nnext / more") == 10
    assert last_boundary("中文没有空格") == 0
    assert last_boundary("   ") == 0


def test_long_streams_keep_a_short_tail() -> None:
    text = ("All work and no play makes Jack a dull boy. " * 400).strip()
    acc = COUNTER.stream("openai", "gpt-4o")
    for i in range(0, len(text), 7):
        acc.add_text(text[i : i + 7])
    assert acc.output_tokens == COUNTER.count_text("openai", "gpt-4o", text).total
    stream = next(iter(acc._text.values()))
    assert len(stream._tail) < 20  # type: ignore[union-attr]  # a _BpeText for an OpenAI model


def _chunk(delta: dict[str, Any], index: int = 0, usage: dict[str, int] | None = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"object": "chat.completion.chunk", "choices": [{"index": index, "delta": delta}]}
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def test_openai_chunks_with_tool_calls_and_usage() -> None:
    acc = COUNTER.stream("openai", "gpt-4o-mini")
    acc.add_chunk(_chunk({"role": "assistant", "content": ""}))
    for piece in ["The weather", " in Par", "is is ", "sunny."]:
        acc.add_chunk(_chunk({"content": piece}))
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    acc.add_chunk(_chunk({"tool_calls": [call]}))
    for piece in ['{"loc', 'ation": "Pa', 'ris"}']:
        acc.add_chunk(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    assert acc.reported_usage is None
    acc.add_chunk(
        {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 20}}
    )
    result = acc.result()
    assert result.text == n("The weather in Paris is sunny.")
    assert result.tool == n("get_weather") + n('{"location": "Paris"}')
    assert result.exact is False  # tool-call framing is not documented
    assert acc.output_tokens == result.total
    assert acc.reported_usage == {"prompt_tokens": 9, "completion_tokens": 20}


def test_choices_are_counted_separately() -> None:
    acc = COUNTER.stream("openai", "gpt-4o")
    for a, b in zip(["Hel", "lo", " there"], ["Good", "bye", " now"], strict=True):
        acc.add_chunk({"choices": [{"index": 0, "delta": {"content": a}}, {"index": 1, "delta": {"content": b}}]})
    acc.add_chunk({"choices": [{"index": 0, "delta": {"reasoning_content": "thinking..."}}]})
    acc.add_chunk({"choices": [{"index": 1, "delta": {"function_call": {"name": "f", "arguments": "{}"}}}]})
    result = acc.result()
    assert result.text == n("Hello there") + n("Goodbye now") + n("thinking...")
    assert result.tool == n("f") + n("{}")


def test_odd_chunks_are_ignored() -> None:
    acc = COUNTER.stream("openai", "gpt-4o")
    acc.add_chunk({"choices": None})
    acc.add_chunk({"choices": ["x", {"index": 0}, {"index": 0, "delta": None}, {"delta": {"content": None}}]})
    acc.add_chunk({"choices": [{"delta": {"tool_calls": ["bad"]}}]})
    acc.add_chunk({"id": "no choices, no type"})
    acc.add_chunk({"usage": None})
    acc.add_text("")
    assert (acc.output_tokens, acc.reported_usage, acc.result().exact) == (0, None, True)


def test_sdk_objects_are_accepted() -> None:
    class Chunk:
        def model_dump(self) -> dict[str, Any]:
            return _chunk({"content": "hello world"})

    acc = COUNTER.stream("openai", "gpt-4o")
    acc.add_chunk(Chunk())
    assert acc.output_tokens == 2


@pytest.mark.parametrize("bad", ["data: {}", 42, None])
def test_invalid_chunks(bad: object) -> None:
    acc = COUNTER.stream("openai", "gpt-4o")
    with pytest.raises(InvalidUsageError) as caught:
        acc.add_chunk(bad)
    assert caught.value.field == "chunk"
    with pytest.raises(InvalidUsageError) as caught:
        acc.add_text(b"bytes")  # type: ignore[arg-type]
    assert caught.value.field == "delta"


def test_anthropic_events() -> None:
    acc = COUNTER.stream("anthropic", "claude-sonnet-4")
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "name": "search"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"q":'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"x"}'}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 31}},
        {"type": "message_stop"},
    ]
    for event in events:
        acc.add_chunk(event)

    def h(text: str) -> int:
        return COUNTER.count_text("anthropic", "claude-sonnet-4", text).total

    result = acc.result()
    assert result.text == h("Let me check.")
    assert result.tool == h("search") + h('{"q":"x"}')
    assert (result.exact, result.method) == (False, "heuristic:anthropic:3.5")
    assert acc.reported_usage == {"input_tokens": 25, "output_tokens": 31}
