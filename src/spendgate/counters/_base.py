"""The counter store contract: items, results, errors and the :class:`CounterStore` protocol.

Errors (both derive from :class:`~spendgate.errors.SpendgateError`)::

    SpendgateError
    ├── CounterUnavailable   the backend failed or is unreachable (the driver error is the __cause__)
    └── CounterOverflow      a counter would leave the signed 64-bit range (also an OverflowError)

Amounts are plain ``int`` counts in the metric's unit (pico-dollars, tokens, requests). Redis stores
signed 64-bit integers, so a counter holds at most :data:`INT64_MAX` (about 9.2 million USD in
pico-dollars); rate and concurrency figures stay below :data:`MAX_RATE_AMOUNT` (2**53).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from spendgate._frozen import fast_init
from spendgate.errors import SpendgateError

__all__ = [
    "CommitResult",
    "CounterOverflow",
    "CounterState",
    "CounterStatus",
    "CounterStore",
    "CounterUnavailable",
    "Denial",
    "INT64_MAX",
    "MAX_RATE_AMOUNT",
    "RateResult",
    "ReserveItem",
    "ReserveResult",
]

#: The largest value one counter can hold (Redis integers are signed 64-bit).
INT64_MAX = 2**63 - 1
#: The largest amount or limit of a rate limit (Lua numbers are doubles: exact integers up to 2**53).
MAX_RATE_AMOUNT = 2**53


class CounterUnavailable(SpendgateError):
    """The counter backend failed or could not be reached; the caller picks fail-open or fail-closed."""

    code = "counter_unavailable"


class CounterOverflow(SpendgateError, OverflowError):
    """Adding ``amount`` to counter ``key`` would exceed :data:`INT64_MAX`; nothing was changed."""

    code = "counter_overflow"

    def __init__(self, key: str, amount: int, current: int) -> None:
        super().__init__(
            f"counter {key!r} would overflow: {current} + {amount} exceeds the int64 maximum {INT64_MAX}; "
            "use a coarser unit or a shorter window"
        )
        self.key = key
        self.amount = amount
        self.current = current


class CounterStatus(StrEnum):
    """How a reserve or commit ended."""

    OK = "ok"
    DENIED = "denied"  # reserve only: a capped key would go over its cap; nothing changed
    NEEDS_INIT = "needs_init"  # a key was never initialized: load it with init() and retry; nothing changed
    SETTLED = "settled"  # reserve only: this hold_id was already committed or released; nothing changed


_OK = CounterStatus.OK  # an enum class's attribute lookup is slow (~0.3 µs) on the request path


def _check_amount(field: str, value: object, maximum: int = INT64_MAX) -> None:
    if type(value) is not int:  # bool is an int subclass; a True amount is a bug
        raise TypeError(f"{field} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{field} must be between 0 and {maximum}, got {value}")


@fast_init
@dataclass(frozen=True, slots=True)
class ReserveItem:
    """One counter to reserve on: ``amount`` more on ``key``, refused if it would pass ``cap``.

    ``cap=None`` never refuses (soft limits, tracking). ``expire_at`` (epoch seconds) is when the key
    may disappear: the end of its window plus a margin; ``None`` keeps it.
    """

    key: str
    amount: int
    cap: int | None = None
    expire_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("ReserveItem.key must be a non-empty string")
        _check_amount("ReserveItem.amount", self.amount)
        if self.cap is not None:
            _check_amount("ReserveItem.cap", self.cap)
        if self.expire_at is not None:
            if isinstance(self.expire_at, bool) or not isinstance(self.expire_at, int | float):
                raise TypeError("ReserveItem.expire_at must be epoch seconds (float) or None")
            if not math.isfinite(self.expire_at):
                raise ValueError(f"ReserveItem.expire_at must be finite, got {self.expire_at!r}")


@fast_init
@dataclass(frozen=True, slots=True)
class CounterState:
    """A counter as read: settled ``spent``, live ``reserved`` (expired holds excluded)."""

    spent: int
    reserved: int
    initialized: bool = True

    @property
    def total(self) -> int:
        """``spent + reserved``: what a new reservation is checked against."""
        return self.spent + self.reserved


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a reservation was refused: ``spent + reserved + amount`` would exceed ``cap`` on ``key``."""

    key: str
    amount: int
    cap: int
    spent: int
    reserved: int

    @property
    def available(self) -> int:
        """How much could still be reserved on this key (never negative)."""
        return max(0, self.cap - self.spent - self.reserved)


@fast_init
@dataclass(frozen=True, slots=True)
class ReserveResult:
    """The outcome of :meth:`CounterStore.reserve`.

    ``ok`` means the hold is in place until ``expires_at``; ``already`` marks a repeated call that found
    the hold from the first one. ``denied`` names the first key over its cap; ``needs_init`` lists every
    key that has never been initialized.
    """

    status: CounterStatus
    hold_id: str
    expires_at: float | None = None
    already: bool = False
    denied: Denial | None = None
    needs_init: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is _OK


@fast_init
@dataclass(frozen=True, slots=True)
class CommitResult:
    """The outcome of :meth:`CounterStore.commit` / :meth:`CounterStore.release`.

    ``already`` means this hold_id was settled before and nothing changed. ``hold_found`` says whether a
    live (unexpired) reservation was released by this call. ``spent`` holds, for each key this call added
    a non-zero amount to, the key's spend right after the addition (read in the same atomic step).
    """

    status: CounterStatus
    hold_id: str
    already: bool = False
    hold_found: bool = False
    needs_init: tuple[str, ...] = ()
    spent: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is _OK


@dataclass(frozen=True, slots=True)
class RateResult:
    """The outcome of a sliding-window acquire.

    ``used`` is the amount in the window after this call (including ``amount`` when allowed).
    ``retry_after`` (seconds) is when enough of the window will have slid out for the request to fit;
    ``None`` when allowed or when the amount exceeds the limit outright. Pass ``entry_id`` to
    :meth:`CounterStore.rate_adjust` to correct the amount after the call.
    """

    allowed: bool
    used: int
    limit: int
    retry_after: float | None = None
    entry_id: str | None = None


@runtime_checkable
class CounterStore(Protocol):
    """Live counters shared by every process that opens the same URL. Implementations are thread-safe.

    ``now`` is the caller's clock (epoch seconds): inject it, never read the wall clock. Every method is
    atomic: a reservation over several keys is all or nothing, and commit/release are idempotent by
    ``hold_id``. Backend failures raise :class:`CounterUnavailable`.
    """

    def reserve(self, hold_id: str, items: Sequence[ReserveItem], *, ttl_s: float, now: float) -> ReserveResult:
        """Hold ``amount`` on every key until ``now + ttl_s``, or change nothing (see :class:`ReserveResult`)."""
        ...

    def commit(self, hold_id: str, actual: Mapping[str, int], *, now: float) -> CommitResult:
        """Replace the hold with the actual spend per key, exactly once per ``hold_id``."""
        ...

    def release(self, hold_id: str, partial: Mapping[str, int] | None = None, *, now: float) -> CommitResult:
        """Drop the hold of a failed call, adding ``partial`` spend if some was consumed; once per ``hold_id``."""
        ...

    def read(self, keys: Sequence[str], *, now: float) -> dict[str, CounterState]:
        """The current state of each key; a key never initialized reads as ``initialized=False``."""
        ...

    def init(self, key: str, spent: int, *, expire_at: float | None) -> bool:
        """Create ``key`` with ``spent`` if it does not exist (never adds); True if this call created it."""
        ...

    def compare_and_set(self, key: str, expected: int, spent: int) -> bool:
        """Set ``spent`` on ``key`` only if it is still ``expected`` (reconciliation); True if set."""
        ...

    def rate_acquire(self, key: str, amount: int, limit: int, window_s: float, *, now: float) -> RateResult:
        """Add ``amount`` to the sliding window ``(now - window_s, now]`` unless it would exceed ``limit``."""
        ...

    def rate_adjust(self, key: str, delta: int, window_s: float, *, now: float, entry_id: str | None = None) -> None:
        """Correct a window after the call: change entry ``entry_id`` (or the newest entries) by ``delta``."""
        ...

    def concurrency_acquire(self, key: str, lease_id: str, limit: int, *, ttl_s: float, now: float) -> bool:
        """Take (or renew) a lease on one of ``limit`` slots until ``now + ttl_s``; False if all are taken."""
        ...

    def concurrency_release(self, key: str, lease_id: str) -> None:
        """Give a lease back (no error if it already expired)."""
        ...

    def ping(self) -> bool:
        """True if the backend answers; never raises."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
