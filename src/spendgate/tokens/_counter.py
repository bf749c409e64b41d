"""`TokenCounter`: the entry point that ties profiles, the LRU cache and the chat rules together."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from spendgate.errors import ConfigurationError
from spendgate.tokens._chat import count_request
from spendgate.tokens._count import TokenCount
from spendgate.tokens._encodings import Bpe
from spendgate.tokens._heuristic import Heuristic
from spendgate.tokens._profiles import Resolver
from spendgate.tokens._stream import StreamAccumulator

__all__ = ["CacheInfo", "TokenCounter"]

#: Texts longer than this are counted without the cache (they would pin too much memory).
CACHE_MAX_CHARS = 32_768

_MAX_TEXT_COUNTERS = 1024


class CacheInfo(NamedTuple):
    """Statistics of the text-count cache."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


def _count_uncached(counter: Bpe | Heuristic, text: str) -> int:
    return counter.count(text)


class TokenCounter:
    """Counts tokens per provider and model: exact where a public tokenizer exists, estimated elsewhere.

    ``chars_per_token`` maps provider names (or the families "anthropic", "google", "local", or
    "default") to characters per token for the heuristic. ``cache_size`` bounds the LRU cache of text
    counts (0 disables it); the cache is keyed by tokenizer and text and is safe to share between
    threads, as is the counter itself.
    """

    def __init__(self, *, chars_per_token: Mapping[str, float] | None = None, cache_size: int = 4096) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError(f"cache_size: must be a non-negative integer, got {cache_size!r}")
        self._resolver = Resolver(chars_per_token)
        self._cache_size = cache_size
        self._cached: functools._lru_cache_wrapper[int] | None = None
        if cache_size:
            self._cached = functools.lru_cache(maxsize=cache_size)(_count_uncached)
        self._text_counters: dict[Bpe | Heuristic, Callable[[str], int]] = {}

    def _counter_for(self, counter: Bpe | Heuristic) -> Callable[[str], int]:
        """``counter.count`` behind the LRU cache (one closure per tokenizer, made once)."""
        found = self._text_counters.get(counter)
        if found is not None:
            return found
        cached = self._cached
        if cached is None:
            found = counter.count
        else:
            raw = counter.count

            def found(text: str) -> int:
                return raw(text) if len(text) > CACHE_MAX_CHARS else cached(counter, text)

        if len(self._text_counters) >= _MAX_TEXT_COUNTERS:
            self._text_counters.clear()
        self._text_counters[counter] = found
        return found

    def count(
        self,
        provider: str,
        model: str,
        *,
        text: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        system: str | Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> TokenCount:
        """Input tokens of a request: any mix of plain ``text``, chat ``messages`` (OpenAI or Anthropic
        shapes), a separate ``system`` prompt (Anthropic), ``tools`` and a ``response_format``.

        Raises :class:`~spendgate.errors.InvalidUsageError` naming the field (e.g. "messages[2].content")
        when the input has the wrong shape.
        """
        profile = self._resolver.profile(provider, model)
        return count_request(
            profile,
            self._counter_for(profile.counter),
            text=text,
            messages=messages,
            tools=tools,
            system=system,
            response_format=response_format,
        )

    def count_text(self, provider: str, model: str, text: str) -> TokenCount:
        """Tokens of a plain ``text`` (no chat framing)."""
        return self.count(provider, model, text=text)

    def stream(self, provider: str, model: str) -> StreamAccumulator:
        """A fresh accumulator that counts a streamed response's output for ``provider``/``model``."""
        return StreamAccumulator(self._resolver.profile(provider, model))

    def is_exact(self, provider: str, model: str) -> bool:
        """Whether text for ``provider``/``model`` is counted by the provider's own tokenizer."""
        return self._resolver.profile(provider, model).exact

    def method(self, provider: str, model: str) -> str:
        """How text for ``provider``/``model`` is counted, e.g. "o200k_base" or "heuristic:anthropic:3.5"."""
        return self._resolver.profile(provider, model).method

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the text-count cache."""
        if self._cached is None:
            return CacheInfo(0, 0, 0, 0)
        info = self._cached.cache_info()
        return CacheInfo(info.hits, info.misses, self._cache_size, info.currsize)

    def cache_clear(self) -> None:
        """Empty the text-count cache."""
        if self._cached is not None:
            self._cached.cache_clear()
