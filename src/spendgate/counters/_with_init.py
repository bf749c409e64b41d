"""``with_init``: run a counter operation, initializing never-seen keys from the ledger on the way.

See "Cold start" in ``docs/counters.md`` for why this counts every event exactly once when the counter
step of a settle runs before its ledger write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from spendgate.counters._base import CommitResult, CounterStore, CounterUnavailable, ReserveResult

__all__ = ["with_init"]

R = TypeVar("R", ReserveResult, CommitResult)


def with_init(
    store: CounterStore,
    op: Callable[[], R],
    load: Callable[[str], int],
    *,
    expire_at: Mapping[str, float | None] | None = None,
    attempts: int = 3,
    first: R | None = None,
) -> R:
    """Call ``op``; while it reports ``needs_init``, initialize those keys with ``load(key)`` and call it again.

    ``load(key)`` returns the key's spend from the durable ledger (e.g. the window's sum in integer
    units); :meth:`CounterStore.init` stores it only if no other process initialized the key first.
    ``expire_at`` gives each key its expiry (missing keys get none). Raises :class:`CounterUnavailable`
    if keys still need initializing after ``attempts`` calls (an ``expire_at`` in the past does that).
    ``first`` is the result of a call of ``op`` the caller already made (it counts as the first attempt).
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    expiries = expire_at or {}
    result = op() if first is None else first
    for _ in range(attempts - 1):
        if not result.needs_init:
            return result
        for key in result.needs_init:
            store.init(key, load(key), expire_at=expiries.get(key))
        result = op()
    if result.needs_init:
        raise CounterUnavailable(
            f"counter keys {list(result.needs_init)} still need initializing after {attempts} attempts; "
            "check that their expire_at is in the future"
        )
    return result
