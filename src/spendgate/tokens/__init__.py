"""Token counting per provider and model: exact where a public tokenizer exists, estimated elsewhere.

* OpenAI models count exactly with o200k_base or cl100k_base, built offline from the rank files that
  ship with ``bpe-openai`` (counts equal tiktoken's).
* Anthropic, Google, local and unknown providers are estimated with a calibrated character heuristic.
* Chat requests add OpenAI's framing, tool definitions, images (by provider formula), audio, and
  structured-output schemas; every :class:`TokenCount` says whether it is ``exact`` and by which
  ``method``.
* :meth:`TokenCounter.stream` counts streamed output for providers that send no usage.

See ``docs/tokens.md``.
"""

from __future__ import annotations

from spendgate.tokens._count import TokenCount
from spendgate.tokens._counter import CacheInfo, TokenCounter
from spendgate.tokens._encodings import ENCODING_NAMES, encoding_name_for_model, get_encoding
from spendgate.tokens._heuristic import Heuristic
from spendgate.tokens._limits import MAX_OUTPUT_TOKENS, max_output_tokens
from spendgate.tokens._media import (
    anthropic_image_tokens,
    audio_tokens,
    gemini_image_tokens,
    image_tokens,
    openai_image_tokens,
    video_tokens,
)
from spendgate.tokens._probe import image_size
from spendgate.tokens._profiles import DEFAULT_CHARS_PER_TOKEN
from spendgate.tokens._stream import StreamAccumulator

__all__ = [
    "CacheInfo",
    "DEFAULT_CHARS_PER_TOKEN",
    "ENCODING_NAMES",
    "Heuristic",
    "MAX_OUTPUT_TOKENS",
    "StreamAccumulator",
    "TokenCount",
    "TokenCounter",
    "anthropic_image_tokens",
    "audio_tokens",
    "encoding_name_for_model",
    "gemini_image_tokens",
    "get_encoding",
    "image_size",
    "image_tokens",
    "max_output_tokens",
    "openai_image_tokens",
    "video_tokens",
]
