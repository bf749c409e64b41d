"""The integrations' pure parts: usage readers, error kinds, per-call options and request shapes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest

from spendgate import InvalidUsageError, Usage
from spendgate.integrations._call import Call, Identity, split_options
from spendgate.integrations._endpoints import GENERIC, OPENAI_CHAT, OPENAI_EMBEDDINGS
from spendgate.integrations._errors import error_kind, status_code
from spendgate.integrations._usage import anthropic_usage, genai_usage, openai_usage, response_text, usage_of
from spendgate.tokens import TokenCounter

COUNTER = TokenCounter()


class _Status(Exception):
    def __init__(self, code: Any) -> None:
        super().__init__(f"status {code}")
        self.status_code = code


class APITimeoutError(Exception):
    """Named like the SDKs' timeout error, which derives from APIConnectionError."""


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_Status(429), "rate_limited"),
        (_Status(408), "timeout"),
        (_Status(503), "upstream_error"),
        (_Status(529), "upstream_error"),
        (_Status(401), "bad_request"),
        (_Status(302), "error"),
        (APITimeoutError(), "timeout"),
        (TimeoutError(), "timeout"),
        (httpx2.ReadTimeout("slow"), "timeout"),
        (httpx2.ReadError("reset"), "connection"),
        (httpx2.RemoteProtocolError("closed"), "connection"),
        (ConnectionResetError(), "connection"),
        (json.JSONDecodeError("bad", "x", 0), "bad_response"),
        (KeyboardInterrupt(), "cancelled"),
        (asyncio.CancelledError(), "cancelled"),
        (RuntimeError("other"), "error"),
    ],
)
def test_error_kinds(exc: BaseException, kind: str) -> None:
    assert error_kind(exc) == kind


def test_status_code_must_be_an_int() -> None:
    assert status_code(_Status(500)) == 500
    assert status_code(_Status("500")) is None and status_code(_Status(True)) is None
    assert status_code(ValueError()) is None


def test_openai_usage_shapes() -> None:
    assert openai_usage(None) is None and openai_usage({}) is None
    chat = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 10, "audio_tokens": 5, "image_tokens": 7},
        "completion_tokens_details": {"reasoning_tokens": 20, "audio_tokens": 3},
    }
    assert openai_usage(chat) == Usage(
        input_tokens=100, output_tokens=40, cache_read_tokens=30, cache_write_tokens=10, input_audio_tokens=5,
        input_image_tokens=7, reasoning_tokens=20, output_audio_tokens=3,
    )  # fmt: skip
    responses = {"input_tokens": 50, "output_tokens": 9, "input_tokens_details": {"cached_tokens": 20},
                 "output_tokens_details": {"reasoning_tokens": 4}}  # fmt: skip
    assert openai_usage(responses) == Usage(input_tokens=50, output_tokens=9, cache_read_tokens=20, reasoning_tokens=4)
    assert openai_usage({"prompt_tokens": 5, "total_tokens": 5}) == Usage(input_tokens=5)  # embeddings
    with pytest.raises(InvalidUsageError, match="cache_read"):
        openai_usage({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}})


def test_anthropic_usage_counts_cache_outside_input() -> None:
    assert anthropic_usage(None) is None and anthropic_usage({"service_tier": "standard"}) is None
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
             "cache_creation_input_tokens": 20, "server_tool_use": {"web_search_requests": 2}}  # fmt: skip
    assert anthropic_usage(usage) == Usage(
        input_tokens=130, output_tokens=5, cache_read_tokens=100, cache_write_tokens=20, web_searches=2
    )


def test_usage_of_picks_the_shape() -> None:
    anthropic_like = {"usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 4}}
    assert usage_of("custom", anthropic_like) == Usage(input_tokens=14, output_tokens=5, cache_read_tokens=4)
    assert usage_of("openai", {"usage": {"input_tokens": 10, "output_tokens": 5}}) == Usage(
        input_tokens=10, output_tokens=5
    )
    assert usage_of("groq", {"model": "llama-3.3-70b-versatile", "usage": {"prompt_tokens": 7}}) == Usage(
        input_tokens=7
    )
    assert usage_of("openai", {"choices": []}) is None
    assert genai_usage("no-such-provider", {"usage": {}}) is None
    assert genai_usage("google", {"modelVersion": "gemini-2.5-flash", "usageMetadata": {}}) is None


def test_response_text() -> None:
    assert response_text("plain") == "plain"
    assert response_text({"choices": [{"message": {"content": "a"}}, {"message": {"content": None}}]}) == "a"
    assert response_text({"content": [{"type": "text", "text": "b"}, {"type": "tool_use"}]}) == "b"
    assert response_text({"content": "c"}) == "c" and response_text(None) == ""


def test_options_are_split_and_merged() -> None:
    kwargs, options = split_options({"model": "m", "spendgate_user_id": "u", "spendgate_tags": {"b": "2"}})
    assert kwargs == {"model": "m"} and options == {"user_id": "u", "tags": {"b": "2"}}
    base = Identity(user_id="x", tags={"a": "1"}, metadata={"k": 1})
    merged = base.with_options(options)
    assert merged.user_id == "u" and dict(merged.tags) == {"a": "1", "b": "2"} and dict(merged.metadata) == {"k": 1}
    assert base.with_options({}) is base
    with pytest.raises(InvalidUsageError, match="spendgate_tags"):
        base.with_options({"tags": "a=1"})
    with pytest.raises(TypeError, match="unknown spendgate option 'spendgate_nope'"):
        split_options({"spendgate_nope": 1})


def test_request_shapes() -> None:
    assert OPENAI_CHAT.max_tokens({"max_tokens": 100, "n": 3}) == 300
    assert OPENAI_CHAT.max_tokens({"max_completion_tokens": 50, "max_tokens": 100}) == 50
    assert OPENAI_CHAT.max_tokens({"max_tokens": True}) is None and GENERIC.max_tokens({}) is None
    assert OPENAI_EMBEDDINGS.max_tokens({"input": "x"}) == 0
    hello = COUNTER.count("openai", "text-embedding-3-small", text="hello world").total
    arrays = {"input": [[1, 2, 3], [4, 5]]}
    assert OPENAI_EMBEDDINGS.input_tokens(COUNTER, "openai", "text-embedding-3-small", arrays) == 5
    assert OPENAI_EMBEDDINGS.input_tokens(COUNTER, "openai", "text-embedding-3-small", {"input": [7, 8, 9]}) == 3
    mixed = {"input": ["hello world", "hello world"]}
    assert OPENAI_EMBEDDINGS.input_tokens(COUNTER, "openai", "text-embedding-3-small", mixed) == 2 * hello
    sent, hide = OPENAI_CHAT.prepare_stream({"stream_options": {"include_obfuscation": False}})
    assert sent["stream_options"] == {"include_obfuscation": False, "include_usage": True} and hide
    assert GENERIC.input_tokens(COUNTER, "openai", "gpt-4o", {"temperature": 0}) == 0


def test_a_message_iterator_is_read_once_and_sent_as_a_list() -> None:
    messages = iter([{"role": "user", "content": "hi"}])
    call = Call(counter=COUNTER, provider="openai", model="gpt-4o", endpoint=OPENAI_CHAT, identity=Identity(),
                kwargs={"model": "gpt-4o", "messages": messages})  # fmt: skip
    assert call.kwargs["messages"] == [{"role": "user", "content": "hi"}]
    assert call.input_tokens == COUNTER.count("openai", "gpt-4o", messages=call.kwargs["messages"]).total
    system = Call(counter=COUNTER, provider="anthropic", model="claude-sonnet-4-6", endpoint=GENERIC,
                  identity=Identity(), kwargs={"system": [{"type": "text", "text": "Be brief."}]})  # fmt: skip
    assert system.input_tokens > 0


def test_genai_usage_reads_sdk_objects_and_plain_objects() -> None:
    class Dumps:
        def model_dump(self) -> dict[str, Any]:  # an older model_dump without keyword arguments
            return {"model": "mistral-large-latest", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}

    assert genai_usage("mistral", Dumps()) == Usage(input_tokens=3, output_tokens=2)
    assert genai_usage("mistral", object()) is None


def test_generic_requests_count_every_part() -> None:
    system = GENERIC.input_tokens(COUNTER, "anthropic", "claude-sonnet-4-6", {"system": "Be brief."})
    assert system == COUNTER.count("anthropic", "claude-sonnet-4-6", system="Be brief.").total > 0
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with_schema = GENERIC.input_tokens(COUNTER, "openai", "gpt-4o", {"messages": [], "response_format": schema})
    assert with_schema == COUNTER.count("openai", "gpt-4o", messages=[], response_format=schema).total
    assert OPENAI_EMBEDDINGS.input_tokens(COUNTER, "openai", "text-embedding-3-small", {"input": [[1, 2], None]}) == 2
