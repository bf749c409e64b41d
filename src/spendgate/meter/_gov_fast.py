"""What the quiet path works out once per plan, so that a plain ALLOW and its settle do little per call.

A :class:`Lanes` holds, for each windowed limit of a :class:`~spendgate.meter._policy.Plan`, everything
a hold on it needs (counter key, window key, amount in force, reservation cap, counter expiry) and
where the limit's alert thresholds lie in counter units (:func:`crossing_bounds`). With those bounds a
settle that takes a counter across no threshold (nearly all of them) is told so by two integer
comparisons (:func:`may_cross`) instead of the exact Decimal test, which still runs whenever a
threshold might have been crossed. The quiet test itself has integer bounds too (:func:`quiet_bounds`):
a request whose worst case stays well inside every limit is found quiet without a Decimal. What a
request of one :class:`RequestEstimate` holds under a plan (its :class:`Shape`) is worked out once too.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from spendgate._frozen import twin
from spendgate.budgets import Limit, Metric, RequestEstimate, utilization
from spendgate.counters import CounterState, ReserveItem
from spendgate.meter._authorization import Hold, from_units, to_units
from spendgate.meter._gov_reserve import _reserve_item
from spendgate.meter._policy import Plan, Slot

__all__ = [
    "Bounds",
    "Lane",
    "Lanes",
    "QuietBound",
    "Shape",
    "binding",
    "crossing_bounds",
    "may_cross",
    "quiet_bounds",
]

Bounds = tuple[tuple[int, ...], tuple[int, ...]]
"""Per alert threshold ``t`` (ascending): a lower and an upper bound, in counter units, of ``t * amount``."""

_ZERO = Decimal(0)
_HOLD_TWIN = twin(Hold)
_new = object.__new__
_SCALE = Decimal(10) ** 12
_FAST_AMOUNT_MAX = Decimal(10) ** 9  # larger amounts (tokens) always take the exact quiet test

QuietBound = tuple[str | None, Metric, int]
"""A limit's counter key (None: per-request), its metric, and the most ``used + request`` (counter units)
that is surely quiet."""


def crossing_bounds(limit: Limit, amount: Decimal) -> Bounds | None:
    """Integer bounds around each threshold of ``limit`` at ``amount`` (None: always use the exact test).

    Each point ``t * amount`` (in counter units) lies more than a whole unit above its low bound and
    below its high bound: far more room than the rounding of the exact test's 28-digit divisions
    takes, so usage that stays on one side of the bounds crosses ``t`` by that test neither.
    """
    if not amount > 0 or not amount.is_finite():
        return None  # a zero amount is crossed by any use (utilization is infinite): leave it to the exact test
    lows: list[int] = []
    highs: list[int] = []
    scale = _SCALE if limit.metric is Metric.COST else Decimal(1)
    with localcontext(prec=200):  # exact: thresholds and amounts have few digits
        for threshold in limit.thresholds:
            point = Decimal(str(threshold)) * amount * scale
            lows.append(math.floor(point) - 1)
            highs.append(math.ceil(point) + 1)
    return tuple(lows), tuple(highs)


def may_cross(bounds: Bounds, before: int, after: int) -> bool:
    """False when going from ``before`` to ``after`` units surely crosses none of the thresholds of ``bounds``.

    The thresholds ascend, and so do both bounds: the first threshold whose upper bound reaches
    ``before`` is the only candidate worth testing, the later ones lie further up.
    """
    lows, highs = bounds
    i = bisect_left(highs, before)
    return i < len(lows) and lows[i] <= after


def quiet_bounds(plan: Plan) -> tuple[QuietBound, ...] | None:
    """Integer bounds for the plan's quiet test (None: always take the exact test).

    When every limit of the plan applies (the usual case) and, on each, the counter's spent + reserved
    plus the request's worst case (rounded up to whole units) stays within its bound, then
    :meth:`QuietTest.allows` is surely true: each bound lies at least a whole unit inside what that test
    compares (the ceiling; for an adaptive limit, its warning fraction of the amount), and the test's
    28-digit arithmetic errs by far less than a unit at these magnitudes. A request outside a bound is
    not refused: it takes the exact test.
    """
    tests = plan.quiet.tests
    if not tests or len(tests) != len(plan.limits):
        return None  # no limit applies, or one does not: the exact test handles those
    out: list[QuietBound] = []
    with localcontext(prec=200):  # exact: amounts and fractions have few digits
        for i, metric, amount, policy, ceiling in tests:
            if not (amount.is_finite() and 0 < amount <= _FAST_AMOUNT_MAX and ceiling.is_finite()):
                return None
            scale = _SCALE if metric is Metric.COST else Decimal(1)
            bound = math.floor(ceiling * scale) - 1  # projected <= ceiling
            if policy is not None:  # and utilization below the warning fraction
                bound = min(bound, math.ceil(policy.warning * amount * scale) - 2)
            slot = plan.slots[i]
            out.append((None if slot is None else slot.key, metric, bound))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Lane:
    """One windowed limit of a plan: what its holds carry, and its counter."""

    key: str
    limit: Limit
    window_key: str
    amount: Decimal
    """The amount in force."""
    cap: int | None
    expire_at: float
    metric: Metric
    bounds: Bounds | None


@dataclass(frozen=True, slots=True)
class Lanes:
    """The windowed limits of one :class:`Plan`, in its order, and their slots (for loading cold counters)."""

    plan: Plan
    lanes: tuple[Lane, ...]
    slots: tuple[Slot, ...]
    quiet: tuple[QuietBound, ...] | None
    """The plan's :func:`quiet_bounds`."""
    cost_keys: tuple[str, ...] | None
    """The lanes' counter keys when every lane counts cost (the usual case), else None."""

    @classmethod
    def of(cls, plan: Plan) -> Lanes:
        lanes: list[Lane] = []
        slots: list[Slot] = []
        for limit, slot, amount, cap in zip(plan.limits, plan.slots, plan.amounts, plan.caps, strict=True):
            if slot is None:
                continue  # a per-request limit holds nothing
            slots.append(slot)
            bounds = crossing_bounds(limit, amount)
            lanes.append(Lane(slot.key, limit, slot.window.key, amount, cap, slot.expire_at, limit.metric, bounds))
        every_cost = bool(lanes) and all(lane.metric is Metric.COST for lane in lanes)
        cost_keys = tuple(lane.key for lane in lanes) if every_cost else None
        return cls(plan, tuple(lanes), tuple(slots), quiet_bounds(plan), cost_keys)


@dataclass(slots=True)  # not frozen: built once per request shape, its __init__ had better be quick
class Shape:
    """What a request of ``estimate`` reserves under ``lanes`` on the quiet path, worked out once for both.

    ``checks`` are the plan's quiet bounds (see :attr:`Lanes.quiet`) as ``(counter key or None, bound,
    the request's worst case in that bound's metric)``, all in counter units; ``holds`` and ``items`` are
    its :class:`Hold` and :class:`ReserveItem` on each lane (all immutable, so requests of the same
    estimate share them).
    """

    lanes: Lanes
    estimate: RequestEstimate
    checks: tuple[tuple[str | None, int, int], ...]
    holds: tuple[Hold, ...]
    items: tuple[ReserveItem, ...]

    @classmethod
    def of(cls, lanes: Lanes, estimate: RequestEstimate) -> Shape:
        # Plain loops: with prompts of every length, most requests have a shape of their own.
        units: dict[Metric, int] = {}  # the request's worst case in counter units, by metric
        holds: list[Hold] = []
        items: list[ReserveItem] = []
        for lane in lanes.lanes:
            metric = lane.metric
            held = units.get(metric)
            if held is None:
                held = units[metric] = to_units(metric, estimate.amount(metric), "up")
            hold: Any = _new(_HOLD_TWIN)  # Hold(...) without the dataclass call (a Hold checks nothing)
            hold.key, hold.limit, hold.window_key, hold.amount = lane.key, lane.limit, lane.window_key, held
            hold.effective_amount, hold.bounds = lane.amount, lane.bounds
            hold.rolling_seconds = hold.entry_id = None
            hold.__class__ = Hold
            holds.append(hold)
            items.append(_reserve_item(lane.key, held, lane.cap, lane.expire_at))
        checks: list[tuple[str | None, int, int]] = []
        for key, metric, bound in lanes.quiet or ():
            held = units.get(metric)
            if held is None:
                held = units[metric] = to_units(metric, estimate.amount(metric), "up")
            checks.append((key, bound, held))
        return cls(lanes, estimate, tuple(checks), tuple(holds), tuple(items))


def binding(plan: Plan, read: Mapping[str, CounterState], estimate: RequestEstimate) -> tuple[Limit, Decimal] | None:
    """The binding limit of a quiet ALLOW and what it has left, as ``decide()`` works them out.

    Every check of a quiet ALLOW is an ALLOW, so the binding one is the first with the highest
    utilization (spent + reserved + this request's worst case, over the effective amount).
    """
    best: tuple[Decimal, Limit, Decimal] | None = None
    for limit, slot, amount in zip(plan.limits, plan.slots, plan.amounts, strict=True):
        metric = limit.metric
        if slot is None:
            spent = reserved = _ZERO
        else:
            counter = read[slot.key]
            spent, reserved = from_units(metric, counter.spent), from_units(metric, counter.reserved)
        ratio = utilization(spent + reserved + estimate.amount(metric), amount)
        if best is None or ratio > best[0]:
            best = (ratio, limit, max(_ZERO, amount - spent - reserved))
    return None if best is None else (best[1], best[2])
