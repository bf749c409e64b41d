"""Live spend, reservation, rate and concurrency counters: ``memory://`` and ``redis://``.

Open a store with :func:`open_counters`; :meth:`~CounterStore.reserve` holds worst-case amounts on
several keys at once (all or nothing), :meth:`~CounterStore.commit` replaces a hold with the actual
spend exactly once. Amounts are integers in the metric's unit (pico-dollars, tokens, requests). This
package knows nothing of prices, windows or HTTP: callers hand it opaque keys. See ``docs/counters.md``.
"""

from typing import TYPE_CHECKING, Any

from spendgate.counters._abstract import BaseCounterStore
from spendgate.counters._base import (
    INT64_MAX,
    MAX_RATE_AMOUNT,
    CommitResult,
    CounterOverflow,
    CounterState,
    CounterStatus,
    CounterStore,
    CounterUnavailable,
    Denial,
    RateResult,
    ReserveItem,
    ReserveResult,
)
from spendgate.counters._factory import open_counters
from spendgate.counters._memory import MemoryCounterStore
from spendgate.counters._with_init import with_init

if TYPE_CHECKING:
    from spendgate.counters._redis import RedisCounterStore

__all__ = [
    "BaseCounterStore",
    "CommitResult",
    "CounterOverflow",
    "CounterState",
    "CounterStatus",
    "CounterStore",
    "CounterUnavailable",
    "Denial",
    "INT64_MAX",
    "MAX_RATE_AMOUNT",
    "MemoryCounterStore",
    "RateResult",
    "RedisCounterStore",
    "ReserveItem",
    "ReserveResult",
    "open_counters",
    "with_init",
]


def __getattr__(name: str) -> Any:
    """``RedisCounterStore`` is imported on first use: redis is an optional dependency."""
    if name == "RedisCounterStore":
        from spendgate.counters._redis import RedisCounterStore

        return RedisCounterStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
