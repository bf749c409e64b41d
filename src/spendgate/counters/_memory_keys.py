"""The per-key structures of ``memory://``: a budget counter with its holds, and a rate window."""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field

__all__ = ["Counter", "RateWindow"]


@dataclass(slots=True)
class Counter:
    """One budget counter: settled spend, and the holds on it until they are settled or lapse.

    ``lapses`` is a heap of (lapse time, hold id); the entry of a hold that went another way (settled,
    released) stays until it surfaces or the heap is compacted, and is skipped because ``holds`` no
    longer has that hold with that lapse time.
    """

    spent: int
    expire_at: float | None  # when the key goes (the store clock), as set in the store's counter expiry
    reserved: int = 0
    holds: dict[str, tuple[int, float]] = field(default_factory=dict)  # hold_id -> (amount, lapses at)
    lapses: list[tuple[float, str]] = field(default_factory=list)

    def trim(self, now: float) -> None:
        """Drop the holds that lapsed at or before ``now``."""
        lapses, holds = self.lapses, self.holds
        while lapses and lapses[0][0] <= now:
            lapses_at, hold_id = heapq.heappop(lapses)
            held = holds.get(hold_id)
            if held is not None and held[1] == lapses_at:
                del holds[hold_id]
                self.reserved -= held[0]

    def compact(self) -> None:
        """Rebuild ``lapses`` from the live holds (once stale entries outnumber them four to one)."""
        self.lapses = [(lapses_at, held_id) for held_id, (_, lapses_at) in self.holds.items()]
        heapq.heapify(self.lapses)


@dataclass(slots=True)
class RateWindow:
    """A sliding window of entries (timestamp, id, amount), like the Redis sorted set it stands for."""

    entries: list[tuple[float, str]] = field(default_factory=list)  # (timestamp, entry_id), sorted like a ZSET
    amounts: dict[str, int] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)
    total: int = 0

    def trim(self, cutoff: float) -> None:
        """Drop the entries at or before ``cutoff`` (they slid out of the window)."""
        gone = bisect.bisect_right(self.entries, (cutoff, "\U0010ffff"))
        for _, entry_id in self.entries[:gone]:
            self.total -= self.amounts.pop(entry_id)
            del self.stamps[entry_id]
        del self.entries[:gone]

    def add(self, timestamp: float, entry_id: str, amount: int) -> None:
        bisect.insort(self.entries, (timestamp, entry_id))
        self.amounts[entry_id] = amount
        self.stamps[entry_id] = timestamp
        self.total += amount

    def change(self, entry_id: str, new_amount: int) -> None:
        """Set an entry's amount; an entry brought to zero is removed."""
        self.total += new_amount - self.amounts[entry_id]
        if new_amount:
            self.amounts[entry_id] = new_amount
            return
        del self.amounts[entry_id]
        del self.entries[bisect.bisect_left(self.entries, (self.stamps.pop(entry_id), entry_id))]

    def end(self, window_s: float, now: float) -> float:
        """When this window will be empty (``now`` if it already is)."""
        return self.entries[-1][0] + window_s if self.entries else now
