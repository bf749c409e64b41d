"""``memory://``: the counter store for one process. One lock, the same semantics as Redis.

Time: hold and lease expiry use each call's ``now``; key expiry (``expire_at``) and garbage collection use
the latest ``now`` the store has seen, which plays the part of the Redis server clock. Everything that
expires sits in a heap (a :class:`Deadlines`, or a counter's own heap of hold lapses) or, for settled
markers, in time buckets (:class:`SettledMarkers`), and is dropped when due, so memory stays bounded by
what is live; while nothing is due, a call looks at no more than the heads.
"""

from __future__ import annotations

import heapq
import math
import threading
from typing import Any

from spendgate._frozen import twin
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
from spendgate.counters._markers import SettledMarkers
from spendgate.counters._memory_keys import Counter, RateWindow

__all__ = ["DEFAULT_SETTLED_TTL_S", "MEMORY_SETTLED_TTL_S", "MemoryCounterStore"]

_OK = CounterStatus.OK  # an enum class's attribute lookup is slow (~0.3 µs) on the request path
_STATE_TWIN = twin(CounterState)
_new = object.__new__

#: How long a settled marker outlives its hold's TTL: a commit retried within this time is a no-op (Redis).
DEFAULT_SETTLED_TTL_S = 86_400.0
#: The same for ``memory://``, shorter: its counters live and die with one process, and reconciliation
#: (every ``reconcile_interval_s``, 5 minutes by default) corrects a double count from a later retry.
MEMORY_SETTLED_TTL_S = 900.0
#: Settled markers go in buckets of ``settled_ttl / _MARKER_BUCKETS`` seconds (at least one second).
_MARKER_BUCKETS = 256


_Hold = tuple[tuple[str, ...], float, float]
"""A live hold's record: the keys it holds amounts on (each counter knows its amount); when it lapses; how
long the record (then the settled marker) is kept (hold TTL + settled TTL). Plain tuples of plain values,
which the garbage collector soon stops tracking. Once settled, the record gives way to a settled marker."""


class MemoryCounterStore(BaseCounterStore):
    """In-process counters (``memory://``): exact, fast, and private to this process.

    ``max_keys`` bounds counters + rate windows + lease sets (a new one beyond it raises
    :class:`CounterUnavailable`); ``max_holds`` bounds hold records and settled markers (beyond it the
    oldest settled markers are evicted first, then the oldest hold records). A settled marker lasts hold
    TTL + ``settled_ttl_s`` (default :data:`MEMORY_SETTLED_TTL_S`, 15 minutes) and takes about 160 bytes
    with its id. Never share budgets between worker processes with it: each would get its own.
    """

    def __init__(
        self,
        *,
        max_keys: int = 1_000_000,
        max_holds: int = 1_000_000,
        settled_ttl_s: float = MEMORY_SETTLED_TTL_S,
    ) -> None:
        if max_keys < 1 or max_holds < 1 or settled_ttl_s < 0:
            raise ValueError("max_keys and max_holds must be >= 1 and settled_ttl_s >= 0")
        self._max_keys = max_keys
        self._max_holds = max_holds
        self._settled_ttl_s = float(settled_ttl_s)
        self._lock = threading.Lock()
        self._closed = False
        self._now = float("-inf")  # the latest `now` seen: the store's clock for key expiry
        self._counters: dict[str, Counter] = {}
        self._counter_expiry = Deadlines()
        self._holds: dict[str, _Hold] = {}  # live (unsettled) holds
        self._hold_expiry = Deadlines()
        self._settled = SettledMarkers(max(1.0, self._settled_ttl_s / _MARKER_BUCKETS))
        self._evict_slack = max_holds // 1024  # evict a few more than needed: a bucket's list is cut less often
        self._windows: dict[str, RateWindow] = {}
        self._window_expiry = Deadlines()
        self._leases: dict[str, dict[str, float]] = {}
        self._lease_expiry = Deadlines()
        self._next_due = math.inf  # nothing above is due before this (-inf once closed: every call looks)

    def __repr__(self) -> str:
        return f"MemoryCounterStore(max_keys={self._max_keys}, max_holds={self._max_holds})"

    # -- housekeeping (call with the lock held) ------------------------------------------------------

    def _begin(self, now: float = -math.inf) -> None:
        """Advance the store clock; refuse a closed store and drop what expired (when anything is due)."""
        if now > self._now:  # noqa: PLR1730 - max() is a call: this runs on every request
            self._now = now
        if self._now >= self._next_due:
            self._expire()

    def _due(self, deadline: float) -> None:
        """Something expires at ``deadline``: ``_begin`` looks from then on (call after every new deadline)."""
        if deadline < self._next_due:  # noqa: PLR1730 - as above
            self._next_due = deadline

    def _expire(self) -> None:
        if self._closed:
            raise CounterUnavailable("the memory:// counter store is closed")
        now = self._now
        if self._counter_expiry.next_due <= now:
            for key in self._counter_expiry.pop_due(now):
                del self._counters[key]
        if self._hold_expiry.next_due <= now:
            for hold_id in self._hold_expiry.pop_due(now):
                del self._holds[hold_id]
        if self._settled.next_due <= now:
            self._settled.drop_due(now)
        if self._window_expiry.next_due <= now:
            for key in self._window_expiry.pop_due(now):
                del self._windows[key]
        if self._lease_expiry.next_due <= now:
            for key in self._lease_expiry.pop_due(now):
                del self._leases[key]
        self._next_due = min(
            self._counter_expiry.next_due,
            self._hold_expiry.next_due,
            self._settled.next_due,
            self._window_expiry.next_due,
            self._lease_expiry.next_due,
        )

    def _make_room(self, what: str) -> None:
        if len(self._counters) + len(self._windows) + len(self._leases) >= self._max_keys:
            raise CounterUnavailable(f"the memory:// counter store is full (max_keys={self._max_keys}): no new {what}")

    def _bound(self) -> None:
        """Keep hold records + settled markers within ``max_holds``: the oldest markers go first."""
        over = len(self._holds) + len(self._settled.deadlines) - self._max_holds
        if over <= 0:
            return
        if self._settled.deadlines:
            self._settled.evict(min(over + self._evict_slack, len(self._settled.deadlines)))
            over = len(self._holds) + len(self._settled.deadlines) - self._max_holds
        while over > 0:
            oldest = self._hold_expiry.pop_earliest()
            if oldest is None:  # pragma: no cover - the two always hold the same names
                break
            del self._holds[oldest]
            over -= 1

    # -- budgets -------------------------------------------------------------------------------------

    def _reserve(self, hold_id: str, items: tuple[ReserveItem, ...], *, now: float, ttl_s: float) -> ReserveResult:
        with self._lock:
            if now > self._now:  # noqa: PLR1730 - self._begin(now), inline: this is the request path
                self._now = now
            if self._now >= self._next_due:
                self._expire()
            marked = self._settled.deadlines.get(hold_id)
            if marked is not None and marked > self._now:
                return ReserveResult(CounterStatus.SETTLED, hold_id)
            hold = self._holds.get(hold_id)
            if hold is not None and hold[1] > now:
                return ReserveResult(_OK, hold_id, hold[1], already=True)
            counters = self._counters
            live: list[tuple[ReserveItem, Counter]] = []
            refusal: Denial | CounterOverflow | None = None  # the first cap or range passed (a missing key wins)
            for item in items:
                counter = counters.get(item.key)
                if counter is None:
                    missing = tuple(item.key for item in items if item.key not in counters)
                    return ReserveResult(CounterStatus.NEEDS_INIT, hold_id, needs_init=missing)
                # a lapsed hold with this id is replaced: trimming takes it off these keys, and off its others later
                if counter.lapses and counter.lapses[0][0] <= now:
                    counter.trim(now)
                if refusal is None:
                    cap = item.cap
                    if counter.spent + counter.reserved + item.amount > (INT64_MAX if cap is None else cap):
                        current = counter.spent + counter.reserved
                        if cap is None:
                            refusal = CounterOverflow(item.key, item.amount, current)
                        else:
                            refusal = Denial(item.key, item.amount, cap, counter.spent, counter.reserved)
                live.append((item, counter))
            if isinstance(refusal, CounterOverflow):
                raise refusal
            if refusal is not None:
                return ReserveResult(CounterStatus.DENIED, hold_id, denied=refusal)
            expires_at = now + ttl_s
            lapse = (expires_at, hold_id)
            for item, counter in live:
                counter.reserved += item.amount
                counter.holds[hold_id] = (item.amount, expires_at)
                heapq.heappush(counter.lapses, lapse)
                if item.expire_at is not None and item.expire_at != counter.expire_at:
                    counter.expire_at = item.expire_at
                    self._counter_expiry.set(item.key, item.expire_at)
                    self._due(item.expire_at)
            keep_s = ttl_s + self._settled_ttl_s
            self._holds[hold_id] = (tuple([item.key for item in items]), expires_at, keep_s)
            deadline = self._now + keep_s
            self._hold_expiry.set(hold_id, deadline)
            if deadline < self._next_due:  # noqa: PLR1730 - self._due(deadline), inline
                self._next_due = deadline
            if len(self._holds) + len(self._settled.deadlines) > self._max_holds:
                self._bound()
            return ReserveResult(_OK, hold_id, expires_at)

    def _settle(self, hold_id: str, amounts: dict[str, int], *, now: float) -> CommitResult:
        with self._lock:
            if now > self._now:  # noqa: PLR1730 - self._begin(now), inline: this is the request path
                self._now = now
            if self._now >= self._next_due:
                self._expire()
            marked = self._settled.deadlines.get(hold_id)
            if marked is not None and marked > self._now:
                return CommitResult(_OK, hold_id, already=True)
            counters = self._counters
            adding: list[tuple[str, int, Counter]] = []
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
            keep_s = self._settled_ttl_s
            hold = self._holds.pop(hold_id, None)
            if hold is not None:
                self._hold_expiry.discard(hold_id)
                held, lapses_at, keep_s = hold
                found = lapses_at > now
                for key in held:  # the hold comes off each of its counters (Counter.unhold, inline)
                    counter = counters.get(key)
                    if counter is not None:
                        entry = counter.holds.pop(hold_id, None)
                        if entry is not None:
                            counter.reserved -= entry[0]
                            if len(counter.lapses) > 64 and len(counter.lapses) > 4 * len(counter.holds):
                                counter.compact()
            spent: dict[str, int] = {}
            for key, amount, counter in adding:
                counter.spent += amount
                spent[key] = counter.spent
            if keep_s > 0:
                self._settled.add(hold_id, self._now + keep_s)
                if self._settled.next_due < self._next_due:  # noqa: PLR1730 - self._due(...), inline
                    self._next_due = self._settled.next_due
                if len(self._holds) + len(self._settled.deadlines) > self._max_holds:
                    self._bound()
            return CommitResult(_OK, hold_id, False, found, (), spent)  # (positional: a request-path call)

    def _read(self, keys: tuple[str, ...], *, now: float) -> dict[str, CounterState]:
        with self._lock:
            if now > self._now:  # noqa: PLR1730 - self._begin(now), inline: this is the request path
                self._now = now
            if self._now >= self._next_due:
                self._expire()
            states: dict[str, CounterState] = {}
            counters = self._counters
            for key in keys:
                counter = counters.get(key)
                if counter is None:
                    states[key] = CounterState(0, 0, initialized=False)
                else:
                    if counter.lapses and counter.lapses[0][0] <= now:
                        counter.trim(now)
                    state: Any = _new(_STATE_TWIN)  # CounterState(spent, reserved) without the dataclass call
                    state.spent, state.reserved, state.initialized = counter.spent, counter.reserved, True
                    state.__class__ = CounterState
                    states[key] = state
            return states

    def _init(self, key: str, spent: int, expire_at: float | None) -> bool:
        with self._lock:
            self._begin()
            if key in self._counters:
                return False
            self._make_room("counter")
            self._counters[key] = Counter(spent, expire_at)
            if expire_at is not None:
                self._counter_expiry.set(key, expire_at)
                self._due(expire_at)
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

    def _window(self, key: str, window_s: float, now: float) -> RateWindow:
        window = self._windows.get(key)
        if window is None:
            self._make_room("rate window")
            window = self._windows[key] = RateWindow()
        window.trim(now - window_s)
        self._window_ends(key, window, window_s, now)
        return window

    def _window_ends(self, key: str, window: RateWindow, window_s: float, now: float) -> None:
        end = window.end(window_s, now)
        self._window_expiry.set(key, end)
        self._due(end)

    def _rate_acquire(
        self, key: str, amount: int, limit: int, window_s: float, *, now: float, entry_id: str
    ) -> tuple[bool, int, float | None]:
        with self._lock:
            self._begin(now)
            window = self._window(key, window_s, now)
            if window.total + amount <= limit:
                window.add(now, entry_id, amount)
                self._window_ends(key, window, window_s, now)
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
            self._window_ends(key, window, window_s, now)

    def _lease_acquire(self, key: str, lease_id: str, limit: int, *, now: float, expires_at: float) -> bool:
        with self._lock:
            self._begin(now)
            leases = self._leases.get(key)
            if leases is None:
                self._make_room("lease set")
                leases = self._leases[key] = {}
            for old_id in [old_id for old_id, until in leases.items() if until <= now]:
                del leases[old_id]
            refused = lease_id not in leases and len(leases) >= limit
            if not refused:
                leases[lease_id] = expires_at
            last = max(leases.values(), default=now)
            self._lease_expiry.set(key, last)
            self._due(last)
            return not refused

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
            self._next_due = -math.inf
            self._counters.clear()
            self._holds.clear()
            self._settled.clear()
            self._windows.clear()
            self._leases.clear()
