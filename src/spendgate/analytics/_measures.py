"""What one event (or one re-rating) adds to an aggregate, and the aggregates that sum it.

Every cube row and every query group holds the same measure vector, in
``spendgate.ledger._analytics_schema.MEASURE_COLUMNS`` order: integer sums (money in 1e-12 units),
float sums of squares, then exact minimums and maximums (``None`` when no value). The worker (cube
deltas), a raw scan and the not-yet-refreshed tail all go through :func:`event_delta` /
:func:`adjustment_delta`, so a cube and a scan can never disagree about what a measure means.
"""

from __future__ import annotations

from operator import add
from typing import Any

from spendgate.analytics._sketch import Sketch, SketchSum, bin_of
from spendgate.ledger._analytics_schema import FLOAT_COLUMNS, MEASURE_COLUMNS, SUM_COLUMNS

__all__ = ["NUMERIC", "Agg", "Cell", "Delta", "adjustment_delta", "empty_values", "event_delta", "merge_values"]

#: How many leading measures simply add (integer sums and float sums of squares).
NUMERIC = len(SUM_COLUMNS) + len(FLOAT_COLUMNS)
_MIN = NUMERIC  # latency_min, tokens_min, latency_max, tokens_max follow
_WIDTH = len(MEASURE_COLUMNS)
_UNIT = 1e12
_COST = SUM_COLUMNS.index("cost")
_UNPRICED = SUM_COLUMNS.index("unpriced_requests")
_COST_SQ = len(SUM_COLUMNS) + FLOAT_COLUMNS.index("cost_sq")
#: Sketch slots: latency (ms), cost (currency units), tokens (input + output).
LATENCY, COST, TOKENS = 0, 1, 2

#: (measure vector, sketch changes as (slot, bin, count))
Delta = tuple[list[Any], list[tuple[int, int | None, int]]]


def empty_values() -> list[Any]:
    """A zero measure vector."""
    return [0] * len(SUM_COLUMNS) + [0.0] * len(FLOAT_COLUMNS) + [None] * (_WIDTH - NUMERIC)


def event_delta(row: Any, cost: int | None) -> Delta:
    """What one event adds, with ``cost`` (1e-12 units, ``None`` = unpriced) as the cost to count.

    ``row`` has the columns of ``spendgate.ledger._analytics_queue.EVENT_COLUMNS``.
    """
    success = 1 if row.success else 0
    tokens = row.input_tokens + row.output_tokens
    latency = row.latency_ms
    savings = row.cache_savings
    values = [
        1,
        success,
        1 - success,
        row.input_tokens,
        row.output_tokens,
        row.cache_read_tokens,
        row.cache_write_tokens,
        row.reasoning_tokens,
        cost or 0,
        1 if cost is None else 0,
        1 if row.cost_estimated or row.tokens_estimated else 0,
        1 if row.cached else 0,
        savings or 0,
        latency or 0,
        0 if latency is None else 1,
        0.0 if latency is None else float(latency) ** 2,
        0.0 if cost is None else (cost / _UNIT) ** 2,
        float(tokens) ** 2,
        latency,
        tokens,
        latency,
        tokens,
    ]
    changes: list[tuple[int, int | None, int]] = [(TOKENS, bin_of(tokens), 1)]
    if latency is not None:
        changes.append((LATENCY, bin_of(latency), 1))
    if cost is not None:
        changes.append((COST, bin_of(cost / _UNIT), 1))
    return values, changes


def adjustment_delta(old: int | None, new: int | None) -> Delta:
    """What re-rating one event from ``old`` to ``new`` cost (1e-12 units, ``None`` = unpriced) changes."""
    values = empty_values()
    values[_COST] = (new or 0) - (old or 0)
    values[_UNPRICED] = (new is None) - (old is None)
    values[_COST_SQ] = (0.0 if new is None else (new / _UNIT) ** 2) - (0.0 if old is None else (old / _UNIT) ** 2)
    changes: list[tuple[int, int | None, int]] = []
    if old is not None:
        changes.append((COST, bin_of(old / _UNIT), -1))
    if new is not None:
        changes.append((COST, bin_of(new / _UNIT), 1))
    return values, changes


def merge_values(into: list[Any], values: list[Any]) -> None:
    """Add measure vector ``values`` into ``into`` (sums add; minimums and maximums combine)."""
    into[:NUMERIC] = map(add, into[:NUMERIC], values[:NUMERIC])
    for i in (_MIN, _MIN + 1):
        v = values[i]
        if v is not None and (into[i] is None or v < into[i]):
            into[i] = v
    for i in (_MIN + 2, _MIN + 3):
        v = values[i]
        if v is not None and (into[i] is None or v > into[i]):
            into[i] = v


class Cell:
    """A cube row's delta being built by the worker (sketches as bin counts).

    Measure vectors are collected and summed column by column at the end (``values``), which keeps
    the per-event work to an append.
    """

    __slots__ = ("_deltas", "sketches")

    def __init__(self, sketches: bool) -> None:
        self._deltas: list[list[Any]] = []
        self.sketches = (Sketch(), Sketch(), Sketch()) if sketches else None

    def add(self, delta: Delta) -> None:
        """Add one event's (or re-rating's) delta."""
        self._deltas.append(delta[0])
        if self.sketches is not None:
            for slot, index, count in delta[1]:
                self.sketches[slot].add_bin(index, count)

    def add_cell(self, other: Cell) -> None:
        """Add another delta (rolling finer cells up into coarser ones)."""
        self._deltas.extend(other._deltas)
        if self.sketches is not None and other.sketches is not None:
            for mine, theirs in zip(self.sketches, other.sketches, strict=True):
                mine.merge(theirs)

    @property
    def values(self) -> list[Any]:
        """The summed measure vector."""
        if not self._deltas:
            return empty_values()
        columns = list(zip(*self._deltas, strict=True))
        out: list[Any] = [sum(c) for c in columns[:NUMERIC]]
        out += [min(filter(_present, c), default=None) for c in columns[_MIN : _MIN + 2]]
        out += [max(filter(_present, c), default=None) for c in columns[_MIN + 2 :]]
        return out


def _present(value: Any) -> bool:
    return value is not None


class Agg:
    """A query group: measure sums plus merged sketches (when the query needs percentiles).

    ``slots`` are the sketches that are complete (the others were not read from the cubes).
    """

    __slots__ = ("sketches", "slots", "values")

    def __init__(self, sketches: bool, slots: tuple[int, ...] = (LATENCY, COST, TOKENS)) -> None:
        self.values = empty_values()
        self.sketches = (SketchSum(), SketchSum(), SketchSum()) if sketches else None
        self.slots = slots if sketches else ()

    def add_cell(self, cell: Cell) -> None:
        """Add a delta built from raw events."""
        merge_values(self.values, cell.values)
        if self.sketches is not None and cell.sketches is not None:
            for target, sketch in zip(self.sketches, cell.sketches, strict=True):
                target.add_sketch(sketch)

    def add_texts(self, texts: tuple[str | None, ...]) -> None:
        """Add stored sketches, one per slot of :attr:`slots`."""
        if self.sketches is not None:
            for slot, text in zip(self.slots, texts, strict=True):
                self.sketches[slot].add_text(text)
