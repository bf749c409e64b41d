"""More of the budget path: CACHE_ONLY, automatic emergency stops, the deferred queue, idempotent settles."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spendgate import Authorization, InvalidUsageError, Meter, Settings, Usage
from spendgate.budgets import Action
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def meter(url: str, clock: FakeClock, **settings: Any) -> Meter:
    return Meter(settings=Settings(database_url=url, **settings), clock=clock)


def exhaust(m: Meter, user: str, amount: str = "0.01") -> dict[str, Any]:
    """An adaptive limit for ``user``, spent past 100 % and with its grace period already over."""
    limit = m.set_limit(scope="user", scope_id=user, amount=amount, level="adaptive")
    window = limit.window_at(m.clock.now())
    assert window is not None
    m.store.control.record_crossing(limit.id, window.key, "exceeded", m.clock.now() - timedelta(hours=7), {})
    m.budget_status(user_id=user, tier="free")  # initializes the counter from the (empty) ledger
    assert m.counters.compare_and_set(m.governor.key(limit, window), 0, 10_500_000_000)
    return {
        "user_id": user,
        "tier": "free",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1,
        "max_tokens": 1,
    }


def test_cache_only_when_a_cached_answer_exists(sqlite_url: str) -> None:
    with meter(sqlite_url, FakeClock(T0)) as m:
        ask = exhaust(m, "ann")
        assert m.authorize(**ask).action is Action.DENY
        d = m.authorize(**ask, cache_available=True)
        assert d.action is Action.CACHE_ONLY and not d.allowed


def test_deferred_calls_run_when_the_window_resets_higher_tiers_first(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock, queue_enabled=True) as m:
        ask = exhaust(m, "bo")
        queued = m.authorize(**ask, messages=[{"role": "user", "content": "summarize"}])
        assert queued.action is Action.QUEUE
        assert m.defer(queued, {"prompt": "summarize"}) == queued.reservation_id
        vip = exhaust(m, "cy")
        vip_queued = m.authorize(**{**vip, "tier": "enterprise"})
        with pytest.raises(InvalidUsageError, match="only a QUEUE"):
            m.defer(m.authorize(user_id="dan", provider="openai", model="gpt-4o", input_tokens=1))
        ran: list[Mapping[str, Any]] = []

        def handler(auth: Authorization, request: Mapping[str, Any]) -> Usage:
            ran.append(request)
            return Usage(input_tokens=3, output_tokens=1)

        assert m.run_queue(handler) == []  # nothing due before the day resets
        if vip_queued.action is Action.QUEUE:
            m.defer(vip_queued, {"prompt": "vip"})
        clock.set(datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC))
        outcomes = m.run_queue(handler)
        assert [o.status for o in outcomes] == ["done"] * len(outcomes)
        assert ran[0] == ({"prompt": "vip"} if vip_queued.action is Action.QUEUE else {"prompt": "summarize"})
        assert {"prompt": "summarize"} in ran
        event = m.store.get(outcomes[-1].event_id or "")
        assert event is not None and event.metadata == {"deferred": outcomes[-1].id}
        assert [q.status for q in m.store.control.queued()] == ["done"] * len(outcomes)


def test_failing_and_expired_deferred_calls(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock, queue_enabled=True, queue_max_age_s=3600 * 30) as m:
        ask = exhaust(m, "eve")
        m.defer(m.authorize(**ask), {"n": 1})
        clock.set(datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC))

        def broken(auth: Authorization, request: Mapping[str, Any]) -> Usage:
            raise RuntimeError("upstream down")

        (outcome,) = m.run_queue(broken)
        assert outcome.status == "failed" and "upstream down" in outcome.detail
        assert m.summary(user_id="eve").failures == 1
        assert m.budget_status(user_id="eve", tier="free")[0].reserved == 0

        ask2 = exhaust(m, "fin")
        m.defer(m.authorize(**ask2), {"n": 2})
        clock.advance(hours=31)
        (late,) = m.run_queue(broken)
        assert late.status == "expired"


def test_breaker_rule_trips_an_emergency_stop(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock) as m:
        m.set_breaker_rule("team", "ops", metric="requests", period="rolling", rolling_seconds=600, amount=3,
                           cooldown=timedelta(minutes=10))  # fmt: skip
        ask: dict[str, Any] = {"team_id": "ops", "provider": "openai", "model": "gpt-4o", "input_tokens": 1}
        for _ in range(4):
            d = m.authorize(**ask)
            assert d.allowed
            m.settle(d, Usage(input_tokens=1))
        stopped = m.authorize(**ask)
        assert stopped.action is Action.EMERGENCY_STOP and "breaker rule" in stopped.reason
        assert m.authorize(team_id="dev", provider="openai", model="gpt-4o", input_tokens=1).allowed
        assert m.limits() == []  # the rule's tracking limit is not a budget
        assert any(e.actor == "rule" and e.action == "breaker.create" for e in m.store.control.audit_entries())
        clock.advance(minutes=11)
        assert m.authorize(**ask).allowed


def test_settle_twice_is_harmless_on_rolling_windows_too(sqlite_url: str) -> None:
    with meter(sqlite_url, FakeClock(T0)) as m:
        m.set_limit(scope="key", scope_id="k9", metric="total_tokens", period="rolling", rolling_seconds=60, amount=100)
        d = m.authorize(api_key_id="k9", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=40)
        assert m.settle(d, Usage(input_tokens=10, output_tokens=5)).duplicate is False
        assert m.settle(d, Usage(input_tokens=10, output_tokens=5)).duplicate is True
        assert m.release(d) is not None
        (status,) = m.budget_status(api_key_id="k9")
        assert status.spent == Decimal(15)


def test_cost_limits_beyond_the_counters_range_are_refused_clearly(sqlite_url: str) -> None:
    with meter(sqlite_url, FakeClock(T0)) as m:
        with pytest.raises(InvalidUsageError, match=r"at most \$8,000,000") as exc:
            m.set_limit(scope="global", period="year", amount="50000000")
        assert exc.value.field == "amount" and m.limits() == []
        big = m.set_limit(scope="global", period="year", amount="8000000")
        m.add_grant(big.id, "5000000", reason="a grant past the counters' range is bounded by it")
        d = m.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=10)
        assert d.allowed
        m.settle(d, Usage(input_tokens=10, output_tokens=10))
        assert m.budget_status()[0].spent > 0


def test_a_settle_with_a_bad_field_changes_nothing(sqlite_url: str) -> None:
    with meter(sqlite_url, FakeClock(T0)) as m:
        m.set_limit(scope="user", scope_id="vic", amount="1")
        d = m.authorize(user_id="vic", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=10)
        held = m.budget_status(user_id="vic")[0]
        with pytest.raises(InvalidUsageError, match="latency_ms"):
            m.settle(d, Usage(input_tokens=10, output_tokens=10), latency_ms=-5)
        after = m.budget_status(user_id="vic")[0]
        assert (after.spent, after.reserved) == (held.spent, held.reserved) and m.summary().requests == 0
        assert m.settle(d, Usage(input_tokens=10, output_tokens=10), latency_ms=5).duplicate is False
        assert m.budget_status(user_id="vic")[0].reserved == 0


def test_rate_limits_grants_and_stops_are_listed_and_removed_through_the_meter(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock) as m:
        rate = m.set_rate_limit("user", "ann", rpm=1)
        assert [r.id for r in m.rate_limits()] == [rate.id]
        assert m.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=1).allowed
        assert m.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=1).action is Action.THROTTLE
        assert m.remove_rate_limit(rate.id, actor="ops") and not m.remove_rate_limit(rate.id)
        assert m.rate_limits() == []
        assert m.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=1).allowed  # it took effect

        limit = m.set_limit(scope="user", scope_id="ann", amount=Decimal("1"))
        other = m.set_limit(scope="user", scope_id="bob", amount=Decimal("1"))
        grant = m.add_grant(limit.id, "5", reason="launch")
        m.add_grant(other.id, "2")
        assert [g.id for g in m.grants(limit.id)] == [grant.id] and len(m.grants()) == 2
        assert m.remove_grant(grant.id, actor="ops") and m.grants(limit.id) == []

        stop = m.emergency_stop("team", "t1", reason="runaway loop")
        assert [s.scope for s in m.emergency_stops()] == [stop.scope]
        assert m.clear_emergency_stop("team", "t1") and m.emergency_stops() == []
        actions = [entry.action for entry in m.store.control.audit_entries()]
        assert any("rate_limit" in a for a in actions) and any("grant" in a for a in actions)


def test_a_settle_long_after_its_window_ended_is_recorded_and_counted_where_the_ledger_has_it(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock) as m:
        m.set_limit(scope="user", scope_id="ann", amount=Decimal("1"), period="day")
        d = m.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=1000, max_tokens=100)
        assert d.allowed
        clock.advance(days=3)  # the hold's day, and its counter, are long gone: no CounterUnavailable
        recorded = m.settle(d, Usage(input_tokens=1000, output_tokens=100))
        assert recorded.cost is not None and m.store.get(d.reservation_id) is not None
        [status] = m.budget_status(user_id="ann")
        assert status.spent == recorded.cost.total and status.reserved == 0  # today's counter agrees with the ledger
        assert m.settle(d, Usage(input_tokens=1000, output_tokens=100)).duplicate  # still idempotent
