"""A set of names with deadlines that hands back the due ones cheaply (for the memory backend).

A heap with lazy deletion: moving or discarding a name leaves its old heap entry behind, which is skipped
when it surfaces; the heap is rebuilt when stale entries outnumber live ones four to one. ``next_due``
(the earliest deadline in the heap, stale entries included) lets a caller skip ``pop_due`` while
nothing can be due, which is almost always.
"""

from __future__ import annotations

import heapq
import math

__all__ = ["Deadlines"]


class Deadlines:
    """Names with deadlines (epoch seconds). Not thread-safe: the owner holds its lock."""

    __slots__ = ("_due", "_heap", "next_due")

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self.next_due = math.inf
        """No name is due before this time (``inf`` when there are none): ``pop_due`` earlier returns []."""

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, name: str) -> bool:
        return name in self._due

    def set(self, name: str, deadline: float) -> None:
        """Give ``name`` a (new) deadline."""
        due, heap = self._due, self._heap
        if due.get(name) == deadline:
            return
        due[name] = deadline
        heapq.heappush(heap, (deadline, name))
        self.next_due = heap[0][0]
        size = len(heap)
        if size > 64 and size > 4 * len(due):
            self._heap = [(when, key) for key, when in due.items()]
            heapq.heapify(self._heap)
            self._settle()

    def _settle(self) -> None:
        self.next_due = self._heap[0][0] if self._heap else math.inf

    def discard(self, name: str) -> None:
        self._due.pop(name, None)

    def pop_due(self, now: float) -> list[str]:
        """Remove and return every name whose deadline is ``<= now``, earliest first."""
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, name = heapq.heappop(heap)
            if self._due.get(name) == deadline:
                del self._due[name]
                due.append(name)
        self._settle()
        return due

    def pop_earliest(self) -> str | None:
        """Remove and return the name with the earliest deadline (None when empty)."""
        heap = self._heap
        while heap:
            deadline, name = heapq.heappop(heap)
            if self._due.get(name) == deadline:
                del self._due[name]
                self._settle()
                return name
        self._settle()
        return None
