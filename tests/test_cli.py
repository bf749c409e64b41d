"""The `spendgate` command, driven in-process through typer's runner."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendgate.cli import app

runner = CliRunner()


def run(*args: str, input: str | None = None, code: int = 0) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


def test_cost_json_matches_the_contract() -> None:
    out = json.loads(
        run(
            "cost",
            "--provider",
            "openai",
            "--model",
            "gpt-4o",
            "--input-tokens",
            "1000",
            "--output-tokens",
            "100",
            "--json",
        )
    )
    assert Decimal(out["total"]) == Decimal("0.0035")
    assert out["currency"] == "USD" and "genai-prices" in out["price_version"]


def test_cost_table_and_errors() -> None:
    assert "0.0035" in run(
        "cost", "--provider", "openai", "--model", "gpt-4o", "--input-tokens", "1000", "--output-tokens", "100"
    )
    err = run("cost", "--provider", "acme", "--model", "nope", "--input-tokens", "1", code=2)
    assert "no price known" in err
    err = run(
        "cost", "--provider", "openai", "--model", "gpt-4o", "--input-tokens", "1", "--cache-read-tokens", "5", code=2
    )
    assert "cache_read_tokens" in err
    err = run("cost", "--provider", "openai", "--model", "gpt-4o", "--input-tokens", "1", "--currency", "EUR", code=1)
    assert "EUR" in err


def test_tokens(tmp_path: Path) -> None:
    assert (
        json.loads(run("tokens", "--provider", "openai", "--model", "gpt-4o", "--text", "hello world", "--json"))[
            "total"
        ]
        == 2
    )
    chat = tmp_path / "chat.json"
    chat.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    out = json.loads(run("tokens", "--provider", "openai", "--model", "gpt-4o", "--messages", str(chat), "--json"))
    assert out["total"] == 8 and out["exact"] is True
    doc = tmp_path / "doc.txt"
    doc.write_text("hello world")
    assert "total" in run("tokens", "--provider", "anthropic", "--model", "claude-sonnet-4-0", "--file", str(doc))
    assert "exactly one" in run("tokens", "--provider", "openai", "--model", "gpt-4o", code=2)
    chat.write_text("{not json")
    assert "not valid JSON" in run(
        "tokens", "--provider", "openai", "--model", "gpt-4o", "--messages", str(chat), code=2
    )


def test_prices_show_and_search() -> None:
    info = json.loads(run("prices", "show", "openai", "gpt-4o", "--json"))
    assert Decimal(str(info["input_mtok"])) == Decimal("2.5")
    found = json.loads(run("prices", "search", "gpt-4o-mini", "--provider", "openai", "--json"))
    assert found and all("gpt-4o-mini" in row["model_id"] for row in found)
    assert "gpt-4o" in run("prices", "search", "gpt-4o", "--limit", "3")
    assert "no model matches" in run("prices", "search", "zzzz-no-such-model")


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert "up to date" in run("db", "upgrade", "--database-url", url)
    return url


def _lines(*events: dict[str, object]) -> str:
    return "\n".join(json.dumps(e) for e in events) + "\n"


def test_record_report_export_rerate(db: str, tmp_path: Path) -> None:
    events = _lines(
        {
            "event_id": "c1",
            "provider": "openai",
            "model": "gpt-4o",
            "user_id": "ann",
            "timestamp": "2026-02-01T10:00:00+00:00",
            "usage": {"input_tokens": 1000, "output_tokens": 100},
        },
        {
            "event_id": "c2",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "user_id": "bob",
            "timestamp": "2026-02-01T11:00:00+00:00",
            "usage": {"input_tokens": 2000, "output_tokens": 10},
        },
        {
            "event_id": "c3",
            "provider": "acme",
            "model": "mystery",
            "user_id": "bob",
            "timestamp": "2026-02-02T11:00:00+00:00",
            "usage": {"input_tokens": 5},
        },
    )
    assert json.loads(run("record", "-d", db, "--json", input=events)) == {
        "recorded": 3,
        "duplicates": 0,
        "unpriced": 1,
    }
    assert "duplicates 3" in run("record", "-d", db, input=events)

    bad = _lines(
        {"provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 1}},
        {"provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": -4}},
    )
    assert "line 2" in run("record", "-d", db, input=bad, code=2)
    assert "line 1" in run("record", "-d", db, input="[1, 2]\n", code=2)
    assert "not valid JSON" in run("record", "-d", db, input="{oops\n", code=2)

    rep = json.loads(run("report", "-d", db, "--by", "user", "--json"))
    assert rep["total"]["requests"] == 3 and rep["total"]["unpriced_requests"] == 1
    assert {row["user"] for row in rep["rows"]} == {"ann", "bob"}
    assert Decimal(rep["total"]["cost"]) == sum(Decimal(r["cost"]) for r in rep["rows"])
    assert "TOTAL" in run("report", "-d", db, "--by", "model", "--since", "2026-02-01", "--until", "2026-02-02")
    assert "--by" in run("report", "-d", db, "--by", "planet", code=2)
    assert "--since" in run("report", "-d", db, "--since", "yesterday-ish", code=2)

    out = tmp_path / "events.csv"
    assert "wrote 3 events" in run("export", "-d", db, "--format", "csv", "-o", str(out))
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["event_id"] for r in rows] == ["c1", "c2", "c3"] and rows[2]["cost"] == ""
    jl = run("export", "-d", db, "--user", "bob", "--since", "2026-02-01T10:30:00")
    assert [json.loads(x)["event_id"] for x in jl.splitlines()] == ["c2", "c3"]
    assert "--format" in run("export", "-d", db, "--format", "xml", code=2)

    price_file = tmp_path / "prices.toml"
    price_file.write_text(
        '[[overrides]]\nprovider = "acme"\nmodel = "mystery"\neffective_from = 2026-01-01\n'
        'input = "1000"\noutput = "1000"\n'
    )
    dry = json.loads(
        run("rerate", "-d", db, "--since", "2026-01-01", "--price-file", str(price_file), "--dry-run", "--json")
    )
    assert dry["changed"] == 1 and dry["newly_priced"] == 1 and Decimal(dry["delta"]) == Decimal("0.005")
    done = json.loads(run("rerate", "-d", db, "--since", "2026-01-01", "--price-file", str(price_file), "--json"))
    assert done["changed"] == 1
    rep2 = json.loads(run("report", "-d", db, "--json"))
    assert Decimal(rep2["total"]["cost"]) == Decimal(rep["total"]["cost"]) + Decimal("0.005")
    assert rep2["total"]["unpriced_requests"] == 0


def test_price_file_and_database_overrides(db: str) -> None:
    price_file = Path(__file__).parent / "data" / "pricing" / "prices.toml"
    args = ("--provider", "openai", "--model", "gpt-4o", "--input-tokens", "1000000", "--at", "2026-05-01")
    out = json.loads(run("cost", *args, "--price-file", str(price_file), "--json"))
    assert Decimal(out["total"]) == Decimal("2.00") and out["price_version"].startswith("override:")
    # with a database, overrides stored there (none yet) and the catalog apply
    out = json.loads(run("cost", *args, "--database-url", db, "--json"))
    assert Decimal(out["total"]) == Decimal("2.5")
    shown = json.loads(
        run("prices", "show", "openai", "gpt-4o", "--database-url", db, "--price-file", str(price_file), "--json")
    )
    assert shown["source"] == "override"
    assert "recorded 0" in run("record", "-d", db, input="\n")
    rep = json.loads(run("report", "-d", db, "--since", "7d", "--json"))
    assert rep["rows"] == [] and rep["total"]["requests"] == 0
