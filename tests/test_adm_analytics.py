"""Analytics API routes: answers agree with the meter's raw summaries, members see only themselves, 400s name the field.

``server/_admin.py`` mounts the router; until it does, the fixture mounts it on the test app itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from spendgate.analytics import refresh
from spendgate.server import _adm_analytics
from test_admin_support import T0, Env, open_env

A = "/api/v1/analytics"
N = 400
SINCE, UNTIL = (T0 - timedelta(hours=50, minutes=13)).isoformat(), (T0 - timedelta(minutes=7)).isoformat()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with open_env(tmp_path_factory.mktemp("analytics")) as running:
        app: Any = running.client.app
        if not any(getattr(route, "path", "") == f"{A}/summary" for route in app.routes):
            app.include_router(_adm_analytics.router, prefix="/api/v1")
        events = [
            {
                "event_id": f"a{i}",
                "timestamp": T0 - timedelta(hours=i % 60 + 1, minutes=i % 11),
                "provider": "openai",
                "model": "gpt-4o" if i % 2 else "gpt-4o-mini",
                "user_id": "bob" if i % 3 == 0 else "ann",
                "team_id": None if i % 3 == 0 else "ml",
                "session_id": f"s{i % 5}",
                "tags": {"env": "prod" if i % 4 else "dev"},
                "usage": {"input_tokens": 100 + i, "output_tokens": i % 50},
                "latency_ms": 50 + i,
            }
            for i in range(N)
        ]
        running.meter.record_many(events[: N // 2])
        refresh(running.meter.store)
        running.meter.record_many(events[N // 2 :])  # half in the cubes, half still queued
        yield running


def _get(env: Env, route: str, role: str = "viewer", **params: Any) -> Any:
    query = {k: v for k, v in {"since": SINCE, "until": UNTIL, **params}.items() if v is not None}
    return env.call("GET", f"{A}/{route}", role, params=query)


def _meter(env: Env, **filters: Any) -> Any:
    from datetime import datetime

    return env.meter.summary(since=datetime.fromisoformat(SINCE), until=datetime.fromisoformat(UNTIL), **filters)


@pytest.mark.parametrize("params", [{}, {"team_id": "ml"}, {"model": "gpt-4o", "user_id": "ann"}, {"tag": "env=dev"}])
def test_summary_agrees_with_the_meter(env: Env, params: dict[str, str]) -> None:
    answer = _get(env, "summary", **params)
    assert answer.status_code == 200
    body = answer.json()
    tag = params.pop("tag", None)
    if tag is None:
        want = _meter(env, **params)
        assert body["totals"]["requests"] == want.requests > 0
        assert Decimal(body["totals"]["cost"]) == want.cost
        assert body["totals"]["input_tokens"] == want.input_tokens
    else:
        assert 0 < body["totals"]["requests"] < _meter(env).requests
    assert body["latency"]["p50"] is not None and body["source"]
    assert body["queued"] == N // 2


def test_every_route_answers(env: Env) -> None:
    breakdown = _get(env, "breakdown", by="user").json()
    assert {row["key"] for row in breakdown["rows"]} == {"ann", "bob"}
    assert sum(row["totals"]["requests"] for row in breakdown["rows"]) == _meter(env).requests
    assert Decimal(breakdown["rows"][0]["totals"]["cost"]) == _meter(env, user_id="ann").cost
    top = _get(env, "top-users", n=1).json()
    assert [row["key"] for row in top["rows"]] == ["ann"]
    models = _get(env, "top-models").json()
    assert [row["key"] for row in models["rows"]] == ["gpt-4o", "gpt-4o-mini"]
    series = _get(env, "timeseries", granularity="hour", metric="latency").json()
    assert sum(p["stats"]["count"] for p in series["points"]) == _meter(env).requests
    assert {"count", "sum", "avg", "min", "max", "stddev", "p50", "p95", "p99"} <= set(series["points"][0]["stats"])
    heat = _get(env, "heatmap").json()
    assert sum(map(sum, heat["requests"])) == _meter(env).requests
    assert sum(Decimal(c) for row in heat["cost"] for c in row) == _meter(env).cost
    efficiency = _get(env, "efficiency").json()
    assert {row["model"] for row in efficiency["rows"]} == {"gpt-4o", "gpt-4o-mini"}
    assert all(Decimal(row["cost_per_1k_tokens"]) > 0 for row in efficiency["rows"])


def test_answers_do_not_change_when_the_worker_catches_up(env: Env) -> None:
    before = _get(env, "summary").json()
    while refresh(env.meter.store):
        pass
    after = _get(env, "summary").json()
    assert after["queued"] == 0
    assert {**after, "queued": None} == {**before, "queued": None}


def test_the_default_period_is_the_last_seven_days(env: Env) -> None:
    body = env.call("GET", f"{A}/summary", "viewer").json()
    assert body["until"] == T0.isoformat()
    assert body["since"] == (T0 - timedelta(days=7)).isoformat()
    assert body["totals"]["requests"] == N


def test_members_see_only_their_own_usage(env: Env) -> None:
    body = _get(env, "summary", role="member").json()
    assert body["totals"]["requests"] == _meter(env, user_id="ann").requests
    rows = _get(env, "breakdown", role="member", by="user").json()["rows"]
    assert [row["key"] for row in rows] == ["ann"]
    denied = _get(env, "summary", role="member", user_id="bob")
    assert denied.status_code == 403


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("timeseries", {"granularity": "year"}, "granularity"),
        ("timeseries", {"metric": "joy"}, "metric"),
        ("breakdown", {"by": "colour"}, "by"),
        ("breakdown", {"top": "0"}, "top"),
        ("top-users", {"n": "0"}, "n"),
        ("summary", {"since": "2026-03-01T00:00:00"}, "since"),
        ("summary", {"since": UNTIL, "until": SINCE}, "until"),
        ("summary", {"tag": "novalue"}, "tag"),
        ("summary", {"currency": "DOLLARS"}, "currency"),
        ("heatmap", {"since": "yesterday"}, "since"),
        ("efficiency", {"since": "0001-01-01T00:00:00Z"}, "since"),
        ("summary", {"since": None, "until": "0001-01-02T00:00:00Z"}, "until"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(env: Env, route: str, params: dict[str, str], field: str) -> None:
    answer = _get(env, route, **params)
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == field


def test_no_key_is_a_401(env: Env) -> None:
    assert env.call("GET", f"{A}/summary", None).status_code == 401
