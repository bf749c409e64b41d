"""Budgets through the Meter's public API: the issue's contract and every action, on real stores."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spendgate import InvalidUsageError, Meter, Settings, Usage
from spendgate.budgets import Action
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HI = [{"role": "user", "content": "hi"}]


def meter(url: str, clock: FakeClock | None = None, **settings: object) -> Meter:
    return Meter(settings=Settings(database_url=url, **settings), clock=clock or FakeClock(T0))  # type: ignore[arg-type]


def test_contract(meter_url: str) -> None:
    with meter(meter_url) as m:
        m.set_limit(scope="user", scope_id="alice", metric="cost", period="day", amount=Decimal("1.00"), level="hard")
        d = m.authorize(user_id="alice", provider="openai", model="gpt-4o", messages=HI, max_tokens=100)
        assert d.allowed and d.action is Action.ALLOW and d.reservation_id
        assert d.estimate is not None and d.estimate.output_tokens == 100 and d.estimate.input_tokens == 8
        (status,) = m.budget_status(user_id="alice")
        assert status.reserved == d.estimate.cost and status.spent == 0
        r = m.settle(d, Usage(input_tokens=12, output_tokens=80), latency_ms=300, success=True)
        assert r.duplicate is False and r.cost is not None
        (status,) = m.budget_status(user_id="alice")
        assert (status.spent, status.reserved) == (r.cost.total, Decimal(0))
        assert status.remaining == Decimal("1.00") - r.cost.total
        assert status.resets_at == datetime(2026, 3, 11, tzinfo=UTC)
        assert m.settle(d, Usage(input_tokens=12, output_tokens=80)).duplicate is True  # idempotent
        assert m.release(d) is not None and m.budget_status(user_id="alice")[0].spent == r.cost.total
        event = m.store.get(d.reservation_id)
        assert event is not None and event.user_id == "alice" and event.action == "allow"
        assert m.summary(user_id="alice").cost == r.cost.total


def test_hard_limit_denies_and_explains(sqlite_url: str) -> None:
    with meter(sqlite_url) as m:
        m.set_limit(scope="user", scope_id="bob", amount="0.002")
        first = m.authorize(user_id="bob", provider="openai", model="gpt-4o", messages=HI, max_tokens=100)
        assert first.allowed  # worst case $0.00102
        second = m.authorize(user_id="bob", provider="openai", model="gpt-4o", messages=HI, max_tokens=100)
        assert second.action is Action.DENY and not second.allowed
        assert second.limit is not None and second.limit.id == "user:bob|cost|day|UTC"
        assert second.reserved == Decimal("0.00102") and second.resets_at == datetime(2026, 3, 11, tzinfo=UTC)
        assert "would exceed" in second.reason and second.retry_after_s is not None
        with pytest.raises(InvalidUsageError, match="nothing to settle"):
            m.settle(second, Usage())
        assert m.release(second) is None
        m.release(first)  # the hold goes away and the failure is recorded
        assert m.authorize(user_id="bob", provider="openai", model="gpt-4o", messages=HI, max_tokens=100).allowed
        failed = m.summary(user_id="bob")
        assert failed.requests == 1 and failed.failures == 1


def test_hard_limit_holds_under_concurrency(sqlite_url: str) -> None:
    limit = Decimal("0.05")
    with meter(sqlite_url) as m:
        m.set_limit(scope="team", scope_id="ml", amount=limit)
        results: list[bool] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(25):
                d = m.authorize(team_id="ml", provider="openai", model="gpt-4o", input_tokens=1000, max_tokens=500)
                if d.allowed:
                    m.settle(d, Usage(input_tokens=1000, output_tokens=500))
                with lock:
                    results.append(d.allowed)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        spent = m.summary(team_id="ml").cost
        per_call = m.cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=500)).total
        assert spent <= limit
        assert sum(results) == int(limit / per_call)  # every call that fitted got through, no more
        (status,) = m.budget_status(team_id="ml")
        assert status.spent == spent and status.reserved == 0
        assert m.reconcile() == []


def test_soft_limit_warns_and_thresholds_are_recorded(sqlite_url: str) -> None:
    with meter(sqlite_url) as m:
        m.set_limit(scope="user", scope_id="cy", metric="total_tokens", amount=1000, level="soft")
        d = m.authorize(user_id="cy", provider="openai", model="gpt-4o", input_tokens=400, max_tokens=200)
        assert d.action is Action.ALLOW
        m.settle(d, Usage(input_tokens=400, output_tokens=200))
        crossed = [c.threshold for c in m.threshold_crossings()]
        assert crossed == ["0.5"]
        d2 = m.authorize(user_id="cy", provider="openai", model="gpt-4o", input_tokens=400, max_tokens=200)
        assert d2.action is Action.WARN and d2.allowed
        m.settle(d2, Usage(input_tokens=400, output_tokens=200))
        assert sorted(c.threshold for c in m.threshold_crossings()) == ["0.5", "0.8", "0.95"]
        assert m.budget_status(user_id="cy")[0].spent == 1200  # soft: over the limit, as warned


def test_adaptive_tier_downgrades_then_denies(sqlite_url: str) -> None:
    with meter(sqlite_url) as m:
        m.set_limit(scope="user", scope_id="dee", amount="0.01", level="adaptive")
        big: dict[str, Any] = {"user_id": "dee", "tier": "free", "input_tokens": 1500, "max_tokens": 100}
        first = m.authorize(provider="openai", model="gpt-4", **big)  # gpt-4: $0.051 worst case > $0.01
        assert first.action is Action.DOWNGRADE and first.allowed and first.downgraded
        assert (first.provider, first.model) != ("openai", "gpt-4")
        r = m.settle(first, Usage(input_tokens=1500, output_tokens=100))
        event = m.store.get(r.event_id)
        assert event is not None and event.model == "gpt-4" and event.model_used == first.model
        assert event.action == "downgrade"


def test_throttle_backoff_and_rate_limits(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock) as m:
        m.set_rate_limit("user", "eve", rpm=2)
        ok = [
            m.authorize(user_id="eve", provider="openai", model="gpt-4o", input_tokens=5, max_tokens=5)
            for _ in range(2)
        ]
        assert all(d.allowed for d in ok)
        third = m.authorize(user_id="eve", provider="openai", model="gpt-4o", input_tokens=5, max_tokens=5)
        assert third.action is Action.THROTTLE and third.retry_after_s == 60
        clock.advance(seconds=61)
        assert m.authorize(user_id="eve", provider="openai", model="gpt-4o", input_tokens=5, max_tokens=5).allowed

        m.set_limit(scope="user", scope_id="fay", amount="0.01", level="adaptive")
        m.settle(m.authorize(user_id="fay", tier="premium", provider="openai", model="gpt-4o-mini", input_tokens=10,
                             max_tokens=10), Usage(input_tokens=10, output_tokens=10))  # fmt: skip
        waits = []
        for _ in range(4):
            # claude-3-5-haiku: 10 in + 2,298 out ≈ $0.0092 → 92 % of $0.01: premium's throttle band (90-95 %)
            d = m.authorize(user_id="fay", tier="premium", provider="anthropic", model="claude-3-5-haiku-latest",
                            input_tokens=10, max_tokens=2298)  # fmt: skip
            waits.append((d.action, d.retry_after_s))
        assert [w[0] for w in waits] == [Action.THROTTLE] * 4 and [w[1] for w in waits] == [1, 2, 4, 8]


def test_emergency_stop_global_and_scoped(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock) as m:
        m.emergency_stop(reason="runaway agent", cooldown=timedelta(minutes=5))
        d = m.authorize(user_id="gil", provider="openai", model="gpt-4o", input_tokens=1)
        assert d.action is Action.EMERGENCY_STOP and "runaway agent" in d.reason and d.retry_after_s == 300
        clock.advance(minutes=6)
        assert m.authorize(user_id="gil", provider="openai", model="gpt-4o", input_tokens=1).allowed
        m.emergency_stop("user", "gil", reason="abuse")
        assert (
            m.authorize(user_id="gil", provider="openai", model="gpt-4o", input_tokens=1).action
            is Action.EMERGENCY_STOP
        )
        assert m.authorize(user_id="hal", provider="openai", model="gpt-4o", input_tokens=1).allowed
        assert m.clear_emergency_stop("user", "gil")
        assert m.authorize(user_id="gil", provider="openai", model="gpt-4o", input_tokens=1).allowed
        actions = [e.action for e in m.store.control.audit_entries()]
        assert actions.count("breaker.create") == 2 and "breaker.delete" in actions


def test_grace_period_then_queue(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock, queue_enabled=True) as m:
        limit = m.set_limit(scope="user", scope_id="ivy", amount="0.01", level="adaptive")
        window = limit.window_at(T0)
        assert window is not None
        assert m.budget_status(user_id="ivy", tier="free")[0].spent == 0
        assert m.counters.compare_and_set(m.governor.key(limit, window), 0, 10_500_000_000)  # $0.0105: over 100 %
        ask: dict[str, Any] = {
            "user_id": "ivy",
            "tier": "free",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "input_tokens": 1,
        }
        first = m.authorize(**ask, max_tokens=1)
        assert first.action is Action.WARN and first.allowed  # over the limit: the free tier's 6 h grace starts
        m.release(first)
        (crossing,) = [c for c in m.threshold_crossings() if c.threshold == "exceeded"]
        assert crossing.crossed_at == T0
        clock.advance(hours=5)
        assert m.authorize(**ask, max_tokens=1).action is Action.WARN
        clock.advance(hours=2)  # grace over: exhausted until the day resets
        queued = m.authorize(**ask, max_tokens=1)
        assert queued.action is Action.QUEUE and not queued.allowed
        assert queued.resets_at == datetime(2026, 3, 11, tzinfo=UTC)


def test_grants_raise_a_limit(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock) as m:
        limit = m.set_limit(scope="user", scope_id="jo", metric="requests", amount=1)
        m.settle(m.authorize(user_id="jo", provider="openai", model="gpt-4o", input_tokens=1), Usage(input_tokens=1))
        assert m.authorize(user_id="jo", provider="openai", model="gpt-4o", input_tokens=1).action is Action.DENY
        m.add_grant(limit.id, 2, expires_at=T0 + timedelta(hours=1), reason="demo day", created_by="admin@x")
        assert m.authorize(user_id="jo", provider="openai", model="gpt-4o", input_tokens=1).allowed
        assert m.budget_status(user_id="jo")[0].amount == 3
        assert any(e.action == "grant.create" and e.actor == "admin@x" for e in m.store.control.audit_entries())
        with pytest.raises(InvalidUsageError, match="no stored limit"):
            m.add_grant("nope", 1)


def test_limits_are_shared_through_the_database_and_counters_rebuild_from_the_ledger(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock) as a:
        a.set_limit(scope="user", scope_id="kim", metric="requests", amount=2)
        for _ in range(2):
            a.settle(
                a.authorize(user_id="kim", provider="openai", model="gpt-4o", input_tokens=1), Usage(input_tokens=1)
            )
        # another process: its own (empty) in-memory counters are initialized from the ledger
        with meter(sqlite_url, clock) as b:
            assert b.budget_status(user_id="kim")[0].spent == 2
            assert b.authorize(user_id="kim", provider="openai", model="gpt-4o", input_tokens=1).action is Action.DENY
            b.set_limit(scope="user", scope_id="kim", metric="requests", amount=5)
            assert not a.authorize(user_id="kim", provider="openai", model="gpt-4o", input_tokens=1).allowed  # cached
            clock.advance(seconds=2)  # past the policy refresh interval
            assert a.authorize(user_id="kim", provider="openai", model="gpt-4o", input_tokens=1).allowed
        assert [lim.amount for lim in a.limits()] == [5]
        assert a.remove_limit("user:kim|requests|day|UTC") and a.limits() == []


def test_unpriced_model_cannot_pass_a_cost_limit(sqlite_url: str) -> None:
    with meter(sqlite_url) as m:
        assert m.authorize(user_id="lu", provider="acme", model="mystery", input_tokens=5).allowed  # no limit
        m.set_limit(scope="global", amount=100)
        d = m.authorize(user_id="lu", provider="acme", model="mystery", input_tokens=5)
        assert d.action is Action.DENY and "no price known" in d.reason


def _one_request_counted(m: Meter) -> str:
    """A daily requests limit on user max with one settled call; the key of its counter."""
    limit = m.set_limit(scope="user", scope_id="max", metric="requests", amount=10)
    m.settle(m.authorize(user_id="max", provider="openai", model="gpt-4o", input_tokens=1), Usage(input_tokens=1))
    window = limit.window_at(T0)
    assert window is not None
    return m.governor.key(limit, window)


def test_reconcile_corrects_drift(sqlite_url: str) -> None:
    with meter(sqlite_url) as m:
        key = _one_request_counted(m)
        assert m.counters.compare_and_set(key, 1, 7)  # a counter drifted (a lost settle, a bug, a restore)
        assert m.budget_status(user_id="max")[0].spent == 7
        (drift,) = m.reconcile()
        assert (drift.counter, drift.ledger, drift.corrected) == (Decimal(7), Decimal(1), True)
        assert m.budget_status(user_id="max")[0].spent == 1 and m.reconcile() == []


def test_reconcile_with_grace_lowers_only_a_counter_that_stays_ahead(sqlite_url: str) -> None:
    with meter(sqlite_url) as m:
        key = _one_request_counted(m)
        other = {"user_id": "max", "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 1}}
        # Another worker's settle: its counter commit is in, its journaled event reaches the ledger meanwhile.
        assert m.counters.compare_and_set(key, 1, 2)
        threading.Timer(0.05, m.record_many, [[{**other, "event_id": "in-flight"}]]).start()
        assert m.reconcile(grace_s=0.5) == [] and m.budget_status(user_id="max")[0].spent == 2
        # A counter that moves while it is looked at again is left alone (reported, not corrected).
        assert m.counters.compare_and_set(key, 2, 7)
        threading.Timer(0.05, m.counters.compare_and_set, [key, 7, 8]).start()
        (moved,) = m.reconcile(grace_s=0.5)
        assert (moved.counter, moved.ledger, moved.corrected) == (Decimal(7), Decimal(2), False)
        # One that stays ahead is lowered to the ledger.
        (drift,) = m.reconcile(grace_s=0.05)
        assert (drift.counter, drift.ledger, drift.corrected) == (Decimal(8), Decimal(2), True)
        assert m.budget_status(user_id="max")[0].spent == 2


def test_counter_store_down_fails_closed_for_hard_limits(sqlite_url: str) -> None:
    with meter(sqlite_url, counters_url="redis://127.0.0.1:1/0?socket_timeout=0.2") as m:
        assert m.authorize(user_id="ned", provider="openai", model="gpt-4o", input_tokens=1).allowed  # no limits
        m.set_limit(scope="user", scope_id="ned", amount=1, level="soft")
        open_ = m.authorize(user_id="ned", provider="openai", model="gpt-4o", input_tokens=1)
        assert open_.action is Action.WARN and "failing open" in open_.reason
        m.set_limit(scope="user", scope_id="ned", metric="requests", amount=100)
        closed = m.authorize(user_id="ned", provider="openai", model="gpt-4o", input_tokens=1)
        assert closed.action is Action.DENY and "failing closed" in closed.reason


def test_rolling_window_limit(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with meter(sqlite_url, clock) as m:
        m.set_limit(scope="key", scope_id="k1", metric="requests", period="rolling", rolling_seconds=60, amount=2)
        for _ in range(2):
            d = m.authorize(api_key_id="k1", provider="openai", model="gpt-4o", input_tokens=1)
            assert d.allowed
            m.settle(d, Usage(input_tokens=1))
        assert m.authorize(api_key_id="k1", provider="openai", model="gpt-4o", input_tokens=1).action is Action.DENY
        clock.advance(seconds=61)
        assert m.authorize(api_key_id="k1", provider="openai", model="gpt-4o", input_tokens=1).allowed


def test_worst_case_without_max_tokens_is_the_models_maximum(sqlite_url: str) -> None:
    with meter(sqlite_url, max_output_tokens={"my-llama": 2000}) as m:
        m.set_limit(scope="global", amount=1000)
        open_ended = m.authorize(provider="openai", model="gpt-4o", input_tokens=10).estimate
        bounded = m.authorize(provider="openai", model="gpt-4o", input_tokens=10, max_tokens=50).estimate
        assert open_ended is not None and open_ended.output_tokens == 16_384
        assert bounded is not None and bounded.output_tokens == 50
        unknown = m.authorize(provider="acme", model="mystery", input_tokens=10)
        assert unknown.action is Action.DENY  # no price: a cost limit cannot be bounded
        with pytest.raises(InvalidUsageError, match="max_tokens"):
            m.authorize(provider="openai", model="gpt-4o", max_tokens=-1)
