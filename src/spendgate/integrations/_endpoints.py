"""How each metered API's requests and responses look: what to count before the call, the worst-case
output, where the usage is, and how to ask a stream for its usage.

:class:`Endpoint` is the generic shape used by :func:`~spendgate.integrations.track` (any function whose
keyword arguments look like a chat request); the subclasses describe the SDK methods that
:func:`~spendgate.integrations.instrument` patches. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Literal

from spendgate.integrations._usage import anthropic_usage, field, openai_usage, usage_of
from spendgate.tokens import TokenCounter
from spendgate.usage import Usage

__all__ = [
    "ANTHROPIC_MESSAGES",
    "GENERIC",
    "OPENAI_CHAT",
    "OPENAI_EMBEDDINGS",
    "AnthropicMessages",
    "Endpoint",
    "OpenAIChat",
    "OpenAIEmbeddings",
    "StreamStyle",
]

#: Whose streaming events a stream carries.
StreamStyle = Literal["openai", "anthropic"]


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def materialize(kwargs: MutableMapping[str, Any], name: str) -> list[Any] | None:
    """The sequence argument ``name`` as a list (an iterator is read once and put back as a list)."""
    value = kwargs.get(name)
    if isinstance(value, list):
        return value
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        items = list(value)
        kwargs[name] = items
        return items
    return None


class Endpoint:
    """The generic request shape: ``messages``, ``tools``, ``system``, ``prompt`` or text ``input``,
    and ``max_completion_tokens``/``max_tokens``/``max_output_tokens`` if the call has them."""

    request_type: str | None = None
    stream_style: StreamStyle | None = None

    def input_tokens(self, counter: TokenCounter, provider: str, model: str, kwargs: MutableMapping[str, Any]) -> int:
        """The counted input of the request (0 when it has nothing countable)."""
        messages = materialize(kwargs, "messages")
        tools = materialize(kwargs, "tools")
        system = kwargs.get("system")
        if not isinstance(system, str):
            system = materialize(kwargs, "system")
        text = next((v for k in ("prompt", "input") if isinstance(v := kwargs.get(k), str)), None)
        response_format = kwargs.get("response_format")
        if not isinstance(response_format, Mapping):
            response_format = None
        if messages is None and tools is None and system is None and text is None and response_format is None:
            return 0
        return counter.count(
            provider, model, text=text, messages=messages, tools=tools, system=system, response_format=response_format
        ).total

    def max_tokens(self, kwargs: Mapping[str, Any]) -> int | None:
        """The most output the request allows (None: the model's maximum applies)."""
        for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            value = _positive_int(kwargs.get(name))
            if value is not None:
                return value
        return None

    def usage(self, provider: str, response: Any) -> Usage | None:
        """The usage the response reports, or None."""
        return usage_of(provider, response)

    def prepare_stream(self, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """The request to send for a stream, and whether the caller must not see a usage-only chunk."""
        return dict(kwargs), False


class OpenAIChat(Endpoint):
    """``chat.completions.create``: worst-case output is ``n`` times the limit; streams get usage added."""

    request_type = "chat"
    stream_style: StreamStyle | None = "openai"

    def max_tokens(self, kwargs: Mapping[str, Any]) -> int | None:
        limit = super().max_tokens(kwargs)
        n = _positive_int(kwargs.get("n"))
        return limit * n if limit is not None and n else limit

    def usage(self, provider: str, response: Any) -> Usage | None:
        return openai_usage(field(response, "usage"))

    def prepare_stream(self, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Ask for the final usage chunk (``stream_options.include_usage``), keeping the caller's other
        options; the chunk is hidden from a caller who did not ask for it."""
        options = kwargs.get("stream_options")
        given = dict(options) if isinstance(options, Mapping) else {}
        asked = given.get("include_usage") is True
        return {**kwargs, "stream_options": {**given, "include_usage": True}}, not asked


class OpenAIEmbeddings(Endpoint):
    """``embeddings.create``: input is text, texts or token arrays; there is no output."""

    request_type = "embedding"

    def input_tokens(self, counter: TokenCounter, provider: str, model: str, kwargs: MutableMapping[str, Any]) -> int:
        value = kwargs.get("input")
        if isinstance(value, str):
            return counter.count(provider, model, text=value).total
        items = materialize(kwargs, "input") or []
        total = 0
        for item in items:
            if isinstance(item, str):
                total += counter.count(provider, model, text=item).total
            elif isinstance(item, int):
                total += 1  # one token id of a single token array
            else:
                total += sum(1 for _ in item) if isinstance(item, Iterable) else 0
        return total

    def max_tokens(self, kwargs: Mapping[str, Any]) -> int | None:
        return 0

    def usage(self, provider: str, response: Any) -> Usage | None:
        return openai_usage(field(response, "usage"))


class AnthropicMessages(Endpoint):
    """``messages.create`` / ``messages.stream``: cache tokens are reported outside ``input_tokens``."""

    request_type = "chat"
    stream_style: StreamStyle | None = "anthropic"

    def usage(self, provider: str, response: Any) -> Usage | None:
        return anthropic_usage(field(response, "usage"))


GENERIC = Endpoint()
OPENAI_CHAT = OpenAIChat()
OPENAI_EMBEDDINGS = OpenAIEmbeddings()
ANTHROPIC_MESSAGES = AnthropicMessages()
