"""Insights API: forecast (and /projection), anomalies (list, detect) and recommendations; roles and 4xx errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from spendgate.server import _adm_insights
from test_admin_support import T0, Env, open_env

HOUR = T0 - timedelta(hours=1)  # the last complete hour at T0 (12:00)


def _mount(app: FastAPI) -> None:
    """Serve the insights routes (once ``_admin.py`` includes them, they are there already)."""
    paths = {getattr(route, "path", "") for route in app.routes}
    if "/api/v1/recommendations" not in paths:
        app.include_router(_adm_insights.router, prefix="/api/v1")


def _calls(env: Env, user: str, hour: Any, n: int, *, prompt: str | None = None, model: str = "gpt-4o") -> None:
    env.meter.record_many(
        {"timestamp": hour + timedelta(seconds=i), "provider": "openai", "model": model, "user_id": user,
         "usage": {"input_tokens": 2000, "output_tokens": 100}, "prompt_hash": prompt, "latency_ms": 500}
        for i in range(n)
    )  # fmt: skip


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with open_env(tmp_path) as running:
        assert isinstance(running.client.app, FastAPI)
        _mount(running.client.app)
        for days in range(1, 8):  # a week of ann's and bob's traffic at HOUR, then a spike of ann's
            _calls(running, "ann", HOUR - timedelta(days=days), 30)
            _calls(running, "bob", HOUR - timedelta(days=days), 30)
        _calls(running, "ann", HOUR, 200, prompt="same")
        _calls(running, "bob", HOUR, 30, prompt="bobs")
        yield running


def test_forecast_roles_and_limits(env: Env) -> None:
    env.meter.set_limit(scope="user", scope_id="ann", metric="cost", period="month", amount=Decimal(1000))
    answer = env.call("GET", "/api/v1/usage/forecast", "viewer")
    assert answer.status_code == 200
    body = answer.json()
    assert body["scope"] == {} and body["method"] == "linear" and body["history_days"] == 7
    assert Decimal(body["month_to_date_cost"]) == env.meter.summary(since=T0.replace(day=1, hour=0)).cost
    assert Decimal(body["lower"]) <= Decimal(body["projected_cost"]) <= Decimal(body["upper"])
    assert body["limits"] == []  # no limit applies to "everyone"
    mine = env.call("GET", "/api/v1/usage/forecast", "member").json()  # ann, pinned
    assert mine["scope"] == {"user_id": "ann"}
    assert Decimal(mine["month_to_date_cost"]) == env.meter.summary(user_id="ann").cost
    limits = {item["limit"]["id"]: item for item in mine["limits"]}  # hers, and her tier's (premium)
    assert limits["user:ann|cost|month|UTC"]["runs_out_at"] is None
    assert any(item["limit"]["tier"] == "premium" for item in mine["limits"])
    assert env.call("GET", "/api/v1/projection", "member").json() == mine
    refused = env.call("GET", "/api/v1/usage/forecast", "member", params={"user_id": "bob"})
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"
    assert env.call("GET", "/api/v1/usage/forecast", None).status_code == 401
    team = env.call("GET", "/api/v1/usage/forecast", "admin", params={"team_id": "nobody"}).json()
    assert team["method"] == "none" and team["projected_cost"] == "0"


def test_detect_is_for_admins_and_stores_once(env: Env) -> None:
    for role in ("viewer", "member"):
        assert env.call("POST", "/api/v1/anomalies/detect", role).status_code == 403
    answer = env.call("POST", "/api/v1/anomalies/detect", "admin")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["since"], body["hours"]) == (HOUR.isoformat(), 1)
    spikes = {(a["metric"], a["scope"]) for a in body["detected"]}
    assert ("requests", "user:ann") in spikes and ("requests", "global") in spikes
    assert not any(scope == "user:bob" for _, scope in spikes)
    assert sorted(body["new"]) == sorted(a["id"] for a in body["detected"])
    again = env.call("POST", "/api/v1/anomalies/detect", "admin", json={"since": HOUR.isoformat()}).json()
    assert again["new"] == [] and len(again["detected"]) == len(body["detected"])
    assert env.meter.store.control.audit_entries()[-1].actor.startswith("key:")


@pytest.mark.parametrize(
    ("json", "field"),
    [
        ({"since": "2026-03-10T00:00:00"}, "since"),
        ({"until": "2026-03-10T00:00:00"}, "until"),
        ({"since": "2026-03-01T00:00:00Z"}, "since"),  # more than a week of hours
        ({"since": "not a date"}, "since"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_detect_errors_name_the_field(env: Env, json: dict[str, str], field: str) -> None:
    answer = env.call("POST", "/api/v1/anomalies/detect", "admin", json=json)
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == field


def test_anomalies_members_see_their_own(env: Env) -> None:
    env.call("POST", "/api/v1/anomalies/detect", "admin")
    everything = env.call("GET", "/api/v1/anomalies", "viewer").json()["anomalies"]
    assert {a["scope"] for a in everything} >= {"global", "user:ann", "model:gpt-4o"}
    mine = env.call("GET", "/api/v1/anomalies", "member").json()["anomalies"]
    assert mine and {a["scope"] for a in mine} == {"user:ann"}
    assert env.call("GET", "/api/v1/anomalies", "other").json()["anomalies"] == []
    assert env.call("GET", "/api/v1/anomalies", "member", params={"scope": "global"}).status_code == 403
    costs = env.call("GET", "/api/v1/anomalies", "viewer", params={"metric": "requests", "scope": "global"}).json()
    assert [a["metric"] for a in costs["anomalies"]] == ["requests"]
    later = env.call("GET", "/api/v1/anomalies", "viewer", params={"since": T0.isoformat()}).json()
    assert later["anomalies"] == []
    for params, field in (({"metric": "colour"}, "metric"), ({"since": "2026-03-10T00:00:00"}, "since")):
        answer = env.call("GET", "/api/v1/anomalies", "viewer", params=params)
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field


def test_recommendations_roles_and_floors(env: Env) -> None:
    everyone = env.call("GET", "/api/v1/recommendations", "viewer", params={"min_savings": "0.01"})
    assert everyone.status_code == 200
    body = everyone.json()
    assert body["requests"] == env.meter.summary().requests
    [caching] = [r for r in body["recommendations"] if r["optimization_type"] == "caching"]
    ann, bob = (env.meter.summary(user_id=user, since=HOUR).cost for user in ("ann", "bob"))
    repeats = ann * 199 / 200 + bob * 29 / 30
    assert Decimal(caching["potential_savings"]) == repeats  # every call but the first of each prompt
    mine = env.call("GET", "/api/v1/recommendations", "member", params={"min_savings": "0.01"}).json()
    assert mine["requests"] == env.meter.summary(user_id="ann").requests
    [own] = [r for r in mine["recommendations"] if r["optimization_type"] == "caching"]
    assert own["recommendation_id"].startswith("caching:user:ann:") and own["affected_requests"] == 199
    assert env.call("GET", "/api/v1/recommendations", "viewer").json()["recommendations"] == []  # the 5.0 floor
    assert env.call("GET", "/api/v1/recommendations", "member", params={"user_id": "bob"}).status_code == 403
    for params, field in (
        ({"min_savings": "-1"}, "min_savings"),
        ({"min_confidence": "2"}, "min_confidence"),
        ({"min_savings": "lots"}, "min_savings"),
        ({"since": T0.isoformat(), "until": HOUR.isoformat()}, "since"),
        ({"until": "2026-03-10T00:00:00"}, "until"),
    ):
        answer = env.call("GET", "/api/v1/recommendations", "viewer", params=params)
        assert answer.status_code == 400, params
        assert answer.json()["error"]["field"] == field
