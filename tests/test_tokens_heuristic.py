"""Providers without a public tokenizer, provider/model resolution, the LRU cache and TokenCount."""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path

import pytest

from spendgate.errors import ConfigurationError
from spendgate.tokens import DEFAULT_CHARS_PER_TOKEN, Heuristic, TokenCount, TokenCounter, _counter, get_encoding

DATA = Path(__file__).parent / "data" / "tokens"
CJK = (DATA / "cjk.txt").read_text(encoding="utf-8")
ENGLISH = (DATA / "prose_en.txt").read_text(encoding="utf-8")


def _o200k(text: str) -> int:
    return len(get_encoding("o200k_base").encode_ordinary(text))


@pytest.mark.parametrize(
    ("provider", "model", "method"),
    [
        ("anthropic", "claude-sonnet-4-5", "heuristic:anthropic:3.5"),
        ("Anthropic", "CLAUDE-3-OPUS", "heuristic:anthropic:3.5"),
        ("google", "gemini-2.5-pro", "heuristic:google:4.2"),
        ("gemini", "gemini-2.0-flash", "heuristic:google:4.2"),
        ("vertex_ai", "gemini-1.5-pro", "heuristic:google:4.2"),
        ("ollama", "llama3.1:8b", "heuristic:local:4.5"),
        ("vllm", "Qwen/Qwen2.5-7B", "heuristic:local:4.5"),
        ("mistral", "mistral-large", "heuristic:mistral:4.0"),
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0", "heuristic:anthropic:3.5"),
        ("openrouter", "google/gemma-2-9b", "heuristic:google:4.2"),
        ("openai-compatible", "llama-3-70b", "heuristic:openai-compatible:4.0"),
        ("openai", "gpt-4o", "o200k_base"),
        ("OpenAI", "OpenAI/GPT-4o-Mini", "o200k_base"),
        ("azure", "gpt-35-turbo", "cl100k_base"),
        ("openai-compatible", "gpt-4.1", "o200k_base"),
        ("openai", "whisper-1", "estimate:o200k_base"),
    ],
)
def test_methods_and_exactness(provider: str, model: str, method: str) -> None:
    counter = TokenCounter()
    count = counter.count_text(provider, model, "Hello, world!")
    exact = not method.startswith(("heuristic", "estimate"))
    assert (count.method, count.exact) == (method, exact)
    assert counter.is_exact(provider, model) is exact
    assert counter.method(provider, model) == method


def test_heuristic_formula() -> None:
    h = Heuristic("anthropic", 3.5)
    assert h.count("") == 0
    assert h.count("a") == 1
    assert h.count("abcdefg") == 2  # 7 / 3.5
    assert h.count("abcdefgh") == 3
    assert h.count("中文") == 2  # one token per CJK character at 3.5
    assert h.count("Привет") == math.ceil(6 * 2 / 3.5)
    assert h.count("😀") == 2
    assert h.count("a中😀é") == math.ceil((1 + 3.5 + 7 + 2) / 3.5)
    assert repr(h) == "Heuristic('heuristic:anthropic:3.5')"


def test_tallies_add_up() -> None:
    text = ENGLISH[:500] + CJK[:200] + "👨‍👩‍👧 Привет"
    whole = Heuristic.tally(text)
    cut = 333
    assert Heuristic.tally(text[:cut]).plus(Heuristic.tally(text[cut:])) == whole
    assert sum(whole) == len(text)


def test_chars_per_token_is_configurable() -> None:
    custom = TokenCounter(chars_per_token={"Anthropic": 2.0, "google": 5, "default": 3.0, "acme": 8})
    default = TokenCounter()
    text = ENGLISH.encode("ascii", "ignore").decode()
    assert custom.count_text("anthropic", "claude-3", text).method == "heuristic:anthropic:2.0"
    assert custom.count_text("anthropic", "claude-3", text).total == math.ceil(len(text) / 2.0)
    assert (
        custom.count_text("anthropic", "claude-3", text).total > default.count_text("anthropic", "claude-3", text).total
    )
    assert custom.count_text("gemini", "gemini-pro", text).method == "heuristic:google:5.0"  # by family
    assert custom.count_text("mistral", "m", text).method == "heuristic:mistral:3.0"  # the default key
    assert custom.count_text("acme", "m", text).method == "heuristic:acme:8.0"
    assert custom.count_text("ollama", "m", text).method == "heuristic:local:4.5"  # built-in starting point kept
    assert dict(DEFAULT_CHARS_PER_TOKEN) == {"anthropic": 3.5, "google": 4.2, "local": 4.5, "default": 4.0}


@pytest.mark.parametrize(
    "bad",
    [
        {"anthropic": 0},
        {"anthropic": -1.0},
        {"anthropic": float("nan")},
        {"anthropic": True},
        {"": 3.0},
        {"anthropic": "3.5"},
    ],
)
def test_invalid_configuration(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        TokenCounter(chars_per_token=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [-1, True, 1.5])
def test_invalid_cache_size(size: object) -> None:
    with pytest.raises(ConfigurationError):
        TokenCounter(cache_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("provider", ["anthropic", "google", "ollama", "unknown-provider"])
def test_cjk_estimate_is_close_to_a_real_tokenizer(provider: str) -> None:
    estimate = TokenCounter().count_text(provider, "model", CJK).total
    real = _o200k(CJK)
    assert real / 2 <= estimate <= real * 2
    naive = math.ceil(len(CJK) / DEFAULT_CHARS_PER_TOKEN.get(provider, 4.0))
    assert estimate > naive * 2  # far above a plain characters/4 estimate, which undercounts CJK


@pytest.mark.parametrize("name", ["prose_en", "code_python", "multilingual", "rtl", "emoji"])
def test_estimates_stay_within_a_factor_of_two(name: str) -> None:
    text = (DATA / f"{name}.txt").read_text(encoding="utf-8")
    for provider in ("anthropic", "google", "ollama"):
        estimate = TokenCounter().count_text(provider, "model", text).total
        assert _o200k(text) / 2 <= estimate <= _o200k(text) * 2, (provider, estimate, _o200k(text))


def test_cache_hits_and_bounds() -> None:
    counter = TokenCounter(cache_size=3)
    assert counter.cache_info().misses == 0
    first = counter.count_text("openai", "gpt-4o", "repeat me")
    second = counter.count_text("openai", "gpt-4o", "repeat me")
    assert first == second
    info = counter.cache_info()
    assert (info.hits, info.misses, info.maxsize, info.currsize) == (1, 1, 3, 1)
    counter.count_text("openai", "gpt-4o-mini", "repeat me")  # same encoding: same cache entry
    assert counter.cache_info().hits == 2
    counter.count_text("anthropic", "claude-3", "repeat me")  # another tokenizer: its own entry
    assert counter.cache_info().misses == 2
    for text in ("a", "b", "c", "d"):
        counter.count_text("openai", "gpt-4o", text)
    assert counter.cache_info().currsize == 3
    counter.cache_clear()
    assert counter.cache_info().currsize == 0


def test_long_texts_bypass_the_cache() -> None:
    counter = TokenCounter()
    text = "word " * (_counter.CACHE_MAX_CHARS // 5 + 10)
    assert counter.count_text("openai", "gpt-4o", text).total == _o200k(text)
    assert counter.count_text("openai", "gpt-4o", text).total == _o200k(text)
    assert counter.cache_info().currsize == 0


def test_cache_can_be_disabled() -> None:
    counter = TokenCounter(cache_size=0)
    assert counter.count_text("openai", "gpt-4o", "hello world").total == 2
    assert counter.count_text("openai", "gpt-4o", "hello world").total == 2
    assert counter.cache_info() == (0, 0, 0, 0)
    counter.cache_clear()  # harmless


def test_profiles_and_closures_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_counter, "_MAX_TEXT_COUNTERS", 4)
    from spendgate.tokens import _profiles

    monkeypatch.setattr(_profiles, "_MAX_PROFILES", 4)
    counter = TokenCounter()
    for i in range(10):
        assert counter.count_text(f"provider-{i}", f"model-{i}", "hi").method == f"heuristic:provider-{i}:4.0"
    assert len(counter._text_counters) <= 4
    assert len(counter._resolver._profiles) <= 4
    assert len(counter._resolver._heuristics) <= 4


def test_counter_is_thread_safe() -> None:
    counter = TokenCounter(cache_size=64)
    texts = [f"message number {i} " * (i % 7 + 1) for i in range(200)]
    expected = [_o200k(t) for t in texts]
    errors: list[str] = []

    def work(offset: int) -> None:
        for k in range(len(texts)):
            i = (k + offset) % len(texts)
            if counter.count_text("openai", "gpt-4o", texts[i]).total != expected[i]:
                errors.append(texts[i])

    threads = [threading.Thread(target=work, args=(n * 37,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_token_count_arithmetic() -> None:
    a = TokenCount(text=5, overhead=3, cached=4, exact=True, method="o200k_base")
    b = TokenCount(image=85, audio=10, tool=2, schema=7, exact=False, method="image:openai")
    assert (a.total, b.total) == (8, 104)
    c = a + b
    assert (c.text, c.image, c.audio, c.tool, c.schema, c.overhead, c.cached) == (5, 85, 10, 2, 7, 3, 4)
    assert (c.total, c.exact, c.method) == (112, False, "o200k_base+image:openai")
    assert (c + a).method == "o200k_base+image:openai"
    assert (TokenCount() + a).method == (a + TokenCount()).method == (a + a).method == "o200k_base"
    assert a.__add__(3) is NotImplemented
    assert c.to_dict() == {
        "total": 112,
        "text": 5,
        "tool": 2,
        "image": 85,
        "audio": 10,
        "schema": 7,
        "cached": 4,
        "overhead": 3,
        "exact": False,
        "method": "o200k_base+image:openai",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.text = 1  # type: ignore[misc]


def test_max_output_tokens_by_longest_prefix() -> None:
    from spendgate.tokens import max_output_tokens

    assert max_output_tokens("gpt-4o-2024-08-06") == 16_384
    assert max_output_tokens("gpt-4") == 8_192
    assert max_output_tokens("gpt-4-turbo-preview") == 4_096
    assert max_output_tokens("openai/o1-mini") == 65_536
    assert max_output_tokens("claude-sonnet-4-20250514") == 64_000
    assert max_output_tokens("my-finetune") is None
    assert max_output_tokens("my-finetune-v2", {"my-finetune": 2048}) == 2048
    assert max_output_tokens("gpt-4o", {"gpt-4o": 1000}) == 1000
