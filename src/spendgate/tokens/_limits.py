"""Maximum output tokens per model: the worst case of a request that sets no ``max_tokens``.

The genai-prices catalog has no output limits, so spendgate keeps this table (from the providers'
model pages, 2025). Names match by longest prefix, case-insensitively, after any ``provider/`` part.
A model not listed has no known maximum (the caller falls back to a configured cap); pass
``overrides`` (e.g. from ``Settings.max_output_tokens``) to correct or extend the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["MAX_OUTPUT_TOKENS", "max_output_tokens"]

MAX_OUTPUT_TOKENS: Mapping[str, int] = MappingProxyType(
    {
        # OpenAI
        "gpt-3.5-turbo": 4_096,
        "gpt-4": 8_192,
        "gpt-4-turbo": 4_096,
        "gpt-4o": 16_384,
        "chatgpt-4o": 16_384,
        "gpt-4.1": 32_768,
        "gpt-4.5": 16_384,
        "gpt-5": 128_000,
        "o1": 100_000,
        "o1-mini": 65_536,
        "o3": 100_000,
        "o4-mini": 100_000,
        # Anthropic
        "claude-3-haiku": 4_096,
        "claude-3-sonnet": 4_096,
        "claude-3-opus": 4_096,
        "claude-3-5-sonnet": 8_192,
        "claude-3-5-haiku": 8_192,
        "claude-3-7-sonnet": 64_000,
        "claude-sonnet-4": 64_000,
        "claude-opus-4": 32_000,
        "claude-haiku-4": 64_000,
        # Google
        "gemini-pro": 2_048,
        "gemini-1.0-pro": 2_048,
        "gemini-1.5": 8_192,
        "gemini-2.0": 8_192,
        "gemini-2.5": 65_536,
    }
)


def max_output_tokens(model: str, overrides: Mapping[str, int] | None = None) -> int | None:
    """The most output tokens ``model`` can produce in one call, if known."""
    name = model.rsplit("/", 1)[-1].lower()
    for table in (overrides or {}, MAX_OUTPUT_TOKENS):
        best = max((prefix for prefix in table if name.startswith(prefix.lower())), key=len, default=None)
        if best is not None:
            return table[best]
    return None
