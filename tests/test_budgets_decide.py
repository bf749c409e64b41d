"""`decide`: every action, levels, tiers, grace and overage, grants, per-request, metrics, scopes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spendgate.budgets import (
    Action,
    BreakerSource,
    BudgetConfigError,
    CircuitBreaker,
    Decision,
    DecisionOptions,
    DowngradeChains,
    EmergencyState,
    Grant,
    Level,
    Limit,
    LimitState,
    Metric,
    ModelRef,
    Period,
    RequestContext,
    RequestEstimate,
    Scope,
    TierTable,
    decide,
    effective_amount,
)

NOW = datetime(2026, 3, 10, 15, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 11, tzinfo=UTC)
TABLE = TierTable.defaults()
CHAINS = DowngradeChains.defaults()
ALICE = RequestContext(provider="openai", model="gpt-4o", user_id="alice", team_id="ml", tier="free")


def est(
    cost: str, model: str = "gpt-4o", provider: str = "openai", inp: int = 1000, out: int = 1000
) -> RequestEstimate:
    return RequestEstimate(provider=provider, model=model, cost=Decimal(cost), input_tokens=inp, output_tokens=out)


REQUEST = est("0.03")
MINI = est("0.002", model="gpt-4o-mini")


def limit(
    scope: str = "user:alice",
    amount: str = "1.00",
    *,
    metric: Metric = Metric.COST,
    period: Period = Period.DAY,
    level: Level = Level.HARD,
    **kwargs: Any,
) -> Limit:
    return Limit(scope=Scope.parse(scope), metric=metric, period=period, amount=Decimal(amount), level=level, **kwargs)


def state(lim: Limit, spent: str = "0", reserved: str = "0", *, now: datetime = NOW, **kwargs: Any) -> LimitState:
    return LimitState(limit=lim, window=lim.window_at(now), spent=Decimal(spent), reserved=Decimal(reserved), **kwargs)


def tier_states(ctx: RequestContext, day_spent: str, **kwargs: Any) -> list[LimitState]:
    """The tier's default limits for ``ctx``, with ``day_spent`` on the daily one."""
    return [
        state(lim, day_spent if lim.period is Period.DAY else "0", **(kwargs if lim.period is Period.DAY else {}))
        for lim in TABLE.limits_for(ctx)
    ]


def run(
    states: Sequence[LimitState],
    request: RequestEstimate = REQUEST,
    *,
    ctx: RequestContext = ALICE,
    alternatives: Mapping[str, RequestEstimate] | None = None,
    emergency: EmergencyState | None = None,
    attempt: int = 0,
    options: DecisionOptions | None = None,
    now: datetime = NOW,
    chains: DowngradeChains = CHAINS,
) -> Decision:
    return decide(
        ctx=ctx,
        request=request,
        states=states,
        policy=TABLE,
        chains=chains,
        alternatives=alternatives or {},
        emergency=emergency,
        throttle_attempt=attempt,
        now=now,
        options=options or DecisionOptions(),
    )


# --- ALLOW / DENY on hard limits ---------------------------------------------------------------


def test_no_limit_allows() -> None:
    d = run([])
    assert (d.action, d.allowed, d.model, d.limit) == (Action.ALLOW, True, "gpt-4o", None)
    assert d.reason == "no limit applies"
    assert d.retry_after_s is None


def test_hard_limit_with_room_allows_and_reports_figures() -> None:
    lim = limit()
    d = run([state(lim, "0.40", "0.10")])
    assert d.action is Action.ALLOW and d.allowed
    assert d.limit == lim
    assert (d.spent, d.reserved, d.amount) == (Decimal("0.40"), Decimal("0.10"), Decimal("1.00"))
    assert d.remaining == Decimal("0.50")
    assert d.utilization == Decimal("0.53")  # with this request
    assert d.resets_at == MIDNIGHT
    assert d.retry_after_s is None
    assert "fits (53% of it)" in d.reason


def test_hard_limit_denies_with_an_explanation() -> None:
    d = run([state(limit(), "0.98", "0.01")])
    assert d.action is Action.DENY and not d.allowed
    assert d.reason == (
        "user:alice cost/day limit $1.00: spent $0.98 + reserved $0.01 + this request ≤ $0.03 would exceed it;"
        " resets 2026-03-11T00:00:00Z"
    )
    assert d.remaining == Decimal("0.01")
    assert d.utilization == Decimal("1.02")
    assert d.resets_at == MIDNIGHT
    assert d.retry_after_s == 9 * 3600  # until the window resets
    assert d.model == "gpt-4o"


def test_hard_limit_exactly_full_still_fits() -> None:
    assert run([state(limit(), "0.97")]).action is Action.ALLOW
    assert run([state(limit(), "0.9700001")]).action is Action.DENY


def test_explicit_hard_limit_never_downgrades_even_for_a_free_user() -> None:
    hard = limit("user:alice", "1.00")
    # 95 % used: a tier-governed limit would downgrade here; a hard limit just allows.
    allowed = run([state(hard, "0.92")], alternatives={"gpt-4o-mini": MINI})
    assert allowed.action is Action.ALLOW
    assert allowed.model == "gpt-4o"
    denied = run([state(hard, "0.99")], alternatives={"gpt-4o-mini": MINI})
    assert denied.action is Action.DENY
    assert denied.model == "gpt-4o"  # not downgraded ...
    assert denied.alternative == ModelRef("openai", "gpt-4o-mini")  # ... but a cheaper model that fits is suggested
    hard_tier_limits = [state(lim, "0.99") for lim in TABLE.limits_for(ALICE, [hard])]
    assert run([state(hard, "0.99"), *hard_tier_limits], alternatives={"gpt-4o-mini": MINI}).action is Action.DENY


def test_soft_limit_warns_past_its_amount() -> None:
    soft = limit(level=Level.SOFT)
    assert run([state(soft, "0.90")]).action is Action.ALLOW
    d = run([state(soft, "0.99")])
    assert d.action is Action.WARN and d.allowed
    assert "soft limit" in d.reason
    assert d.retry_after_s is None


# --- tier-governed (adaptive) limits -----------------------------------------------------------


@pytest.mark.parametrize(
    ("day_spent", "expected"),
    [
        ("0.10", Action.ALLOW),
        ("0.67", Action.WARN),  # 70 % with the request
        ("0.77", Action.THROTTLE),  # 80 %
        ("0.87", Action.THROTTLE),  # 90 %: downgrade level, but no alternative estimate given
    ],
)
def test_free_tier_bands(day_spent: str, expected: Action) -> None:
    d = run(tier_states(ALICE, day_spent))
    assert d.action is expected
    assert d.limit is not None and d.limit.period is Period.DAY


def test_tier_warning_reason() -> None:
    d = run(tier_states(ALICE, "0.67"))
    assert "would use 70% of it, past the free tier's warning level of 70%" in d.reason


@pytest.mark.parametrize(("attempt", "seconds"), [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (6, 30), (50, 30)])
def test_throttle_backs_off_exponentially_up_to_30s(attempt: int, seconds: int) -> None:
    d = run(tier_states(ALICE, "0.77"), attempt=attempt)
    assert d.action is Action.THROTTLE and not d.allowed
    assert d.retry_after_s == seconds


def test_throttle_backoff_is_configurable() -> None:
    options = DecisionOptions(throttle_base_s=2, throttle_max_s=10)
    assert [options.backoff(n) for n in range(5)] == [2, 4, 8, 10, 10]
    with pytest.raises(BudgetConfigError) as info:
        DecisionOptions(throttle_base_s=5, throttle_max_s=2)
    assert info.value.field == "throttle_max_s"


def test_downgrade_to_the_first_model_that_fits() -> None:
    ctx = RequestContext(provider="openai", model="gpt-4", user_id="alice", tier="free")
    request = est("0.08", model="gpt-4")
    alternatives = {
        "gpt-4-turbo": est("0.06", model="gpt-4-turbo"),  # does not keep the limit: 0.95 + 0.06 > $1.00
        "gpt-3.5-turbo": est("0.004", model="gpt-3.5-turbo"),  # fits
        "claude-3-haiku-20240307": est("0.003", model="claude-3-haiku-20240307", provider="anthropic"),
    }
    d = run(tier_states(ctx, "0.95"), request, ctx=ctx, alternatives=alternatives)
    assert d.action is Action.DOWNGRADE and d.allowed and d.downgraded
    assert (d.provider, d.model) == ("openai", "gpt-3.5-turbo")
    assert d.alternative == ModelRef("openai", "gpt-3.5-turbo")
    assert "downgrading to openai/gpt-3.5-turbo" in d.reason
    assert d.retry_after_s is None


def test_downgrade_skips_candidates_without_an_estimate_and_may_switch_provider() -> None:
    ctx = RequestContext(provider="anthropic", model="claude-3-opus-20240229", user_id="alice", tier="free")
    request = est("0.20", model="claude-3-opus-20240229", provider="anthropic")
    alternatives = {"openai/gpt-3.5-turbo": est("0.004", model="gpt-3.5-turbo")}  # keyed by provider/model
    d = run(tier_states(ctx, "0.70"), request, ctx=ctx, alternatives=alternatives)
    assert d.action is Action.DOWNGRADE
    assert (d.provider, d.model) == ("openai", "gpt-3.5-turbo")


def test_downgrade_candidate_must_fit_every_limit_including_its_own() -> None:
    ctx = RequestContext(provider="openai", model="gpt-4", user_id="alice", tier="free")
    turbo_cap = limit("user:alice/model:gpt-4-turbo", "0.10")  # Alice's gpt-4-turbo budget is spent
    alternatives = {
        "gpt-4-turbo": est("0.02", model="gpt-4-turbo"),
        "gpt-3.5-turbo": est("0.004", model="gpt-3.5-turbo"),
    }
    states = [*tier_states(ctx, "0.92"), state(turbo_cap, "0.09")]
    d = run(states, est("0.05", model="gpt-4"), ctx=ctx, alternatives=alternatives)
    assert d.action is Action.DOWNGRADE
    assert d.model == "gpt-3.5-turbo"
    # The gpt-4-turbo limit does not apply to the gpt-4 request itself.
    assert [c.limit.id for c in d.checks] == [s.limit.id for s in tier_states(ctx, "0")]


def test_downgrade_level_without_a_fitting_model_throttles() -> None:
    tight = {"gpt-4o-mini": est("0.20", model="gpt-4o-mini")}  # does not fit either
    d = run(tier_states(ALICE, "0.88"), alternatives=tight)
    assert d.action is Action.THROTTLE
    assert "no cheaper model fits" in d.reason
    assert d.alternative is None


def test_exhausted_tier_limit_denies_queues_or_serves_from_cache() -> None:
    states = tier_states(ALICE, "3.50")  # $1 limit + $2 overage already passed
    deny = run(states)
    assert deny.action is Action.DENY
    assert "by more than the free tier's overage allowance of $2.00" in deny.reason
    assert deny.retry_after_s == 9 * 3600
    queued = run(states, options=DecisionOptions(queue_enabled=True))
    assert queued.action is Action.QUEUE and not queued.allowed
    assert queued.retry_after_s == 9 * 3600
    assert "queued" in queued.reason
    cached = run(states, options=DecisionOptions(cache_available=True))
    assert cached.action is Action.CACHE_ONLY and not cached.allowed
    assert "cache only" in cached.reason
    both = run(states, options=DecisionOptions(queue_enabled=True, cache_available=True))
    assert both.action is Action.QUEUE


def test_exhausted_tier_limit_still_downgrades_when_a_model_fits() -> None:
    # Over the hard limit but inside the overage allowance and grace: a cheaper model is preferred.
    d = run(tier_states(ALICE, "1.20"), alternatives={"gpt-4o-mini": MINI})
    assert d.action is Action.DOWNGRADE
    assert d.model == "gpt-4o-mini"


# --- grace period and max overage ---------------------------------------------------------------


def test_first_overage_starts_the_grace_period() -> None:
    d = run(tier_states(ALICE, "0.98"))
    assert d.action is Action.WARN and d.allowed
    daily = next(s.limit for s in tier_states(ALICE, "0") if s.limit.period is Period.DAY)
    assert d.first_exceeded == (daily.id,)  # the caller records now as first_exceeded_at
    assert "grace period (until 2026-03-10T21:00:00Z)" in d.reason


def test_grace_period_open_allows_overage_and_then_closes() -> None:
    open_ = run(tier_states(ALICE, "1.20", first_exceeded_at=NOW - timedelta(hours=5)))
    assert open_.action is Action.WARN
    assert open_.first_exceeded == ()  # already recorded
    closed = run(tier_states(ALICE, "1.20", first_exceeded_at=NOW - timedelta(hours=6)))
    assert closed.action is Action.DENY
    assert "grace period ended at 2026-03-10T15:00:00Z" in closed.reason
    assert closed.first_exceeded == ()


def test_max_overage_caps_the_grace_period() -> None:
    inside = run(tier_states(ALICE, "2.97", first_exceeded_at=NOW - timedelta(hours=1)))  # $3.00 = $1 + $2
    assert inside.action is Action.WARN
    beyond = run(tier_states(ALICE, "2.98", first_exceeded_at=NOW - timedelta(hours=1)))
    assert beyond.action is Action.DENY


def test_enterprise_hard_limit_is_105_percent() -> None:
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="corp", tier="enterprise")
    assert run(tier_states(ctx, "88.00"), ctx=ctx).action is Action.ALLOW
    assert run(tier_states(ctx, "90.00"), ctx=ctx).action is Action.WARN
    assert run(tier_states(ctx, "96.00"), ctx=ctx).action is Action.THROTTLE
    over_100 = run(tier_states(ctx, "103.00"), ctx=ctx, alternatives={"gpt-4o-mini": MINI})
    assert over_100.action is Action.DOWNGRADE  # 103 % is still under the 105 % hard limit
    assert run(tier_states(ctx, "104.99"), ctx=ctx).action is Action.WARN  # over 105 %: grace
    over = run(tier_states(ctx, "205.00"), ctx=ctx)  # beyond 105 + 100 overage
    assert over.action is Action.DENY
    assert "would exceed its 105% hard limit" in over.reason


def test_tier_without_grace_denies_at_the_hard_limit() -> None:
    from spendgate.budgets import TierPolicy

    strict = TierPolicy(
        name="strict",
        warning=Decimal("0.5"),
        throttle=Decimal("0.6"),
        downgrade=Decimal("0.7"),
        max_overage=Decimal("5"),
    )
    table = TABLE.with_tier(strict)
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="s", tier="strict")
    lim = limit("user:s", level=Level.ADAPTIVE)
    d = decide(
        ctx=ctx,
        request=REQUEST,
        states=[state(lim, "0.99")],
        policy=table,
        chains=CHAINS,
        alternatives={},
        emergency=None,
        throttle_attempt=0,
        now=NOW,
        options=DecisionOptions(),
    )
    assert d.action is Action.DENY
    assert "has no grace period" in d.reason


# --- grants ------------------------------------------------------------------------------------


def test_grants_raise_the_limit_and_expire() -> None:
    hard = limit()
    grant = Grant(
        id="g1",
        limit_id=hard.id,
        amount=Decimal("1.00"),
        starts_at=NOW - timedelta(hours=1),
        expires_at=NOW + timedelta(hours=2),
    )
    raised = effective_amount(hard, [grant], NOW)
    assert raised == Decimal("2.00")
    d = run([state(hard, "1.50", effective_amount=raised)])
    assert d.action is Action.ALLOW
    assert d.amount == Decimal("2.00")
    assert "limit $2.00 (with grants of $1.00)" in d.reason
    tomorrow = MIDNIGHT + timedelta(hours=1)
    back = effective_amount(hard, [grant], tomorrow)
    assert back == Decimal("1.00")
    denied = run([state(hard, "1.50", now=tomorrow, effective_amount=back)], now=tomorrow)
    assert denied.action is Action.DENY


# --- per-request limits and metrics -------------------------------------------------------------


def test_per_request_limit_checks_the_worst_case_alone() -> None:
    cap = limit(amount="0.02", period=Period.REQUEST)
    d = run([state(cap)])
    assert d.action is Action.DENY
    assert d.reason == "user:alice cost/request limit $0.02: this request ≤ $0.03 would exceed it"
    assert (d.resets_at, d.retry_after_s) == (None, None)  # waiting does not help
    assert d.remaining == Decimal("0.02")
    assert run([state(cap)], est("0.02")).action is Action.ALLOW


def test_tier_per_request_limit_downgrades_or_falls_back() -> None:
    big = est("0.60")  # the free tier caps one request at $0.50
    assert run(tier_states(ALICE, "0"), big).action is Action.DENY
    d = run(tier_states(ALICE, "0"), big, alternatives={"gpt-4o-mini": MINI})
    assert d.action is Action.DOWNGRADE and d.model == "gpt-4o-mini"
    assert d.limit is not None and d.limit.period is Period.REQUEST
    assert run(tier_states(ALICE, "0"), big, options=DecisionOptions(cache_available=True)).action is Action.CACHE_ONLY


@pytest.mark.parametrize(
    ("metric", "spent", "expected"),
    [
        (Metric.TOTAL_TOKENS, "8500", Action.ALLOW),  # 8,500 + 1,500 = 10,000
        (Metric.TOTAL_TOKENS, "8501", Action.DENY),
        (Metric.INPUT_TOKENS, "9500", Action.ALLOW),  # + 500 input
        (Metric.INPUT_TOKENS, "9501", Action.DENY),
        (Metric.OUTPUT_TOKENS, "9000", Action.ALLOW),  # + 1,000 output
        (Metric.OUTPUT_TOKENS, "9001", Action.DENY),
    ],
)
def test_token_metrics_use_token_amounts(metric: Metric, spent: str, expected: Action) -> None:
    lim = limit(amount="10000", metric=metric)
    d = run([state(lim, spent)], est("0.03", inp=500, out=1000))
    assert d.action is expected


def test_token_reason_uses_token_units() -> None:
    lim = limit(amount="10000", metric=Metric.TOTAL_TOKENS)
    d = run([state(lim, "9000")], est("0.03", inp=500, out=1000))
    assert d.reason.startswith(
        "user:alice total_tokens/day limit 10,000 tokens: spent 9,000 tokens + reserved 0 tokens"
        " + this request ≤ 1,500 tokens would exceed it"
    )


def test_requests_metric_counts_one_on_a_rolling_window() -> None:
    lim = limit(amount="5", metric=Metric.REQUESTS, period=Period.ROLLING, rolling_seconds=60)
    assert run([state(lim, "4")]).action is Action.ALLOW
    d = run([state(lim, "4", "1")])
    assert d.action is Action.DENY
    assert d.retry_after_s == 1  # the oldest one-second bucket drops out next
    assert "5 requests" in d.reason


# --- combining limits ----------------------------------------------------------------------------


def test_most_severe_action_wins() -> None:
    soft = limit("user:alice/provider:openai", "0.10", level=Level.SOFT)  # WARN
    room = limit("global", "1000")  # ALLOW
    states = [state(soft, "0.09"), state(room, "10"), *tier_states(ALICE, "0.77")]  # THROTTLE from the tier
    d = run(states)
    assert d.action is Action.THROTTLE
    assert d.limit is not None and d.limit.tier == "free"
    assert {c.action for c in d.checks} >= {Action.WARN, Action.ALLOW, Action.THROTTLE}
    team = limit("team:ml", "50.00")
    d = run([*states, state(team, "49.99")])
    assert d.action is Action.DENY
    assert d.limit == team
    assert d.reason.startswith("team:ml cost/day limit $50.00")


def test_tie_goes_to_the_fullest_limit() -> None:
    half = limit("user:alice", "10")
    nearly = limit("team:ml", "10")
    d = run([state(half, "5"), state(nearly, "9")])
    assert d.action is Action.ALLOW
    assert d.limit == nearly
    assert d.remaining == Decimal("1")


def test_scopes_and_combinations_select_the_limits_that_apply() -> None:
    on_openai = limit("user:alice/provider:openai", "0.01")
    on_anthropic = limit("user:alice/provider:anthropic", "0.01")
    team_model = limit("team:ml/model:gpt-4o*", "0.01", id="ml-gpt-4o")
    bob = limit("user:bob", "0.01")
    disabled = limit("global", "0.01", enabled=False)
    claude = RequestContext(provider="anthropic", model="claude-3-5-haiku-20241022", user_id="alice", team_id="ml")
    d = run([state(on_openai), state(on_anthropic), state(team_model), state(bob), state(disabled)], ctx=claude)
    assert d.action is Action.DENY
    assert [c.limit for c in d.checks] == [on_anthropic]
    d = run([state(on_openai), state(on_anthropic), state(team_model), state(bob), state(disabled)])
    assert [c.limit.id for c in d.checks] == [on_openai.id, "ml-gpt-4o"]


def test_tier_limits_apply_only_to_their_tier_and_yield_to_explicit_limits() -> None:
    premium_limits = TABLE.limits_for(
        RequestContext(provider="openai", model="gpt-4o", user_id="alice", tier="premium")
    )
    d = run([state(lim, "0.99") for lim in premium_limits])  # Alice is on the free tier
    assert d.action is Action.ALLOW and d.checks == ()
    explicit = limit("user:alice", "100.00")  # replaces the free tier's $1/day
    d = run([*tier_states(ALICE, "5.00"), state(explicit, "5.00")])
    assert d.action is Action.ALLOW
    assert explicit.id in [c.limit.id for c in d.checks]
    assert all(c.limit.period is not Period.DAY or c.limit.tier is None for c in d.checks)


def test_adaptive_limit_without_a_tier_follows_the_users_tier() -> None:
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="alice", tier="premium")
    lim = limit("user:alice", "1.00", level=Level.ADAPTIVE)
    assert run([state(lim, "0.77")], ctx=ctx).action is Action.WARN  # premium warns at 80 %
    assert run([state(lim, "0.77")]).action is Action.THROTTLE  # free throttles at 80 %


# --- emergency stop --------------------------------------------------------------------------------


def test_global_emergency_stop_beats_everything() -> None:
    breaker = CircuitBreaker(
        scope=Scope(),
        reason="provider incident",
        set_by=BreakerSource.ADMIN,
        since=NOW - timedelta(minutes=5),
        cooldown_until=NOW + timedelta(minutes=10),
    )
    d = run([state(limit(), "0")], emergency=EmergencyState((breaker,)))
    assert d.action is Action.EMERGENCY_STOP and not d.allowed
    assert d.breaker == breaker
    assert d.retry_after_s == 600
    assert d.resets_at == NOW + timedelta(minutes=10)
    assert d.reason.startswith("emergency stop on global set by admin: provider incident")
    after = run([state(limit(), "0")], emergency=EmergencyState((breaker,)), now=NOW + timedelta(minutes=10))
    assert after.action is Action.ALLOW  # cooled down


def test_scoped_emergency_stop_only_stops_its_scope() -> None:
    breaker = CircuitBreaker(scope=Scope(team="ml"), reason="runaway agent", set_by=BreakerSource.RULE, since=NOW)
    emergency = EmergencyState((breaker,))
    stopped = run([], emergency=emergency)
    assert stopped.action is Action.EMERGENCY_STOP
    assert stopped.retry_after_s is None  # until an admin clears it
    assert "until cleared" in stopped.reason
    other = RequestContext(provider="openai", model="gpt-4o", user_id="bob", team_id="web")
    assert run([], ctx=other, emergency=emergency).action is Action.ALLOW


# --- output shape and input validation -------------------------------------------------------------


def test_decision_to_dict_is_json() -> None:
    d = run(tier_states(ALICE, "0.95"), alternatives={"gpt-4o-mini": MINI})
    data = json.loads(json.dumps(d.to_dict()))
    assert data["action"] == "downgrade"
    assert data["allowed"] is True
    assert data["model"] == "gpt-4o-mini"
    assert data["alternative"] == "openai/gpt-4o-mini"
    assert data["limit"]["period"] == "day"
    assert data["resets_at"] == "2026-03-11T00:00:00Z"
    assert Decimal(data["utilization"]) == Decimal("0.98")
    assert len(data["checks"]) == 3
    assert data["breaker"] is None
    stop = run(
        [],
        emergency=EmergencyState((CircuitBreaker(scope=Scope(), reason="x", set_by=BreakerSource.ADMIN, since=NOW),)),
    )
    assert stop.to_dict()["breaker"]["reason"] == "x"
    assert stop.to_dict()["limit"] is None


def test_decide_validates_its_inputs() -> None:
    with pytest.raises(BudgetConfigError) as info:
        run([], attempt=-1)
    assert info.value.field == "throttle_attempt"
    with pytest.raises(BudgetConfigError) as info:
        run([], now=datetime(2026, 3, 10, 15))
    assert info.value.field == "now"


def test_candidate_search_respects_soft_and_per_request_limits() -> None:
    ctx = RequestContext(provider="openai", model="gpt-4", user_id="alice", tier="free")
    soft = limit("user:alice/model:gpt-4-turbo", "0.01", level=Level.SOFT)  # never rules a candidate out
    cap = limit("user:alice/model:gpt-3.5-turbo", "0.001", period=Period.REQUEST)  # rules gpt-3.5-turbo out
    alternatives = {
        "gpt-3.5-turbo": est("0.004", model="gpt-3.5-turbo"),
        "gpt-4-turbo": est("0.02", model="gpt-4-turbo"),
    }
    chains = DowngradeChains.from_dict({"gpt-4": ["openai/gpt-3.5-turbo", "openai/gpt-4-turbo"]})
    states = [*tier_states(ctx, "0.92"), state(soft, "5"), state(cap)]
    d = run(states, est("0.05", model="gpt-4"), ctx=ctx, alternatives=alternatives, chains=chains)
    assert d.action is Action.DOWNGRADE
    assert d.model == "gpt-4-turbo"


def test_zero_limit_and_check_figures() -> None:
    zero = limit(amount="0")
    d = run([state(zero)])
    assert d.action is Action.DENY
    assert d.utilization == Decimal("Infinity")
    check = d.checks[0]
    assert check.projected == Decimal("0.03")
    assert check.remaining == 0
    assert check.to_dict()["utilization"] == "Infinity"
    free = run([state(zero)], est("0"))
    assert free.action is Action.ALLOW
    assert "fits (0% of it)" in free.reason
    adaptive_zero = limit(amount="0", level=Level.ADAPTIVE)
    over = run([state(adaptive_zero)])  # $0.03 over a $0 limit: within the free tier's $2 overage and grace
    assert over.action is Action.WARN
    assert over.first_exceeded == (adaptive_zero.id,)


def test_percentages_in_explanations() -> None:
    from spendgate.budgets._explain import fmt_pct

    assert fmt_pct(Decimal("0.925")) == "92.5%"
    assert fmt_pct(Decimal("0.7")) == "70%"
    assert fmt_pct(Decimal("Infinity")) == "∞%"


def test_tiny_costs_keep_their_digits_in_reasons() -> None:
    d = run([state(limit(amount="0.0001", period=Period.REQUEST))], est("0.000125"))
    assert d.action is Action.DENY
    assert d.reason == "user:alice cost/request limit $0.0001: this request ≤ $0.000125 would exceed it"
    assert d.checks[0].to_dict()["verdict"] == "over"
