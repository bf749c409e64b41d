"""`spendgate recommend`, `forecast` and `anomalies detect|list`, in-process (wall clock: the data is near now)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from spendgate import Meter, Settings
from spendgate.cli import _insights

runner = CliRunner()
app = typer.Typer()
_insights.register(app)
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)  # the last complete hour


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A week of 30 calls at HOUR each day, then 200 calls with one prompt at HOUR."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with Meter(settings=Settings(database_url=url)) as meter:
        for days in range(8):
            n = 200 if days == 0 else 30
            meter.record_many(
                {"timestamp": HOUR - timedelta(days=days) + timedelta(seconds=i), "provider": "openai",
                 "model": "gpt-4o", "user_id": "ann", "usage": {"input_tokens": 2000, "output_tokens": 100},
                 "prompt_hash": "same" if days == 0 else None}
                for i in range(n)
            )  # fmt: skip
    return url


def test_recommend(db: str) -> None:
    body: dict[str, Any] = json.loads(run("recommend", "-d", db, "--min-savings", "0.01", "--json"))
    [caching] = [r for r in body["recommendations"] if r["optimization_type"] == "caching"]
    assert Decimal(caching["potential_savings"]) == 199 * Decimal("0.006")  # gpt-4o: 2000 in, 100 out
    assert body["requests"] == 410
    table = run("recommend", "-d", db, "--min-savings", "0.01", "--user", "ann", "--since", "2d")
    assert "Cache responses to repeated prompts" in table and "410 calls" not in table
    floored = run("recommend", "-d", db)  # the 5.0 floor: 2.46 spent in all
    assert "below the floors" in floored and "Cache responses" not in floored
    assert "--min-savings" in run("recommend", "-d", db, "--min-savings", "lots", code=2)
    assert "--since" in run("recommend", "-d", db, "--since", "2026-03-10", "--until", "2026-03-01", code=2)
    assert "min_confidence" in run("recommend", "-d", db, "--min-confidence", "3", code=2)


def test_anomalies_detect_and_list(db: str) -> None:
    window = ("--since", HOUR.isoformat(), "--until", (HOUR + timedelta(hours=1)).isoformat())
    body = json.loads(run("anomalies", "detect", "-d", db, *window, "--json"))
    spikes = {(a["metric"], a["scope"]) for a in body["detected"]}
    assert {("requests", "global"), ("cost", "user:ann"), ("tokens", "model:gpt-4o")} <= spikes
    assert sorted(body["new"]) == sorted(a["id"] for a in body["detected"])
    assert "0 new" in run("anomalies", "detect", "-d", db, *window)
    listed = json.loads(run("anomalies", "list", "-d", db, "--metric", "cost", "--json"))["anomalies"]
    assert {a["scope"] for a in listed} == {scope for metric, scope in spikes if metric == "cost"}
    assert "usage_spike" in run("anomalies", "list", "-d", db, "--scope", "global")
    assert "--metric" in run("anomalies", "list", "-d", db, "--metric", "colour", code=2)
    assert "since" in run("anomalies", "detect", "-d", db, "--since", "30d", code=2)  # more than a week of hours


def test_forecast(db: str) -> None:
    body = json.loads(run("forecast", "-d", db, "--user", "ann", "--json"))
    assert body["scope"] == {"user_id": "ann"} and body["limits"] == []
    assert Decimal(body["projected_cost"]) >= Decimal(body["month_to_date_cost"]) >= 0
    assert "projected_cost" in run("forecast", "-d", db)
