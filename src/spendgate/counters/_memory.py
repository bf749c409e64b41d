"""``memory://``: the counter store for one process. One lock, the same semantics as Redis.

Time: hold and lease expiry use each call's ``now``; key expiry (``expire_at``) and garbage collection use
the latest ``now`` the store has seen, which plays the part of the Redis server clock. Everything that
expires sits in a heap (a :class:`Deadlines`, or a counter's own heap of hold lapses) and is dropped when
due, so memory stays bounded by what is live; while nothing is due, a call looks at no more than the heads.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from dataclasses import dataclass, field

from spendgate.counters._abstract import BaseCounterStore
from spendgate.counters._base import (
    INT64_MAX,
    CommitResult,
    CounterOverflow,
    CounterState,
    CounterStatus,
    CounterUnavailable,
    Denial,
    ReserveItem,
    ReserveResult,
)
from spendgate.counters._deadlines import Deadlines

__all__ = ["DEFAULT_SETTLED_TTL_S", "MemoryCounterStore"]

_OK = CounterStatus.OK  # an enum class's attribute lookup is slow (~0.3 µs) on the request path

#: How long a settled marker outlives its hold's TTL: a commit retried within this time is a no-op.
DEFAULT_SETTLED_TTL_S = 86_400.0


@dataclass(slots=True)
class _Counter:
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

    def unhold(self, hold_id: str) -> None:
        held = self.holds.pop(hold_id, None)
        if held is not None:
            self.reserved -= held[0]
            if len(self.lapses) > 64 and len(self.lapses) > 4 * len(self.holds):
                self.lapses = [(lapses_at, held_id) for held_id, (_, lapses_at) in self.holds.items()]
                heapq.heapify(self.lapses)


_Hold = tuple[tuple[str, ...], float, bool, float]
"""A hold's record: the keys it holds amounts on, () once settled (each counter knows its amount); when it
lapses; whether it was settled; how long the record (then the settled marker) is kept (hold TTL +
settled TTL). Plain tuples of plain values, which the garbage collector soon stops tracking: a million
settled markers never slow its full collections down."""


@dataclass(slots=True)
class _Window:
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


class MemoryCounterStore(BaseCounterStore):
    """In-process counters (``memory://``): exact, fast, and private to this process.

    ``max_keys`` bounds counters + rate windows + lease sets (a new one beyond it raises
    :class:`CounterUnavailable`); ``max_holds`` bounds hold records and settled markers (the oldest are
    evicted first). Never share budgets between worker processes with it: each would get its own.
    """

    def __init__(
        self,
        *,
        max_keys: int = 1_000_000,
        max_holds: int = 1_000_000,
        settled_ttl_s: float = DEFAULT_SETTLED_TTL_S,
    ) -> None:
        if max_keys < 1 or max_holds < 1 or settled_ttl_s < 0:
            raise ValueError("max_keys and max_holds must be >= 1 and settled_ttl_s >= 0")
        self._max_keys = max_keys
        self._max_holds = max_holds
        self._settled_ttl_s = float(settled_ttl_s)
        self._lock = threading.Lock()
        self._closed = False
        self._now = float("-inf")  # the latest `now` seen: the store's clock for key expiry
        self._counters: dict[str, _Counter] = {}
        self._counter_expiry = Deadlines()
        self._holds: dict[str, _Hold] = {}
        self._hold_expiry = Deadlines()
        self._windows: dict[str, _Window] = {}
        self._window_expiry = Deadlines()
        self._leases: dict[str, dict[str, float]] = {}
        self._lease_expiry = Deadlines()

    def __repr__(self) -> str:
        return f"MemoryCounterStore(max_keys={self._max_keys}, max_holds={self._max_holds})"

    # -- housekeeping (call with the lock held) ------------------------------------------------------

    def _begin(self, now: float | None = None) -> None:
        """Refuse a closed store, advance the store clock and drop everything that expired."""
        if self._closed:
            raise CounterUnavailable("the memory:// counter store is closed")
        if now is not None and now > self._now:
            self._now = now
        now = self._now
        if self._counter_expiry.next_due <= now:
            for key in self._counter_expiry.pop_due(now):
                del self._counters[key]
        if self._hold_expiry.next_due <= now:
            for hold_id in self._hold_expiry.pop_due(now):
                del self._holds[hold_id]
        if self._window_expiry.next_due <= now:
            for key in self._window_expiry.pop_due(now):
                del self._windows[key]
        if self._lease_expiry.next_due <= now:
            for key in self._lease_expiry.pop_due(now):
                del self._leases[key]

    def _make_room(self, what: str) -> None:
        if len(self._counters) + len(self._windows) + len(self._leases) >= self._max_keys:
            raise CounterUnavailable(f"the memory:// counter store is full (max_keys={self._max_keys}): no new {what}")

    def _keep_hold(self, hold_id: str, hold: _Hold) -> None:
        self._holds[hold_id] = hold
        self._hold_expiry.set(hold_id, self._now + hold[3])
        while len(self._holds) > self._max_holds:
            oldest = self._hold_expiry.pop_earliest()
            if oldest is None:  # pragma: no cover - the two always hold the same names
                break
            del self._holds[oldest]

    # -- budgets -------------------------------------------------------------------------------------

    def _reserve(self, hold_id: str, items: tuple[ReserveItem, ...], *, now: float, ttl_s: float) -> ReserveResult:
        with self._lock:
            self._begin(now)
            hold = self._holds.get(hold_id)
            if hold is not None:
                _, lapses_at, settled, _ = hold
                if settled:
                    return ReserveResult(CounterStatus.SETTLED, hold_id)
                if lapses_at > now:
                    return ReserveResult(_OK, hold_id, lapses_at, already=True)
            counters = self._counters
            live: list[_Counter] = []
            refusal: Denial | CounterOverflow | None = None  # the first cap or range passed (a missing key wins)
            for item in items:
                counter = counters.get(item.key)
                if counter is None:
                    missing = tuple(item.key for item in items if item.key not in counters)
                    return ReserveResult(CounterStatus.NEEDS_INIT, hold_id, needs_init=missing)
                # a lapsed hold with this id is replaced: trimming takes it off these keys, and off its others later
                if counter.lapses and counter.lapses[0][0] <= now:
                    counter.trim(now)
                current = counter.spent + counter.reserved
                if refusal is None:
                    if item.cap is None:
                        if current + item.amount > INT64_MAX:
                            refusal = CounterOverflow(item.key, item.amount, current)
                    elif current + item.amount > item.cap:
                        refusal = Denial(item.key, item.amount, item.cap, counter.spent, counter.reserved)
                live.append(counter)
            if isinstance(refusal, CounterOverflow):
                raise refusal
            if refusal is not None:
                return ReserveResult(CounterStatus.DENIED, hold_id, denied=refusal)
            expires_at = now + ttl_s
            lapse = (expires_at, hold_id)
            for item, counter in zip(items, live, strict=True):
                counter.reserved += item.amount
                counter.holds[hold_id] = (item.amount, expires_at)
                heapq.heappush(counter.lapses, lapse)
                if item.expire_at is not None and item.expire_at != counter.expire_at:
                    counter.expire_at = item.expire_at
                    self._counter_expiry.set(item.key, item.expire_at)
            held = tuple([item.key for item in items])
            self._keep_hold(hold_id, (held, expires_at, False, ttl_s + self._settled_ttl_s))
            return ReserveResult(_OK, hold_id, expires_at)

    def _settle(self, hold_id: str, amounts: dict[str, int], *, now: float) -> CommitResult:
        with self._lock:
            self._begin(now)
            hold = self._holds.get(hold_id)
            if hold is not None and hold[2]:
                return CommitResult(_OK, hold_id, already=True)
            counters = self._counters
            adding: list[tuple[str, int, _Counter]] = []
            overflow: CounterOverflow | None = None  # raised once every key is known to exist (a missing one wins)
            for key, amount in amounts.items():
                if amount:
                    counter = counters.get(key)
                    if counter is None:
                        missing = tuple(key for key, amount in amounts.items() if amount and key not in counters)
                        return CommitResult(CounterStatus.NEEDS_INIT, hold_id, needs_init=missing)
                    if overflow is None and counter.spent + amount > INT64_MAX:
                        overflow = CounterOverflow(key, amount, counter.spent)
                    adding.append((key, amount, counter))
            if overflow is not None:
                raise overflow
            found = False
            lapses_at, keep_s = now, self._settled_ttl_s
            if hold is not None:
                _, lapses_at, _, keep_s = hold
                found = lapses_at > now
                for key in hold[0]:  # the hold comes off each of its counters
                    counter = counters.get(key)
                    if counter is not None:
                        counter.unhold(hold_id)
            spent: dict[str, int] = {}
            for key, amount, counter in adding:
                counter.spent += amount
                spent[key] = counter.spent
            self._keep_hold(hold_id, ((), lapses_at, True, keep_s))
            return CommitResult(_OK, hold_id, hold_found=found, spent=spent)

    def _read(self, keys: tuple[str, ...], *, now: float) -> dict[str, CounterState]:
        with self._lock:
            self._begin(now)
            states: dict[str, CounterState] = {}
            counters = self._counters
            for key in keys:
                counter = counters.get(key)
                if counter is None:
                    states[key] = CounterState(0, 0, initialized=False)
                else:
                    if counter.lapses and counter.lapses[0][0] <= now:
                        counter.trim(now)
                    states[key] = CounterState(counter.spent, counter.reserved)
            return states

    def _init(self, key: str, spent: int, expire_at: float | None) -> bool:
        with self._lock:
            self._begin()
            if key in self._counters:
                return False
            self._make_room("counter")
            self._counters[key] = _Counter(spent, expire_at)
            if expire_at is not None:
                self._counter_expiry.set(key, expire_at)
            return True

    def _compare_and_set(self, key: str, expected: int, spent: int) -> bool:
        with self._lock:
            self._begin()
            counter = self._counters.get(key)
            if counter is None or counter.spent != expected:
                return False
            counter.spent = spent
            return True

    # -- rate and concurrency limits -----------------------------------------------------------------

    def _window(self, key: str, window_s: float, now: float) -> _Window:
        window = self._windows.get(key)
        if window is None:
            self._make_room("rate window")
            window = self._windows[key] = _Window()
        window.trim(now - window_s)
        self._window_expiry.set(key, window.end(window_s, now))
        return window

    def _rate_acquire(
        self, key: str, amount: int, limit: int, window_s: float, *, now: float, entry_id: str
    ) -> tuple[bool, int, float | None]:
        with self._lock:
            self._begin(now)
            window = self._window(key, window_s, now)
            if window.total + amount <= limit:
                window.add(now, entry_id, amount)
                self._window_expiry.set(key, window.end(window_s, now))
                return True, window.total, None
            if amount > limit:
                return False, window.total, None
            need, freed = window.total + amount - limit, 0
            for timestamp, old_id in window.entries:
                freed += window.amounts[old_id]
                if freed >= need:
                    return False, window.total, timestamp
            return False, window.total, None  # pragma: no cover - entries always sum to total

    def _rate_adjust(
        self, key: str, delta: int, window_s: float, *, now: float, entry_id: str | None, new_id: str
    ) -> None:
        with self._lock:
            self._begin(now)
            window = self._window(key, window_s, now)
            if entry_id is not None and entry_id in window.amounts:
                window.change(entry_id, max(0, window.amounts[entry_id] + delta))
            elif delta > 0:
                window.add(now, new_id, delta)
            elif entry_id is None:  # no entry named: take the correction off the newest entries
                remaining = -delta
                for _, newest in reversed(window.entries[:]):
                    taken = min(window.amounts[newest], remaining)
                    window.change(newest, window.amounts[newest] - taken)
                    remaining -= taken
                    if not remaining:
                        break
            self._window_expiry.set(key, window.end(window_s, now))

    def _lease_acquire(self, key: str, lease_id: str, limit: int, *, now: float, expires_at: float) -> bool:
        with self._lock:
            self._begin(now)
            leases = self._leases.get(key)
            if leases is None:
                self._make_room("lease set")
                leases = self._leases[key] = {}
            for old_id in [old_id for old_id, until in leases.items() if until <= now]:
                del leases[old_id]
            if lease_id not in leases and len(leases) >= limit:
                self._lease_expiry.set(key, max(leases.values(), default=now))
                return False
            leases[lease_id] = expires_at
            self._lease_expiry.set(key, max(leases.values()))
            return True

    def _lease_release(self, key: str, lease_id: str) -> None:
        with self._lock:
            self._begin()
            leases = self._leases.get(key)
            if leases is not None:
                leases.pop(lease_id, None)

    def ping(self) -> bool:
        return not self._closed

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._counters.clear()
            self._holds.clear()
            self._windows.clear()
            self._leases.clear()
