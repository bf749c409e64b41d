"""Usage API: summary, time series, breakdown, per-user usage, budget status, projection and streamed export.

Every figure is checked against ``meter.summary()`` / ``meter.report()`` over the same ledger.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.meter import write_events
from spendgate.server._adm_usage import export_chunks
from test_admin_support import T0, Env, open_env

N = 1200  # more than two export chunks
DAY = datetime(2026, 3, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One ledger for the module (read-only tests): N events over the 72 hours before T0."""
    with open_env(tmp_path_factory.mktemp("usage")) as running:
        running.meter.record_many(
            {
                "event_id": f"e{i}",
                "timestamp": T0 - timedelta(hours=i % 72 + 1, minutes=i % 7),
                "provider": "openai",
                "model": "gpt-4o" if i % 2 else "gpt-4o-mini",
                "user_id": "bob" if i % 3 == 0 else "ann",
                "team_id": None if i % 3 == 0 else "ml",
                "request_type": "chat" if i % 4 else "summarize",
                "usage": {"input_tokens": 100 + i, "output_tokens": i % 50},
                "latency_ms": i % 300,
            }
            for i in range(N)
        )
        yield running


def _check(env: Env, answer: dict[str, Any], **filters: Any) -> None:
    summary = env.meter.summary(**filters)
    assert answer["requests"] == summary.requests > 0
    assert (answer["input_tokens"], answer["output_tokens"]) == (summary.input_tokens, summary.output_tokens)
    assert isinstance(answer["cost"], str) and Decimal(answer["cost"]) == summary.cost


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"user_id": "ann"},
        {"team_id": "ml", "model": "gpt-4o"},
        {"provider": "openai", "request_type": "summarize"},
        {"since": "2026-03-08T12:00:00+00:00", "until": "2026-03-09T12:00:00+00:00"},
    ],
)
def test_summary_agrees_with_the_meter(env: Env, params: dict[str, str]) -> None:
    answer = env.call("GET", "/api/v1/usage/summary", "viewer", params=params)
    assert answer.status_code == 200
    filters = {k: datetime.fromisoformat(v) if k in ("since", "until") else v for k, v in params.items()}
    _check(env, answer.json(), **filters)


def test_members_see_only_their_own_usage(env: Env) -> None:
    _check(env, env.call("GET", "/api/v1/usage/summary", "member").json(), user_id="ann")
    groups = env.call("GET", "/api/v1/usage/breakdown", "member", params={"by": "user"}).json()["groups"]
    assert [g["key"] for g in groups] == ["ann"]
    user = env.call("GET", "/api/v1/users/ann/usage", "member").json()
    _check(env, user["summary"], user_id="ann")
    assert {g["key"] for g in user["by_model"]} == {"gpt-4o", "gpt-4o-mini"}
    for group in user["by_model"]:
        _check(env, group, user_id="ann", model=group["key"])


@pytest.mark.parametrize("granularity", ["hour", "day"])
def test_time_series_from_rollups_adds_up(env: Env, granularity: str) -> None:
    params = {"granularity": granularity, "since": "2026-03-07T00:00:00Z", "until": "2026-03-10T12:00:00Z"}
    points = env.call("GET", "/api/v1/usage/timeseries", "viewer", params=params).json()["points"]
    size = timedelta(hours=1) if granularity == "hour" else timedelta(days=1)
    buckets = {datetime.min.replace(tzinfo=UTC) + (e.timestamp - datetime.min.replace(tzinfo=UTC)) // size * size
               for e in env.meter.events()}  # fmt: skip
    assert [p["bucket_start"] for p in points] == [b.isoformat() for b in sorted(buckets)]
    assert len(points) == (73 if granularity == "hour" else 4)
    assert sum(Decimal(p["cost"]) for p in points) == env.meter.summary().cost
    assert sum(p["requests"] for p in points) == N
    first_day = env.meter.summary(since=datetime(2026, 3, 7, tzinfo=UTC), until=datetime(2026, 3, 8, tzinfo=UTC))
    if granularity == "day":
        assert Decimal(points[0]["cost"]) == first_day.cost and points[0]["requests"] == first_day.requests
    anns = env.call("GET", "/api/v1/usage/timeseries", "member", params={"granularity": granularity}).json()["points"]
    assert sum(Decimal(p["cost"]) for p in anns) == env.meter.summary(user_id="ann").cost


def test_breakdown_matches_the_report(env: Env) -> None:
    for by, dimension in (("model", "model"), ("team", "team_id"), ("request_type", "request_type")):
        groups = env.call("GET", "/api/v1/usage/breakdown", "viewer", params={"by": by}).json()["groups"]
        report = env.meter.report(dimension)  # type: ignore[arg-type]
        assert [(g["key"], Decimal(g["cost"]), g["requests"]) for g in groups] == [
            (key, total.cost, total.requests) for key, total in report
        ]


def test_budget_status_and_projection(tmp_path: Path) -> None:
    with open_env(tmp_path) as fresh:
        used = {"input_tokens": 1000, "output_tokens": 100}
        fresh.meter.record_many(
            {
                "provider": "openai",
                "model": "gpt-4o",
                "user_id": "ann",
                "usage": used,
                "timestamp": T0 - timedelta(days=d),
            }
            for d in range(9)
        )
        fresh.meter.set_limit(scope="user", scope_id="ann", period="day", amount="1")
        status = fresh.call("GET", "/api/v1/budgets/status", "member").json()
        day = next(s for s in status["limits"] if s["limit"]["id"] == "user:ann|cost|day|UTC")
        assert Decimal(day["spent"]) == fresh.meter.summary(user_id="ann", since=DAY).cost == Decimal("0.0035")
        assert status["user_id"] == "ann" and any(s["limit"]["tier"] == "premium" for s in status["limits"])

        projection = fresh.call("GET", "/api/v1/usage/projection", "viewer", params={"user_id": "ann"}).json()
        month_to_date = fresh.meter.summary(user_id="ann", since=datetime(2026, 3, 1, tzinfo=UTC)).cost
        assert Decimal(projection["month_to_date_cost"]) == month_to_date == Decimal("0.0315")
        assert (projection["days_elapsed"], projection["days_in_month"]) == ("9.500000", 31)
        expected = (month_to_date * 31 / Decimal("9.5")).quantize(Decimal("1e-12"))
        assert Decimal(projection["projected_cost"]) == expected
        assert Decimal(projection["daily_average"]) == (month_to_date / Decimal("9.5")).quantize(Decimal("1e-12"))
        fresh.clock.set(datetime(2026, 12, 1, tzinfo=UTC))
        december = fresh.call("GET", "/api/v1/usage/projection").json()
        assert (december["month_end"], december["projected_cost"]) == ("2027-01-01T00:00:00+00:00", "0")


def test_export_streams_every_row_with_exact_money(env: Env) -> None:
    events = {e.event_id: e for e in env.meter.events()}
    as_csv = env.call("GET", "/api/v1/usage/export", "viewer", params={"format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(rows) == N and {r["event_id"] for r in rows} == set(events)
    for row in rows:
        assert row["cost"] == format(events[row["event_id"]].cost, "f")
    assert sum(Decimal(r["cost"]) for r in rows) == env.meter.summary().cost

    as_json = json.loads(env.call("GET", "/api/v1/usage/export", params={"format": "json"}).text)
    assert len(as_json) == N and all(isinstance(item["cost"], str) for item in as_json)
    lines = env.call("GET", "/api/v1/usage/export", "member").text.splitlines()
    assert len(lines) == env.meter.summary(user_id="ann").requests
    assert {json.loads(line)["user_id"] for line in lines} == {"ann"}


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
@pytest.mark.parametrize("count", [0, 1, 500, 501])
def test_export_chunks_write_what_write_events_writes(env: Env, fmt: Any, count: int) -> None:
    events = list(env.meter.events())[:count]
    whole = io.StringIO()
    write_events(events, whole, fmt)
    assert "".join(export_chunks(iter(events), fmt)) == whole.getvalue()


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/usage/summary", {"since": "2026-03-01T00:00:00"}, "since"),
        ("/api/v1/usage/summary", {"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "until"),
        ("/api/v1/usage/timeseries", {"request_type": "chat"}, "request_type"),
        ("/api/v1/usage/timeseries", {"granularity": "minute"}, "granularity"),
        ("/api/v1/usage/breakdown", {"by": "planet"}, "by"),
        ("/api/v1/usage/export", {"format": "xml"}, "format"),
        ("/api/v1/users/ann/usage", {"until": "2026-03-01T00:00:00"}, "until"),
    ],
)
def test_bad_queries_name_the_field(env: Env, path: str, params: dict[str, str], field: str) -> None:
    answer = env.call("GET", path, params=params)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == field, answer.text
