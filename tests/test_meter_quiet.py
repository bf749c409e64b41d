"""The quiet path of ``Meter.authorize`` answers exactly what the full decision answers.

Two meters run the same random operations: one as shipped, one whose governor always runs the full
``decide()`` (no plan, no quiet ALLOW). Every authorization, settle, budget status and recorded threshold
crossing must match.
Also: the per-context plans and memos of the policy, and the counter-unit conversions.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spendgate import Meter, Settings, Usage
from spendgate.budgets import (
    Action,
    BudgetConfigError,
    Decision,
    DowngradeChains,
    Limit,
    Metric,
    Period,
    RequestContext,
    Scope,
    TierTable,
)
from spendgate.counters import CounterStatus, ReserveItem, ReserveResult
from spendgate.meter import Authorization
from spendgate.meter import _policy as policy_module
from spendgate.meter._authorization import from_units, to_units
from spendgate.meter._gov_reserve import _reserve_item
from spendgate.meter._governor import Governor
from spendgate.meter._policy import Policy, PolicyCache
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # half an hour before the daily windows roll over
USERS = ("alice", "bob", "carol")
MODELS = ("gpt-4o", "gpt-4o-mini")


def _meter(path: Path, name: str, **settings: Any) -> Meter:
    return Meter(settings=Settings(database_url=f"sqlite:///{path / name}.db", **settings), clock=FakeClock(T0))


def _always_full(governor: Governor) -> None:
    """Make ``governor`` run the full decision every time: no plans, no quiet ALLOW."""
    governor.policy.plan = lambda *args, **kwargs: None  # type: ignore[method-assign]

    def decide_fully(policy: Any, ctx: Any, estimate: Any, figures: Any, alternatives: Any, key: Any, now: Any,
                     options: Any) -> Decision:  # fmt: skip
        attempt = governor._throttles.get(key, 0)
        return governor._decide_fully(policy, ctx, estimate, figures, alternatives, attempt, now, options)

    governor._decide = decide_fully  # type: ignore[method-assign, assignment]


def _explained(decision: Decision) -> bool:
    return decision._explain is None


def _count_quiet(governor: Governor) -> list[bool]:
    """Record, per request that looked quiet, whether ``governor`` allowed it through the quiet path."""
    quiet: list[bool] = []
    allow = governor._allow_quietly

    def spy(*args: Any, **kwargs: Any) -> Authorization | None:
        auth = allow(*args, **kwargs)
        quiet.append(auth is not None)
        return auth

    governor._allow_quietly = spy  # type: ignore[method-assign]
    return quiet


def _sans_entry_ids(auth: Authorization) -> Authorization:
    """``auth`` without the random ids of its sliding-window entries (each store draws its own)."""
    return replace(
        auth,
        holds=tuple(replace(h, entry_id=None) for h in auth.holds),
        rate_holds=tuple(replace(h, entry_id=None) for h in auth.rate_holds),
    )


LIMITS = st.fixed_dictionaries(
    {
        "scope": st.sampled_from(
            [("user", "alice"), ("user", "bob"), ("team", "ml"), ("global", None), ("model", "gpt-4o")]
        ),
        "metric": st.sampled_from(["cost", "cost", "total_tokens", "requests"]),
        "period": st.sampled_from(["day", "day", "month", "request", "rolling"]),
        "amount": st.sampled_from(["0.02", "0.05", "1", "30", "5000"]),
        "level": st.sampled_from(["hard", "soft", "adaptive"]),
    }
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("limit"), LIMITS),
        st.tuples(
            st.just("auth"),
            st.sampled_from(USERS),
            st.sampled_from(MODELS),
            st.integers(0, 3000),
            st.sampled_from([None, 10, 500]),
        ),
        st.tuples(
            st.just("auth"),
            st.sampled_from(USERS),
            st.sampled_from(MODELS),
            st.integers(0, 3000),
            st.sampled_from([None, 10, 500]),
        ),
        st.tuples(st.just("settle"), st.integers(0, 30), st.integers(0, 800)),
        st.tuples(st.just("release"), st.integers(0, 30)),
        st.tuples(st.just("tick"), st.sampled_from([1, 600, 1800, 86400])),
        st.tuples(st.just("grant"), st.sampled_from(["0.01", "1"])),
        st.tuples(st.just("stop"), st.booleans()),
        st.tuples(st.just("rate"), st.sampled_from([1, 2, 50])),
    ),
    min_size=1,
    max_size=25,
)


def _apply(meter: Meter, op: tuple[Any, ...], auths: list[Authorization], n: int) -> object:
    kind = op[0]
    if kind == "limit":
        spec = dict(op[1])
        scope, scope_id = spec.pop("scope")
        if spec["period"] == "rolling":
            spec["rolling_seconds"] = 3600
        if spec["metric"] != "cost":
            spec["amount"] = str(int(Decimal(spec["amount"]) * 1000))
        return meter.set_limit(scope=scope, scope_id=scope_id, **spec).to_dict()
    if kind == "auth":
        _, user, model, tokens, max_tokens = op
        team = "ml" if user != "carol" else None
        auth = meter.authorize(user_id=user, team_id=team, provider="openai", model=model, input_tokens=tokens,
                               max_tokens=max_tokens, reservation_id=f"r{n}")  # fmt: skip
        auths.append(auth)
        return auth
    if kind in ("settle", "release") and auths:
        auth = auths[op[1] % len(auths)]
        if not auth.allowed:
            return None
        if kind == "release":
            return meter.release(auth) is not None
        return meter.settle(auth, Usage(input_tokens=auth.estimate.input_tokens if auth.estimate else 0,
                                        output_tokens=op[2])).cost  # fmt: skip
    if kind == "tick":
        meter.clock.advance(timedelta(seconds=op[1]))  # type: ignore[attr-defined]
    if kind == "grant":
        limits = meter.limits()
        if limits:
            return meter.add_grant(limits[0].id, op[1], id=f"g{n}").to_dict()
    if kind == "rate":
        return meter.set_rate_limit("user", "alice", rpm=op[1], tpm=op[1] * 2000).to_dict()
    if kind == "stop":
        if op[1]:
            return meter.emergency_stop("user", "bob", reason="test").to_dict()
        return meter.clear_emergency_stop("user", "bob")
    return None


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quiet")


_NAMES = itertools.count()


def _compare(root: Path, ops: list[tuple[Any, ...]], **settings: Any) -> list[bool]:
    """Run ``ops`` on a meter as shipped and on one that always decides fully; both must answer alike.

    Returns, per request that looked quiet, whether the quiet path allowed it.
    """
    name = f"m{next(_NAMES)}"
    with _meter(root, name + "a", **settings) as fast, _meter(root, name + "b", **settings) as slow:
        quiet = _count_quiet(fast.governor)
        _always_full(slow.governor)
        fast_auths: list[Authorization] = []
        slow_auths: list[Authorization] = []
        for n, op in enumerate(ops):
            got, want = _apply(fast, op, fast_auths, n), _apply(slow, op, slow_auths, n)
            if isinstance(got, Authorization) and isinstance(want, Authorization):
                assert got.to_dict() == want.to_dict() and got.reason == want.reason
                assert got.decision.checks == want.decision.checks
                assert got.binding_remaining() == (want.decision.limit, want.decision.remaining)
                got, want = _sans_entry_ids(got), _sans_entry_ids(want)
            assert got == want, op
            for user in USERS:
                assert fast.budget_status(user_id=user, team_id="ml") == slow.budget_status(user_id=user, team_id="ml")
            assert fast.store.control.crossings() == slow.store.control.crossings()  # alerts alike at settle
        return quiet


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, tier=st.sampled_from([None, "free"]))
def test_quiet_path_answers_what_the_full_decision_answers(
    root: Path, ops: list[tuple[Any, ...]], tier: str | None
) -> None:
    _compare(root, ops, default_tier=tier)


@pytest.mark.parametrize("tier", [None, "free"])
def test_a_long_day_answers_alike_and_mostly_quietly(tmp_path: Path, tier: str | None) -> None:
    rng = random.Random(7)
    limits = [("limit", {"scope": ("user", "alice"), "metric": "cost", "period": "day", "amount": "0.05",
                         "level": "hard"}),
              ("limit", {"scope": ("team", "ml"), "metric": "cost", "period": "month", "amount": "0.2",
                         "level": "adaptive"}),
              ("limit", {"scope": ("global", None), "metric": "requests", "period": "day", "amount": "120",
                         "level": "soft"})]  # fmt: skip
    ops: list[tuple[Any, ...]] = list(limits)
    for _ in range(160):
        roll = rng.random()
        if roll < 0.6:
            ops.append(("auth", rng.choice(USERS), rng.choice(MODELS), rng.randrange(3000), rng.choice([10, 500])))
        elif roll < 0.9:
            ops.append(("settle", rng.randrange(30), rng.randrange(800)))
        elif roll < 0.97:
            ops.append(("release", rng.randrange(30)))
        else:
            ops.append(("tick", 1800))
    if tier is not None:  # the free tier's adaptive defaults ($0.50 a request, $1 a day, $10 a month) apply too
        ops.insert(0, ("rate", 50))
    quiet = _compare(tmp_path, ops, default_tier=tier)
    assert quiet.count(True) > 30  # plenty went the quiet way ...
    auths = [op for op in ops if op[0] == "auth"]
    assert len(quiet) < len(auths)  # ... and some pinched (warnings, denials) and took the full one


def test_a_plain_request_is_allowed_quietly_and_explained_on_demand(tmp_path: Path) -> None:
    with _meter(tmp_path, "a") as m:
        m.set_limit(scope="user", scope_id="alice", amount="1.00")
        m.set_limit(scope="team", scope_id="ml", amount="100", period="month", level="adaptive")
        quiet = _count_quiet(m.governor)
        cold = m.authorize(user_id="alice", team_id="ml", provider="openai", model="gpt-4o", input_tokens=100,
                           max_tokens=100, reservation_id="zero")  # fmt: skip
        assert quiet == [] and cold.action is Action.ALLOW  # cold counters: the general path loads them
        first = m.authorize(user_id="alice", team_id="ml", provider="openai", model="gpt-4o", input_tokens=100,
                            max_tokens=100, reservation_id="one")  # fmt: skip
        assert quiet == [True] and first.action is Action.ALLOW
        assert not _explained(first.decision)  # nothing has looked at the figures yet
        assert first.spent == 0 and first.reserved == cold.estimate.cost  # type: ignore[union-attr]
        assert _explained(first.decision) and len(first.decision.checks) == 2
        assert sorted(h.key for h in first.holds) == ["b|team:ml|cost|month|UTC|month:2026-03@UTC",
                                                      "b|user:alice|cost|day|UTC|day:2026-03-10@UTC"]  # fmt: skip
        # a request that pinches takes the full path (WARN at 70 % of the adaptive team budget)
        m.set_limit(scope="team", scope_id="ml", amount="0.0016", period="month", level="adaptive")
        second = m.authorize(user_id="alice", team_id="ml", provider="openai", model="gpt-4o", input_tokens=100,
                             max_tokens=100, reservation_id="two")  # fmt: skip
        assert quiet == [True] and second.action is not Action.ALLOW


def test_plans_follow_the_policy_and_the_windows(tmp_path: Path) -> None:
    with _meter(tmp_path, "a") as m:
        g = m.governor
        m.set_limit(scope="user", scope_id="alice", amount="1.00")
        ctx = m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1, max_tokens=1).ctx
        now = m.clock.now()
        policy = g.policy.get()
        plan = g.policy.plan(policy, ctx, now)
        assert plan is not None and plan.keys == ("b|user:alice|cost|day|UTC|day:2026-03-10@UTC",)
        assert g.policy.plan(policy, ctx, now) is plan  # remembered
        assert plan.until == datetime(2026, 3, 11, tzinfo=UTC)
        later = g.policy.plan(policy, ctx, plan.until)  # the next day: a new window, a new plan
        assert later is not None and later.keys == ("b|user:alice|cost|day|UTC|day:2026-03-11@UTC",)
        m.set_limit(scope="user", scope_id="alice", amount="2.00")
        fresh = g.policy.get()
        assert fresh is not policy and g.policy.plan(fresh, ctx, now).amounts == (Decimal("2.00"),)  # type: ignore[union-attr]
        # limits the plan cannot hold send every request to the general path
        m.set_limit(scope="user", scope_id="alice", period="rolling", rolling_seconds=60, amount="5")
        assert g.policy.plan(g.policy.get(), ctx, now) is None
        m.remove_limit("user:alice|cost|rolling:60s|UTC")
        m.add_grant("user:alice|cost|day|UTC", "1")
        assert g.policy.plan(g.policy.get(), ctx, now) is None
        nobody = ctx.with_model("openai", "gpt-4o")
        assert g.policy.plan(g.policy.get(), nobody.__class__(provider="openai", model="gpt-4o"), now) is None
        m.emergency_stop(reason="test")
        assert g.policy.plan(g.policy.get(), ctx, now) is None


def test_limits_for_remembers_each_context_and_hands_out_copies(tmp_path: Path) -> None:
    with _meter(tmp_path, "a", default_tier="free") as m:
        m.set_limit(scope="user", scope_id="alice", amount="1.00")
        policy = m.governor.policy.get()
        ctx = m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1, max_tokens=1).ctx
        first = policy.limits_for(ctx)
        assert [x.id for x in first] == ["user:alice|cost|day|UTC", "user:alice|cost|request|UTC|tier:free",
                                         "user:alice|cost|month|UTC|tier:free"]  # fmt: skip
        first.clear()
        again = policy.limits_for(ctx)
        assert len(again) == 3 and again[1] is policy.limits_for(ctx)[1]  # tier defaults are built once
        assert policy.rate_limits_for(ctx) == []


def test_quiet_path_looks_again_after_losing_a_race(tmp_path: Path) -> None:
    with _meter(tmp_path, "a") as m:
        m.set_limit(scope="user", scope_id="alice", amount="0.0005")
        m.release(m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=10))
        g = m.governor
        quiet = _count_quiet(g)
        real = g.counters.reserve
        calls: list[str] = []

        def racing(hold_id: str, items: Any, **kwargs: Any) -> Any:
            calls.append(hold_id)
            if len(calls) == 1:  # someone else spends between our read and our reservation
                assert m.counters.compare_and_set(items[0].key, 0, 400_000_000)
            return real(hold_id, items, **kwargs)

        g.counters.reserve = racing  # type: ignore[method-assign]
        auth = m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=10,
                           reservation_id="x")  # fmt: skip
        assert quiet == [False] and calls == ["x"]  # refused: the general path read again and saw the spend
        assert auth.action is Action.DENY and auth.spent == Decimal("0.0004")


def test_rate_limits_refuse_alike_on_the_quiet_path(tmp_path: Path) -> None:
    answers = []
    for always_full in (False, True):
        with _meter(tmp_path, f"rate{always_full}") as m:
            quiet = _count_quiet(m.governor)
            if always_full:
                _always_full(m.governor)
            m.set_limit(scope="user", scope_id="alice", amount="1")
            m.set_rate_limit("user", "alice", rpm=2)
            asks = [m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1, max_tokens=1,
                                reservation_id=f"r{i}") for i in range(3)]  # fmt: skip
            answers.append([(a.action, a.retry_after_s, a.reason, len(a.rate_holds)) for a in asks])
            assert quiet == ([] if always_full else [True, True])  # the first one warmed the counter up
    assert answers[0] == answers[1]
    assert [action for action, *_ in answers[0]] == [Action.ALLOW, Action.ALLOW, Action.THROTTLE]


def test_refused_reservations_are_tried_as_often_on_both_paths(tmp_path: Path) -> None:
    answers = []
    for always_full in (False, True):
        with _meter(tmp_path, f"refused{always_full}") as m:
            if always_full:
                _always_full(m.governor)
            m.set_limit(scope="user", scope_id="alice", amount="1")
            m.release(m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1, max_tokens=1))
            real = m.governor.counters.reserve
            calls: list[str] = []

            def refuse(hold_id: str, items: Any, calls: list[str] = calls, **kwargs: Any) -> ReserveResult:
                calls.append(hold_id)  # a cap that moved under us every time: nothing is held
                return ReserveResult(CounterStatus.DENIED, hold_id)

            m.governor.counters.reserve = refuse  # type: ignore[method-assign]
            auth = m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1, max_tokens=1,
                               reservation_id="x")  # fmt: skip
            m.governor.counters.reserve = real  # type: ignore[method-assign]
            answers.append((auth.action, auth.reason, len(calls)))
    assert answers[0] == answers[1] == (Action.DENY, "concurrent requests used the remaining budget", 4)


def test_counters_that_never_initialize_fail_alike_on_both_paths(tmp_path: Path) -> None:
    answers = []
    for always_full in (False, True):
        with _meter(tmp_path, f"cold{always_full}") as m:
            if always_full:
                _always_full(m.governor)
            m.set_limit(scope="user", scope_id="alice", amount="1")
            m.release(m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1, max_tokens=1))
            calls: list[str] = []

            def cold(hold_id: str, items: Any, calls: list[str] = calls, **kwargs: Any) -> ReserveResult:
                calls.append(hold_id)  # as if every key expired again at once
                return ReserveResult(CounterStatus.NEEDS_INIT, hold_id, needs_init=(items[0].key,))

            m.governor.counters.reserve = cold  # type: ignore[method-assign]
            auth = m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1, max_tokens=1)
            answers.append((auth.action, auth.reason, len(calls)))
    assert answers[0] == answers[1]
    assert answers[0][0] is Action.DENY and "after 3 attempts" in answers[0][1] and answers[0][2] == 3


def test_limits_a_state_refuses_fail_alike_on_both_paths(tmp_path: Path) -> None:
    for always_full in (False, True):
        with _meter(tmp_path, f"big{always_full}") as m:
            if always_full:
                _always_full(m.governor)
            limit = m.set_limit(scope="user", scope_id="alice", metric="total_tokens", amount=10**15)
            m.add_grant(limit.id, 1)  # 10**15 + 1 tokens: more than a LimitState accepts
            with pytest.raises(BudgetConfigError, match="effective_amount"):
                m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1, max_tokens=1)


def test_reserve_items_skip_only_checks_they_would_pass() -> None:
    assert _reserve_item("k", 5, None, 1.5) == ReserveItem("k", 5, None, 1.5)
    assert _reserve_item("k", 5, 2**63 - 1, 1.5) == ReserveItem("k", 5, 2**63 - 1, 1.5)
    with pytest.raises(ValueError, match=r"ReserveItem\.cap"):
        _reserve_item("k", 5, 2**63, 1.5)  # a $10 million limit is past the int64 of pico-dollars
    with pytest.raises(ValueError, match=r"ReserveItem\.amount"):
        _reserve_item("k", 2**63, None, 1.5)


def test_a_counter_gone_between_read_and_reservation_is_loaded_again(tmp_path: Path) -> None:
    with _meter(tmp_path, "a") as m:
        m.set_limit(scope="user", scope_id="alice", amount="1")
        first = m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=10)
        m.settle(first, Usage(input_tokens=10, output_tokens=10))
        g = m.governor
        real = g.counters.reserve
        store: Any = m.counters

        def forgetful(hold_id: str, items: Any, **kwargs: Any) -> Any:
            g.counters.reserve = real  # type: ignore[method-assign]
            store._counters.pop(items[0].key)  # as if its key expired meanwhile
            return real(hold_id, items, **kwargs)

        g.counters.reserve = forgetful  # type: ignore[method-assign]
        again = m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=10)
        assert again.allowed and g.counters.reserve == real
        (status,) = m.budget_status(user_id="alice")
        assert status.spent == m.summary(user_id="alice").cost  # reloaded from the ledger
        assert status.reserved == again.estimate.cost  # type: ignore[union-attr]


def test_remembered_contexts_are_forgotten_at_the_bound(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(policy_module, "_MEMO_SIZE", 2)
    with _meter(tmp_path, "a") as m:
        m.set_limit(scope="global", amount="1")
        policy = m.governor.policy.get()
        for user in ("a", "b", "c"):
            ctx = RequestContext(provider="openai", model="gpt-4o", user_id=user)
            assert [x.id for x in policy.limits_for(ctx)] == ["global|cost|day|UTC"]
        assert len(policy._limits_memo) == 1  # cleared when the third came in


def test_a_plan_needs_one_counter_per_limit() -> None:
    limit = Limit(scope=Scope.parse("user:alice"), metric=Metric.COST, period=Period.DAY, amount=Decimal(1))
    twin = Limit(scope=Scope.parse("user:alice"), metric=Metric.COST, period=Period.DAY, amount=Decimal(2))
    policy = Policy.build([limit, twin], [], [], [], TierTable.defaults(), DowngradeChains.defaults())
    cache = PolicyCache(_NoControl(), Settings(database_url="sqlite:///unused.db"), FakeClock(T0))  # type: ignore[arg-type]
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="alice")
    assert cache.plan(policy, ctx, T0) is None  # both would count on one key: the general path handles that


class _NoControl:
    """A control store nobody reads (the plan needs none)."""


@given(units=st.integers(-(10**30), 10**30) | st.integers(-(2**63), 2**63))
def test_from_units_keeps_its_exact_digits(units: int) -> None:
    reference = Decimal(units).scaleb(-12).normalize()
    if reference.as_tuple().exponent > 0:  # type: ignore[operator]
        reference = reference.quantize(Decimal(1))
    got = from_units(Metric.COST, units)
    assert got.as_tuple() == reference.as_tuple()
    assert from_units(Metric.REQUESTS, units) == Decimal(units)


def test_to_units_rounds_cost_and_counts_whole() -> None:
    assert to_units(Metric.COST, Decimal("0.0000000000015"), "up") == 2
    assert to_units(Metric.COST, Decimal("0.0000000000015"), "down") == 1
    assert to_units(Metric.COST, 3) == 3 * 10**12
    assert to_units(Metric.INPUT_TOKENS, Decimal(7)) == 7
