"""Settled markers for ``memory://``: hold ids remembered until a deadline, in time buckets dropped whole.

A marker is one dict entry (hold id -> deadline) plus one slot in its bucket's list of ids: no tuple,
no heap entry of its own. Buckets are ``width`` seconds of deadline; once the clock passes a bucket's
end, the bucket and the markers in it go together. ``deadlines`` is exact (a lookup compares it with the
clock), so a marker is live until its own deadline whatever the bucket width.
"""

from __future__ import annotations

import heapq
import math

__all__ = ["SettledMarkers"]


class SettledMarkers:
    """Hold ids with deadlines (store clock). Not thread-safe: the owner holds its lock."""

    __slots__ = ("_buckets", "_order", "deadlines", "next_due", "width")

    def __init__(self, width: float) -> None:
        if not width > 0:
            raise ValueError("the bucket width must be positive")
        self.width = width
        self.deadlines: dict[str, float] = {}
        """hold id -> when its marker goes; a marker whose deadline is <= the clock is no longer live."""
        self._buckets: dict[int, list[str]] = {}  # bucket number (deadline // width) -> the ids marked in it
        self._order: list[int] = []  # a heap of the bucket numbers
        self.next_due = math.inf
        """No bucket ends before this time: ``drop_due`` earlier drops nothing."""

    def __len__(self) -> int:
        return len(self.deadlines)

    def add(self, hold_id: str, deadline: float) -> None:
        """Mark ``hold_id`` until ``deadline``."""
        self.deadlines[hold_id] = deadline
        number = int(deadline // self.width)
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = []
            heapq.heappush(self._order, number)
            self.next_due = (self._order[0] + 1) * self.width
        bucket.append(hold_id)

    def drop_due(self, now: float) -> None:
        """Drop every bucket that ended at or before ``now``, with the markers in it that are due."""
        order, buckets, deadlines, width = self._order, self._buckets, self.deadlines, self.width
        while order and (order[0] + 1) * width <= now:
            for hold_id in buckets.pop(heapq.heappop(order)):
                deadline = deadlines.get(hold_id)
                if deadline is not None and deadline <= now:  # not one marked again since, in a later bucket
                    del deadlines[hold_id]
        self.next_due = (order[0] + 1) * width if order else math.inf

    def evict(self, count: int) -> None:
        """Forget the ``count`` markers of the earliest buckets (oldest first within a bucket)."""
        order, buckets, deadlines, width = self._order, self._buckets, self.deadlines, self.width
        while count > 0 and order:
            number = order[0]
            bucket = buckets[number]
            taken = bucket[:count]
            del bucket[:count]
            for hold_id in taken:
                deadline = deadlines.get(hold_id)
                if deadline is not None and deadline // width == number:
                    del deadlines[hold_id]
                    count -= 1
            if not bucket:
                del buckets[heapq.heappop(order)]
        self.next_due = (order[0] + 1) * width if order else math.inf

    def clear(self) -> None:
        self.deadlines.clear()
        self._buckets.clear()
        self._order.clear()
        self.next_due = math.inf
