"""`spendgate limits`, `budget` and `stop`, in-process."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from spendgate import Meter, Usage
from spendgate.cli import app

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


def test_limits_status_reconcile_and_stops(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'b.db'}"
    made = json.loads(run("limits", "set", "user", "ann", "--amount", "2.50", "--period", "month", "-d", db, "--json"))
    assert made["id"] == "user:ann|cost|month|UTC" and made["amount"] == "2.50"
    assert "limit user:ann|cost|day|UTC" in run("limits", "set", "user", "ann", "--amount", "1", "-d", db)
    assert "--amount" in run("limits", "set", "team", "t", "-d", db, code=2)
    assert "must be one of" in run(
        "limits", "set", "user", "ann", "--amount", "1", "--metric", "dollars", "-d", db, code=2
    )
    listed = json.loads(run("limits", "list", "-d", db, "--json"))
    assert [row["id"] for row in listed] == ["user:ann|cost|month|UTC", "user:ann|cost|day|UTC"]
    assert "user:ann" in run("limits", "list", "-d", db)

    with Meter(database_url=db) as meter:
        d = meter.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=1000, max_tokens=100)
        spent = meter.settle(d, Usage(input_tokens=1000, output_tokens=100)).cost
    assert spent is not None
    status = json.loads(run("budget", "status", "--user", "ann", "-d", db, "--json"))
    assert {Decimal(s["spent"]) for s in status} == {spent.total}
    assert "remaining" in run("budget", "status", "--user", "ann", "-d", db)
    assert json.loads(run("budget", "reconcile", "-d", db, "--json")) == []
    assert "agree" in run("budget", "reconcile", "-d", db)

    assert "stopped user:ann until" in run(
        "stop", "set", "user", "ann", "--reason", "abuse", "--minutes", "5", "-d", db
    )
    with Meter(database_url=db) as meter:
        refused = meter.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=1)
        assert refused.action.value == "emergency_stop"
    assert "cleared" in run("stop", "clear", "user", "ann", "-d", db)
    run("stop", "clear", "user", "ann", "-d", db, code=1)
    assert "removed" in run("limits", "rm", "user:ann|cost|day|UTC", "-d", db)
    run("limits", "rm", "user:ann|cost|day|UTC", "-d", db, code=1)
