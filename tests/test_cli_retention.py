"""`spendgate retention show|apply|restore`, in-process (wall clock: the data is placed relative to now)."""

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
from spendgate.analytics import Anomaly, record_anomalies
from spendgate.cli import _retention

runner = CliRunner()
app = typer.Typer()
_retention.register(app)
NOW = datetime.now(UTC)


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["retention", *args])
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


@pytest.fixture
def db(tmp_path: Path) -> str:
    """4 calls 10 days ago, 3 calls 45 days ago, 2 calls today, and an anomaly 400 days ago."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with Meter(settings=Settings(database_url=url)) as meter:
        for days, count in ((45, 3), (10, 4), (0, 2)):
            meter.record_many(
                {"timestamp": NOW - timedelta(days=days, minutes=i + 1), "provider": "openai", "model": "gpt-4o",
                 "usage": {"input_tokens": 1000, "output_tokens": 10}}
                for i in range(count)
            )  # fmt: skip
        old = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(days=400)
        anomaly = Anomaly(id="old-spike", metric="cost", type="cost_anomaly", scope="global", hour=old,
                          value=Decimal(9), baseline=Decimal(1), ratio=9.0, threshold=2.0, severity="warning",
                          method="hour_of_day", samples=7, requests=30, detected_at=old)  # fmt: skip
        record_anomalies(meter.store.control, [anomaly])
    return url


def test_show_and_dry_run_change_nothing(db: str) -> None:
    shown: dict[str, Any] = json.loads(run("show", "-d", db, "--json"))
    assert (shown["raw_days"], shown["aggregate_days"], shown["expired_events"]) == (30, 365, 3)  # production
    assert shown["deleted_raw_before"] is None
    dev = json.loads(run("show", "-d", db, "--environment", "development", "--json"))
    assert (dev["raw_days"], dev["aggregate_days"], dev["expired_events"]) == (7, 30, 7)
    dry = json.loads(run("apply", "-d", db, "--raw-days", "5", "--aggregate-days", "keep", "--dry-run", "--json"))
    assert (dry["events_deleted"], dry["dry_run"], dry["aggregate_cutoff"]) == (7, True, None)
    assert "expired_events" in run("show", "-d", db)
    with Meter(settings=Settings(database_url=db)) as meter:
        assert meter.store.count() == 9


def test_apply_archives_deletes_and_restore_puts_back(db: str, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    body = json.loads(run("apply", "-d", db, "--archive-dir", str(archive), "--json"))
    assert (body["events_deleted"], body["events_archived"], body["hook_pruned"]) == (3, 3, 1)  # the old anomaly
    assert len(body["archive_files"]) == 1
    with Meter(settings=Settings(database_url=db)) as meter:
        assert meter.store.count() == 6
        assert meter.store.control.list_objects("anomaly") == []
    assert "events_deleted" in run("apply", "-d", db, "--archive-dir", str(archive))  # a second run: nothing
    restored = json.loads(run("restore", body["archive_files"][0], "-d", db, "--json"))
    assert restored["files"][0]["restored"] == 3
    with Meter(settings=Settings(database_url=db)) as meter:
        assert meter.store.count() == 9
        assert meter.store.check_rollups() == []
    assert "restored" in run("restore", body["archive_files"][0], "-d", db)


def test_bad_options_exit_2(db: str) -> None:
    assert "'keep'" in run("apply", "-d", db, "--aggregate-days", "forever", code=2)
    assert "unknown environment" in run("apply", "-d", db, "--environment", "staging", code=2)
    assert "rollups must outlive" in run("apply", "-d", db, "--raw-days", "40", "--aggregate-days", "10", code=2)
