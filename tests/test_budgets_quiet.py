"""The quiet ALLOW of the request path: `QuietTest` / `allows_quietly`, `Decision.deferred`, trusted estimates.

The request path answers a plain ALLOW from `QuietTest` without running `decide`; these tests prove
that it says yes exactly when `decide` would answer a plain ALLOW, and that the deferred decision is
indistinguishable from the full one.
"""

from __future__ import annotations

import copy
import pickle
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.budgets import (
    MAX_AMOUNT,
    Action,
    BudgetConfigError,
    Decision,
    DecisionOptions,
    DowngradeChains,
    Level,
    Limit,
    LimitState,
    Metric,
    Period,
    QuietTest,
    RequestContext,
    RequestEstimate,
    Scope,
    TierTable,
    Verdict,
    allows_quietly,
    decide,
    worst_case_output_tokens,
)

NOW = datetime(2026, 3, 10, 15, tzinfo=UTC)
TABLE = TierTable.defaults()
CHAINS = DowngradeChains.defaults()
SCOPES = (
    "user:alice",
    "user:alice",
    "team:ml",
    "global",
    "user:bob",
    "model:gpt-4o",
    "model:gpt-4*",
    "provider:openai",
)
PERIODS = (Period.DAY, Period.MONTH, Period.REQUEST)


@st.composite
def limit_states(draw: st.DrawFn) -> LimitState:
    metric = draw(st.sampled_from(Metric))
    period = draw(st.sampled_from(PERIODS))
    # Amounts in hundredths (whole numbers for counts), figures as fractions of them: boundaries come up often.
    amount = Decimal(draw(st.integers(0, 2_000))) / (1 if metric.integral else 100)
    limit = Limit(
        scope=Scope.parse(draw(st.sampled_from(SCOPES))),
        metric=metric,
        period=period,
        amount=amount,
        level=draw(st.sampled_from(Level)),
        tier=draw(st.sampled_from((None, None, None, "free", "premium", "enterprise"))),
        enabled=draw(st.booleans()) or draw(st.booleans()),
    )
    per_cent = draw(st.sampled_from((0, 0, 10, 10, 50, 69, 70, 79, 80, 89, 90, 95, 99, 100, 101, 104, 105, 110, 150)))
    used = amount * per_cent / 100
    if metric.integral:
        used = used.to_integral_value()
    reserved = draw(st.sampled_from((Decimal(0), used / 2 if not metric.integral else (used / 2).to_integral_value())))
    grant = Decimal(draw(st.sampled_from((0, 0, 0, 1, 25))))
    exceeded = draw(st.sampled_from((None, NOW - timedelta(hours=1), NOW - timedelta(days=2))))
    return LimitState(
        limit=limit,
        window=limit.window_at(NOW),
        spent=used - reserved if not limit.per_request else Decimal(0),
        reserved=reserved if not limit.per_request else Decimal(0),
        effective_amount=amount + grant if draw(st.booleans()) else None,
        first_exceeded_at=exceeded,
    )


@st.composite
def requests(draw: st.DrawFn) -> RequestEstimate:
    return RequestEstimate(
        provider="openai",
        model="gpt-4o",
        cost=Decimal(draw(st.integers(0, 300))) / 1000,
        input_tokens=draw(st.integers(0, 500)),
        output_tokens=draw(st.integers(0, 500)),
    )


contexts = st.builds(
    RequestContext,
    provider=st.just("openai"),
    model=st.just("gpt-4o"),
    user_id=st.just("alice"),
    team_id=st.sampled_from(("ml", None)),
    tier=st.sampled_from((None, "free", "premium", "enterprise", "unknown")),
)


def full(ctx: RequestContext, request: RequestEstimate, states: list[LimitState], **kwargs: Any) -> Decision:
    cheaper = RequestEstimate(provider="openai", model="gpt-4o-mini", cost=request.cost / 10, input_tokens=1)
    return decide(
        ctx=ctx,
        request=request,
        states=states,
        policy=TABLE,
        chains=CHAINS,
        alternatives={"openai/gpt-4o-mini": cheaper},
        emergency=None,
        throttle_attempt=0,
        now=NOW,
        options=kwargs.get("options", DecisionOptions()),
    )


def quiet(ctx: RequestContext, request: RequestEstimate, states: list[LimitState]) -> bool:
    return allows_quietly(
        ctx=ctx,
        request=request,
        limits=[s.limit for s in states],
        used=[s.used for s in states],
        amounts=[s.amount for s in states],
        policy=TABLE,
    )


# --- QuietTest says yes exactly when decide() answers a plain ALLOW ------------------------------------


@settings(max_examples=600, deadline=None)
@given(ctx=contexts, request=requests(), states=st.lists(limit_states(), min_size=1, max_size=4))
def test_quiet_exactly_when_every_check_fits(
    ctx: RequestContext, request: RequestEstimate, states: list[LimitState]
) -> None:
    decision = full(ctx, request, states)
    every_fits = bool(decision.checks) and all(c.verdict is Verdict.FITS for c in decision.checks)
    assert quiet(ctx, request, states) == every_fits
    if every_fits:
        # ... and then the decision is a plain ALLOW, which is all a deferred decision carries eagerly
        assert decision.action is Action.ALLOW and (decision.provider, decision.model) == ("openai", "gpt-4o")
        assert (decision.retry_after_s, decision.alternative, decision.breaker) == (None, None, None)
        assert (decision.first_exceeded, decision.note) == ((), "")
        deferred = Decision.deferred(action=Action.ALLOW, provider="openai", model="gpt-4o", explain=lambda: decision)
        assert deferred == decision and repr(deferred) == repr(decision)
        assert deferred.to_dict() == decision.to_dict()


def test_quiet_boundaries_of_each_level() -> None:
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="alice", tier="free")  # free: warning 70 %
    request = RequestEstimate(provider="openai", model="gpt-4o", cost=Decimal("0.10"))

    def one(level: Level, used: str, amount: str = "1.00", period: Period = Period.DAY) -> bool:
        lim = Limit(
            scope=Scope.parse("user:alice"), metric=Metric.COST, period=period, amount=Decimal(amount), level=level
        )
        return QuietTest.prepare(ctx, [lim], [lim.amount], TABLE).allows(request, [Decimal(used)])

    assert one(Level.HARD, "0.90") and not one(Level.HARD, "0.91")  # fits up to the amount itself
    assert one(Level.SOFT, "0.90") and not one(Level.SOFT, "0.90001")
    assert one(Level.ADAPTIVE, "0.59") and not one(Level.ADAPTIVE, "0.60")  # 70 % is already a WARN
    assert one(Level.ADAPTIVE, "0", period=Period.REQUEST) and not one(Level.ADAPTIVE, "0", "0.09", Period.REQUEST)
    assert not one(Level.HARD, "0", "0")  # a zero amount lets nothing through quietly
    assert not QuietTest.prepare(ctx, [], [], TABLE).allows(request, [])  # no limit: decide() notes it instead


def test_quiet_skips_limits_that_do_not_apply() -> None:
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="alice", tier="free")
    request = RequestEstimate(provider="openai", model="gpt-4o", cost=Decimal("0.10"))
    mine = Limit(scope=Scope.parse("user:alice"), metric=Metric.COST, period=Period.DAY, amount=Decimal(1))
    other = Limit(scope=Scope.parse("user:bob"), metric=Metric.COST, period=Period.DAY, amount=Decimal(0))
    premium = Limit(scope=Scope.parse("user:alice"), metric=Metric.COST, period=Period.MONTH, amount=Decimal(0),
                    tier="premium")  # fmt: skip
    limits = [mine, other, premium]
    test = QuietTest.prepare(ctx, limits, [x.amount for x in limits], TABLE)
    assert [i for i, *_ in test.tests] == [0]
    assert test.allows(request, [Decimal(0), Decimal(5), Decimal(5)])


# --- Decision.deferred --------------------------------------------------------------------------------


def _a_full_allow() -> Decision:
    lim = Limit(scope=Scope.parse("user:alice"), metric=Metric.COST, period=Period.DAY, amount=Decimal(1))
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="alice")
    request = RequestEstimate(provider="openai", model="gpt-4o", cost=Decimal("0.25"))
    return full(ctx, request, [LimitState(limit=lim, window=lim.window_at(NOW), spent=Decimal("0.5"))])


def test_deferred_decision_explains_once_on_first_read() -> None:
    decision = _a_full_allow()
    calls: list[int] = []

    def explain() -> Decision:
        calls.append(1)
        return decision

    deferred = Decision.deferred(action=Action.ALLOW, provider="openai", model="gpt-4o", explain=explain)
    assert deferred.allowed and deferred.action is Action.ALLOW and deferred.first_exceeded == ()
    assert calls == []  # the request path reads none of the figures
    assert deferred.utilization == Decimal("0.75") and deferred.reason == decision.reason
    assert deferred.checks == decision.checks and deferred.binding is decision.binding
    assert calls == [1]
    assert hash(deferred) == hash(decision) and deferred == decision
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        deferred.nope  # type: ignore[attr-defined]  # noqa: B018


def test_deferred_decision_copies_pickles_and_replaces_like_a_full_one() -> None:
    decision = _a_full_allow()

    def fresh() -> Decision:
        return Decision.deferred(action=Action.ALLOW, provider="openai", model="gpt-4o", explain=lambda: decision)

    assert replace(fresh(), note="x") == replace(decision, note="x")
    assert copy.copy(fresh()) == decision and copy.deepcopy(fresh()) == decision
    assert pickle.loads(pickle.dumps(fresh())) == decision  # the explanation is not part of the state
    assert repr(fresh()) == repr(decision)


def test_deferred_decision_is_explained_safely_by_racing_threads() -> None:
    decision = _a_full_allow()
    for _ in range(20):
        deferred = Decision.deferred(action=Action.ALLOW, provider="openai", model="gpt-4o", explain=lambda: decision)
        seen: list[object] = []
        threads = [threading.Thread(target=lambda d=deferred, out=seen: out.append(d.checks)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == [decision.checks] * 4


# --- trusted and fast constructors give what the checking ones give -----------------------------------


@given(
    cost=st.decimals(allow_nan=True, allow_infinity=True, places=None)
    | st.sampled_from([Decimal("-0"), Decimal("1E+2")])
)
def test_trusted_estimate_matches_the_checked_one(cost: Decimal) -> None:
    def make(build: Any) -> RequestEstimate | str:
        try:
            return build(provider="openai", model="gpt-4o", cost=cost, input_tokens=5, output_tokens=7)  # type: ignore[no-any-return]
        except BudgetConfigError as exc:
            return str(exc)

    checked, trusted = make(RequestEstimate), make(RequestEstimate.trusted)
    assert checked == trusted
    if isinstance(checked, RequestEstimate) and isinstance(trusted, RequestEstimate):
        assert str(checked.cost) == str(trusted.cost)  # same digits too (-0 -> 0, 1E+2 -> 100)


def test_trusted_estimate_refuses_a_cost_out_of_range() -> None:
    with pytest.raises(BudgetConfigError, match="cost"):
        RequestEstimate.trusted(provider="p", model="m", cost=MAX_AMOUNT + 1, input_tokens=0, output_tokens=0)


class _Int(int):
    """An int subclass: not a plain int, yet the checks accept it."""


_ints = st.one_of(st.none(), st.integers(-2, 10**12 + 2), st.sampled_from([True, False, 2.5, "8", _Int(3)]))


@given(max_tokens=_ints, model_max=_ints, cap=_ints)
def test_worst_case_output_fast_path_matches_the_checks(max_tokens: Any, model_max: Any, cap: Any) -> None:
    def slow() -> int | str:
        # the checks spelled out: what worst_case_output_tokens did before its fast path
        from spendgate.budgets._check import check_int

        try:
            capped = check_int("configured_cap", cap, low=1)
            most = None if model_max is None else check_int("model_max_output", model_max, low=1)
            if max_tokens is not None:
                asked = check_int("max_tokens", max_tokens)
                return asked if most is None else min(asked, most)
        except BudgetConfigError as exc:
            return str(exc)
        return most if most is not None else capped

    try:
        fast: int | str = worst_case_output_tokens(max_tokens, model_max, cap)
    except BudgetConfigError as exc:
        fast = str(exc)
    assert fast == slow()


def test_worst_case_output_of_int_subclasses_takes_the_checked_way() -> None:
    assert worst_case_output_tokens(_Int(3), None, 4096) == 3
    assert worst_case_output_tokens(_Int(5), 4, 4096) == 4
    assert worst_case_output_tokens(None, None, _Int(7)) == 7
