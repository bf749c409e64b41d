"""Budget value types: dict round-trips, validation naming fields, scopes, thresholds, specs."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spendgate import budgets
from spendgate.budgets import (
    Action,
    BreakerSource,
    BudgetConfigError,
    CircuitBreaker,
    DowngradeChains,
    EmergencyState,
    Grant,
    Level,
    Limit,
    LimitState,
    Metric,
    ModelRef,
    Period,
    RateLimit,
    Recurrence,
    RequestContext,
    RequestEstimate,
    Scope,
    TierLimit,
    TierPolicy,
    TierTable,
    active_breakers,
    crossed_thresholds,
    utilization,
    worst_case_output_tokens,
)
from spendgate.errors import ConfigurationError, SpendgateError

NOW = datetime(2026, 3, 10, 15, tzinfo=UTC)


def alice_limit(**overrides: Any) -> Limit:
    values: dict[str, Any] = {
        "scope": Scope(user="alice"),
        "metric": Metric.COST,
        "period": Period.DAY,
        "amount": Decimal("1.00"),
    }
    values.update(overrides)
    return Limit(**values)


# --- public surface ---------------------------------------------------------------------------


def test_all_is_sorted_and_complete() -> None:
    exported = list(budgets.__all__)
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(budgets, name)
    public = {
        name
        for name, value in vars(budgets).items()
        if not name.startswith("_") and str(getattr(value, "__module__", "")).startswith("spendgate")
    }
    assert public <= set(exported)


def test_config_error_is_a_configuration_error_naming_the_field() -> None:
    with pytest.raises(BudgetConfigError) as info:
        alice_limit(amount=Decimal(-1))
    err = info.value
    assert isinstance(err, ConfigurationError)
    assert isinstance(err, SpendgateError)
    assert isinstance(err, ValueError)
    assert err.field == "amount"
    assert err.code == "budget_config_error"
    assert str(err).startswith("amount: ")


# --- Scope -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["global", "user:alice", "team:ml/model:gpt-4o", "user:alice/provider:openai", "key:k1/session:s9"],
)
def test_scope_text_round_trips(text: str) -> None:
    scope = Scope.parse(text)
    assert str(scope) == text
    assert Scope.parse(str(scope)) == scope
    assert hash(Scope.parse(text)) == hash(scope)


def test_scope_is_ordered_hashable_and_immutable() -> None:
    scope = Scope.parse("model:gpt-4o/user:alice/team:ml")
    assert list(scope) == ["team", "user", "model"]
    assert str(scope) == "team:ml/user:alice/model:gpt-4o"
    assert scope == Scope(model="gpt-4o", team="ml", user="alice")
    assert scope == {"team": "ml", "user": "alice", "model": "gpt-4o"}
    assert scope["user"] == "alice"
    assert len(scope) == 3
    assert scope.kind == "team+user+model"
    assert {scope: 1}[Scope.parse("team:ml/user:alice/model:gpt-4o")] == 1
    with pytest.raises(AttributeError):
        scope.extra = 1
    with pytest.raises(KeyError):
        scope["provider"]
    assert pickle.loads(pickle.dumps(scope)) == scope
    assert repr(scope) == "Scope.parse('team:ml/user:alice/model:gpt-4o')"


def test_scope_escapes_slashes_in_ids() -> None:
    scope = Scope(provider="openrouter", model="anthropic/claude-3.5%x")
    assert str(scope) == "provider:openrouter/model:anthropic%2Fclaude-3.5%25x"
    assert Scope.parse(str(scope)) == scope
    assert (
        Scope.parse("model:regional.anthropic.claude-3-haiku-v1:0")["model"] == "regional.anthropic.claude-3-haiku-v1:0"
    )


def test_global_scope() -> None:
    assert Scope.parse("") == Scope() == Scope.parse("global") == Scope.of("global")
    assert Scope().is_global
    assert str(Scope()) == "global"
    assert Scope().kind == "global"
    assert Scope().matches(RequestContext(provider="openai", model="gpt-4o"))


def test_scope_of_maps_set_limit_arguments() -> None:
    assert Scope.of("user", "alice") == Scope(user="alice")
    assert Scope.of("api_key", "k1") == Scope.of("key", "k1") == Scope(key="k1")
    assert Scope.of("team", "ml") == Scope(team="ml")
    assert Scope.of("session", "s1") == Scope(session="s1")
    assert Scope.of("provider", "openai") == Scope(provider="openai")
    assert Scope.of("model", "gpt-4o") == Scope(model="gpt-4o")
    assert Scope.of("user+provider", "alice/openai") == Scope(user="alice", provider="openai")
    assert Scope.of("team+model", "ml/gpt-4o") == Scope.parse("team:ml/model:gpt-4o")
    assert Scope.of("provider+model", "openrouter/meta/llama-3")["model"] == "meta/llama-3"


@pytest.mark.parametrize(
    ("scope", "scope_id", "field"),
    [
        ("global", "x", "scope_id"),
        ("user", None, "scope_id"),
        ("user", "", "scope_id"),
        ("planet", "x", "scope"),
        ("user+provider", "alice", "scope_id"),
        ("user+user", "a/b", "scope"),
        ("", "x", "scope"),
    ],
)
def test_scope_of_rejects_bad_arguments(scope: str, scope_id: str | None, field: str) -> None:
    with pytest.raises(BudgetConfigError) as info:
        Scope.of(scope, scope_id)
    assert info.value.field == field


@pytest.mark.parametrize("text", ["user", "user:", "planet:x", "user:a/user:b", "team:ml/:x"])
def test_scope_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(BudgetConfigError) as info:
        Scope.parse(text)
    assert info.value.field == "scope"


def test_scope_constructor_rejects_bad_ids() -> None:
    with pytest.raises(BudgetConfigError, match="non-empty"):
        Scope(user="")
    with pytest.raises(BudgetConfigError, match="twice"):
        Scope({"api_key": "a"}, key="b")
    with pytest.raises(BudgetConfigError, match="only model ids"):
        Scope(user="al*")
    with pytest.raises(BudgetConfigError, match="must be a string"):
        Scope.parse(3)  # type: ignore[arg-type]


def test_scope_matches_request_context() -> None:
    ctx = RequestContext(
        provider="openai", model="gpt-4o-2024-08-06", user_id="alice", team_id="ml", api_key_id="k1", session_id="s1"
    )
    assert Scope.parse("user:alice").matches(ctx)
    assert Scope.parse("user:alice/provider:openai").matches(ctx)
    assert Scope.parse("team:ml/model:gpt-4o*").matches(ctx)  # prefix match on the model
    assert Scope.parse("key:k1/session:s1").matches(ctx)
    assert not Scope.parse("user:bob").matches(ctx)
    assert not Scope.parse("user:alice/provider:anthropic").matches(ctx)
    assert not Scope.parse("model:gpt-4o").matches(ctx)  # exact unless it ends in *
    assert not Scope.parse("model:gpt-4.1*").matches(ctx)
    anonymous = RequestContext(provider="openai", model="gpt-4o")
    assert not Scope.parse("user:alice").matches(anonymous)


def test_request_context_is_frozen_and_switches_models() -> None:
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="alice", tier="free", tags={"app": "x"})
    other = ctx.with_model("anthropic", "claude-3-5-haiku-20241022")
    assert (other.provider, other.model, other.user_id, other.tier) == (
        "anthropic",
        "claude-3-5-haiku-20241022",
        "alice",
        "free",
    )
    assert other.tags == {"app": "x"}
    assert hash(ctx) == hash(RequestContext(provider="openai", model="gpt-4o", user_id="alice", tier="free"))
    with pytest.raises(TypeError):
        ctx.tags["app"] = "y"  # type: ignore[index]


# --- Limit -----------------------------------------------------------------------------------


def test_limit_defaults_and_derived_id() -> None:
    limit = alice_limit()
    assert limit.id == "user:alice|cost|day|UTC"
    assert limit.level is Level.HARD
    assert limit.thresholds == (0.5, 0.8, 0.95)
    assert limit.enabled
    assert limit.describe() == "user:alice cost/day"
    rolling = alice_limit(period="rolling", rolling_seconds=60, metric="requests", amount=10)
    assert rolling.id == "user:alice|requests|rolling:60s|UTC"
    assert rolling.describe() == "user:alice requests/rolling 60s"
    tiered = alice_limit(tier="free", level="adaptive")
    assert tiered.id == "user:alice|cost|day|UTC|tier:free"
    assert alice_limit(id="my-limit").id == "my-limit"
    assert alice_limit(timezone="Europe/Berlin").id != limit.id


def test_limit_coerces_text_values() -> None:
    limit = Limit(scope="team:ml", metric="total_tokens", period="month", amount="1000000", level="soft")  # type: ignore[arg-type]
    assert limit.scope == Scope(team="ml")
    assert limit.metric is Metric.TOTAL_TOKENS
    assert limit.period is Period.MONTH
    assert limit.amount == Decimal(1000000)
    assert limit.level is Level.SOFT


@pytest.mark.parametrize(
    "limit",
    [
        alice_limit(),
        alice_limit(
            level="adaptive",
            thresholds=(0.9, 0.25),
            timezone="Asia/Tokyo",
            tier="premium",
            enabled=False,
            created_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        ),
        alice_limit(metric="requests", period="rolling", rolling_seconds=60, amount=100),
        alice_limit(scope=Scope.parse("user:alice/provider:openai"), period="request", amount=Decimal("0.25")),
    ],
)
def test_limit_round_trips_through_json(limit: Limit) -> None:
    data = json.loads(json.dumps(limit.to_dict()))
    again = Limit.from_dict(data)
    assert again == limit
    assert again.to_dict() == limit.to_dict()


def test_limit_to_dict_shape() -> None:
    data = alice_limit(created_at=datetime(2026, 3, 1, tzinfo=UTC)).to_dict()
    assert data["amount"] == "1.00"
    assert data["scope"] == "user:alice"
    assert data["created_at"] == "2026-03-01T00:00:00Z"
    assert Limit.from_dict({**data, "scope": {"user": "alice"}}).scope == Scope(user="alice")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": Decimal(-1)}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"amount": Decimal("NaN")}, "amount"),
        ({"amount": True}, "amount"),
        ({"metric": "output_tokens", "amount": Decimal("10.5")}, "amount"),
        ({"metric": "bananas"}, "metric"),
        ({"period": "fortnight"}, "period"),
        ({"level": "strict"}, "level"),
        ({"thresholds": (0.5, 0.5)}, "thresholds"),
        ({"thresholds": (0,)}, "thresholds"),
        ({"thresholds": "0.5"}, "thresholds"),
        ({"thresholds": ("x",)}, "thresholds"),
        ({"thresholds": (None,)}, "thresholds"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"period": "rolling"}, "rolling_seconds"),
        ({"rolling_seconds": 60}, "rolling_seconds"),
        ({"tier": ""}, "tier"),
        ({"enabled": "yes"}, "enabled"),
        ({"created_at": datetime(2026, 1, 1)}, "created_at"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"scope": 5}, "scope"),
    ],
)
def test_limit_validation_names_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(BudgetConfigError) as info:
        alice_limit(**overrides)
    assert info.value.field == field


def test_limit_from_dict_rejects_unknown_and_missing_keys() -> None:
    data = alice_limit().to_dict()
    with pytest.raises(BudgetConfigError) as info:
        Limit.from_dict({**data, "colour": "red"})
    assert info.value.field == "colour"
    del data["amount"]
    with pytest.raises(BudgetConfigError) as info:
        Limit.from_dict(data)
    assert info.value.field == "amount"
    with pytest.raises(BudgetConfigError):
        Limit.from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_float_amounts_keep_their_written_digits() -> None:
    assert alice_limit(amount=2.1).amount == Decimal("2.1")  # not 2.100000000000000088817841970012523
    assert TierPolicy.from_dict({"name": "x", "warning": 0.7, "throttle": "80%", "downgrade": 0.9}).warning == Decimal(
        "0.7"
    )


def test_limit_window_at() -> None:
    assert alice_limit().window_at(NOW) is not None
    assert alice_limit(period="request").window_at(NOW) is None
    assert alice_limit(period="request").per_request


# --- thresholds ------------------------------------------------------------------------------


def test_crossed_thresholds() -> None:
    limit = alice_limit(amount=Decimal("10"))
    assert crossed_thresholds(limit, Decimal("4"), Decimal("8.5")) == [0.5, 0.8]
    assert crossed_thresholds(limit, Decimal("5"), Decimal("5.1")) == []  # 50% was already reached
    assert crossed_thresholds(limit, Decimal("4.99"), Decimal("5")) == [0.5]  # reaching exactly counts
    assert crossed_thresholds(limit, Decimal("0"), Decimal("20")) == [0.5, 0.8, 0.95]
    assert crossed_thresholds(limit, Decimal("9"), Decimal("4")) == []  # falling usage crosses nothing
    assert crossed_thresholds(limit, Decimal("4"), Decimal("9")) == [0.5, 0.8]
    assert crossed_thresholds(limit, Decimal("4"), Decimal("9"), amount=Decimal("20")) == []  # with grants
    assert crossed_thresholds(limit, Decimal("9"), Decimal("19"), amount=Decimal("20")) == [0.5, 0.8, 0.95]
    custom = alice_limit(amount=Decimal("10"), thresholds=(1.0, 0.25))
    assert crossed_thresholds(custom, Decimal("0"), Decimal("10")) == [0.25, 1.0]
    zero = alice_limit(amount=Decimal("0"))
    assert crossed_thresholds(zero, Decimal("0"), Decimal("0.01")) == [0.5, 0.8, 0.95]
    assert crossed_thresholds(zero, Decimal("0"), Decimal("0")) == []


def test_utilization() -> None:
    assert utilization(Decimal("3"), Decimal("4")) == Decimal("0.75")
    assert utilization(Decimal("0"), Decimal("0")) == 0
    assert utilization(Decimal("1"), Decimal("0")) == Decimal("Infinity")


# --- estimates and states --------------------------------------------------------------------


def test_worst_case_output_tokens() -> None:
    assert worst_case_output_tokens(500, 16384, 4096) == 500
    assert worst_case_output_tokens(100_000, 16384, 4096) == 16384  # the model cannot return more
    assert worst_case_output_tokens(None, 16384, 4096) == 16384
    assert worst_case_output_tokens(None, None, 4096) == 4096
    assert worst_case_output_tokens(None, None) == budgets.DEFAULT_OUTPUT_CAP == 4096
    assert worst_case_output_tokens(None, None, 1000) == 1000
    assert worst_case_output_tokens(700, None) == 700
    for args, field in [
        ((-1, None, 10), "max_tokens"),
        ((None, 0, 10), "model_max_output"),
        ((None, None, 0), "configured_cap"),
    ]:
        with pytest.raises(BudgetConfigError) as info:
            worst_case_output_tokens(*args)
        assert info.value.field == field


def test_request_estimate_amounts_per_metric() -> None:
    est = RequestEstimate(
        provider="openai", model="gpt-4o", cost=Decimal("0.0125"), input_tokens=1000, output_tokens=500
    )
    assert est.amount(Metric.COST) == Decimal("0.0125")
    assert est.amount(Metric.INPUT_TOKENS) == 1000
    assert est.amount(Metric.OUTPUT_TOKENS) == 500
    assert est.amount(Metric.TOTAL_TOKENS) == est.total_tokens == 1500
    assert est.amount(Metric.REQUESTS) == est.requests == 1
    with pytest.raises(BudgetConfigError) as info:
        RequestEstimate(provider="openai", model="gpt-4o", cost=Decimal(-1))
    assert info.value.field == "cost"
    with pytest.raises(BudgetConfigError) as info:
        RequestEstimate(provider="openai", model="gpt-4o", cost=Decimal(0), output_tokens=-5)
    assert info.value.field == "output_tokens"


def test_limit_state_validation_and_figures() -> None:
    limit = alice_limit()
    state = LimitState(limit=limit, window=limit.window_at(NOW), spent=Decimal("0.5"), reserved=Decimal("0.1"))
    assert state.amount == Decimal("1.00")
    assert state.used == Decimal("0.6")
    assert LimitState(limit=limit, window=limit.window_at(NOW), effective_amount=Decimal(3)).amount == 3
    per_request = alice_limit(period="request")
    assert LimitState(limit=per_request, spent=Decimal(5)).used == 0
    bad: list[tuple[dict[str, Any], str]] = [
        ({"limit": limit}, "window"),
        ({"limit": "x"}, "limit"),
        ({"limit": per_request, "spent": Decimal(-1)}, "spent"),
        ({"limit": per_request, "reserved": "x"}, "reserved"),
        ({"limit": per_request, "effective_amount": Decimal(-2)}, "effective_amount"),
        ({"limit": per_request, "first_exceeded_at": datetime(2026, 1, 1)}, "first_exceeded_at"),
    ]
    for kwargs, field in bad:
        with pytest.raises(BudgetConfigError) as info:
            LimitState(**kwargs)
        assert info.value.field == field


# --- rate limits, breakers, grants, tiers, chains ---------------------------------------------


def test_rate_limit_spec() -> None:
    spec = RateLimit(scope=Scope(key="k1"), rpm=60, tpm=100_000)
    assert spec.id == "rate|key:k1"
    assert spec.concurrent is None
    assert RateLimit.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert RateLimit.from_dict({"scope": "global", "concurrent": 4}).scope.is_global
    cases: list[tuple[dict[str, Any], str]] = [
        ({"scope": Scope()}, "rpm"),
        ({"scope": Scope(), "rpm": 0}, "rpm"),
        ({"scope": Scope(), "tpm": -1}, "tpm"),
        ({"scope": Scope(), "concurrent": 1.5}, "concurrent"),
        ({"scope": Scope(), "rpm": 1, "enabled": 1}, "enabled"),
    ]
    for kwargs, field in cases:
        with pytest.raises(BudgetConfigError) as info:
            RateLimit(**kwargs)
        assert info.value.field == field
    with pytest.raises(BudgetConfigError) as info:
        RateLimit.from_dict({"rpm": 5})
    assert info.value.field == "scope"


def test_circuit_breaker_round_trip_and_activity() -> None:
    breaker = CircuitBreaker(
        scope=Scope(team="ml"),
        reason="runaway agent",
        set_by=BreakerSource.RULE,
        since=NOW,
        cooldown_until=NOW + timedelta(minutes=15),
    )
    assert CircuitBreaker.from_dict(json.loads(json.dumps(breaker.to_dict()))) == breaker
    state = EmergencyState((breaker,))
    assert EmergencyState.from_dict(state.to_dict()) == state
    ml = RequestContext(provider="openai", model="gpt-4o", team_id="ml")
    other = RequestContext(provider="openai", model="gpt-4o", team_id="web")
    assert state.active(ml, NOW + timedelta(minutes=5)) == [breaker]
    assert state.active(other, NOW + timedelta(minutes=5)) == []
    assert state.active(ml, NOW - timedelta(seconds=1)) == []  # not yet
    assert state.active(ml, NOW + timedelta(minutes=15)) == []  # cooled down
    forever = CircuitBreaker(scope="global", reason="incident", set_by="admin", since=NOW)  # type: ignore[arg-type]
    assert active_breakers([breaker, forever], ml, NOW + timedelta(days=30)) == [forever]
    assert active_breakers([breaker, forever], ml, NOW)[0] is forever  # global breakers first
    cases: list[tuple[dict[str, Any], str]] = [
        ({"set_by": "robot"}, "set_by"),
        ({"reason": ""}, "reason"),
        ({"cooldown_until": NOW}, "cooldown_until"),
        ({"since": "soon"}, "since"),
    ]
    for kwargs, field in cases:
        with pytest.raises(BudgetConfigError) as info:
            CircuitBreaker(**{"scope": Scope(), "reason": "r", "set_by": "admin", "since": NOW, **kwargs})
        assert info.value.field == field
    with pytest.raises(BudgetConfigError) as info:
        CircuitBreaker.from_dict({"scope": "global", "reason": "r", "set_by": "admin"})
    assert info.value.field == "since"


def test_grant_round_trip_and_validation() -> None:
    grant = Grant(
        id="g1",
        limit_id="user:alice|cost|day|UTC",
        amount=Decimal("5"),
        starts_at=NOW,
        expires_at=NOW + timedelta(days=3),
        recurring=Recurrence.DAY,
        reason="demo week",
        created_by="admin@example.com",
    )
    assert Grant.from_dict(json.loads(json.dumps(grant.to_dict()))) == grant
    assert grant.active_at(NOW) and not grant.active_at(NOW + timedelta(days=3))
    base: dict[str, Any] = {"id": "g", "limit_id": "l", "amount": Decimal(1), "starts_at": NOW}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"amount": Decimal(-1)}, "amount"),
        ({"expires_at": NOW}, "expires_at"),
        ({"recurring": "hourly"}, "recurring"),
        ({"id": ""}, "id"),
        ({"reason": None}, "reason"),
    ]
    for kwargs, field in cases:
        with pytest.raises(BudgetConfigError) as info:
            Grant(**{**base, **kwargs})
        assert info.value.field == field
    with pytest.raises(BudgetConfigError) as info:
        Grant.from_dict({"id": "g", "limit_id": "l", "amount": "1"})
    assert info.value.field == "starts_at"


def test_tier_table_round_trip_and_defaults() -> None:
    table = TierTable.defaults()
    assert set(table.tiers) == {"free", "premium", "enterprise"}
    free, premium, enterprise = table.tiers["free"], table.tiers["premium"], table.tiers["enterprise"]
    assert (free.warning, free.throttle, free.downgrade, free.hard_limit) == (
        Decimal("0.70"),
        Decimal("0.80"),
        Decimal("0.90"),
        Decimal("1.00"),
    )
    assert (free.grace_period, free.max_overage) == (timedelta(hours=6), Decimal("2.00"))
    assert (premium.grace_period, premium.max_overage) == (timedelta(hours=12), Decimal("25.00"))
    assert (enterprise.hard_limit, enterprise.grace_period, enterprise.max_overage) == (
        Decimal("1.05"),
        timedelta(hours=24),
        Decimal("100.00"),
    )
    again = TierTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again == table
    assert table.to_dict()["tiers"]["free"]["grace_period"] == "6h"


def test_tier_policy_from_dict_accepts_percentages_and_durations() -> None:
    policy = TierPolicy.from_dict(
        {
            "warning": "60%",
            "throttle": "75%",
            "downgrade": 0.85,
            "hard_limit": "110%",
            "grace_period": "1h30m",
            "max_overage": "5",
            "limits": [
                {"metric": "requests", "period": "rolling", "rolling_seconds": 60, "amount": 30, "per": "api_key"}
            ],
        },
        name="student",
    )
    assert policy.name == "student"
    assert (policy.warning, policy.hard_limit) == (Decimal("0.6"), Decimal("1.1"))
    assert policy.grace_period == timedelta(minutes=90)
    assert policy.limits[0].per == "key"
    assert TierPolicy.from_dict(policy.to_dict()) == policy
    assert TierPolicy.from_dict({**policy.to_dict(), "grace_period": 3600}).grace_period == timedelta(hours=1)
    table = TierTable.defaults().with_tier(policy)
    assert table.policy_for("student") is policy
    assert table.policy_for(None).name == "free"
    assert table.policy_for("no-such-tier").name == "free"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"warning": "90%", "throttle": "80%", "downgrade": "95%"}, "throttle"),
        ({"warning": 0, "throttle": "80%", "downgrade": "95%"}, "warning"),
        ({"warning": "70%", "throttle": "80%", "downgrade": "95%", "grace_period": "soon"}, "grace_period"),
        ({"warning": "70%", "throttle": "80%", "downgrade": "95%", "grace_period": -5}, "grace_period"),
        ({"warning": "70%", "throttle": "80%", "downgrade": "95%", "max_overage": "-1"}, "max_overage"),
        ({"warning": "70%", "throttle": "80%"}, "downgrade"),
        ({"warning": "70%", "throttle": "80%", "downgrade": "95%", "limits": "x"}, "limits"),
        ({"warning": "70%", "throttle": "80%", "downgrade": "95%", "colour": 1}, "colour"),
        ({"warning": "70%", "throttle": "80%", "downgrade": "95%", "limits": [{"metric": "cost"}]}, "period"),
        (
            {
                "warning": "70%",
                "throttle": "80%",
                "downgrade": "95%",
                "limits": [{"metric": "cost", "period": "day", "amount": 1, "per": "planet"}],
            },
            "per",
        ),
    ],
)
def test_tier_policy_validation_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(BudgetConfigError) as info:
        TierPolicy.from_dict(data, name="t")
    assert info.value.field == field


def test_tier_table_validation() -> None:
    with pytest.raises(BudgetConfigError) as info:
        TierTable.from_dict({"default_tier": "gold", "tiers": TierTable.defaults().to_dict()["tiers"]})
    assert info.value.field == "default_tier"
    with pytest.raises(BudgetConfigError) as info:
        TierTable.from_dict({"tiers": {}})
    assert info.value.field == "tiers"
    free = TierTable.defaults().tiers["free"]
    with pytest.raises(BudgetConfigError) as info:
        TierTable({"gratis": free})
    assert info.value.field == "tiers"
    with pytest.raises(BudgetConfigError) as info:
        TierPolicy(name="x", warning=Decimal("0.5"), throttle=Decimal("0.6"), downgrade=Decimal("0.7"), limits=("no",))  # type: ignore[arg-type]
    assert info.value.field == "limits"


def test_tier_limits_for_a_user_and_explicit_overrides() -> None:
    table = TierTable.defaults()
    ctx = RequestContext(provider="openai", model="gpt-4o", user_id="alice", tier="premium")
    limits = table.limits_for(ctx)
    assert [(str(x.scope), x.period.value, x.amount, x.tier, x.level) for x in limits] == [
        ("user:alice", "request", Decimal("2.00"), "premium", Level.ADAPTIVE),
        ("user:alice", "day", Decimal("10.00"), "premium", Level.ADAPTIVE),
        ("user:alice", "month", Decimal("150.00"), "premium", Level.ADAPTIVE),
    ]
    explicit = alice_limit(amount=Decimal("50"))  # a daily limit set for Alice replaces the tier's
    assert [x.period for x in table.limits_for(ctx, [explicit])] == [Period.REQUEST, Period.MONTH]
    assert table.limits_for(RequestContext(provider="openai", model="gpt-4o")) == []  # nobody to apply it to
    item = TierLimit(metric="cost", period="day", amount=Decimal(1), per="team", level="hard", timezone="Europe/Berlin")  # type: ignore[arg-type]
    assert TierLimit.from_dict(item.to_dict()) == item
    limit = item.for_context(RequestContext(provider="p", model="m", team_id="ml"), "free")
    assert limit is not None and limit.scope == Scope(team="ml") and limit.timezone == "Europe/Berlin"


def test_downgrade_chains() -> None:
    chains = DowngradeChains.defaults()
    assert [str(r) for r in chains.alternatives("openai", "gpt-4")] == [
        "openai/gpt-4-turbo",
        "openai/gpt-3.5-turbo",
        "anthropic/claude-3-haiku-20240307",
    ]
    assert [r.model for r in chains.alternatives("anthropic", "claude-3-opus-20240229")] == [
        "claude-3-sonnet-20240229",
        "claude-3-haiku-20240307",
        "gpt-3.5-turbo",
    ]
    assert [r.model for r in chains.alternatives("anthropic", "claude-3-sonnet-20240229")] == [
        "claude-3-haiku-20240307",
        "gpt-3.5-turbo",
        "gemini-pro",
    ]
    assert [r.model for r in chains.alternatives("openai", "gpt-4o-2024-08-06")] == ["gpt-4o-mini"]
    assert [r.model for r in chains.alternatives("anthropic", "claude-opus-4-20250514")] == [
        "claude-sonnet-4-20250514",
        "claude-3-5-haiku-20241022",
    ]
    assert chains.alternatives("openai", "gpt-4o-mini") == ()
    custom = chains.with_chain("openai/gpt-4o", ["openai/gpt-4.1-nano"])  # provider-qualified key wins
    assert custom.alternatives("openai", "gpt-4o") == (ModelRef("openai", "gpt-4.1-nano"),)
    assert custom.alternatives("azure", "gpt-4o") == (ModelRef("openai", "gpt-4o-mini"),)
    assert DowngradeChains.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom
    assert (
        DowngradeChains.from_dict({"x": ["openrouter/meta/llama-3"]}).alternatives("p", "x")[0].model == "meta/llama-3"
    )
    for bad in ({"gpt-4": "openai/gpt-4o"}, {"gpt-4": ["gpt-4o"]}, ["x"]):
        with pytest.raises(BudgetConfigError) as info:
            DowngradeChains.from_dict(bad)  # type: ignore[arg-type]
        assert info.value.field == "chains"
    with pytest.raises(BudgetConfigError) as info:
        ModelRef("open/ai", "x")
    assert info.value.field == "provider"


def test_default_chain_models_are_priced_by_the_catalog() -> None:
    from spendgate.pricing import PriceBook
    from spendgate.usage import Usage

    book = PriceBook()
    chains = DowngradeChains.defaults()
    refs = {ref for key in chains.chains for ref in chains.chains[key]}
    usage = Usage(input_tokens=1000, output_tokens=1000)
    for ref in refs:
        assert book.cost(ref.provider, ref.model, usage).total > 0, ref


def test_action_order_and_allowed() -> None:
    order = [
        Action.ALLOW,
        Action.WARN,
        Action.DOWNGRADE,
        Action.THROTTLE,
        Action.CACHE_ONLY,
        Action.QUEUE,
        Action.DENY,
        Action.EMERGENCY_STOP,
    ]
    assert sorted(Action, key=lambda a: a.severity) == order
    assert {a for a in Action if a.allowed} == {Action.ALLOW, Action.WARN, Action.DOWNGRADE}


def test_field_validation_of_text_times_enums_and_zones() -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"id": 5}, "id", "must be a string"),
        ({"id": "x" * 600}, "id", "at most 512"),
        ({"metric": 5}, "metric", "must be one of"),
        ({"timezone": ""}, "timezone", "IANA"),
        ({"created_at": 1700000000}, "created_at", "must be a datetime"),
    ]
    for overrides, field, message in cases:
        with pytest.raises(BudgetConfigError, match=message) as info:
            alice_limit(**overrides)
        assert info.value.field == field


def test_grace_period_durations() -> None:
    base: dict[str, Any] = {"name": "t", "warning": "50%", "throttle": "60%", "downgrade": "70%"}
    no_grace = TierPolicy.from_dict({**base, "grace_period": 0})
    assert no_grace.to_dict()["grace_period"] == "0s"
    assert TierPolicy.from_dict(no_grace.to_dict()) == no_grace
    odd = TierPolicy.from_dict({**base, "grace_period": "1d2h"})
    assert odd.to_dict()["grace_period"] == "26h"
    assert TierPolicy.from_dict({**base, "grace_period": timedelta(minutes=5)}).to_dict()["grace_period"] == "5m"
    with pytest.raises(BudgetConfigError) as info:
        TierPolicy.from_dict({**base, "grace_period": timedelta(hours=-1)})
    assert info.value.field == "grace_period"
