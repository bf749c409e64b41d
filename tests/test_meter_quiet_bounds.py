"""The integer bounds of the quiet test (``quiet_bounds``) never change what the exact test answers.

The governor asks the bounds first and the exact Decimal test (``QuietTest.allows``) only when they
cannot tell; the answer must be the exact test's for any figures, in particular right at the edges of
each limit and of an adaptive limit's warning fraction.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate import Meter, Settings
from spendgate.budgets import Metric, RequestContext, RequestEstimate
from spendgate.counters import CounterState
from spendgate.meter._authorization import to_units
from spendgate.meter._gov_fast import Lanes, Shape, quiet_bounds
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CTX = RequestContext(provider="openai", model="gpt-4o", user_id="alice", team_id="ml", tier="free")


def _meter(path: Path) -> Meter:
    return Meter(settings=Settings(database_url=f"sqlite:///{path / 'q.db'}"), clock=FakeClock(T0))


def _lanes(meter: Meter) -> Lanes:
    g = meter.governor
    policy = g.policy.get()
    plan = g.policy.plan(policy, CTX, T0)
    assert plan is not None
    return Lanes.of(plan)


def _edges(bound: int, held: int) -> list[int]:
    """Figures (spent + reserved) around where ``used + held`` meets ``bound``."""
    edge = max(0, bound - held)
    return [max(0, edge + d) for d in (-3, -2, -1, 0, 1, 2, 3, 10**6, -(10**6))]


@pytest.mark.parametrize(
    "limits",
    [
        [("user", "alice", "cost", "day", "0.05", "hard")],
        [("user", "alice", "cost", "day", "3.333333", "adaptive"), ("global", None, "cost", "month", "7", "soft")],
        [("team", "ml", "total_tokens", "day", "5000", "adaptive"), ("user", "alice", "requests", "day", "3", "hard")],
        [("user", "alice", "cost", "request", "0.01", "hard"), ("team", "ml", "cost", "day", "0.9", "adaptive")],
    ],
)
def test_the_bounds_answer_what_the_exact_test_answers(tmp_path: Path, limits: list[tuple[str, ...]]) -> None:
    rng = random.Random(7)
    with _meter(tmp_path) as meter:
        for scope, scope_id, metric, period, amount, level in limits:
            meter.set_limit(scope=scope, scope_id=scope_id, metric=metric, period=period, amount=amount, level=level)
        lanes = _lanes(meter)
        bounds = lanes.quiet
        assert bounds is not None and len(bounds) == len(lanes.plan.limits) >= len(limits)  # with tier defaults
        exact = replace(lanes, quiet=None)
        g = meter.governor
        seen: set[bool] = set()
        for cost in ("0.000001", "0.0004", "0.00423", "0.0099999999999", "0.0123456789012345"):
            estimate = RequestEstimate(provider="openai", model="gpt-4o", cost=Decimal(cost), input_tokens=300,
                                       output_tokens=rng.randrange(0, 900))  # fmt: skip
            held = {m: to_units(m, estimate.amount(m), "up") for m in Metric}
            shape = Shape.of(lanes, estimate)
            assert shape.checks == tuple((key, bound, held[metric]) for key, metric, bound in bounds)
            assert all(hold.amount == held[hold.limit.metric] for hold in shape.holds)  # ... and the holds hold
            assert [item.amount for item in shape.items] == [hold.amount for hold in shape.holds]
            for _ in range(40):
                read: dict[str, CounterState] = {}
                for key, metric, bound in bounds:
                    if key is not None:
                        used = rng.choice(_edges(bound, held[metric]))
                        spent = rng.randrange(0, used + 1)
                        read[key] = CounterState(spent, used - spent)
                answer = g._quiet(lanes, read, estimate, shape)
                assert answer == g._quiet(exact, read, estimate, Shape.of(exact, estimate)), (cost, read)
                seen.add(answer)
        assert seen == {True, False}  # the figures reached both sides of the edges


def test_a_cold_counter_is_never_quiet(tmp_path: Path) -> None:
    with _meter(tmp_path) as meter:
        meter.set_limit(scope="user", scope_id="alice", period="day", amount="10")
        lanes = _lanes(meter)
        assert lanes.quiet is not None
        keys = [key for key, _, _ in lanes.quiet if key is not None]
        estimate = RequestEstimate(provider="openai", model="gpt-4o", cost=Decimal("0.01"))
        warm = {key: CounterState(0, 0) for key in keys}
        shape = Shape.of(lanes, estimate)
        assert meter.governor._quiet(lanes, warm, estimate, shape)
        cold = {**warm, keys[0]: CounterState(0, 0, initialized=False)}
        assert not meter.governor._quiet(lanes, cold, estimate, shape)


def test_no_bounds_for_huge_amounts(tmp_path: Path) -> None:
    with _meter(tmp_path) as meter:
        meter.set_limit(scope="user", scope_id="alice", metric="total_tokens", period="day", amount=10**12)
        assert _lanes(meter).quiet is None  # too large an amount for the margin argument: the exact test decides


def test_no_bounds_when_a_limit_of_the_plan_does_not_apply(tmp_path: Path) -> None:
    with _meter(tmp_path) as meter:
        meter.set_limit(scope="user", scope_id="alice", period="day", amount="10")
        meter.set_limit(scope="user", scope_id="alice", period="week", amount="50", tier="pro", level="adaptive")
        plan = meter.governor.policy.plan(meter.governor.policy.get(), CTX, T0)
        assert plan is not None and len(plan.quiet.tests) < len(plan.limits)
        assert quiet_bounds(plan) is None  # the exact test knows which limits apply


def test_a_bound_lies_a_unit_inside_the_limit(tmp_path: Path) -> None:
    with _meter(tmp_path) as meter:
        meter.set_limit(scope="user", scope_id="alice", period="day", amount="0.05")
        meter.set_limit(scope="team", scope_id="ml", period="day", amount="2", level="adaptive")
        bounds = _lanes(meter).quiet
        assert bounds is not None
        by_key = {key.split("|")[1]: bound for key, _, bound in bounds if key is not None and "|day|" in key}
        tier = meter.governor.policy.get().tiers.policy_for("free")
        assert by_key["user:alice"] == 5 * 10**10 - 1  # 0.05 USD in pico-dollars, less one
        assert tier.warning < tier.hard_limit
        assert by_key["team:ml"] == int(tier.warning * 2 * 10**12) - 2  # below the warning fraction of 2 USD
