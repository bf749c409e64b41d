"""Log-bucketed quantile sketches (DDSketch-style) with 1 % relative error, stored as short text.

A positive value ``v`` falls in bin ``i = ceil(log(v) / log(gamma))`` with ``gamma = (1 + a) / (1 - a)``
and ``a = 0.01``; a bin stands for ``2 * gamma**i / (gamma + 1)``, which is within ``a`` (1 %) of every
value in it. Zero (and anything below :data:`MIN_VALUE`) has its own bin. So a quantile read from a
sketch is within 1 % of the exact quantile of the values it holds (the value of rank
``floor(q * (n - 1))``, counting from 0, in sorted order). Sketches merge by adding counts, and a value
is removed by subtracting its count (re-rating moves a cost from one bin to another), so a sketch may
briefly hold negative counts while two workers' deltas cross; a merged total never does.

Text form: ``"<zeros>;<first bin>;<count>,<count>,..."`` (dense from the first to the last non-empty
bin), ``""`` for an empty sketch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import repeat
from operator import add

__all__ = ["RELATIVE_ERROR", "Sketch", "SketchSum", "bin_of"]

#: The relative error of every quantile read from a sketch.
RELATIVE_ERROR = 0.01
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
#: Values below this count as zero (1e-12: one money unit).
MIN_VALUE = 1e-12


def bin_of(value: float) -> int | None:
    """The bin of ``value`` (``None`` for zero and values below :data:`MIN_VALUE`)."""
    if value < MIN_VALUE:
        return None
    return math.ceil(math.log(value) / _LOG_GAMMA)


def _representative(index: int) -> float:
    return 2 * _GAMMA**index / (_GAMMA + 1)


class Sketch:
    """A sketch being built: counts per bin (negative counts allowed for removals)."""

    __slots__ = ("bins", "zeros")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.zeros = 0

    def add_bin(self, index: int | None, count: int = 1) -> None:
        """Add ``count`` (negative to remove) values of bin ``index`` (``None`` = zero)."""
        if index is None:
            self.zeros += count
        else:
            self.bins[index] = self.bins.get(index, 0) + count

    @classmethod
    def decode(cls, text: str | None) -> Sketch:
        """A sketch from its text form (``None`` or ``""``: empty)."""
        sketch = cls()
        if text:
            zeros, low, body = text.split(";")
            sketch.zeros = int(zeros)
            if body:
                start = int(low)
                sketch.bins = {start + i: int(c) for i, c in enumerate(body.split(",")) if c != "0"}
        return sketch

    def merge(self, other: Sketch) -> None:
        """Add another sketch's counts."""
        self.zeros += other.zeros
        for index, count in other.bins.items():
            self.bins[index] = self.bins.get(index, 0) + count

    def encode(self) -> str:
        """The text form (``""`` when every count is zero)."""
        used = [i for i, c in self.bins.items() if c]
        if not used:
            return f"{self.zeros};0;" if self.zeros else ""
        low, high = min(used), max(used)
        counts = ",".join(map(str, map(self.bins.get, range(low, high + 1), repeat(0))))
        return f"{self.zeros};{low};{counts}"

    def added_to(self, text: str | None) -> str:
        """The text form of the stored sketch ``text`` plus this one (what the worker writes back)."""
        if not text:
            return self.encode()
        zeros, low_text, body = text.split(";")
        total = int(zeros) + self.zeros
        low = int(low_text)
        counts = list(map(int, body.split(","))) if body else []
        if not counts:
            low = 0
        for index, count in self.bins.items():
            if not count:
                continue
            if not counts:
                low, counts = index, [0]
            elif index < low:
                counts[:0] = [0] * (low - index)
                low = index
            elif index >= low + len(counts):
                counts.extend([0] * (index - low - len(counts) + 1))
            counts[index - low] += count
        start, end = 0, len(counts)
        while start < end and counts[start] == 0:
            start += 1
        while end > start and counts[end - 1] == 0:
            end -= 1
        if start == end:
            return f"{total};0;" if total else ""
        return f"{total};{low + start};{','.join(map(str, counts[start:end]))}"


class SketchSum:
    """Many encoded sketches added together, fast (dense lists, C-level adds); then quantiles."""

    __slots__ = ("_counts", "_low", "zeros")

    def __init__(self) -> None:
        self._counts: list[int] = []
        self._low = 0
        self.zeros = 0

    def add_text(self, text: str | None) -> None:
        """Add one encoded sketch (``None`` or ``""``: empty)."""
        if not text:
            return
        zeros, low, body = text.split(";")
        self.zeros += int(zeros)
        if body:
            self._add_dense(int(low), list(map(int, body.split(","))))

    def add_sketch(self, sketch: Sketch) -> None:
        """Add a sketch being built."""
        self.add_text(sketch.encode())

    def _add_dense(self, low: int, counts: list[int]) -> None:
        if not self._counts:
            self._low, self._counts = low, counts
            return
        if low < self._low:
            self._counts[:0] = [0] * (self._low - low)
            self._low = low
        start = low - self._low
        end = start + len(counts)
        if end > len(self._counts):
            self._counts.extend([0] * (end - len(self._counts)))
        self._counts[start:end] = map(add, self._counts[start:end], counts)

    @property
    def count(self) -> int:
        """How many values the sum holds."""
        return self.zeros + sum(self._counts)

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """The values at quantiles ``qs`` (0..1), each within 1 % of the exact one; ``None`` when empty."""
        qs = list(qs)
        n = self.count
        if n <= 0:
            return [None] * len(qs)
        out: list[float | None] = []
        for q in qs:
            rank = math.floor(q * (n - 1))
            out.append(self._value_at(rank))
        return out

    def _value_at(self, rank: int) -> float:
        seen = self.zeros
        if rank < seen:
            return 0.0
        for offset, count in enumerate(self._counts):
            if count > 0:
                seen += count
                if rank < seen:
                    return _representative(self._low + offset)
        last = max((i for i, c in enumerate(self._counts) if c > 0), default=None)
        return 0.0 if last is None else _representative(self._low + last)

    def extreme(self, highest: bool) -> float | None:
        """The smallest (or largest) value held, within 1 %; ``None`` when empty."""
        if self.count <= 0:
            return None
        used = [i for i, c in enumerate(self._counts) if c > 0]
        if not used:
            return 0.0
        if not highest and self.zeros > 0:
            return 0.0
        return _representative(self._low + (used[-1] if highest else used[0]))
