"""What every backend shares: argument checks in front of a few primitives each backend implements.

The public methods validate their arguments once, here, and call the underscored primitives; a
backend (``_memory.py``, ``_redis.py``) only implements the primitives, so the two cannot drift apart
on what they accept.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from spendgate.counters._base import (
    INT64_MAX,
    MAX_RATE_AMOUNT,
    CommitResult,
    CounterState,
    RateResult,
    ReserveItem,
    ReserveResult,
)

__all__ = ["BaseCounterStore", "checks_only"]


def _check_name(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string")
    return value


def _check_time(field: str, value: object, *, positive: bool = False) -> float:
    if type(value) is float and -math.inf < value < math.inf:  # the usual case, checked quickly (NaN fails)
        if positive and value <= 0:
            raise ValueError(f"{field} must be positive, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number of seconds, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{field} must be positive, got {value!r}")
    return float(value)


def _check_int(field: str, value: object, maximum: int, *, signed: bool = False) -> int:
    if type(value) is not int:  # bool is an int subclass; True as an amount is a bug
        raise TypeError(f"{field} must be an int, not {type(value).__name__}")
    low = -maximum if signed else 0
    if not low <= value <= maximum:
        raise ValueError(f"{field} must be between {low} and {maximum}, got {value}")
    return value


def _check_amounts(field: str, amounts: Mapping[str, int] | None) -> dict[str, int]:
    if type(amounts) is dict:  # the usual case, checked quickly: a plain dict of non-empty str -> int in range
        for key, amount in amounts.items():
            if type(key) is not str or not key or type(amount) is not int or not 0 <= amount <= INT64_MAX:
                break
        else:
            return amounts  # the primitives only read it
    checked: dict[str, int] = {}
    for key, amount in (amounts or {}).items():
        checked[_check_name(f"{field} key", key)] = _check_int(f"{field}[{key!r}]", amount, INT64_MAX)
    return checked


def new_entry_id() -> str:
    """A random id for a rate-window entry, unique across processes."""
    return os.urandom(12).hex()


class BaseCounterStore(ABC):
    """Validates arguments, then calls the backend's primitives (see :class:`~spendgate.counters.CounterStore`)."""

    # -- budgets: reservations and spend -------------------------------------------------------------

    def reserve(self, hold_id: str, items: Sequence[ReserveItem], *, ttl_s: float, now: float) -> ReserveResult:
        if type(hold_id) is not str or not hold_id:
            _check_name("hold_id", hold_id)
        if not (type(now) is float and type(ttl_s) is float and -math.inf < now < math.inf and 0 < ttl_s < math.inf):
            now = _check_time("now", now)
            ttl_s = _check_time("ttl_s", ttl_s, positive=True)
        checked = items if type(items) is tuple else tuple(items)
        if not checked:
            raise ValueError("reserve needs at least one ReserveItem")
        keys = set()
        for item in checked:
            if not isinstance(item, ReserveItem):
                raise TypeError("reserve items must be ReserveItem instances")
            keys.add(item.key)
        if len(keys) != len(checked):
            raise ValueError("reserve items must name each key once")
        return self._reserve(hold_id, checked, now=now, ttl_s=ttl_s)

    def commit(self, hold_id: str, actual: Mapping[str, int], *, now: float) -> CommitResult:
        if type(hold_id) is not str or not hold_id:
            _check_name("hold_id", hold_id)
        amounts = _check_amounts("actual", actual)
        if type(now) is not float or not -math.inf < now < math.inf:
            now = _check_time("now", now)
        return self._settle(hold_id, amounts, now=now)

    def release(self, hold_id: str, partial: Mapping[str, int] | None = None, *, now: float) -> CommitResult:
        _check_name("hold_id", hold_id)
        return self._settle(hold_id, _check_amounts("partial", partial), now=_check_time("now", now))

    def read(self, keys: Sequence[str], *, now: float) -> dict[str, CounterState]:
        for key in keys:
            if type(key) is not str or not key:
                _check_name("key", key)
        checked = tuple(dict.fromkeys(keys))
        if type(now) is not float or not -math.inf < now < math.inf:
            now = _check_time("now", now)
        return self._read(checked, now=now) if checked else {}

    def init(self, key: str, spent: int, *, expire_at: float | None) -> bool:
        _check_name("key", key)
        _check_int("spent", spent, INT64_MAX)
        if expire_at is not None:
            expire_at = _check_time("expire_at", expire_at)
        return self._init(key, spent, expire_at)

    def compare_and_set(self, key: str, expected: int, spent: int) -> bool:
        _check_name("key", key)
        _check_int("expected", expected, INT64_MAX)
        _check_int("spent", spent, INT64_MAX)
        return self._compare_and_set(key, expected, spent)

    # -- rate and concurrency limits -----------------------------------------------------------------

    def rate_acquire(self, key: str, amount: int, limit: int, window_s: float, *, now: float) -> RateResult:
        _check_name("key", key)
        _check_int("amount", amount, MAX_RATE_AMOUNT)
        _check_int("limit", limit, MAX_RATE_AMOUNT)
        window_s = _check_time("window_s", window_s, positive=True)
        now = _check_time("now", now)
        entry_id = new_entry_id()
        allowed, used, oldest = self._rate_acquire(key, amount, limit, window_s, now=now, entry_id=entry_id)
        if allowed:
            return RateResult(True, used, limit, None, entry_id)
        retry_after = None if oldest is None else max(0.0, oldest + window_s - now)
        return RateResult(False, used, limit, retry_after, None)

    def rate_adjust(self, key: str, delta: int, window_s: float, *, now: float, entry_id: str | None = None) -> None:
        _check_name("key", key)
        _check_int("delta", delta, MAX_RATE_AMOUNT, signed=True)
        window_s = _check_time("window_s", window_s, positive=True)
        now = _check_time("now", now)
        if entry_id is not None:
            _check_name("entry_id", entry_id)
        if delta:
            self._rate_adjust(key, delta, window_s, now=now, entry_id=entry_id, new_id=new_entry_id())

    def concurrency_acquire(self, key: str, lease_id: str, limit: int, *, ttl_s: float, now: float) -> bool:
        _check_name("key", key)
        _check_name("lease_id", lease_id)
        _check_int("limit", limit, MAX_RATE_AMOUNT)
        ttl_s = _check_time("ttl_s", ttl_s, positive=True)
        now = _check_time("now", now)
        return self._lease_acquire(key, lease_id, limit, now=now, expires_at=now + ttl_s)

    def concurrency_release(self, key: str, lease_id: str) -> None:
        self._lease_release(_check_name("key", key), _check_name("lease_id", lease_id))

    # -- primitives ----------------------------------------------------------------------------------

    @abstractmethod
    def _reserve(self, hold_id: str, items: tuple[ReserveItem, ...], *, now: float, ttl_s: float) -> ReserveResult:
        """Atomically: settled → SETTLED; live hold → OK already; missing keys → NEEDS_INIT; else check and hold."""

    @abstractmethod
    def _settle(self, hold_id: str, amounts: dict[str, int], *, now: float) -> CommitResult:
        """Atomically: settled → already; missing keys with amounts → NEEDS_INIT; else unhold, add, mark."""

    @abstractmethod
    def _read(self, keys: tuple[str, ...], *, now: float) -> dict[str, CounterState]: ...

    @abstractmethod
    def _init(self, key: str, spent: int, expire_at: float | None) -> bool: ...

    @abstractmethod
    def _compare_and_set(self, key: str, expected: int, spent: int) -> bool: ...

    @abstractmethod
    def _rate_acquire(
        self, key: str, amount: int, limit: int, window_s: float, *, now: float, entry_id: str
    ) -> tuple[bool, int, float | None]:
        """Returns (allowed, used, timestamp of the entry whose expiry makes room, or None)."""

    @abstractmethod
    def _rate_adjust(
        self, key: str, delta: int, window_s: float, *, now: float, entry_id: str | None, new_id: str
    ) -> None: ...

    @abstractmethod
    def _lease_acquire(self, key: str, lease_id: str, limit: int, *, now: float, expires_at: float) -> bool: ...

    @abstractmethod
    def _lease_release(self, key: str, lease_id: str) -> None: ...

    @abstractmethod
    def ping(self) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...


def checks_only(store: object, method: str) -> BaseCounterStore | None:
    """``store`` when its public ``method`` is :class:`BaseCounterStore`'s own: argument checks, then a primitive.

    A caller whose arguments pass those checks by construction (the governor: keys from its plans, int
    amounts in range, float times) may then call the primitive directly (``_read`` for ``read``,
    ``_reserve`` for ``reserve``, ``_settle`` for ``commit`` and ``release``). None for any other store,
    and when ``method`` was overridden or replaced on the instance (as tests do, to step in).
    """
    # (Not by looking in the instance's __dict__: asking for it makes every attribute of the store slower.)
    if getattr(getattr(store, method, None), "__func__", None) is getattr(BaseCounterStore, method):
        return store  # type: ignore[return-value]  # its method is BaseCounterStore's: it is one
    return None
