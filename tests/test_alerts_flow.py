"""Alerting rounds on SQLite and PostgreSQL under a fake clock: every evaluator, escalation, ack, the outbox."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ledger_fixtures import make_event
from spendgate.alerts import (
    Alerting,
    AlertingConfig,
    AlertingReport,
    AlertStore,
    Observation,
    Rule,
    RuleState,
    alerting_job,
    evaluate,
    run_alerting,
)
from spendgate.alerts import _sources as sources
from spendgate.analytics._anomaly import Anomaly, record_anomalies
from spendgate.errors import LedgerError
from spendgate.ledger import UsageStore
from spendgate.testing import FakeClock
from test_alerts_support import T0, HttpReceiver, clock, http_receiver, store

__all__ = ["clock", "store"]

MIN = timedelta(minutes=1)


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        yield receiver


def _alerting(
    store: UsageStore, rules: list[dict[str, Any]], http: HttpReceiver | None = None, **extra: Any
) -> Alerting:
    channels = {} if http is None else {name: {"type": "webhook", "url": http.url(f"/{name}")}
                                        for name in ("first", "esc1", "esc2")}  # fmt: skip
    return Alerting(store, AlertingConfig.model_validate({"rules": rules, "channels": channels, **extra}))


def _calls(store: UsageStore, at: datetime, n: int, **fields: Any) -> None:
    store.record_many(make_event(timestamp=at - timedelta(seconds=1 + i % 50), **fields) for i in range(n))


def test_fresh_install_gets_the_default_rules_once(store: UsageStore, clock: FakeClock) -> None:
    alerting = Alerting(store)
    alerting.run(clock.now())
    names = {stored.rule.name for stored in alerting.alerts.rules()}
    assert {"budget-threshold", "error-rate-critical", "latency-warning", "provider-failure"} <= names
    assert all(stored.source == "default" for stored in alerting.alerts.rules())
    alerting.alerts.delete_rule("budget-threshold")
    Alerting(store).run(clock.now())  # another process starting: the deleted default stays deleted
    assert alerting.alerts.rule("budget-threshold") is None


def test_error_rate_needs_consecutive_breaches_then_resolves(store: UsageStore, clock: FakeClock) -> None:
    rule = {"name": "errors", "type": "error_rate", "operator": ">", "threshold": "0.25", "consecutive": 2,
            "window_s": 300, "cooldown_s": 600, "severity": "critical"}  # fmt: skip
    alerting = _alerting(store, [rule])
    _calls(store, clock.now(), 12, success=True)
    _calls(store, clock.now(), 8, success=False, error_kind="upstream_5xx")  # 40 % of 20
    assert alerting.run(clock.now()).fired == []  # one breach of two
    clock.advance(MIN)
    [alert] = alerting.run(clock.now()).fired
    assert (alert.scope, alert.value, alert.severity) == ("global", Decimal("0.4000"), "critical")
    assert alert.details == {"requests": 20, "failures": 8} and "error rate of global was 40%" in alert.title
    clock.advance(MIN)
    assert alerting.run(clock.now()).fired == []  # still breaching: deduplicated, counted
    assert alerting.alerts.get(alert.id).occurrences == 2  # type: ignore[union-attr]
    clock.advance(timedelta(minutes=6))  # the failures left the window; healthy traffic now
    _calls(store, clock.now(), 30, success=True)
    assert alerting.run(clock.now()).resolved == 1
    assert alerting.alerts.get(alert.id).status == "resolved"  # type: ignore[union-attr]


def test_few_requests_are_not_judged(store: UsageStore, clock: FakeClock) -> None:
    rule = {"name": "errors", "type": "error_rate", "operator": ">", "threshold": "0.1"}
    _calls(store, clock.now(), 5, success=False, error_kind="timeout")
    assert _alerting(store, [rule], min_requests=10).run(clock.now()).fired == []
    clock.advance(MIN)  # the next round (the rules were installed once: "errors" is judged again)
    assert len(_alerting(store, [rule], min_requests=5).run(clock.now()).fired) == 1


def test_latency_and_provider_failures_per_provider(store: UsageStore, clock: FakeClock) -> None:
    rules: list[dict[str, Any]] = [
        {"name": "slow", "type": "latency_spike", "operator": ">", "threshold": 5000, "group_by": "provider"},
        {"name": "down", "type": "provider_failure", "threshold": "0.5", "group_by": "provider"},
        {"name": "down-count", "type": "provider_failure", "metric": "failures", "threshold": 3},
    ]
    _calls(store, clock.now(), 10, provider="openai", latency_ms=7000)
    _calls(store, clock.now(), 10, provider="anthropic", latency_ms=900, success=False, error_kind="timeout")
    _calls(store, clock.now(), 10, provider="anthropic", latency_ms=900, success=False, error_kind="bad_request")
    fired = {(a.rule, a.scope): a for a in _alerting(store, rules).run(clock.now()).fired}
    assert set(fired) == {("slow", "provider:openai"), ("down", "provider:anthropic"), ("down-count", "global")}
    assert fired["slow", "provider:openai"].value == Decimal("7000.0")
    down = fired["down", "provider:anthropic"]
    assert down.value == Decimal("0.5000")  # client errors (bad_request) are not the provider failing
    assert down.details["by_error_kind"] == {"timeout": 10} and down.details["requests"] == 20
    assert fired["down-count", "global"].value == 10


def test_budget_crossings_and_anomalies_fire_once_each(store: UsageStore, clock: FakeClock) -> None:
    rules: list[dict[str, Any]] = [{"name": "budget", "type": "budget_threshold", "threshold": "0.8"},
             {"name": "over", "type": "budget_exceeded", "threshold": 1},
             {"name": "quota", "type": "quota_exceeded", "threshold": 1},
             {"name": "cost", "type": "cost_anomaly", "operator": ">", "threshold": 2}]  # fmt: skip
    alerting = _alerting(store, rules)
    control = store.control
    control.record_crossing("user:bob|cost|day|UTC", "2026-03-10", "0.5", T0, {"scope": "user:bob"})
    control.record_crossing("user:bob|cost|day|UTC", "2026-03-10", "0.95", T0, {"scope": "user:bob"})
    control.record_crossing("user:bob|requests|day|UTC", "2026-03-10", "exceeded", T0, {"scope": "user:bob"})
    old = T0 - timedelta(days=3)  # before the install: not alerted
    control.record_crossing("user:ann|cost|day|UTC", "2026-03-07", "exceeded", old, {"scope": "user:ann"})
    hour = T0 - timedelta(hours=1)
    anomaly = Anomaly(id="a1", metric="cost", type="cost_anomaly", scope="team:ml", hour=hour, value=Decimal(9),
                      baseline=Decimal(1), ratio=9.0, threshold=2.0, severity="warning", method="hour_of_day",
                      samples=7, requests=40, detected_at=T0, currency="USD")  # fmt: skip
    record_anomalies(control, [anomaly])
    clock.advance(seconds=5)
    fired = {(a.rule, a.scope) for a in alerting.run(clock.now()).fired}
    assert fired == {("budget", "user:bob|cost|day|UTC@2026-03-10#0.95"),
                     ("quota", "user:bob|requests|day|UTC@2026-03-10"), ("cost", "team:ml")}  # fmt: skip
    clock.advance(MIN)  # the overlapping re-read finds the same events: nothing fires twice
    assert alerting.run(clock.now()).fired == []
    control.record_crossing("user:bob|cost|day|UTC", "2026-03-10", "exceeded", clock.now(), {"scope": "user:bob"})
    clock.advance(MIN)
    assert [(a.rule, a.type) for a in alerting.run(clock.now()).fired] == [("over", "budget_exceeded")]


def test_system_health_probe(store: UsageStore, clock: FakeClock) -> None:
    rule = {"name": "health", "type": "system_health", "operator": "<", "threshold": 1}
    state: dict[str, str | None] = {"ledger": None, "counters": "redis timeout"}
    config = AlertingConfig.model_validate({"rules": [rule]})
    alerting = Alerting(store, config, health=lambda: state)
    [alert] = alerting.run(clock.now()).fired
    assert alert.scope == "component:counters" and alert.details == {"error": "redis timeout"}
    state["counters"] = None
    clock.advance(MIN)
    assert alerting.run(clock.now()).resolved == 1

    def broken() -> dict[str, str | None]:
        raise RuntimeError("probe crashed")

    clock.advance(MIN)
    [failed] = Alerting(store, config, health=broken).run(clock.now()).fired
    assert failed.scope == "component:health-probe" and "probe crashed" in failed.title


def test_escalation_steps_and_acknowledgement_stop_them(
    store: UsageStore, clock: FakeClock, http: HttpReceiver
) -> None:
    levels = [{"after_s": 600, "channels": ["esc1"]}, {"after_s": 1800, "channels": ["esc2"]}]
    rule = {"name": "over", "type": "budget_exceeded", "threshold": 1, "channels": ["first"], "window_s": 86400,
            "escalation": levels}  # fmt: skip
    alerting = _alerting(store, [rule], http)
    for user in ("bob", "ann"):
        store.control.record_crossing(f"user:{user}|cost|day|UTC", "2026-03-10", "exceeded", T0, {"scope": user})
    fired = {a.details["scope"]: a for a in alerting.run(clock.now()).fired}
    assert len(http.at("/first")) == 2
    clock.advance(timedelta(minutes=5))
    ack = alerting.alerts.acknowledge(fired["ann"].id, "key:ops", clock.now())
    assert ack is not None and ack[1] and ack[0].status == "acknowledged"
    clock.advance(timedelta(minutes=4, seconds=59))
    assert alerting.run(clock.now()).escalated == 0
    clock.advance(seconds=1)  # 10 minutes: bob's escalates to level 1, ann's (acknowledged) does not
    assert alerting.run(clock.now()).escalated == 1
    [esc1] = http.at("/esc1")
    assert (esc1.json()["event"], esc1.json()["level"], esc1.json()["alert"]["id"]) == ("escalated", 1, fired["bob"].id)
    clock.advance(timedelta(minutes=10))
    assert alerting.run(clock.now()).escalated == 0 and len(http.at("/esc1")) == 1  # each level once
    clock.advance(timedelta(minutes=10))  # 30 minutes: the final level
    assert alerting.run(clock.now()).escalated == 1 and len(http.at("/esc2")) == 1
    assert alerting.alerts.acknowledge(fired["bob"].id, "key:ops", clock.now()) is not None
    clock.advance(timedelta(hours=2))
    assert alerting.run(clock.now()).escalated == 0
    assert len(http.at("/esc2")) == 1 and len(http.at("/esc1")) == 1
    resolved = alerting.resolve(fired["bob"].id, "key:ops", clock.now())
    assert resolved is not None and resolved[0].status == "resolved"
    alerting.run(clock.now())
    assert [r.json()["event"] for r in http.at("/esc2")] == ["escalated", "resolved"]  # everyone paged hears it
    assert alerting.resolve(fired["bob"].id, "key:ops", clock.now()) == (resolved[0], False)
    assert alerting.alerts.acknowledge("alt_nope", "key:ops", clock.now()) is None


def test_alert_and_deliveries_are_one_transaction(
    store: UsageStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts = AlertStore.of(store)
    rule = Rule(name="r", type="system_health", metric="healthy", operator="<", threshold=Decimal(1))
    alerts.create_rule(rule, clock.now())
    decision = evaluate(rule, [Observation("component:x", Decimal(0), "x down")], RuleState(), {}, clock.now())

    def explode(*args: Any) -> None:
        raise LedgerError("disk full while queueing deliveries")

    monkeypatch.setattr("spendgate.alerts._store.insert_deliveries", explode)
    with pytest.raises(LedgerError, match="disk full"):
        alerts.apply(rule, decision, clock.now(), fire_channels=["log"], resolve_channels=lambda level: [])
    assert alerts.list_alerts() == []  # the alert went with its deliveries
    monkeypatch.undo()
    [alert] = alerts.apply(rule, decision, clock.now(), fire_channels=["log"], resolve_channels=lambda level: [])
    assert [d.channel for d in alerts.outbox.deliveries(alert_id=alert.id)] == ["log"]
    # a second evaluator firing the same (rule, scope) meanwhile is deduplicated by the open key
    assert alerts.apply(rule, decision, clock.now(), fire_channels=["log"], resolve_channels=lambda level: []) == []
    assert len(alerts.list_alerts()) == 1


def test_concurrent_claims_take_disjoint_deliveries(store: UsageStore, clock: FakeClock) -> None:
    alerts = AlertStore.of(store)
    rule = Rule(name="r", type="system_health", metric="healthy", operator="<", threshold=Decimal(1))
    alerts.create_rule(rule, clock.now())
    observations = [Observation(f"component:{i}", Decimal(0), "down") for i in range(8)]
    decision = evaluate(rule, observations, RuleState(), {}, clock.now())
    alerts.apply(rule, decision, clock.now(), fire_channels=["a", "b", "c"], resolve_channels=lambda level: [])
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def claim() -> None:
        start.wait()
        got = alerts.outbox.claim(clock.now(), limit=6, lease=timedelta(minutes=2))
        with lock:
            claimed.extend(d.id for d in got)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(set(claimed)) == 24
    assert alerts.outbox.claim(clock.now(), limit=50, lease=timedelta(minutes=2)) == []  # all leased
    clock.advance(timedelta(minutes=2))  # a worker that died mid-send: its lease ends, the rows come back
    assert len(alerts.outbox.claim(clock.now(), limit=50, lease=timedelta(minutes=2))) == 24


def test_a_key_used_from_many_addresses(store: UsageStore, clock: FakeClock) -> None:
    rule = {"name": "spread", "type": "security_threat", "operator": ">", "threshold": 5, "window_s": 900}
    store.record_many(make_event(timestamp=T0 - timedelta(minutes=1), api_key_id="leaked", client_ip=f"10.0.0.{i}")
                      for i in range(8))  # fmt: skip
    store.record_many(make_event(timestamp=T0 - timedelta(minutes=1), api_key_id="fine", client_ip="10.1.0.1")
                      for _ in range(20))  # fmt: skip
    old = T0 - timedelta(minutes=20)  # outside the window
    store.record_many(make_event(timestamp=old, api_key_id="fine", client_ip=f"10.2.0.{i}") for i in range(9))
    [alert] = _alerting(store, [rule]).run(clock.now()).fired
    assert (alert.scope, alert.value, alert.details) == ("key:leaked", Decimal(8), {"requests": 8})


def test_the_job_flushes_first_and_a_broken_rule_does_not_stop_the_others(
    store: UsageStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = [{"name": "health", "type": "system_health", "operator": "<", "threshold": 1},
             {"name": "broken", "type": "error_rate", "threshold": "0.1"},
             {"name": "off", "type": "system_health", "operator": "<", "threshold": 1, "enabled": False}]  # fmt: skip
    config = AlertingConfig.model_validate({"rules": rules})

    def observe(rule: Rule, *args: Any, **kwargs: Any) -> Any:
        if rule.name == "broken":
            raise RuntimeError("source down")
        return sources.observe(rule, *args, **kwargs)

    monkeypatch.setattr("spendgate.alerts._run.observe", observe)
    flushed: list[datetime] = []
    job = alerting_job(store, config, health=lambda: {"ledger": "gone"}, before=lambda: flushed.append(clock.now()))
    report = job(clock.now())
    assert flushed == [T0] and report.errors == {"broken": "RuntimeError: source down"}
    assert [a.rule for a in report.fired] == ["health"]  # "off" is disabled
    assert job(clock.now() + MIN).fired == []  # the same Alerting: still open, deduplicated
    assert run_alerting(store, config.model_copy(update={"enabled": False}), clock.now()) == AlertingReport()
