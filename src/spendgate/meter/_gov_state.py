"""The governor's live state: counters read (and initialized from the ledger), first-exceeded times."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendgate.budgets import (
    MAX_AMOUNT,
    Decision,
    DecisionOptions,
    Level,
    Limit,
    LimitState,
    Metric,
    RequestContext,
    RequestEstimate,
    Window,
    effective_amount,
)
from spendgate.clock import Clock
from spendgate.counters import (
    MAX_RATE_AMOUNT,
    CounterState,
    CounterStore,
)
from spendgate.ledger import UsageStore
from spendgate.meter._authorization import Hold, from_units, to_units
from spendgate.meter._policy import (
    KEY_MARGIN_S,
    Policy,
    PolicyCache,
    Slot,
    counter_key,
    scope_filter,
)
from spendgate.pricing import PriceBook
from spendgate.pricing._compiled import CompiledPrice
from spendgate.settings import Settings

__all__ = ["GovernorBase", "LiveState"]


_ZERO = Decimal(0)


class GovernorBase:
    """What every part of the governor shares (set by :class:`Governor.__init__`)."""

    store: UsageStore
    counters: CounterStore
    prices: PriceBook
    settings: Settings
    clock: Clock
    policy: PolicyCache
    options: DecisionOptions
    before_read: Callable[[], object]
    _throttles: dict[tuple[str, str], int]
    _exceeded: dict[tuple[str, str], datetime | None]
    _exceeded_policy: Policy | None
    _lock: threading.Lock
    _max_output: dict[tuple[str, str], int | None]
    _named: set[tuple[str, str]]
    _outputs: dict[tuple[str, str, int | None], int]
    _estimates: dict[tuple[str, str, int, int | None], tuple[CompiledPrice, RequestEstimate]]
    _cache_options: DecisionOptions
    _cost_holds: dict[int, tuple[tuple[Hold, ...], tuple[str, ...] | None]]
    _window_ends: dict[str, float]


@dataclass(slots=True)
class _Figures:
    """One limit's live figures in counter units, as read: what its :class:`LimitState` is made of."""

    limit: Limit
    window: Window | None
    slot: Slot | None  # None for per-request and rolling limits
    spent: int
    reserved: int
    amount: Decimal
    """The amount in force (with grants)."""
    first_exceeded_at: datetime | None

    def state(self) -> LimitState:
        metric = self.limit.metric
        return LimitState(
            limit=self.limit,
            window=self.window,
            spent=from_units(metric, self.spent),
            reserved=from_units(metric, self.reserved),
            effective_amount=self.amount,
            first_exceeded_at=self.first_exceeded_at,
        )

    def used(self) -> Decimal | None:
        """Spent plus reserved as :attr:`LimitState.used` has it; None if a LimitState would refuse a figure."""
        metric = self.limit.metric
        if self.amount > MAX_AMOUNT or (
            metric is not Metric.COST and (self.spent > MAX_AMOUNT or self.reserved > MAX_AMOUNT)
        ):
            return None  # (a cost counter's int64 of pico-dollars is always in range)
        return from_units(metric, self.spent + self.reserved)


def _window(slot: Slot | None) -> Window | None:
    return None if slot is None else slot.window


def _summary_amount(metric: Metric, summary: Any) -> Decimal:
    if metric is Metric.COST:
        return Decimal(summary.cost)
    if metric is Metric.INPUT_TOKENS:
        return Decimal(summary.input_tokens)
    if metric is Metric.OUTPUT_TOKENS:
        return Decimal(summary.output_tokens)
    if metric is Metric.TOTAL_TOKENS:
        return Decimal(summary.input_tokens + summary.output_tokens)
    return Decimal(summary.requests)


class LiveState(GovernorBase):
    """Live figures of limits: counters, initialized from the ledger when cold; first-exceeded times."""

    # -- live state --------------------------------------------------------------------------------

    def key(self, limit: Limit, window: Window) -> str:
        return counter_key(limit, window)

    def ledger_used(self, limit: Limit, window: Window) -> Decimal:
        """What the ledger holds for ``limit`` in ``window`` (the source of truth for counters)."""
        self.before_read()
        events, prefix = scope_filter(limit.scope, window.start, None if window.rolling else window.end)
        if prefix is not None:
            rows = self.store.totals_by("model", events)
            return sum(
                (_summary_amount(limit.metric, s) for m, s in rows if m is not None and m.startswith(prefix)),
                Decimal(0),
            )
        return _summary_amount(limit.metric, self.store.summary(events))

    def _load(self, slot: Slot) -> int:
        return to_units(slot.limit.metric, self.ledger_used(slot.limit, slot.window))

    def _loader(self, pairs: Mapping[str, tuple[Limit, Window]]) -> Any:
        def load(key: str) -> int:
            limit, window = pairs[key]
            return to_units(limit.metric, self.ledger_used(limit, window))

        return load

    def _expiries(self, pairs: Mapping[str, tuple[Limit, Window]]) -> dict[str, float]:
        return {key: window.end.timestamp() + KEY_MARGIN_S for key, (_, window) in pairs.items()}

    def states(self, policy: Policy, limits: Sequence[Limit], ctx: RequestContext, now: datetime) -> list[LimitState]:
        """Live figures of each limit in its current window, initializing cold counters from the ledger."""
        return [figures.state() for figures in self._read(policy, limits, now)]

    def _sync_exceeded(self, policy: Policy) -> None:
        if policy is not self._exceeded_policy:
            with self._lock:
                self._exceeded.clear()
                self._exceeded_policy = policy

    def _read(
        self, policy: Policy, limits: Sequence[Limit], now: datetime, read: Mapping[str, CounterState] | None = None
    ) -> list[_Figures]:
        """The live figures of ``limits`` (``read``: their counters as just read, if they were)."""
        self._sync_exceeded(policy)
        ts = now.timestamp()
        slots = [self.policy.slot(limit, now) for limit in limits]
        keys = [slot.key for slot in slots if slot is not None]
        if read is None:
            read = self.counters.read(keys, now=ts) if keys else {}
        cold = [key for key, counter in read.items() if not counter.initialized]
        if cold:
            by_key = {slot.key: slot for slot in slots if slot is not None}
            for key in cold:
                self.counters.init(key, self._load(by_key[key]), expire_at=by_key[key].expire_at)
            read = {**read, **self.counters.read(cold, now=ts)}
        out: list[_Figures] = []
        for limit, slot in zip(limits, slots, strict=True):
            spent = reserved = 0
            if slot is not None:
                window: Window | None = slot.window
                counter = read[slot.key]
                spent, reserved = counter.spent, counter.reserved
            else:
                window = limit.window_at(now)
                if window is not None:  # rolling
                    probe = self.counters.rate_acquire(
                        f"r|{limit.id}", 0, MAX_RATE_AMOUNT, float(limit.rolling_seconds or 1), now=ts
                    )
                    spent = probe.used
            grants = policy.grants.get(limit.id)
            amount = effective_amount(limit, grants, now) if grants else limit.amount + _ZERO
            first = (
                None
                if limit.level is not Level.ADAPTIVE and limit.tier is None
                else self._first_exceeded(limit, window)
            )
            out.append(_Figures(limit, window, slot, spent, reserved, amount, first))
        return out

    def _first_exceeded(self, limit: Limit, window: Window | None) -> datetime | None:
        if window is None or (limit.level is not Level.ADAPTIVE and limit.tier is None):
            return None
        key = (limit.id, window.key)
        if key not in self._exceeded:
            found = self.store.control.crossings(limit_id=limit.id, window_key=window.key)
            self._exceeded[key] = next((c.crossed_at for c in found if c.threshold == "exceeded"), None)
        return self._exceeded[key]

    def _mark_exceeded(self, decision: Decision, states: Sequence[_Figures], now: datetime) -> None:
        for state in states:
            if state.limit.id in decision.first_exceeded and state.window is not None:
                self.store.control.record_crossing(
                    state.limit.id, state.window.key, "exceeded", now, {"scope": str(state.limit.scope)}
                )
                self._exceeded[(state.limit.id, state.window.key)] = now
