"""Reading usage and text out of provider responses: SDK objects or plain dicts, in spendgate's convention.

* OpenAI chat/embeddings: ``prompt_tokens`` already includes ``prompt_tokens_details.cached_tokens``
  and ``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``: the same
  convention as :class:`~spendgate.usage.Usage`, so fields map one to one.
* OpenAI Responses-style (``input_tokens``/``output_tokens`` with ``*_details``): the same convention.
* Anthropic counts cache reads and writes *outside* ``input_tokens``: converted with
  :meth:`Usage.from_anthropic`.
* Anything else goes through ``genai_prices.extract_usage`` for the provider, whose ``Usage`` uses
  spendgate's convention too (input includes cache, output includes reasoning).

Nothing here does I/O; every reader returns ``None`` when the response carries no usage it understands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from spendgate.usage import Usage

__all__ = [
    "anthropic_usage",
    "field",
    "genai_usage",
    "openai_usage",
    "response_text",
    "to_int",
    "usage_of",
]

_ANTHROPIC_KEYS = ("cache_read_input_tokens", "cache_creation_input_tokens")


def field(obj: Any, *path: str) -> Any:
    """``obj[a][b]…`` for mappings or ``obj.a.b…`` for SDK objects; ``None`` as soon as a step is missing."""
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    return obj


def to_int(value: Any) -> int:
    """A reported count as an int (0 for ``None`` and for anything that is not an integer)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return value


def _has_any(usage: Any, *names: str) -> bool:
    return any(field(usage, name) is not None for name in names)


def openai_usage(usage: Any) -> Usage | None:
    """OpenAI's ``usage`` object (chat, embeddings, or the Responses API's shape), or ``None``."""
    if usage is None:
        return None
    if _has_any(usage, "prompt_tokens", "completion_tokens"):
        prompt, completion = field(usage, "prompt_tokens_details"), field(usage, "completion_tokens_details")
        return Usage(
            input_tokens=to_int(field(usage, "prompt_tokens")),
            output_tokens=to_int(field(usage, "completion_tokens")),
            cache_read_tokens=to_int(field(prompt, "cached_tokens")),
            cache_write_tokens=to_int(field(prompt, "cache_write_tokens")),
            input_audio_tokens=to_int(field(prompt, "audio_tokens")),
            input_image_tokens=to_int(field(prompt, "image_tokens")),
            reasoning_tokens=to_int(field(completion, "reasoning_tokens")),
            output_audio_tokens=to_int(field(completion, "audio_tokens")),
        )
    if _has_any(usage, "input_tokens", "output_tokens"):
        details_in, details_out = field(usage, "input_tokens_details"), field(usage, "output_tokens_details")
        return Usage(
            input_tokens=to_int(field(usage, "input_tokens")),
            output_tokens=to_int(field(usage, "output_tokens")),
            cache_read_tokens=to_int(field(details_in, "cached_tokens")),
            reasoning_tokens=to_int(field(details_out, "reasoning_tokens")),
        )
    return None


def anthropic_usage(usage: Any) -> Usage | None:
    """Anthropic's ``usage`` (cache tokens outside ``input_tokens``), or ``None``."""
    if usage is None or not _has_any(usage, "input_tokens", "output_tokens", *_ANTHROPIC_KEYS):
        return None
    converted = Usage.from_anthropic(
        input_tokens=to_int(field(usage, "input_tokens")),
        output_tokens=to_int(field(usage, "output_tokens")),
        cache_read_input_tokens=to_int(field(usage, "cache_read_input_tokens")),
        cache_creation_input_tokens=to_int(field(usage, "cache_creation_input_tokens")),
    )
    searches = to_int(field(usage, "server_tool_use", "web_search_requests"))
    return dataclasses.replace(converted, web_searches=searches) if searches else converted


def _as_data(response: Any) -> Any:
    if isinstance(response, Mapping):
        return response
    dump = getattr(response, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", warnings=False)
        except TypeError:  # a model_dump without those parameters
            return dump()
    return response


def genai_usage(provider: str, response: Any) -> Usage | None:
    """Usage found by ``genai_prices.extract_usage`` for ``provider``, or ``None`` if it finds none."""
    import genai_prices

    try:
        found = genai_prices.extract_usage(_as_data(response), provider_id=provider).usage
    except Exception:  # genai-prices raises ValueError/LookupError/KeyError for shapes it does not know
        return None
    counts = {
        "input_tokens": "input_tokens",
        "output_tokens": "output_tokens",
        "cache_read_tokens": "cache_read_tokens",
        "cache_write_tokens": "cache_write_tokens",
        "reasoning_tokens": "output_reasoning_tokens",
        "input_audio_tokens": "input_audio_tokens",
        "output_audio_tokens": "output_audio_tokens",
        "input_image_tokens": "input_image_tokens",
        "web_searches": "web_searches",
    }
    values: dict[str, Any] = {ours: int(getattr(found, theirs, 0) or 0) for ours, theirs in counts.items()}
    if not any(values.values()):
        return None
    return Usage(**values)


def usage_of(provider: str, response: Any) -> Usage | None:
    """The usage a response reports, whatever its provider's shape (see the module doc), or ``None``."""
    usage = field(response, "usage")
    if usage is not None:
        if provider == "anthropic" or _has_any(usage, *_ANTHROPIC_KEYS):
            return anthropic_usage(usage)
        if _has_any(usage, "prompt_tokens", "completion_tokens"):
            return openai_usage(usage)
    if provider not in ("openai", "anthropic"):
        found = genai_usage(provider, response)
        if found is not None:
            return found
    return openai_usage(usage)


def response_text(response: Any) -> str:
    """The generated text of a response (OpenAI choices, Anthropic text blocks, or a plain string)."""
    if isinstance(response, str):
        return response
    parts: list[str] = []
    for choice in field(response, "choices") or ():
        content = field(choice, "message", "content")
        if isinstance(content, str):
            parts.append(content)
    content = field(response, "content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list | tuple):
        for block in content:
            text = field(block, "text")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)
