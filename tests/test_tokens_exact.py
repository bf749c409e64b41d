"""OpenAI counts are exact: they equal tiktoken's (built offline from its own constructors) and the
independent Rust tokenizer of bpe-openai, on a varied corpus, for both encodings."""

from __future__ import annotations

import gzip
import importlib
import os
import random
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.load
import tiktoken.model

from spendgate.errors import TokenizationError
from spendgate.tokens import ENCODING_NAMES, TokenCounter, _encodings, encoding_name_for_model, get_encoding

openai_public = importlib.import_module("tiktoken_ext.openai_public")  # untyped: used through Any
DATA = Path(__file__).parent / "data" / "tokens"
CORPUS = {path.stem: path.read_text(encoding="utf-8") for path in sorted(DATA.glob("*.txt"))}
INLINE = {
    "empty": "",
    "spaces": "a    b\t\t c \n\n\n   \r\n  d   ",
    "only_whitespace": " \n \t\r\n\u00a0\u3000  ",
    "trailing_spaces": "end of line   ",
    "special_tokens": "before <|endoftext|> middle <|fim_prefix|><|endofprompt|> after",
    "only_special": "<|endoftext|>",
    "zwj_emoji": "👩‍👩‍👧‍👦👨🏽‍🚀🧑🏿‍🤝‍🧑🏻",
    "numbers": "3.14159265358979 1,000,000 0x1F -42e-7 12345678901234567890",
    "mixed_scripts": "English, Русский, 中文, العربية, עברית, हिन्दी, 日本語, 한국어 🎉",
    "control_chars": "tab\there\x00null\x1bescape\u200bzero-width\ufeffbom",
    "astral_letters": "\U0001d518\U0001d52b\U0001d526 \U0001d544\U0001d552\U0001d565\U0001d559 \U00013000\U00013001",
}


def _long_document() -> str:
    """A 50k+ character document: the corpus plus seeded random words in several scripts."""
    rnd = random.Random(20240607)
    words = [w for text in CORPUS.values() for w in text.split()]
    parts = list(CORPUS.values())
    while sum(map(len, parts)) < 60_000:
        parts.append(" ".join(rnd.choice(words) for _ in range(rnd.randint(5, 40))))
        parts.append(rnd.choice(["\n", "\n\n", "  ", "\t", ". "]))
    return "".join(parts)


LONG = _long_document()
TEXTS = {**CORPUS, **INLINE, "long_document": LONG}


def _reference(name: str, tmp: Path) -> tiktoken.Encoding:
    """tiktoken's own constructor and parser, fed the bpe-openai file instead of the download."""
    local = tmp / f"{name}.tiktoken"
    local.write_bytes(gzip.decompress(_encodings._data_path(name).read_bytes()))

    def load(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        return tiktoken.load.load_tiktoken_bpe(str(local), expected_hash)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # no cache writes
        mp.setattr(openai_public, "load_tiktoken_bpe", load)
        spec = openai_public.ENCODING_CONSTRUCTORS[name]()
    return tiktoken.Encoding(**spec)


def _rust(name: str) -> Any:
    """bpe-openai's Rust tokenizer (its import loads data with a deprecated importlib API: silenced here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai

        return bpe_openai.get_encoding(name)


Encodings = tuple[str, tiktoken.Encoding, tiktoken.Encoding, Any]


@pytest.fixture(scope="module", params=ENCODING_NAMES)
def encodings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Encodings:
    name: str = request.param
    return name, get_encoding(name), _reference(name, tmp_path_factory.mktemp(name)), _rust(name)


def test_corpus_is_varied() -> None:
    assert len(LONG) >= 50_000
    assert {"prose_en", "code_python", "code_rust", "code_javascript", "cjk", "emoji", "rtl"} <= set(CORPUS)


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_counts_equal_tiktoken_and_rust(encodings: Encodings, key: str) -> None:
    name, ours, reference, rust = encodings
    text = TEXTS[key]
    expected = reference.encode_ordinary(text)
    assert ours.encode_ordinary(text) == expected
    assert len(rust.encode_ordinary(text)) == len(expected)
    counted = TokenCounter().count_text("openai", "gpt-4o" if name == "o200k_base" else "gpt-4", text)
    assert (counted.text, counted.total, counted.exact, counted.method) == (len(expected), len(expected), True, name)


def test_same_pattern_and_specials_as_tiktoken(encodings: Encodings) -> None:
    _, ours, reference, _ = encodings
    assert ours._pat_str == reference._pat_str
    assert ours._special_tokens == reference._special_tokens
    assert ours.n_vocab == reference.n_vocab


@pytest.mark.parametrize(
    ("encoding", "text", "ids"),
    [
        ("cl100k_base", "hello world", [15339, 1917]),
        ("o200k_base", "hello world", [24912, 2375]),
        # OpenAI cookbook, "How to count tokens with tiktoken": encoding.encode("tiktoken is great!")
        ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ],
)
def test_published_counts(encoding: str, text: str, ids: list[int]) -> None:
    assert get_encoding(encoding).encode_ordinary(text) == ids
    model = "gpt-4o" if encoding == "o200k_base" else "gpt-3.5-turbo"
    assert TokenCounter().count_text("openai", model, text).total == len(ids)


def test_special_token_text_is_ordinary_text() -> None:
    counter = TokenCounter()
    count = counter.count_text("openai", "gpt-4o", "<|endoftext|>")
    assert count.total == len(get_encoding("o200k_base").encode_ordinary("<|endoftext|>")) > 1


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
        "chatgpt-4o-latest",
        "gpt-4.1",
        "gpt-4.1-nano",
        "gpt-4.5-preview",
        "o1",
        "o1-mini",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-4",
        "gpt-4-0613",
        "gpt-4-turbo",
        "gpt-4-32k",
        "gpt-3.5-turbo",
        "gpt-3.5-turbo-0125",
        "gpt-35-turbo",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",
        "ft:gpt-3.5-turbo-0613:acme::xyz",
    ],
)
def test_model_mapping_agrees_with_tiktoken(model: str) -> None:
    assert encoding_name_for_model(model) == tiktoken.model.encoding_name_for_model(model)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("OpenAI/GPT-4o", "o200k_base"),
        ("azure/gpt-4o-mini", "o200k_base"),
        ("openrouter/openai/gpt-4-turbo", "cl100k_base"),
        ("  GPT-5.1-chat  ", "o200k_base"),
        ("claude-3-5-sonnet", None),
        ("gpt-4.2", None),
        ("o100", None),
        ("llama3", None),
        ("text-davinci-003", None),
    ],
)
def test_model_mapping(model: str, expected: str | None) -> None:
    assert encoding_name_for_model(model) == expected


def test_counters_describe_themselves() -> None:
    assert repr(_encodings.Bpe("o200k_base")) == "Bpe('o200k_base')"
    assert repr(_encodings.Bpe("cl100k_base", exact=False)) == "Bpe('estimate:cl100k_base')"
    with pytest.raises(TokenizationError):
        _encodings.Bpe("r50k_base")


def test_corrupt_data_is_rejected() -> None:
    good = gzip.decompress(_encodings._data_path("cl100k_base").read_bytes())
    assert len(_encodings.load_ranks("cl100k_base", good)) == 100256
    corrupt = good.replace(b" 100\n", b" 101\n", 1)
    with pytest.raises(TokenizationError, match="corrupt"):
        _encodings.load_ranks("cl100k_base", corrupt)


def test_missing_data_and_unknown_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_encodings, "_loaded", {})
    monkeypatch.setattr(_encodings, "_DATA_PACKAGE", "spendgate_no_such_package")
    with pytest.raises(TokenizationError, match="bpe-openai"):
        get_encoding("o200k_base")
    with pytest.raises(TokenizationError, match="unknown encoding 'p50k_base'"):
        get_encoding("p50k_base")


def test_loaded_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_encodings, "_loaded", {})
    reads: list[str] = []
    real_read = _encodings._read_data

    def counting_read(name: str) -> bytes:
        reads.append(name)
        return real_read(name)

    monkeypatch.setattr(_encodings, "_read_data", counting_read)
    results: list[tiktoken.Encoding] = []
    barrier = threading.Barrier(4)

    def load() -> None:
        barrier.wait()
        results.append(get_encoding("cl100k_base"))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads == ["cl100k_base"]
    assert len(results) == 4 and all(r is results[0] for r in results)


def test_nothing_is_loaded_at_import() -> None:
    code = (
        "import spendgate.tokens as t, spendgate.tokens._encodings as e\n"
        "c = t.TokenCounter()\n"
        "assert c.is_exact('openai', 'gpt-4o')\n"
        "assert e._loaded == {}, e._loaded\n"
        "print('lazy')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.stdout.strip() == "lazy", result.stderr
