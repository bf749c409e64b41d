"""Counting a response's output tokens as a stream arrives, for providers that send no usage.

BPE is not additive across arbitrary chunk boundaries ("hel" + "lo" is not "hello"), so each text
stream keeps a *tail* after the last position where the tokenizer's pre-tokenizer is guaranteed to
split whatever follows, and only the tail is recounted. Both OpenAI patterns split

* before a space that follows a non-space character (no pattern runs from a visible character into
  a following space), and
* after a newline that is followed by a character that is neither whitespace nor "/" (the whitespace
  run ending in that newline is one piece whatever comes after it; o200k's ``[\\r\\n/]*`` is why "/" is
  excluded).

So the count of the whole text is always the finished prefix's count plus the tail's count. Text
without any such boundary (long CJK runs) keeps a growing tail and is simply recounted on demand.
Heuristic counts are additive tallies, so they need no tail at all.

An accumulator belongs to one response stream; it is not meant to be shared between threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from spendgate.errors import InvalidUsageError
from spendgate.tokens._count import TokenCount
from spendgate.tokens._heuristic import Heuristic, Tally
from spendgate.tokens._profiles import Profile

__all__ = ["StreamAccumulator", "last_boundary"]

_FLUSH_CHARS = 4096  # pending text finalised eagerly beyond this, so memory and recounts stay bounded


def last_boundary(text: str) -> int:
    """The last index ``k > 0`` at which ``text`` can be cut without changing its token count, or 0."""
    best = 0
    k = text.rfind(" ")
    while k > 0:
        if not text[k - 1].isspace():
            best = k
            break
        k = text.rfind(" ", 0, k)
    k = text.rfind("\n")
    while k >= best:  # a cut at k + 1 beats the space cut
        if k + 1 < len(text) and not text[k + 1].isspace() and text[k + 1] != "/":
            return k + 1
        k = text.rfind("\n", 0, k)
    return best


class _BpeText:
    """One text stream counted with a BPE tokenizer: finished prefix count + recounted tail."""

    __slots__ = ("_count", "_done", "_pending", "_pending_chars", "_tail")

    def __init__(self, count: Callable[[str], int]) -> None:
        self._count = count
        self._done = 0
        self._tail = ""
        self._pending: list[str] = []
        self._pending_chars = 0

    def add(self, delta: str) -> None:
        self._pending.append(delta)
        self._pending_chars += len(delta)
        if self._pending_chars > _FLUSH_CHARS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._tail += "".join(self._pending)
            self._pending.clear()
            self._pending_chars = 0
        cut = last_boundary(self._tail)
        if cut:
            self._done += self._count(self._tail[:cut])
            self._tail = self._tail[cut:]

    def tokens(self) -> int:
        self._flush()
        return self._done + (self._count(self._tail) if self._tail else 0)


class _HeuristicText:
    """One text stream counted with the character heuristic: an additive tally."""

    __slots__ = ("_heuristic", "_tally")

    def __init__(self, heuristic: Heuristic) -> None:
        self._heuristic = heuristic
        self._tally = Tally()

    def add(self, delta: str) -> None:
        self._tally = self._tally.plus(self._heuristic.tally(delta))

    def tokens(self) -> int:
        return self._heuristic.tokens(self._tally)


def _as_mapping(chunk: object) -> Mapping[str, Any]:
    if isinstance(chunk, Mapping):
        return chunk
    dump = getattr(chunk, "model_dump", None)  # OpenAI/Anthropic SDK objects (pydantic models)
    if callable(dump):
        dumped = dump()
        if isinstance(dumped, Mapping):
            return dumped
    raise InvalidUsageError("chunk", f"must be a mapping (a parsed stream chunk), got {type(chunk).__name__}")


class StreamAccumulator:
    """Counts output tokens of one streamed response, chunk by chunk.

    Feed it raw text (:meth:`add_text`) or parsed chunks (:meth:`add_chunk`: OpenAI chat-completion
    chunks or Anthropic message events). Content of each choice/content block is counted as one text;
    tool-call names and arguments go to ``tool``. A chunk carrying ``usage`` is remembered as the
    provider's own figure (:attr:`reported_usage`), which always beats our count.
    """

    def __init__(self, profile: Profile) -> None:
        self._profile = profile
        self._text: dict[tuple[object, ...], _BpeText | _HeuristicText] = {}
        self._tool: dict[tuple[object, ...], _BpeText | _HeuristicText] = {}
        self._tool_names: dict[tuple[object, ...], str] = {}
        self._reported: dict[str, Any] | None = None

    def _stream(
        self, streams: dict[tuple[object, ...], _BpeText | _HeuristicText], key: tuple[object, ...]
    ) -> _BpeText | _HeuristicText:
        stream = streams.get(key)
        if stream is None:
            counter = self._profile.counter
            stream = _HeuristicText(counter) if isinstance(counter, Heuristic) else _BpeText(counter.count)
            streams[key] = stream
        return stream

    def add_text(self, delta: str, *, index: int = 0) -> None:
        """Append output text (of choice ``index``)."""
        if not isinstance(delta, str):
            raise InvalidUsageError("delta", f"must be a string, got {type(delta).__name__}")
        if delta:
            self._stream(self._text, ("content", index)).add(delta)

    def _add_tool(self, key: tuple[object, ...], name: object, arguments: object) -> None:
        if isinstance(name, str) and name:
            self._tool_names[key] = self._tool_names.get(key, "") + name
        else:
            self._tool_names.setdefault(key, "")
        if isinstance(arguments, str) and arguments:
            self._stream(self._tool, key).add(arguments)

    def _remember_usage(self, usage: object) -> None:
        if isinstance(usage, Mapping) and usage:
            self._reported = {**(self._reported or {}), **usage}

    def add_chunk(self, chunk: object) -> None:
        """Take one parsed stream chunk: an OpenAI ``chat.completion.chunk`` or an Anthropic event."""
        data = _as_mapping(chunk)
        self._remember_usage(data.get("usage"))
        if "choices" in data:
            self._add_openai_choices(data["choices"])
        elif isinstance(data.get("type"), str):
            self._add_anthropic_event(data)

    def _add_openai_choices(self, choices: object) -> None:
        if not isinstance(choices, list | tuple):
            return
        for choice in choices:
            if not isinstance(choice, Mapping) or not isinstance(choice.get("delta"), Mapping):
                continue
            index = choice.get("index", 0)
            delta = choice["delta"]
            for field in ("content", "reasoning_content", "reasoning", "refusal"):
                value = delta.get(field)
                if isinstance(value, str) and value:
                    self._stream(self._text, (field, index)).add(value)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, Mapping):
                    function = call.get("function") or {}
                    self._add_tool((index, call.get("index", 0)), function.get("name"), function.get("arguments"))
            legacy = delta.get("function_call")
            if isinstance(legacy, Mapping):
                self._add_tool((index, "function_call"), legacy.get("name"), legacy.get("arguments"))

    def _add_anthropic_event(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        if kind == "message_start" and isinstance(event.get("message"), Mapping):
            self._remember_usage(event["message"].get("usage"))
        elif kind == "content_block_start" and isinstance(event.get("content_block"), Mapping):
            block = event["content_block"]
            if block.get("type") == "tool_use":
                self._add_tool(("block", event.get("index", 0)), block.get("name"), None)
        elif kind == "content_block_delta" and isinstance(event.get("delta"), Mapping):
            delta = event["delta"]
            key = ("block", event.get("index", 0))
            if delta.get("type") == "input_json_delta":
                self._add_tool(key, None, delta.get("partial_json"))
            else:
                value = delta.get("text", delta.get("thinking"))
                if isinstance(value, str) and value:
                    self._stream(self._text, key).add(value)

    @property
    def reported_usage(self) -> dict[str, Any] | None:
        """The usage the provider reported in the stream (merged across chunks), or None."""
        return None if self._reported is None else dict(self._reported)

    @property
    def output_tokens(self) -> int:
        """Output tokens counted so far."""
        return self.result().total

    def result(self) -> TokenCount:
        """The output counted so far: ``text`` (content, reasoning, refusals) and ``tool`` (tool calls)."""
        count = self._profile.counter.count
        text = sum(stream.tokens() for stream in self._text.values())
        tool = sum(stream.tokens() for stream in self._tool.values())
        tool += sum(count(name) for name in self._tool_names.values() if name)
        return TokenCount(
            text=text, tool=tool, exact=self._profile.exact and not self._tool_names, method=self._profile.method
        )
