"""Chat requests: OpenAI's framing (cookbook figures), names, tools, tool calls, Anthropic blocks,
response formats, cache prefixes and errors that name the offending field."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from spendgate.errors import InvalidUsageError
from spendgate.tokens import DEFAULT_CHARS_PER_TOKEN, Heuristic, TokenCounter, get_encoding

# The OpenAI cookbook's example ("How to count tokens with tiktoken"), with the prompt tokens the API
# reported: 129 for gpt-3.5-turbo-0613 / gpt-4-0613 / gpt-4, 127 for gpt-3.5-turbo-0301, 124 for gpt-4o.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

# The cookbook's tool example: 105 prompt tokens on gpt-3.5-turbo / gpt-4, 101 on gpt-4o / gpt-4o-mini.
WEATHER_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def _n(encoding: str, text: str) -> int:
    return len(get_encoding(encoding).encode_ordinary(text))


def _formula(encoding: str, messages: Sequence[Mapping[str, str]], per_message: int = 3, per_name: int = 1) -> int:
    """The cookbook's num_tokens_from_messages, written out independently of the library."""
    total = 3
    for message in messages:
        total += per_message
        for key, value in message.items():
            total += _n(encoding, value)
            if key == "name":
                total += per_name
    return total


@pytest.fixture
def counter() -> TokenCounter:
    return TokenCounter()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-3.5-turbo-0613", 129),
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-3.5-turbo-0301", 127),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
    ],
)
def test_cookbook_example(counter: TokenCounter, model: str, expected: int) -> None:
    count = counter.count("openai", model, messages=COOKBOOK_MESSAGES)
    assert count.total == expected
    assert count.exact


@pytest.mark.parametrize(("model", "encoding"), [("gpt-4o", "o200k_base"), ("gpt-4-turbo", "cl100k_base")])
def test_framing_matches_formula(counter: TokenCounter, model: str, encoding: str) -> None:
    messages = [
        {"role": "developer", "content": "Answer in French. Keep it short."},
        {"role": "user", "name": "alice", "content": "How many tokens is «naïve café» — and 日本語?"},
        {"role": "assistant", "content": "Quelques-uns.\n\n```python\nprint('ok')\n```"},
    ]
    count = counter.count("azure", model, messages=messages)
    assert count.total == _formula(encoding, messages)
    texts = [m["content"] for m in messages] + ["alice"]
    assert count.text == sum(_n(encoding, t) for t in texts)
    assert count.overhead == 3 * 3 + 3 + 1 + sum(_n(encoding, m["role"]) for m in messages)
    assert (count.exact, count.method) == (True, encoding)


def test_legacy_0301_names_cost_one_less(counter: TokenCounter) -> None:
    named = [{"role": "user", "name": "bob", "content": "hi"}]
    plain = [{"role": "user", "content": "hi"}]
    new = counter.count("openai", "gpt-3.5-turbo", messages=named).total
    old = counter.count("openai", "gpt-3.5-turbo-0301", messages=named).total
    assert new - counter.count("openai", "gpt-3.5-turbo", messages=plain).total == 1 + _n("cl100k_base", "bob")
    assert old == _formula("cl100k_base", named, per_message=4, per_name=-1) == new - 1


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)]
)
def test_cookbook_tools_example(counter: TokenCounter, model: str, expected: int) -> None:
    count = counter.count("openai", model, messages=WEATHER_MESSAGES, tools=WEATHER_TOOLS)
    assert count.total == expected
    assert count.tool == expected - _formula(encoding_of(model), WEATHER_MESSAGES)
    assert count.exact


def encoding_of(model: str) -> str:
    return "o200k_base" if "4o" in model else "cl100k_base"


def test_tool_formula_written_out(counter: TokenCounter) -> None:
    tools = [
        {"type": "function", "function": {"name": "ping", "description": "Ping a host.", "parameters": {}}},
        {"type": "function", "function": {"name": "now"}},
        {
            "type": "function",
            "function": {
                "name": "move",
                "description": "Move the robot",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "steps": {"type": "integer", "description": "How far."},
                        "dir": {"type": "string", "enum": ["left", "right", 3]},
                    },
                },
            },
        },
    ]

    def n(text: str) -> int:
        return _n("o200k_base", text)

    expected = (7 + n("ping:Ping a host")) + (7 + n("now:")) + (7 + n("move:Move the robot"))
    expected += 3 + (3 + n("steps:integer:How far")) + (3 - 3 + 3 + n("left") + 3 + n("right") + 3 + n("3"))
    expected += n("dir:string:") + 12
    count = counter.count("openai", "gpt-4o", tools=tools)
    assert (count.tool, count.total, count.exact) == (expected, expected, True)


def test_anthropic_and_legacy_tool_shapes_count_like_openai(counter: TokenCounter) -> None:
    function = WEATHER_TOOLS[0]["function"]
    assert isinstance(function, dict)
    anthropic = [
        {"name": function["name"], "description": function["description"], "input_schema": function["parameters"]}
    ]
    openai = counter.count("openai", "gpt-4o", tools=WEATHER_TOOLS)
    assert counter.count("openai", "gpt-4o", tools=anthropic) == openai
    assert counter.count("openai", "gpt-4o", tools=[function]) == openai


def test_nested_schemas_are_estimated_and_count_more(counter: TokenCounter) -> None:
    flat = counter.count("openai", "gpt-4o", tools=WEATHER_TOOLS)
    nested_tool = json.loads(json.dumps(WEATHER_TOOLS))
    props = nested_tool[0]["function"]["parameters"]["properties"]
    props["when"] = {"type": "object", "description": "Time", "properties": {"day": {"type": "string"}}}
    props["tags"] = {"type": ["array", "null"], "items": {"type": "string"}}
    nested_tool[0]["function"]["parameters"]["$defs"] = {"x": {"type": "number"}}
    nested = counter.count("openai", "gpt-4o", tools=nested_tool)
    assert nested.tool > flat.tool + 6
    assert not nested.exact


def test_builtin_tool_without_schema_is_estimated(counter: TokenCounter) -> None:
    count = counter.count("anthropic", "claude-sonnet-4", tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert count.tool == 7 + Heuristic("anthropic", 3.5).count("web_search:") + 12
    assert not count.exact


def test_tool_calls_and_tool_results(counter: TokenCounter) -> None:
    args = json.dumps({"location": "Paris, FR", "unit": "celsius"})
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_current_weather", "arguments": args}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees and sunny"},
    ]
    count = counter.count("openai", "gpt-4o", messages=messages)
    assert count.tool == _n("o200k_base", "get_current_weather") + _n("o200k_base", args)
    assert count.text == _n("o200k_base", "Weather in Paris?") + _n("o200k_base", "22 degrees and sunny")
    assert not count.exact  # OpenAI does not document how tool calls are rendered
    legacy = [{"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": {"a": 1}}}]
    assert counter.count("openai", "gpt-4o", messages=legacy).tool == _n("o200k_base", "f") + _n(
        "o200k_base", '{"a":1}'
    )


def test_refusal_and_text_parts(counter: TokenCounter) -> None:
    parts = [{"type": "text", "text": "Hello"}, {"type": "input_text", "text": " there"}]
    count = counter.count("openai", "gpt-4o", messages=[{"role": "user", "content": parts}])
    assert count.text == _n("o200k_base", "Hello") + _n("o200k_base", " there")
    assert count.exact
    refused = counter.count(
        "openai", "gpt-4o", messages=[{"role": "assistant", "content": None, "refusal": "I can't help with that."}]
    )
    assert refused.text == _n("o200k_base", "I can't help with that.")


def _heuristic(text: str, provider: str = "anthropic") -> int:
    return Heuristic(provider, DEFAULT_CHARS_PER_TOKEN[provider]).count(text)


def test_anthropic_messages_with_system_blocks_and_cache_control(counter: TokenCounter) -> None:
    long_system = "You are a meticulous assistant. " * 40
    system = [{"type": "text", "text": long_system, "cache_control": {"type": "ephemeral"}}]
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Summarise the report."}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "x"},
                {"type": "text", "text": "It is fine."},
            ],
        },
    ]
    count = counter.count("anthropic", "claude-sonnet-4-5", system=system, messages=messages)
    h = _heuristic
    assert count.text == h(long_system) + h("Summarise the report.") + h("Let me think.") + h("It is fine.")
    framing = 3 * 3 + h("system") + h("user") + h("assistant") + 3
    assert count.overhead == framing
    assert count.cached == 3 + h("system") + h(long_system)  # the prefix up to the breakpoint
    assert count.cached < count.total
    assert (count.exact, count.method) == (False, "heuristic:anthropic:3.5")
    as_string = counter.count("anthropic", "claude-sonnet-4-5", system=long_system, messages=messages)
    assert as_string.total == count.total and as_string.cached == 0


def test_cache_prefix_includes_tools(counter: TokenCounter) -> None:
    tools = [dict(WEATHER_TOOLS[0]["function"], cache_control={"type": "ephemeral"})]
    count = counter.count("anthropic", "claude-3-5-haiku", tools=tools, messages=[{"role": "user", "content": "hi"}])
    assert count.cached == count.tool - 12  # func_end comes after the last tool
    assert count.cached > 0


def test_anthropic_tool_use_and_tool_result_blocks(counter: TokenCounter) -> None:
    png = _png(100, 100)
    messages: list[dict[str, Any]] = [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [
                        {"type": "text", "text": "found it"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    ],
                },
                {"type": "tool_result", "tool_use_id": "t2", "content": "plain result"},
                {"type": "tool_result", "tool_use_id": "t3"},
            ],
        },
    ]
    count = counter.count("anthropic", "claude-opus-4", messages=messages)
    assert count.tool == _heuristic("lookup") + _heuristic('{"q":"x"}')
    assert count.text == _heuristic("found it") + _heuristic("plain result")
    assert count.image == 14  # ceil(100 * 100 / 750)


def test_documents_and_unknown_parts_are_estimated(counter: TokenCounter) -> None:
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Some notes."}}
    content_doc = {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "A"}]}}
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    strange = {"type": "hologram", "payload": {"layers": 3}}
    base = counter.count("openai", "gpt-4o", messages=[{"role": "user", "content": "x"}])
    for part, expected_text in [
        (doc, _n("o200k_base", "Some notes.")),
        (content_doc, _n("o200k_base", "A")),
        (pdf, _n("o200k_base", json.dumps({"source": pdf["source"]}, separators=(",", ":")))),
        (strange, _n("o200k_base", '{"payload":{"layers":3}}')),
    ]:
        count = counter.count("openai", "gpt-4o", messages=[{"role": "user", "content": [part]}])
        assert count.text == expected_text
        assert count.overhead == base.overhead
        assert not count.exact


def test_response_format_schema_is_its_own_category(counter: TokenCounter) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    chat = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}}
    responses = {"type": "json_schema", "name": "reply", "schema": schema}
    expected = _n("o200k_base", json.dumps(schema, separators=(",", ":")))
    for response_format in (chat, responses):
        count = counter.count("openai", "gpt-4o", text="q", response_format=response_format)
        assert (count.schema, count.text, count.total, count.exact) == (expected, 1, expected + 1, False)
    plain = counter.count("openai", "gpt-4o", text="q", response_format={"type": "json_object"})
    assert (plain.schema, plain.exact) == (0, True)


def test_system_alone_and_empty_request(counter: TokenCounter) -> None:
    only_system = counter.count("openai", "gpt-4o", system="Be brief.")
    assert only_system.total == 3 + _n("o200k_base", "system") + _n("o200k_base", "Be brief.") + 3
    empty = counter.count("openai", "gpt-4o")
    assert (empty.total, empty.exact, empty.method) == (0, True, "o200k_base")
    assert counter.count("openai", "gpt-4o", tools=[]).total == 0
    assert counter.count("openai", "gpt-4o", messages=[]).total == 3


def _png(width: int, height: int) -> str:
    header = (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    )
    return base64.b64encode(header + b"\x00" * 16).decode()


def _wav(seconds: int, rate: int = 8000) -> str:
    data = b"\x00\x00" * rate * seconds
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return base64.b64encode(b"RIFF" + struct.pack("<I", len(body)) + body).decode()


def test_images_in_messages(counter: TokenCounter) -> None:
    def image(url: str, detail: str | None = None) -> list[dict[str, Any]]:
        spec = {"url": url} if detail is None else {"url": url, "detail": detail}
        return [{"role": "user", "content": [{"type": "image_url", "image_url": spec}]}]

    framing = 3 + 1 + 3
    data_url = "data:image/png;base64," + _png(1024, 1024)
    high = counter.count("openai", "gpt-4o", messages=image(data_url, "high"))
    assert (high.image, high.total, high.exact) == (765, 765 + framing, True)
    remote = counter.count("openai", "gpt-4o", messages=image("https://example.com/cat.png"))
    assert (remote.image, remote.exact) == (85 + 170 * 8, False)
    low = counter.count("openai", "gpt-4o", messages=image("https://example.com/cat.png", "LOW"))
    assert (low.image, low.exact) == (85, True)
    bare = [{"role": "user", "content": [{"type": "image_url", "image_url": data_url}]}]
    assert counter.count("openai", "gpt-4o", messages=bare).image == 765  # auto → high for a big image
    responses = [{"role": "user", "content": [{"type": "input_image", "image_url": data_url, "detail": "low"}]}]
    assert counter.count("openai", "gpt-4.1", messages=responses).image == 85
    claude = [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]
    assert counter.count("anthropic", "claude-sonnet-4", messages=claude).image == 1600
    gemini = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + _png(300, 300)}}],
        }
    ]
    assert counter.count("google", "gemini-2.5-flash", messages=gemini).image == 258
    garbage = image("data:image/png;base64,!!!!not-base64")
    assert counter.count("openai", "gpt-4o", messages=garbage).exact is False


def test_audio_in_messages(counter: TokenCounter) -> None:
    def audio(data: str, fmt: str) -> list[dict[str, Any]]:
        part = {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
        return [{"role": "user", "content": [part]}]

    wav = counter.count("openai", "gpt-4o-audio-preview", messages=audio(_wav(2), "wav"))
    assert (wav.audio, wav.exact) == (20, False)
    mp3 = counter.count(
        "openai", "gpt-4o-audio-preview", messages=audio(base64.b64encode(b"\xff" * 48_000).decode(), "mp3")
    )
    assert mp3.audio == 30  # 48 kB at 128 kbit/s = 3 s at ~10 tokens/s
    gemini = counter.count("gemini", "gemini-2.0-flash", messages=audio(_wav(3), "wav"))
    assert gemini.audio == 96


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": "a"}, "oops"]}, "messages[1]"),
        ({"messages": [{"content": "a"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": "a"}] * 2 + [{"role": "user", "content": 5}]},
            "messages[2].content",
        ),
        ({"messages": [{"role": "user", "content": ["text"]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": "a", "name": 7}]}, "messages[0].name"),
        ({"messages": [{"role": "assistant", "content": "", "tool_calls": "x"}]}, "messages[0].tool_calls"),
        (
            {"messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": "{}"}}]}]},
            "messages[0].tool_calls[0].function.name",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "max"}}]}
                ]
            },
            "messages[0].content[0].detail",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": "http://x"}]}]},
            "messages[0].content[0].source",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"format": "wav"}}]}]},
            "messages[0].content[0].input_audio.data",
        ),
        ({"system": 42}, "system"),
        ({"text": b"bytes"}, "text"),
        ({"tools": {"name": "f"}}, "tools"),
        ({"tools": ["f"]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
        ({"tools": [{"name": "f", "parameters": {"properties": {"a": "string"}}}]}, "tools[0].parameters.properties.a"),
        (
            {"tools": [{"name": "f", "parameters": {"properties": {"a": {"enum": "ab"}}}}]},
            "tools[0].parameters.properties.a.enum",
        ),
        ({"tools": [{"name": "f", "parameters": "{}"}]}, "tools[0].parameters"),
        ({"response_format": "json"}, "response_format"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
        ),
    ],
)
def test_invalid_input_names_the_field(counter: TokenCounter, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidUsageError) as caught:
        counter.count("openai", "gpt-4o", **kwargs)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("provider", "model", "field"), [("", "gpt-4o", "provider"), ("openai", " ", "model")])
def test_invalid_provider_or_model(counter: TokenCounter, provider: str, model: str, field: str) -> None:
    with pytest.raises(InvalidUsageError) as caught:
        counter.count_text(provider, model, "hi")
    assert caught.value.field == field
