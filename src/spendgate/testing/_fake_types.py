"""What a test tells the fake upstream (`FakeReply`, `FakeToolCall`, `Fault`) and what it records (`FakeRequest`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from spendgate.errors import ConfigurationError
from spendgate.usage import Usage

__all__ = ["FakeReply", "FakeRequest", "FakeToolCall", "Fault", "IncludeUsage", "ScriptedReply"]

#: When an OpenAI chat stream ends with a usage chunk: only when the request asks for it with
#: ``stream_options.include_usage`` (what OpenAI does), on every stream, or never.
IncludeUsage = Literal["requested", "always", "never"]


class Fault(StrEnum):
    """A failure the fake injects into a reply. ``FakeReply.fault_after`` says where (see `FakeReply`).

    * ``RESET``: abort the connection with a TCP reset. Streamed events still in flight may be lost
      by the client's kernel; a non-streamed reply sends nothing at all.
    * ``DISCONNECT``: close the connection cleanly in the middle of the body: the client gets every
      byte sent so far, then an incomplete-body error.
    * ``TRUNCATE``: a stream that ends properly at the HTTP level but without ``data: [DONE]`` /
      ``message_stop``; a non-streamed body is cut in half (like ``DISCONNECT``).
    * ``MALFORMED``: a ``data:`` line that is not JSON; a non-streamed body that is not JSON.
    * ``NO_USAGE``: no usage at all, even when the request asks for it.
    """

    RESET = "reset"
    DISCONNECT = "disconnect"
    TRUNCATE = "truncate"
    MALFORMED = "malformed"
    NO_USAGE = "no_usage"


@dataclass(frozen=True, slots=True)
class FakeToolCall:
    """One tool call in a scripted reply: OpenAI ``tool_calls[]`` or an Anthropic ``tool_use`` block.

    ``arguments`` is a mapping or a JSON object as text; ``id`` defaults to a deterministic
    ``call_fake…`` / ``toolu_fake…`` id.
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigurationError("FakeToolCall.name must not be empty")
        if isinstance(self.arguments, str):
            try:
                parsed = json.loads(self.arguments)
            except ValueError as exc:
                raise ConfigurationError(f"FakeToolCall.arguments is not JSON: {self.arguments!r}") from exc
            if not isinstance(parsed, dict):
                raise ConfigurationError("FakeToolCall.arguments must be a JSON object")

    @property
    def arguments_json(self) -> str:
        """The arguments as compact JSON text (OpenAI's ``function.arguments``)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), separators=(",", ":"))

    @property
    def arguments_object(self) -> dict[str, Any]:
        """The arguments as a dict (Anthropic's ``input``)."""
        parsed: dict[str, Any] = json.loads(self.arguments_json)
        return parsed


def _check_seconds(name: str, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not math.isfinite(value) or value < 0):
        raise ConfigurationError(f"FakeReply.{name} must be a finite number of seconds >= 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeReply:
    """How the fake answers one request. Every field is optional; unset fields use the fake's defaults.

    * ``text``: the reply text, sent as is (``max_tokens`` does not cut a scripted text). Without it
      the fake's ``reply_text`` is used, cut to ``max_tokens``.
    * ``chunks``: the stream deltas, in order (their concatenation is the text; ``text`` may then be
      left out). By default the text is streamed word by word.
    * ``tool_calls``: calls the model makes; used when the request declares ``tools`` (a model cannot
      call undeclared tools, so without ``tools`` the reply is plain text).
    * ``usage``: reported instead of the counted usage, in spendgate's convention (``input_tokens``
      includes cache reads and writes; converted to each provider's shape).
    * ``model``: the model name the reply reports (e.g. a dated snapshot); default: the requested one.
    * ``status``: an HTTP status; 400 and above answer with the provider's JSON error body, whose
      message is ``error`` and whose type is ``error_type`` (defaults follow the provider per status).
    * ``retry_after``: seconds for a ``Retry-After`` header (a 429 gets ``1`` unless set).
    * ``headers``: extra response headers.
    * ``latency_s``: wait before answering (default: the fake's ``latency_s``); ``chunk_delay_s``:
      wait between streamed events.
    * ``fault`` and ``fault_after``: inject a `Fault` after ``fault_after`` streamed events (default:
      just before the final ``[DONE]`` / ``message_stop``).
    """

    text: str | None = None
    chunks: Sequence[str] | None = None
    tool_calls: Sequence[FakeToolCall] = ()
    usage: Usage | None = None
    model: str | None = None
    status: int = 200
    error: str | None = None
    error_type: str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    latency_s: float | None = None
    chunk_delay_s: float = 0.0
    fault: Fault | None = None
    fault_after: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 200 <= self.status <= 599:
            raise ConfigurationError(f"FakeReply.status must be an HTTP status from 200 to 599, got {self.status!r}")
        if self.chunks is not None:
            chunks = tuple(self.chunks)
            if not all(isinstance(c, str) for c in chunks):
                raise ConfigurationError("FakeReply.chunks must be strings")
            if self.text is not None and "".join(chunks) != self.text:
                raise ConfigurationError("FakeReply.chunks must concatenate to FakeReply.text")
            object.__setattr__(self, "chunks", chunks)
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        object.__setattr__(self, "headers", dict(self.headers))
        _check_seconds("latency_s", self.latency_s)
        _check_seconds("chunk_delay_s", self.chunk_delay_s)
        _check_seconds("retry_after", self.retry_after)
        if self.fault is not None:
            object.__setattr__(self, "fault", Fault(self.fault))
        if self.fault_after is not None and (isinstance(self.fault_after, bool) or self.fault_after < 0):
            raise ConfigurationError(f"FakeReply.fault_after must be >= 0, got {self.fault_after!r}")

    @property
    def reply_text(self) -> str | None:
        """The scripted text, from ``text`` or ``chunks``; None when the fake's default applies."""
        if self.text is not None:
            return self.text
        return None if self.chunks is None else "".join(self.chunks)


#: The name used when queueing replies with ``FakeUpstream.script``; the same class as `FakeReply`.
ScriptedReply = FakeReply


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One request the fake received. ``headers`` has lower-case names; ``body`` is the parsed JSON
    (None when there was no body or it was not JSON); ``time`` comes from the fake's clock; ``index``
    counts requests from 0 (``reset()`` does not restart it, so ids stay unique)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    raw_body: bytes
    time: datetime
    index: int

    @property
    def provider(self) -> Literal["openai", "anthropic"]:
        """Whose wire format applies: Anthropic for ``/v1/messages…`` or an ``anthropic-version`` header."""
        if self.path.startswith("/v1/messages") or "anthropic-version" in self.headers:
            return "anthropic"
        return "openai"

    @property
    def model(self) -> str | None:
        """The requested model, if the body names one."""
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        """Whether the body asks for a streamed reply."""
        return isinstance(self.body, dict) and self.body.get("stream") is True

    @property
    def api_key(self) -> str | None:
        """The key sent as ``x-api-key`` or ``Authorization: Bearer …``, if any."""
        key = self.headers.get("x-api-key")
        if key:
            return key
        auth = self.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None
