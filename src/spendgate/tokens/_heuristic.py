"""Character-class estimates for providers without a public tokenizer.

English prose and code average a few characters per token on every modern tokenizer; other scripts
cost far more per character. A plain ``len(text) / chars_per_token`` would undercount Chinese by a
factor of three to four, so characters are weighed by class, in units of "ASCII characters":

==========================================  ======  ======================================
class                                       weight  tokens per character at 3.5 chars/token
==========================================  ======  ======================================
ASCII                                       1       0.29
other BMP scripts (Cyrillic, Greek, Arabic,  2       0.57
Hebrew, Devanagari, Thai, accented Latin,
symbols, joiners)
CJK ideographs, kana, Hangul, full-width    3.5     1.0
astral code points (emoji, rare CJK)        7       2.0
==========================================  ======  ======================================

``tokens = ceil(weighted characters / chars_per_token)``. The weights are the ratios we measured
between these classes with OpenAI's cl100k_base and o200k_base on the test corpus (CJK costs 0.6 to
1.0 token per character there, non-Latin alphabets 0.35 to 1.0, emoji about 2 per code point), so
one ``chars_per_token`` figure per provider scales all classes together. The tally is additive (a
tuple of integers), so a stream of chunks sums to exactly the count of the whole text.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

__all__ = ["Heuristic", "Tally", "format_ratio"]

_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_CJK = re.compile(
    "[\u1100-\u11ff\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u318f\u31a0-\u31ff\u3200-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]+"
)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]+")

# Weights in half-units so that every weight is an integer: ASCII 1, other 2, CJK 3.5, astral 7.
_W_ASCII, _W_OTHER, _W_CJK, _W_ASTRAL = 2, 4, 7, 14


class Tally(NamedTuple):
    """Characters of ``text`` by class; tallies of consecutive pieces add up (``Tally.plus``)."""

    ascii: int = 0
    other: int = 0
    cjk: int = 0
    astral: int = 0

    def plus(self, other: Tally) -> Tally:
        """The tally of the concatenated texts."""
        return Tally(
            self.ascii + other.ascii, self.other + other.other, self.cjk + other.cjk, self.astral + other.astral
        )


def format_ratio(chars_per_token: float) -> str:
    """``3.5`` → "3.5", ``4`` → "4.0": the figure as it appears in a method name."""
    text = f"{chars_per_token:g}"
    return text if "." in text or "e" in text else f"{text}.0"


class Heuristic:
    """Estimate tokens from characters: ``label`` names the provider family in :attr:`method`."""

    __slots__ = ("_half_units_per_token", "chars_per_token", "method")

    exact = False

    def __init__(self, label: str, chars_per_token: float) -> None:
        self.chars_per_token = chars_per_token
        self._half_units_per_token = 2.0 * chars_per_token
        self.method = f"heuristic:{label}:{format_ratio(chars_per_token)}"

    def __repr__(self) -> str:
        return f"Heuristic({self.method!r})"

    @staticmethod
    def tally(text: str) -> Tally:
        """Classify the characters of ``text``."""
        if text.isascii():
            return Tally(len(text))
        runs = _NON_ASCII.findall(text)
        non_ascii = "".join(runs)
        cjk = sum(map(len, _CJK.findall(non_ascii)))
        astral = sum(map(len, _ASTRAL.findall(non_ascii)))
        return Tally(len(text) - len(non_ascii), len(non_ascii) - cjk - astral, cjk, astral)

    def tokens(self, tally: Tally) -> int:
        """Estimated tokens of a text with this tally (at least 1 for a non-empty text)."""
        half_units = _W_ASCII * tally.ascii + _W_OTHER * tally.other + _W_CJK * tally.cjk + _W_ASTRAL * tally.astral
        return math.ceil(half_units / self._half_units_per_token)

    def count(self, text: str) -> int:
        """Estimated tokens of ``text``."""
        if text.isascii():
            return math.ceil(_W_ASCII * len(text) / self._half_units_per_token)
        return self.tokens(self.tally(text))
