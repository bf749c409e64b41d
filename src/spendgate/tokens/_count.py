"""`TokenCount`: how many tokens something is, by category, and how sure we are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Breakdown", "TokenCount"]


def _merge_methods(a: str, b: str) -> str:
    """Join two method strings, keeping each distinct method once and in order."""
    if a == b or not b:
        return a
    if not a:
        return b
    parts = a.split("+")
    parts.extend(p for p in b.split("+") if p not in parts)
    return "+".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenCount:
    """Tokens of a text or request, broken down by category.

    ``text``, ``tool``, ``image``, ``audio``, ``schema`` and ``overhead`` are disjoint and add up to
    :attr:`total`. ``tool`` covers tool definitions and tool calls, ``schema`` a structured-output
    response format, ``overhead`` the chat framing (per-message tokens, roles, reply priming).
    ``cached`` is informational: how many of those tokens the caller marked as cache-eligible
    (Anthropic ``cache_control`` prefixes); they are already counted in their own categories and are
    not added to :attr:`total` again.

    ``exact`` is True only when every part was counted by the provider's own tokenizer or a formula
    the provider documents; ``method`` names how ("o200k_base", "heuristic:anthropic:3.5", ...).
    """

    text: int = 0
    tool: int = 0
    image: int = 0
    audio: int = 0
    schema: int = 0
    cached: int = 0
    overhead: int = 0
    exact: bool = True
    method: str = ""

    @property
    def total(self) -> int:
        """All tokens: text + tool + image + audio + schema + overhead (``cached`` is part of these)."""
        return self.text + self.tool + self.image + self.audio + self.schema + self.overhead

    def __add__(self, other: object) -> TokenCount:
        if not isinstance(other, TokenCount):
            return NotImplemented
        return TokenCount(
            text=self.text + other.text,
            tool=self.tool + other.tool,
            image=self.image + other.image,
            audio=self.audio + other.audio,
            schema=self.schema + other.schema,
            cached=self.cached + other.cached,
            overhead=self.overhead + other.overhead,
            exact=self.exact and other.exact,
            method=_merge_methods(self.method, other.method),
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``total``, JSON-friendly."""
        return {
            "total": self.total,
            "text": self.text,
            "tool": self.tool,
            "image": self.image,
            "audio": self.audio,
            "schema": self.schema,
            "cached": self.cached,
            "overhead": self.overhead,
            "exact": self.exact,
            "method": self.method,
        }


class Breakdown:
    """A mutable :class:`TokenCount` under construction (one per count call, never shared)."""

    __slots__ = ("audio", "cached", "exact", "image", "overhead", "schema", "text", "tool")

    def __init__(self, *, exact: bool) -> None:
        self.text = self.tool = self.image = self.audio = self.schema = self.overhead = self.cached = 0
        self.exact = exact

    def running_total(self) -> int:
        """Tokens counted so far."""
        return self.text + self.tool + self.image + self.audio + self.schema + self.overhead

    def cache_breakpoint(self) -> None:
        """Everything counted so far is a cache-eligible prefix (Anthropic ``cache_control``)."""
        self.cached = self.running_total()

    def freeze(self, method: str) -> TokenCount:
        """The finished count."""
        return TokenCount(
            text=self.text,
            tool=self.tool,
            image=self.image,
            audio=self.audio,
            schema=self.schema,
            cached=self.cached,
            overhead=self.overhead,
            exact=self.exact,
            method=method,
        )
