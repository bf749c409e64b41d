"""`spendgate backup` / `restore`: an online backup that restores every event, limit and audit entry."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger_fixtures import create_pg_database, drop_pg_database
from spendgate.cli import app
from spendgate.errors import ConfigurationError, LedgerError
from spendgate.ledger import backup_ledger, open_store, restore_ledger, verify_audit_chain
from spendgate.meter import Meter
from spendgate.settings import Settings

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(source ledger, empty restore target) on one backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'live.db'}", f"sqlite:///{tmp_path / 'restored' / 'copy.db'}"
        return
    made = create_pg_database(), create_pg_database()
    yield made
    for url in made:
        drop_pg_database(url)


def _event(i: int) -> dict[str, Any]:
    return {"event_id": f"ev-{i}", "user_id": f"u{i % 7}", "provider": "openai", "model": "gpt-4o",
            "usage": {"input_tokens": 100 + i, "output_tokens": 20}}  # fmt: skip


def _cli(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def _summary(url: str) -> tuple[int, Decimal, list[str], bool]:
    with Meter(settings=Settings(database_url=url)) as meter:
        s = meter.store.summary()
        limits = sorted(limit.id for limit in meter.limits())
        return s.requests, s.cost, limits, verify_audit_chain(meter.store).ok


def test_an_online_backup_restores_every_event_limit_and_audit_entry(urls: tuple[str, str], tmp_path: Path) -> None:
    live, target = urls
    with Meter(settings=Settings(database_url=live)) as meter:
        meter.record_many(_event(i) for i in range(300))
        meter.set_limit(scope="user", scope_id="u1", metric="cost", period="day", amount=Decimal("1.50"), level="hard")
        meter.set_limit(scope="team", scope_id="ml", metric="requests", period="month", amount=Decimal(1000))
        stop = threading.Event()

        def keep_writing() -> None:  # the service carries on while the backup runs
            i = 1000
            while not stop.is_set():
                meter.record_many([_event(i)])
                i += 1

        writer = threading.Thread(target=keep_writing)
        writer.start()
        try:
            made = json.loads(_cli("backup", str(tmp_path / "b" / "ledger.bak"), "-d", live, "--json").stdout)
        finally:
            stop.set()
            writer.join()
    assert made["events"] >= 300 and made["limits"] == 2 and made["bytes"] > 0
    assert not (tmp_path / "b" / "ledger.bak.partial").exists()
    _cli("backup", str(tmp_path / "b" / "ledger.bak"), "-d", live, code=2)  # never overwritten silently
    restored = json.loads(_cli("restore", str(tmp_path / "b" / "ledger.bak"), "-d", target, "--json").stdout)
    requests, cost, limits, chained = _summary(target)
    assert restored["events"] == requests >= made["events"]  # the snapshot has at least what was counted
    assert limits == ["team:ml|requests|month|UTC", "user:u1|cost|day|UTC"] and chained
    with open_store(target) as store:
        assert store.get("ev-0") is not None and store.get("ev-299") is not None
        assert cost == sum((e.cost for e in store.iter_events() if e.cost is not None), Decimal(0))
    out = _cli("restore", str(tmp_path / "b" / "ledger.bak"), "-d", target, code=2)  # the target has events now
    assert "--force" in out.output
    forced = _cli("restore", str(tmp_path / "b" / "ledger.bak"), "-d", target, "--force")
    assert "restored from" in forced.stdout and f"{restored['events']:,} events" in forced.stdout
    assert _summary(target)[0] == requests  # replaced, not added to


def test_bad_paths_and_missing_tools_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    missing = _cli("restore", str(tmp_path / "nope.bak"), "-d", url, code=2)
    assert "no backup at" in missing.output
    with pytest.raises(Exception, match="there is no ledger at"):
        backup_ledger(f"sqlite:///{tmp_path / 'absent.db'}", tmp_path / "a.bak")
    corrupt = tmp_path / "corrupt.bak"
    corrupt.write_bytes(b"not a database at all" * 100)
    with pytest.raises(Exception, match="file is not a database"):
        restore_ledger(corrupt, url)
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump here
    with pytest.raises(ConfigurationError, match="pg_dump is not on PATH"):
        backup_ledger("postgresql+psycopg://postgres@127.0.0.1:5432/test", tmp_path / "pg.bak")


@pytest.mark.postgres
def test_failing_pg_tools_report_their_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LedgerError, match=r"could not open the ledger at .*spendgate_no_such_db"):
        backup_ledger("postgresql+psycopg://postgres:pw@127.0.0.1:5432/spendgate_no_such_db", tmp_path / "a.bak")
    url = create_pg_database()
    try:
        monkeypatch.setattr(shutil, "which", lambda name: "/bin/false")
        with pytest.raises(LedgerError, match=r"pg_dump failed \(false exit 1\)"):
            backup_ledger(url, tmp_path / "b.bak")
        (tmp_path / "c.bak").write_bytes(b"x")
        with pytest.raises(LedgerError, match=r"pg_restore failed \(false exit 1\)"):
            restore_ledger(tmp_path / "c.bak", url)
    finally:
        drop_pg_database(url)
