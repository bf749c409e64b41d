"""The assistant's turn, before any wire format: its text, stream pieces, tool calls, finish reason and usage.

Usage is counted with spendgate's own `TokenCounter`: the prompt with the provider's chat rules and the
reply as plain text, so for OpenAI-family models the figures are the exact counts OpenAI would report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from spendgate.testing._fake_types import FakeReply, FakeToolCall
from spendgate.testing._fake_wire import Provider
from spendgate.tokens import TokenCounter
from spendgate.usage import Usage

__all__ = ["Finish", "Turn", "fit_text", "json_pieces", "make_turn", "split_text"]

#: Why generation stopped, in OpenAI's words (the Anthropic renderer maps them to its own).
Finish = Literal["stop", "length", "tool_calls"]

_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True, slots=True)
class Turn:
    """One generated reply. ``usage`` covers every choice of the request."""

    model: str
    text: str
    pieces: tuple[str, ...]
    tool_calls: tuple[FakeToolCall, ...]
    finish: Finish
    usage: Usage


def split_text(text: str) -> tuple[str, ...]:
    """Stream pieces: one word with its trailing white space each ("This ", "is ", ...)."""
    return tuple(_WORDS.findall(text))


def json_pieces(text: str, size: int = 8) -> tuple[str, ...]:
    """Stream pieces of tool-call argument JSON: ``size`` characters each (at least one piece)."""
    return tuple(text[i : i + size] for i in range(0, len(text), size)) or ("",)


def _fitting(units: list[str], limit: int, count: Callable[[str], int], base: str = "") -> int:
    """How many leading ``units`` fit after ``base`` while the text counts at most ``limit`` tokens."""
    lo, hi = 0, len(units)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(base + "".join(units[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def fit_text(text: str, limit: int | None, count: Callable[[str], int], *, fill: bool = False) -> tuple[str, bool]:
    """``text`` within ``limit`` tokens, and whether it hit the limit (a ``length`` finish).

    With ``fill`` the text is repeated (joined by spaces) to use the whole limit, the way a model that
    runs out of tokens would. Cutting keeps whole words first, then characters of the next word.
    """
    if limit is None or count(text) == 0:
        return text, False
    if fill:
        reps = 1
        while count(" ".join([text] * reps)) < limit:
            reps *= 2
        text = " ".join([text] * reps)
    elif count(text) <= limit:
        return text, False
    words = list(split_text(text))
    n = _fitting(words, limit, count)
    kept = "".join(words[:n])
    if n < len(words):  # then as many characters of the next word as still fit
        letters = list(words[n])
        kept += "".join(letters[: _fitting(letters, limit, count, kept)])
    return kept, True


def _tool_tokens(provider: Provider, model: str, counter: TokenCounter, calls: tuple[FakeToolCall, ...]) -> int:
    """An estimate of the output tokens of tool calls: their names and argument JSON as text."""
    return sum(counter.count_text(provider, model, call.name + call.arguments_json).total for call in calls)


def make_turn(
    reply: FakeReply,
    *,
    provider: Provider,
    model: str,
    counter: TokenCounter,
    input_tokens: int,
    default_text: str,
    max_tokens: int | None,
    fill: bool,
    cached_tokens: int,
    has_tools: bool,
    choices: int = 1,
) -> Turn:
    """Decide the reply's content and count its usage (unless the reply scripts its own usage)."""

    def count(text: str) -> int:
        return counter.count_text(provider, model, text).total

    calls = reply.tool_calls if has_tools else ()
    scripted = reply.reply_text
    finish: Finish = "tool_calls" if calls else "stop"
    if scripted is not None:
        text = scripted
    elif calls:
        text = ""
    else:
        text, hit_limit = fit_text(default_text, max_tokens, count, fill=fill)
        finish = "length" if hit_limit else "stop"
    pieces = tuple(reply.chunks) if reply.chunks is not None else split_text(text)
    usage = reply.usage
    if usage is None:
        output = count(text) + _tool_tokens(provider, model, counter, tuple(calls))
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output * choices,
            cache_read_tokens=min(cached_tokens, input_tokens),
        )
    return Turn(
        model=reply.model or model,
        text=text,
        pieces=pieces,
        tool_calls=tuple(calls),
        finish=finish,
        usage=usage,
    )
