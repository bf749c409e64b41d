"""Failed-authentication alerts, replicas sharing one database, and what retention removes from alerting."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledger_fixtures import make_event
from spendgate.alerts import (
    Alerting,
    AlertingConfig,
    AuthFailures,
    Observation,
    Rule,
    evaluate,
    failures_by_address,
    prune_alerting,
    prune_auth_failures,
)
from spendgate.alerts._auth_log import MAX_PENDING, OVERFLOW
from spendgate.alerts._store import StaleRound
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageStore
from spendgate.ledger._alerts_schema import alert_deliveries
from spendgate.server._jobs import ALERTING
from spendgate.testing import FakeClock
from test_admin_support import open_env
from test_alerts_support import T0, clock, store

__all__ = ["clock", "store"]

MIN = timedelta(minutes=1)


def _alerting(store: UsageStore, rules: list[dict[str, Any]], **extra: Any) -> Alerting:
    return Alerting(store, AlertingConfig.model_validate({"rules": rules, "channels": {}, **extra}))


def test_refused_keys_are_counted_per_minute_and_address_and_added_up_across_processes(
    store: UsageStore, clock: FakeClock
) -> None:
    one, two = AuthFailures(), AuthFailures()  # two replicas of the service
    for _ in range(3):
        one.record("10.0.0.1", clock.now())
    two.record("10.0.0.1", clock.now() + timedelta(seconds=30))  # the same minute
    two.record(None, clock.now())
    assert (one.pending(), two.pending()) == (3, 2)
    assert one.flush(store) == 3 and two.flush(store) == 2
    assert one.pending() == 0 and one.flush(store) == 0
    assert failures_by_address(store, clock.now(), clock.now() + MIN) == [("10.0.0.1", 4), ("", 1)]
    assert failures_by_address(store, clock.now() + MIN, clock.now() + 2 * MIN) == []
    assert prune_auth_failures(store, clock.now()) == 0
    assert prune_auth_failures(store, clock.now() + MIN) == 2
    assert failures_by_address(store, clock.now(), clock.now() + MIN) == []


def test_a_flood_of_addresses_is_bounded_and_a_failed_flush_keeps_its_counts(
    store: UsageStore, clock: FakeClock, tmp_path: Path
) -> None:
    failures = AuthFailures()
    for i in range(MAX_PENDING + 5):
        failures.record(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", clock.now())
    assert failures.pending() == MAX_PENDING + 5
    with pytest.raises(Exception, match="alerting needs a SQL usage store"):
        failures.flush(object())  # nowhere to write: the counts stay for the next flush
    assert failures.pending() == MAX_PENDING + 5
    assert failures.flush(store) == MAX_PENDING + 5
    rows = dict(failures_by_address(store, clock.now(), clock.now() + MIN))
    assert len(rows) == MAX_PENDING + 1 and rows[OVERFLOW] == 5


def test_failed_auth_rules_are_per_address_or_global(store: UsageStore, clock: FakeClock) -> None:
    failures = AuthFailures()
    for i in range(30):
        failures.record("203.0.113.9", clock.now() - timedelta(seconds=i))
    for i in range(12):
        failures.record(f"198.51.100.{i}", clock.now())
    failures.flush(store)
    rules = [
        {"name": "burst", "type": "security_threat", "metric": "failed_auth", "operator": ">", "threshold": 20,
         "window_s": 300, "group_by": "client_ip"},
        {"name": "flood", "type": "security_threat", "metric": "failed_auth", "operator": ">", "threshold": 40,
         "window_s": 300},
    ]  # fmt: skip
    clock.advance(seconds=5)
    fired = {(a.rule, a.scope): a for a in _alerting(store, rules).run(clock.now()).fired}
    assert set(fired) == {("burst", "address:203.0.113.9"), ("flood", "global")}
    assert fired["burst", "address:203.0.113.9"].value == 30
    assert fired["flood", "global"].value == 42 and fired["flood", "global"].details["addresses"] == 13
    assert fired["flood", "global"].details["top"][0] == "203.0.113.9"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "failed_auth", "group_by": "provider"}, "per 'client_ip' or 'global'"),
        ({"metric": "distinct_addresses", "group_by": "client_ip"}, "only for the failed_auth metric"),
    ],
)
def test_client_ip_grouping_belongs_to_failed_auth(changes: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidUsageError, match=message) as caught:
        Rule.from_dict({"name": "x", "type": "security_threat", "threshold": 1, **changes})
    assert caught.value.field == "group_by"


def test_refused_keys_at_the_service_fire_the_default_burst_alert(tmp_path: Path) -> None:
    with open_env(tmp_path) as env:
        env.clock.advance(minutes=6)  # the service's first alerting round is due 5 minutes after start
        for i in range(22):
            headers = {} if i % 2 else {"Authorization": "Bearer sk-sg-not-a-real-key"}
            assert env.client.get("/api/v1/usage/summary", headers=headers).status_code == 401
        assert env.call("GET", "/api/v1/usage/summary", "member").status_code == 200  # accepted: not counted
        services = env.client.app.state.services  # type: ignore[attr-defined]
        assert services.auth_failures.pending() == 22
        ran = env.client.app.state.jobs.run_pending(env.clock.now())  # type: ignore[attr-defined]
        assert ALERTING in ran and services.auth_failures.pending() == 0
        listed = env.call("GET", "/api/v1/alerts", "admin").json()["alerts"]
        [alert] = [a for a in listed if a["rule"] == "failed-auth-burst"]
        assert alert["scope"] == "address:testclient" and alert["type"] == "security_threat"
        assert Decimal(alert["value"]) == 22


def test_replicas_count_a_breach_once_towards_consecutive(store: UsageStore, clock: FakeClock) -> None:
    rule = {"name": "errors", "type": "error_rate", "operator": ">", "threshold": "0.1", "consecutive": 2}
    store.record_many(
        make_event(timestamp=clock.now() - timedelta(seconds=1 + i), success=False, error_kind="timeout")
        for i in range(20)
    )
    a, b = _alerting(store, [rule]), _alerting(store, [rule])  # two replicas, interval 60 s: gap 30 s
    assert a.run(clock.now()).fired == []  # breach 1
    clock.advance(seconds=10)
    assert b.run(clock.now()).fired == []  # the same round, seen by the other replica: skipped, not breach 2
    assert a.alerts.state("errors").scopes["global"].breaches == 1
    clock.advance(seconds=50)
    [alert] = b.run(clock.now()).fired  # the next round: breach 2
    assert alert.rule == "errors"


def test_a_round_overtaken_by_another_writes_nothing(store: UsageStore, clock: FakeClock) -> None:
    rule = {"name": "errors", "type": "error_rate", "operator": ">", "threshold": "0.1"}
    store.record_many(make_event(timestamp=clock.now() - timedelta(seconds=1), success=False) for _ in range(20))
    slow, fast = _alerting(store, [rule], round_gap_s=0), _alerting(store, [rule], round_gap_s=0)
    slow.ensure_rules(clock.now())
    stored = slow.alerts.rule("errors")
    assert stored is not None
    state, text = slow.alerts.state_read("errors")
    [fired] = fast.run(clock.now()).fired  # overtakes the slow round: fires and writes the rule's state
    decision = evaluate(stored.rule, [Observation("global", Decimal(1), "all failed")], state, {}, clock.now())
    assert len(decision.fire) == 1
    with pytest.raises(StaleRound):
        slow.alerts.apply(stored.rule, decision, clock.now(), fire_channels=[], resolve_channels=lambda _: [],
                          expected=text)  # fmt: skip
    assert [a.id for a in slow.alerts.list_alerts()] == [fired.id]  # the stale round opened nothing
    assert slow.alerts.state("errors").evaluated_at == clock.now()
    clock.advance(MIN)
    assert slow.run(clock.now()).fired == []  # the next round: deduplicated against the open alert


def test_retention_removes_resolved_alerts_and_their_deliveries_only(store: UsageStore, clock: FakeClock) -> None:
    store.control.record_crossing("user:bob|cost|day|UTC", "2026-03-10", "exceeded", T0, {"scope": "bob"})
    store.control.record_crossing("user:ann|cost|day|UTC", "2026-03-10", "exceeded", T0, {"scope": "ann"})
    config = AlertingConfig.model_validate({"channels": {"log": {"type": "log"}}})
    alerting = Alerting(store, config)
    clock.advance(seconds=5)
    fired = {a.details["scope"]: a for a in alerting.run(clock.now()).fired}
    assert alerting.resolve(fired["bob"].id, "ops", clock.now()) is not None

    def deliveries(alert_id: str) -> int:
        d = alert_deliveries
        query = sa.select(sa.func.count()).select_from(d).where(d.c.alert_id == alert_id)
        with alerting.alerts._engine.transaction("count deliveries in") as conn:
            return int(conn.execute(query).scalar_one())

    bob, ann = fired["bob"].id, fired["ann"].id
    assert deliveries(bob) == 2 and deliveries(ann) == 1  # bob's firing and resolution went to the log
    assert prune_alerting(store, clock.now()) == 0  # resolved at now: not before the cutoff
    assert prune_alerting(store, clock.now() + timedelta(days=1)) == 1 + 2
    assert alerting.alerts.get(bob) is None and deliveries(bob) == 0
    assert alerting.alerts.get(ann) is not None and deliveries(ann) == 1  # open: kept however old
