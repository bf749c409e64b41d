"""Reservations: the worst case held on every windowed limit at once, all or nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from spendgate._frozen import twin
from spendgate.budgets import (
    Metric,
    RequestContext,
    RequestEstimate,
)
from spendgate.counters import (
    INT64_MAX,
    MAX_RATE_AMOUNT,
    ReserveItem,
    ReserveResult,
    with_init,
)
from spendgate.counters._abstract import checks_only
from spendgate.meter._authorization import Hold, to_units
from spendgate.meter._gov_state import LiveState, _Figures
from spendgate.meter._policy import (
    Policy,
    Slot,
    reserve_cap,
)

__all__ = ["Reservations"]

_ITEM_TWIN = twin(ReserveItem)
_INF = float("inf")


def _reserve_item(key: str, amount: int, cap: int | None, expire_at: float) -> ReserveItem:
    """``ReserveItem(key, amount, cap, expire_at)``, without re-checking what the governor made itself.

    Its keys are non-empty strings, its expiries finite floats and its amounts and caps ints; only an
    absurd price or limit takes those past the int64 range, and that goes through the checks (and fails).
    """
    if not (0 <= amount <= INT64_MAX and (cap is None or 0 <= cap <= INT64_MAX)):
        return ReserveItem(key, amount, cap, expire_at)
    item: Any = object.__new__(_ITEM_TWIN)  # plain stores, then it becomes the frozen ReserveItem
    item.key = key
    item.amount = amount
    item.cap = cap
    item.expire_at = expire_at
    item.__class__ = ReserveItem
    return item  # type: ignore[no-any-return]  # (typing.cast is a call: this is the hot path)


class Reservations(LiveState):
    """Holding a call's worst case on every windowed limit at once."""

    def _reserve(
        self,
        policy: Policy,
        figures: Sequence[_Figures],
        ctx: RequestContext,
        estimate: RequestEstimate,
        hold_id: str,
        now: datetime,
    ) -> tuple[Hold, ...] | None:
        """Hold the worst case on every windowed limit at once; None when a cap refused it."""
        holds: list[Hold] = []
        items: list[ReserveItem] = []
        slots: list[Slot] = []
        units: dict[Metric, int] = {}
        for f in figures:
            limit, metric = f.limit, f.limit.metric
            amount = units.get(metric)
            if amount is None:
                amount = units[metric] = to_units(metric, estimate.amount(metric), "up")
            cap = reserve_cap(limit, f.amount, policy.tiers, ctx.tier)
            if limit.rolling_seconds is not None:
                assert f.window is not None
                key = f"r|{limit.id}"
                ceiling = cap if cap is not None else MAX_RATE_AMOUNT
                got = self.counters.rate_acquire(key, amount, ceiling, limit.rolling_seconds, now=now.timestamp())
                if not got.allowed:
                    self._undo(holds, now)
                    return None
                holds.append(Hold(key, limit, f.window.key, amount, f.amount, limit.rolling_seconds, got.entry_id))
                continue
            slot = f.slot
            assert slot is not None
            slots.append(slot)
            items.append(_reserve_item(slot.key, amount, cap, slot.expire_at))
            holds.append(Hold(slot.key, limit, slot.window.key, amount, f.amount))
        if items and not self._hold(hold_id, items, slots, now).ok:
            self._undo(holds, now)
            return None
        return tuple(holds)

    def _hold(
        self,
        hold_id: str,
        items: Sequence[ReserveItem],
        slots: Sequence[Slot],
        now: datetime,
        expiries: Mapping[str, float] | None = None,
        ts: float | None = None,
    ) -> ReserveResult:
        """Reserve ``items`` (the counters of ``slots``) at once, initializing cold counters from the ledger.

        ``ts`` is ``now.timestamp()``, when the caller has it at hand.
        """

        if ts is None:
            ts = now.timestamp()
        ttl_s = self.settings.hold_ttl_s
        # The quiet path's items (a tuple, each key once) and times pass reserve()'s checks: skip them.
        plain = type(hold_id) is str and hold_id and type(items) is tuple and type(ttl_s) is float and ttl_s < _INF
        direct = checks_only(self.counters, "reserve") if plain else None

        def reserve() -> ReserveResult:
            if direct is not None:
                return direct._reserve(hold_id, items, now=ts, ttl_s=ttl_s)  # type: ignore[arg-type]  # a tuple
            return self.counters.reserve(hold_id, items, ttl_s=ttl_s, now=ts)

        result = reserve()
        if result.needs_init:  # a counter expired since it was read: with_init() loads it, taking over from here

            def load(key: str) -> int:
                return self._load(next(slot for slot in slots if slot.key == key))

            result = with_init(
                self.counters,
                reserve,
                load,
                expire_at={slot.key: slot.expire_at for slot in slots} if expiries is None else expiries,
                first=result,
            )
        return result

    def _undo(self, holds: Sequence[Hold], now: datetime) -> None:
        for hold in holds:
            if hold.rolling_seconds is not None:
                self.counters.rate_adjust(
                    hold.key, -hold.amount, float(hold.rolling_seconds), now=now.timestamp(), entry_id=hold.entry_id
                )
