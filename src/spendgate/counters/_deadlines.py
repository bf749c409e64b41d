"""A set of names with deadlines that hands back the due ones cheaply (for the memory backend).

A heap with lazy deletion: moving or discarding a name leaves its old heap entry behind, which is skipped
when it surfaces; the heap is rebuilt when stale entries outnumber live ones four to one.
"""

from __future__ import annotations

import heapq

__all__ = ["Deadlines"]


class Deadlines:
    """Names with deadlines (epoch seconds). Not thread-safe: the owner holds its lock."""

    __slots__ = ("_due", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, name: str) -> bool:
        return name in self._due

    def set(self, name: str, deadline: float) -> None:
        """Give ``name`` a (new) deadline."""
        if self._due.get(name) == deadline:
            return
        self._due[name] = deadline
        heapq.heappush(self._heap, (deadline, name))
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._due):
            self._heap = [(when, key) for key, when in self._due.items()]
            heapq.heapify(self._heap)

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
        return due

    def pop_earliest(self) -> str | None:
        """Remove and return the name with the earliest deadline (None when empty)."""
        heap = self._heap
        while heap:
            deadline, name = heapq.heappop(heap)
            if self._due.get(name) == deadline:
                del self._due[name]
                return name
        return None
