"""Alerts API: list, acknowledge, resolve, deliveries; rule CRUD; roles, 400/404/409 JSON errors, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from spendgate.alerts import run_alerting
from spendgate.server import _adm_alerts
from test_admin_support import T0, Env, open_env

U = "/api/v1"


def _mount(app: FastAPI) -> None:
    """Serve the alert routes (once ``_admin.py`` includes them, they are there already)."""
    if f"{U}/alert-rules" not in {getattr(route, "path", "") for route in app.routes}:
        app.include_router(_adm_alerts.router, prefix=U)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with open_env(tmp_path) as running:
        assert isinstance(running.client.app, FastAPI)
        _mount(running.client.app)
        yield running


def _fire(env: Env) -> str:
    env.meter.store.control.record_crossing("user:bob|cost|day|UTC", "2026-03-10", "exceeded", T0, {"scope": "bob"})
    env.clock.advance(seconds=5)
    [alert] = run_alerting(env.meter.store, None, env.clock.now()).fired
    return alert.id


def test_rules_start_with_the_defaults_and_only_admins_change_them(env: Env) -> None:
    listed = env.call("GET", f"{U}/alert-rules", "viewer")
    assert listed.status_code == 200
    rules = {rule["name"]: rule for rule in listed.json()["rules"]}
    assert rules["error-rate-critical"]["threshold"] == "0.25" and rules["error-rate-critical"]["source"] == "default"
    assert env.call("GET", f"{U}/alert-rules", "member").status_code == 403
    assert env.call("GET", f"{U}/alert-rules", None).status_code == 401
    body = {"name": "big-spend", "type": "budget_threshold", "threshold": "0.9", "channels": ["log", "email"],
            "escalation": [{"after_s": 600, "channels": ["sms"]}], "severity": "critical"}  # fmt: skip
    assert env.call("POST", f"{U}/alert-rules", "viewer", json=body).status_code == 403
    created = env.call("POST", f"{U}/alert-rules", "admin", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["metric"] == "budget_utilization" and created.json()["source"] == "api"
    again = env.call("POST", f"{U}/alert-rules", "admin", json=body)
    assert again.status_code == 409 and again.json()["error"]["field"] == "name"
    replaced = env.call("PUT", f"{U}/alert-rules/big-spend", "admin", json={**body, "threshold": "0.8"})
    assert replaced.status_code == 200 and replaced.json()["threshold"] == "0.8"
    assert env.call("GET", f"{U}/alert-rules/big-spend", "viewer").json()["threshold"] == "0.8"
    assert env.call("DELETE", f"{U}/alert-rules/big-spend", "admin").status_code == 204
    assert env.call("GET", f"{U}/alert-rules/big-spend", "viewer").status_code == 404
    assert env.call("DELETE", f"{U}/alert-rules/big-spend", "admin").status_code == 404
    actions = [entry.action for entry in env.meter.store.control.audit_entries()]
    assert actions[-3:] == ["alert_rule.create", "alert_rule.update", "alert_rule.delete"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "type": "error_rate", "threshold": "lots"}, "threshold"),
        ({"name": "x", "type": "weather", "threshold": 1}, "type"),
        ({"name": "x", "type": "error_rate", "threshold": 1, "colour": "red"}, "colour"),
        ({"name": "x", "type": "error_rate", "threshold": 1, "window_s": 0}, "window_s"),
        ({"name": "x", "type": "error_rate", "threshold": 1, "metric": "latency_ms"}, "metric"),
        ({"name": "x y", "type": "error_rate", "threshold": 1}, "name"),
        ({"type": "error_rate", "threshold": 1}, "name"),
        ({"name": "x", "type": "error_rate", "threshold": 1, "escalation": [{"after_s": 5}]}, "escalation.0.channels"),
    ],
)
def test_invalid_rules_are_400_naming_the_field(env: Env, body: dict[str, Any], field: str) -> None:
    answer = env.call("POST", f"{U}/alert-rules", "admin", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error" and answer.json()["error"]["field"] == field


def test_put_must_name_the_same_rule(env: Env) -> None:
    body = {"name": "other", "type": "error_rate", "threshold": "0.3"}
    answer = env.call("PUT", f"{U}/alert-rules/error-rate-critical", "admin", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "name"
    assert env.call("PUT", f"{U}/alert-rules/nope", "admin", json={**body, "name": "nope"}).status_code == 404


def test_alerts_list_ack_resolve_and_deliveries(env: Env) -> None:
    alert_id = _fire(env)
    listed = env.call("GET", f"{U}/alerts", "viewer")
    assert listed.status_code == 200
    [alert] = listed.json()["alerts"]
    assert (alert["id"], alert["status"], alert["rule"], alert["severity"]) == (alert_id, "firing", "budget-exceeded",
                                                                                "critical")  # fmt: skip
    assert env.call("GET", f"{U}/alerts", "member").status_code == 403
    assert env.call("GET", f"{U}/alerts", "viewer", params={"status": "resolved"}).json()["alerts"] == []
    naive = env.call("GET", f"{U}/alerts", "viewer", params={"since": "2026-03-10T00:00:00"})
    assert naive.status_code == 400 and naive.json()["error"]["field"] == "since"
    assert env.call("GET", f"{U}/alerts/{alert_id}", "viewer").json()["id"] == alert_id
    deliveries = env.call("GET", f"{U}/alerts/{alert_id}/deliveries", "viewer").json()["deliveries"]
    assert [(d["channel"], d["status"], d["attempts"]) for d in deliveries] == [("log", "sent", 1)]

    assert env.call("POST", f"{U}/alerts/{alert_id}/ack", "viewer").status_code == 403
    env.clock.advance(timedelta(minutes=1))
    acked = env.call("POST", f"{U}/alerts/{alert_id}/ack", "admin")
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"].startswith("key:") and acked.json()["acknowledged_at"]
    assert env.call("POST", f"{U}/alerts/{alert_id}/ack", "admin").json()["status"] == "acknowledged"  # idempotent
    opened = env.call("GET", f"{U}/alerts", "viewer", params={"status": "open"}).json()["alerts"]
    assert [a["id"] for a in opened] == [alert_id]
    resolved = env.call("POST", f"{U}/alerts/{alert_id}/resolve", "admin")
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    conflict = env.call("POST", f"{U}/alerts/{alert_id}/ack", "admin")
    assert conflict.status_code == 409 and conflict.json()["error"]["type"] == "conflict"
    assert env.call("POST", f"{U}/alerts/{alert_id}/resolve", "admin").status_code == 409
    events = [d["event"] for d in env.call("GET", f"{U}/alerts/{alert_id}/deliveries", "viewer").json()["deliveries"]]
    assert events == ["fired", "resolved"]
    actions = [entry.action for entry in env.meter.store.control.audit_entries()]
    assert actions[-2:] == ["alert.acknowledge", "alert.resolve"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/alerts/alt_none"), ("POST", "/alerts/alt_none/ack"), ("POST", "/alerts/alt_none/resolve"),
     ("GET", "/alerts/alt_none/deliveries"), ("GET", "/alert-rules/none")],
)  # fmt: skip
def test_unknown_ids_are_404(env: Env, method: str, path: str) -> None:
    answer = env.call(method, U + path, "admin")
    assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found"
