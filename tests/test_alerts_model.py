"""Alert rules (validation, JSON round trip, defaults) and the pure evaluation: breaches, cooldown, escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spendgate.alerts import (
    DEFAULT_RULES,
    Alert,
    EscalationLevel,
    Observation,
    Rule,
    RuleState,
    escalations_due,
    evaluate,
    retry_delay,
)
from spendgate.alerts._digest import digest_period
from spendgate.alerts._model import dedup_key
from spendgate.errors import InvalidUsageError

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
RULE = Rule(name="errors", type="error_rate", metric="error_rate", operator=">", threshold=Decimal("0.10"),
            consecutive=3, cooldown_s=600, window_s=300, severity="critical",
            escalation=(EscalationLevel(after_s=600, channels=("sms",)),
                        EscalationLevel(after_s=1800, channels=("manager",))))  # fmt: skip


def _alert(scope: str = "global", **overrides: Any) -> Alert:
    values: dict[str, Any] = {"id": "alt_1", "rule": RULE.name, "type": RULE.type, "scope": scope,
                              "severity": "critical", "status": "firing", "title": "t", "value": Decimal(1),
                              "threshold": RULE.threshold, "fired_at": T0, "last_seen_at": T0}  # fmt: skip
    values.update(overrides)
    return Alert(**values)


def test_defaults_follow_the_seeds() -> None:
    by_name = {rule.name: rule for rule in DEFAULT_RULES}
    assert len(by_name) == len(DEFAULT_RULES)
    warning, critical = by_name["error-rate-warning"], by_name["error-rate-critical"]
    assert (warning.threshold, warning.severity) == (Decimal("0.10"), "warning")
    assert (critical.threshold, critical.severity) == (Decimal("0.25"), "critical")
    assert by_name["latency-warning"].threshold == 5000 and by_name["latency-critical"].threshold == 10000
    assert by_name["cost-anomaly"].threshold == 2 and by_name["usage-spike"].threshold == 3
    assert [(lvl.after_s, lvl.channels) for lvl in by_name["budget-exceeded"].escalation] == [
        (600, ("sms", "pagerduty")), (1800, ("manager",))]  # fmt: skip
    for rule in DEFAULT_RULES:
        assert Rule.from_dict(rule.to_dict()) == rule


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "has space"}, "name"),
        ({"type": "weather"}, "type"),
        ({"metric": "latency_ms"}, "metric"),
        ({"operator": "=>"}, "operator"),
        ({"threshold": "lots"}, "threshold"),
        ({"threshold": "NaN"}, "threshold"),
        ({"window_s": 0}, "window_s"),
        ({"consecutive": 0}, "consecutive"),
        ({"cooldown_s": -1}, "cooldown_s"),
        ({"severity": "meh"}, "severity"),
        ({"channels": "email"}, "channels"),
        ({"channels": ["email", "email"]}, "channels"),
        ({"escalation": [{"after_s": 600, "channels": ["a"]}, {"after_s": 60, "channels": ["b"]}]}, "escalation"),
        ({"escalation": [{"after_s": 600}]}, "escalation"),
        ({"group_by": "planet"}, "group_by"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_rules_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidUsageError) as caught:
        Rule.from_dict({**RULE.to_dict(), **change})
    assert caught.value.field == field


def test_metric_defaults_to_the_types_metric() -> None:
    rule = Rule.from_dict({"name": "lat", "type": "latency_spike", "threshold": 5000})
    assert (rule.metric, rule.operator, rule.channels) == ("latency_ms", ">=", ("log",))
    assert dedup_key("a", "b") != dedup_key("a", "c") and len(dedup_key("a", "b")) == 64


def _round(state: RuleState, value: str | None, now: datetime, open_alerts: dict[str, Alert] | None = None) -> Any:
    observations = [] if value is None else [Observation("global", Decimal(value), "errors high")]
    return evaluate(RULE, observations, state, open_alerts or {}, now)


def test_fires_after_consecutive_breaches_only() -> None:
    state = RuleState()
    first = _round(state, "0.5", T0)
    second = _round(first.state, "0.5", T0 + timedelta(minutes=1))
    assert first.fire == second.fire == ()
    assert second.state.scopes["global"].breaches == 2
    third = _round(second.state, "0.5", T0 + timedelta(minutes=2))
    assert [(f.scope, f.value) for f in third.fire] == [("global", Decimal("0.5"))]
    # a clean round in between starts the count again; so does a round without traffic
    reset = _round(_round(second.state, "0.05", T0 + timedelta(minutes=2)).state, "0.5", T0 + timedelta(minutes=3))
    assert reset.fire == () and reset.state.scopes["global"].breaches == 1
    silent = _round(_round(second.state, None, T0 + timedelta(minutes=2)).state, "0.5", T0 + timedelta(minutes=3))
    assert silent.fire == () and silent.state.scopes["global"].breaches == 1
    assert _round(state, "0.10", T0).state.scopes == {}  # equal is not above: no breach, nothing remembered


def test_open_alert_is_touched_then_resolved_and_cooldown_holds() -> None:
    state = RuleState()
    for minute in range(3):
        decision = _round(state, "0.5", T0 + timedelta(minutes=minute))
        state = decision.state
    assert len(decision.fire) == 1
    open_alert = {"global": _alert(fired_at=T0 + timedelta(minutes=2))}
    again = _round(state, "0.6", T0 + timedelta(minutes=3), open_alert)
    assert again.fire == () and [(t.alert_id, t.value) for t in again.touch] == [("alt_1", Decimal("0.6"))]
    cleared = _round(again.state, "0.01", T0 + timedelta(minutes=4), open_alert)
    assert cleared.resolve == ("alt_1",)
    state = cleared.state
    for minute in range(5, 8):  # three breaches again, but within 10 minutes of the last firing
        decision = _round(state, "0.5", T0 + timedelta(minutes=minute))
        state = decision.state
    assert decision.fire == ()
    later = _round(state, "0.5", T0 + timedelta(minutes=12))  # cooldown over: fires on the next breach
    assert len(later.fire) == 1


def test_event_alerts_resolve_after_a_quiet_window() -> None:
    open_alert = {"global": _alert(last_seen_at=T0)}
    assert _round(RuleState(), None, T0 + timedelta(seconds=299), open_alert).resolve == ()
    assert _round(RuleState(), None, T0 + timedelta(seconds=300), open_alert).resolve == ("alt_1",)


def test_state_round_trips_through_json() -> None:
    state = _round(RuleState(cursor=T0, seen=["k"]), "0.5", T0).state
    assert RuleState.from_dict(state.to_dict()) == state


def test_escalation_steps_and_acknowledgement() -> None:
    alert = _alert()
    assert escalations_due(RULE, alert, T0 + timedelta(minutes=9)) == []
    assert escalations_due(RULE, alert, T0 + timedelta(minutes=10)) == [(1, ("sms",))]
    assert escalations_due(RULE, alert, T0 + timedelta(minutes=31)) == [(1, ("sms",)), (2, ("manager",))]
    assert escalations_due(RULE, _alert(escalation_level=1), T0 + timedelta(minutes=31)) == [(2, ("manager",))]
    assert escalations_due(RULE, _alert(escalation_level=2), T0 + timedelta(hours=5)) == []
    assert escalations_due(RULE, _alert(status="acknowledged"), T0 + timedelta(hours=1)) == []


def test_retry_delay_doubles_up_to_the_cap() -> None:
    assert [retry_delay(n, 30, 200).total_seconds() for n in range(1, 6)] == [30, 60, 120, 200, 200]


def test_digest_periods_are_complete_utc_days_and_weeks() -> None:
    tuesday = datetime(2026, 3, 10, 0, 30, tzinfo=UTC)
    assert digest_period("daily", tuesday) == (datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 10, tzinfo=UTC))
    assert digest_period("weekly", tuesday) == (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))
    monday = datetime(2026, 3, 9, tzinfo=UTC)
    assert digest_period("weekly", monday) == (datetime(2026, 3, 2, tzinfo=UTC), monday)
