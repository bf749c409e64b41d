"""The quiet path's precomputed shortcuts answer what the exact computations answer.

* :func:`may_cross` (integer bounds around alert thresholds) never says "nothing crossed" when
  :func:`crossed_thresholds` finds a crossing, and does skip the exact test far from every threshold;
* a quiet ALLOW's binding limit, worked out only when asked, is the one of the figures it was decided on;
* settles through the quiet path record the same threshold crossings as through the full decision
  (the comparison of whole meters is in ``test_meter_quiet.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate import Meter, Settings, Usage
from spendgate.budgets import Limit, Metric, Period, Scope, crossed_thresholds
from spendgate.errors import InvalidUsageError, LedgerError
from spendgate.ledger import UsageEvent
from spendgate.meter import Authorization
from spendgate.meter._authorization import from_units
from spendgate.meter._gov_fast import crossing_bounds, may_cross
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

AMOUNTS = st.one_of(
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(8_000_000), places=6),
    st.sampled_from([Decimal("0.02"), Decimal("1"), Decimal("0.000000000001"), Decimal("7.123456789012345")]),
)
THRESHOLDS = st.lists(
    st.sampled_from([0.1, 0.333, 0.5, 0.8, 0.95, 1.0, 1.5, 10.0]), min_size=0, max_size=4, unique=True
).map(sorted)


def _limit(metric: Metric, amount: Decimal, thresholds: list[float]) -> Limit:
    return Limit(
        scope=Scope.parse("user:alice"), metric=metric, period=Period.DAY, amount=amount, thresholds=tuple(thresholds)
    )


@given(
    metric=st.sampled_from([Metric.COST, Metric.TOTAL_TOKENS]),
    amount=AMOUNTS,
    thresholds=THRESHOLDS,
    before=st.integers(0, 2**63 - 1),
    step=st.integers(0, 10**15),
    near=st.integers(-3, 3),
    aim=st.integers(0, 3),
)
def test_may_cross_never_hides_a_crossing(
    metric: Metric, amount: Decimal, thresholds: list[float], before: int, step: int, near: int, aim: int
) -> None:
    if metric is not Metric.COST:
        amount = amount.to_integral_value() or Decimal(1)
    limit = _limit(metric, amount, thresholds)
    bounds = crossing_bounds(limit, amount)
    assert bounds is not None
    if thresholds:  # land on, or just by, a threshold's point as often as anywhere else
        scale = 10**12 if metric is Metric.COST else 1
        point = int(Decimal(str(thresholds[aim % len(thresholds)])) * amount * scale)
        before = max(0, point + near - step // 2 if aim % 2 else point + near)
    after = min(before + step, 2**63 - 1)
    crossed = crossed_thresholds(limit, from_units(metric, before), from_units(metric, after), amount=amount)
    if crossed:
        assert may_cross(bounds, before, after)


def test_may_cross_skips_the_exact_test_away_from_thresholds() -> None:
    limit = _limit(Metric.COST, Decimal("10"), [0.5, 0.8, 0.95])
    bounds = crossing_bounds(limit, Decimal("10"))
    assert bounds == ((4_999_999_999_999, 7_999_999_999_999, 9_499_999_999_999),
                      (5_000_000_000_001, 8_000_000_000_001, 9_500_000_000_001))  # fmt: skip
    assert not may_cross(bounds, 0, 4_000_000_000_000)  # $0 -> $4: below 50 %
    assert not may_cross(bounds, 5_100_000_000_000, 7_000_000_000_000)  # between 50 % and 80 %
    assert not may_cross(bounds, 9_600_000_000_000, 10**14)  # past the last one
    assert may_cross(bounds, 4_000_000_000_000, 5_000_000_000_000)  # onto 50 %: the exact test decides
    assert may_cross(bounds, 0, 10**14)
    assert crossing_bounds(_limit(Metric.COST, Decimal(0), [0.5]), Decimal(0)) is None  # any use crosses: exact
    assert crossing_bounds(_limit(Metric.COST, Decimal(1), []), Decimal(1)) == ((), ())
    assert not may_cross(((), ()), 0, 10**18)


def _meter(path: Path) -> Meter:
    return Meter(settings=Settings(database_url=f"sqlite:///{path / 'fast.db'}"), clock=FakeClock(T0))


def _quick(auth: Authorization) -> object:
    return auth.quick_binding


def test_the_binding_limit_is_worked_out_late_from_the_figures_read_early(tmp_path: Path) -> None:
    with _meter(tmp_path) as m:
        m.set_limit(scope="user", scope_id="alice", amount="1.00")
        m.set_limit(scope="team", scope_id="ml", amount="0.50", period="month")
        ask: dict[str, Any] = {
            "user_id": "alice",
            "team_id": "ml",
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 100,
        }
        m.release(m.authorize(**ask, max_tokens=100))  # warms the counters up: the next ones are quiet
        first = m.authorize(**ask, max_tokens=100)
        assert callable(_quick(first))  # nothing worked out yet
        m.settle(m.authorize(**ask, max_tokens=10_000), Usage(input_tokens=100, output_tokens=10_000))
        limit, remaining = first.binding_remaining()  # after the counters moved on
        assert limit is not None and limit.id == "team:ml|cost|month|UTC"
        assert remaining == Decimal("0.50")  # what the team had left when ``first`` was decided
        assert (limit, remaining) == (first.decision.limit, first.decision.remaining)
        assert _quick(first) == (limit, remaining)  # worked out once, and kept


def test_quiet_settles_record_the_crossings_the_exact_test_finds(tmp_path: Path) -> None:
    with _meter(tmp_path) as m:
        m.set_limit(scope="user", scope_id="alice", amount="0.0104")
        ask: dict[str, Any] = {
            "user_id": "alice",
            "provider": "openai",
            "model": "gpt-4o",
            "input_tokens": 1000,
            "max_tokens": 10,
        }
        m.release(m.authorize(**ask))
        seen = []
        for _ in range(4):  # $0.0026 a call: 25 %, 50 % (exactly), 75 %, 100 % of the limit
            auth = m.authorize(**ask)
            assert auth.holds[0].bounds is not None  # the quiet path's holds carry their bounds
            m.settle(auth, Usage(input_tokens=1000, output_tokens=10))
            seen.append(sorted(c.threshold for c in m.store.control.crossings()))
        assert seen == [[], ["0.5"], ["0.5"], ["0.5", "0.8", "0.95"]]
        assert m.budget_status(user_id="alice")[0].spent == Decimal("0.0104")


def test_lanes_are_kept_for_the_current_policy_only(tmp_path: Path) -> None:
    with _meter(tmp_path) as m:
        m.set_limit(scope="user", scope_id="alice", amount="1.00")
        ask: dict[str, Any] = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "max_tokens": 10}
        for user in ("alice", "alice", "bob", "bob"):  # the first of each warms its counters up
            m.authorize(user_id=user, **ask)
        g = m.governor
        (lanes,) = g._lanes.values()  # bob has no limit: no plan, no lanes
        assert [lane.key for lane in lanes.lanes] == ["b|user:alice|cost|day|UTC|day:2026-03-10@UTC"]
        m.set_limit(scope="user", scope_id="alice", amount="2.00")  # a new policy snapshot
        m.authorize(user_id="alice", **ask)
        (fresh,) = g._lanes.values()
        assert fresh is not lanes and fresh.lanes[0].amount == Decimal("2.00")
        assert fresh.plan.policy is g.policy.get()


def test_event_checks_done_in_c_still_leave_every_doubt_to_the_validators() -> None:
    base: dict[str, Any] = {"event_id": "e", "timestamp": T0, "provider": "openai", "model": "gpt-4o", "usage": Usage()}

    class Name(str):
        pass

    assert UsageEvent(**base, user_id=Name("alice"), user_agent="x" * 1500).user_agent == "x" * 1500  # 2,000 allowed
    wrong: list[tuple[str, Any]] = [("user_id", ""), ("user_id", "x" * 201), ("endpoint", "x" * 2001),
                                       ("team_id", 7), ("success", 1), ("cached", None), ("cost", Decimal("-1")),
                                       ("cost", Decimal("NaN"))]  # fmt: skip
    for field, value in wrong:
        with pytest.raises(InvalidUsageError) as caught:
            UsageEvent(**base, **{field: value})
        assert caught.value.field == field
    event = UsageEvent(**base, cost=Decimal("0.5"), tags={}, metadata={})
    assert event.cost == Decimal("0.5") and event.tags == {} and event.metadata == {}


def test_the_policy_snapshot_is_kept_until_the_control_store_changes(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'policy.db'}", policy_refresh_s=1)
    with Meter(settings=settings, clock=clock) as here, Meter(settings=settings, clock=clock) as there:
        here.set_limit(scope="user", scope_id="ann", metric="cost", period="day", amount=Decimal(1))
        first = here.governor.policy.get()
        clock.advance(seconds=5)
        assert here.governor.policy.get() is first  # stale, checked, unchanged: the same snapshot (and plans)
        there.set_limit(scope="user", scope_id="bob", metric="cost", period="day", amount=Decimal(2))
        assert here.governor.policy.get() is first  # not due for a check yet
        clock.advance(seconds=1)
        second = here.governor.policy.get()
        assert second is not first
        assert {limit.id for limit in second.limits} == {"user:ann|cost|day|UTC", "user:bob|cost|day|UTC"}
        there.remove_limit("user:ann|cost|day|UTC")
        clock.advance(seconds=1)
        assert [limit.id for limit in here.governor.policy.get().limits] == ["user:bob|cost|day|UTC"]


def test_an_unreachable_ledger_keeps_the_last_policy_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(T0)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'policy.db'}", policy_refresh_s=1)
    with Meter(settings=settings, clock=clock) as meter:
        meter.set_limit(scope="user", scope_id="ann", metric="cost", period="day", amount=Decimal(1))
        cache = meter.governor.policy
        first = cache.get()

        def down() -> int:
            raise LedgerError("could not read the audit log: connection refused")

        monkeypatch.setattr(meter.store.control, "version", down)
        clock.advance(seconds=2)
        assert cache.get() is first  # stale but in force: the counters still hold every limit
        cache.invalidate()
        with pytest.raises(LedgerError, match="connection refused"):
            cache.get()  # nothing read yet: nothing to enforce but an error
