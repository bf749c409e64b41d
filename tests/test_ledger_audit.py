"""The audit log: a hash chain that the database keeps append-only, verified by API and command line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from typer.testing import CliRunner

from ledger_fixtures import create_pg_database, drop_pg_database
from spendgate.cli import app
from spendgate.errors import LedgerError
from spendgate.ledger import UsageStore, open_store, verify_audit_chain
from spendgate.ledger._audit import GENESIS, entry_hash
from spendgate.ledger._engine import LedgerEngine, engine_of
from spendgate.ledger._migrate import alembic_config
from spendgate.testing import FakeClock
from test_admin_support import T0, open_env


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own on each backend (the chain counts every entry ever written)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    made = create_pg_database()
    yield made
    drop_pg_database(made)


def _changes(store: UsageStore, n: int, actor: str = "ops") -> None:
    for i in range(n):
        store.control.audit(actor, "limit.update", f"limit:l{i}", {"amount": str(i), "note": "é"})


def _raw(store: UsageStore, sql: str) -> None:
    """What someone with direct database access could run (triggers dropped first where needed)."""
    with engine_of(store).engine.begin() as conn:
        conn.execute(sa.text(sql))


def _drop_triggers(store: UsageStore) -> None:
    if engine_of(store).dialect == "postgresql":
        _raw(store, "DROP TRIGGER audit_log_append_only ON audit_log")
    else:
        _raw(store, "DROP TRIGGER audit_log_no_update")
        _raw(store, "DROP TRIGGER audit_log_no_delete")


def test_every_entry_links_to_the_one_before(url: str) -> None:
    clock = FakeClock(T0)
    with open_store(url, clock=clock) as store:
        assert verify_audit_chain(store).to_dict() == {
            "ok": True, "entries": 0, "head": GENESIS, "bad_id": None, "reason": None,
        }  # fmt: skip
        _changes(store, 3)
        clock.advance(timedelta(microseconds=123_457))
        store.control.put("limit", "l9", {"amount": "1"}, actor="ann")
        entries = store.control.audit_entries()
        result = verify_audit_chain(store)
        assert result.ok and result.entries == 4 == len(entries) and result.head == entries[-1].hash
        prev = GENESIS
        for entry in entries:  # the chain is what the documented formula gives, from the first entry on
            body = json.dumps(entry.body, sort_keys=True, separators=(",", ":"))
            assert entry.hash == entry_hash(prev, entry.at, entry.actor, entry.action, entry.target, body)
            prev = entry.hash


def test_the_database_refuses_to_change_or_remove_entries(url: str) -> None:
    with open_store(url) as store:
        _changes(store, 2)
        for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                _raw(store, sql)
        assert [e.actor for e in store.control.audit_entries()] == ["ops", "ops"]
        assert verify_audit_chain(store).ok


def test_an_edited_entry_is_found(url: str) -> None:
    with open_store(url) as store:
        _changes(store, 5)
        _drop_triggers(store)
        third = store.control.audit_entries()[2]
        _raw(store, f'UPDATE audit_log SET body = \'{{"amount":"999"}}\' WHERE id = {third.id}')
        result = verify_audit_chain(store)
        assert not result.ok and result.bad_id == third.id and result.entries == 3
        assert result.reason is not None and "edited" in result.reason


def test_a_removed_entry_is_found(url: str) -> None:
    with open_store(url) as store:
        _changes(store, 5)
        _drop_triggers(store)
        entries = store.control.audit_entries()
        _raw(store, f"DELETE FROM audit_log WHERE id = {entries[1].id}")
        result = verify_audit_chain(store)
        assert not result.ok and result.bad_id == entries[2].id
        assert result.reason is not None and "removed or reordered" in result.reason


def test_concurrent_writers_chain_in_order(url: str) -> None:
    with open_store(url) as store:
        store.control.audit("setup", "x.create", "x:0", {})  # migrate before the threads start
        errors: list[BaseException] = []

        def write(n: int) -> None:
            try:
                _changes(store, 25, actor=f"w{n}")
            except BaseException as error:  # surfaced below
                errors.append(error)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        result = verify_audit_chain(store)
        assert result.ok and result.entries == 151


def test_entries_written_before_the_chain_are_chained_by_the_migration(url: str) -> None:
    engine = LedgerEngine(url)
    try:
        with engine.transaction("migrate", write=True) as conn:
            command.upgrade(alembic_config(conn), "0005")
        with engine.transaction("write", write=True) as conn:
            for i in range(3):
                conn.execute(
                    sa.text(
                        "INSERT INTO audit_log (at, actor, action, target, body) VALUES (:at, 'old', 'a', :t, '{}')"
                    ),
                    {"at": (T0 + timedelta(seconds=i)).replace(tzinfo=None), "t": f"x:{i}"},
                )
    finally:
        engine.dispose()
    with open_store(url) as store:  # upgrades to the head
        result = verify_audit_chain(store)
        assert result.ok and result.entries == 3
        _changes(store, 1)
        assert verify_audit_chain(store).entries == 4
        assert [e.at for e in store.control.audit_entries()][:3] == [T0 + timedelta(seconds=i) for i in range(3)]


def test_verify_needs_a_sql_store() -> None:
    with pytest.raises(LedgerError, match="the audit chain needs a SQL usage store"):
        verify_audit_chain(object())


def test_admins_verify_the_chain_through_the_api_and_the_command_line(tmp_path: Path) -> None:
    with open_env(tmp_path) as env:
        assert env.call("POST", "/api/v1/users", "admin", json={"user_id": "cy"}).status_code == 201
        answer = env.call("GET", "/api/v1/audit/verify", "admin")
        assert answer.status_code == 200 and answer.json()["ok"] is True and answer.json()["entries"] >= 1
        listed = env.call("GET", "/api/v1/audit", "admin").json()["entries"]
        assert listed[-1]["hash"] == answer.json()["head"]
        assert env.call("GET", "/api/v1/audit/verify", "viewer").status_code == 403
        assert env.call("GET", "/api/v1/audit/verify", None).status_code == 401
        url = env.meter.settings.database_url
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--database-url", url, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["ok"] is True
    with open_store(url) as store:
        _drop_triggers(store)
        _raw(store, "UPDATE audit_log SET actor = 'mallory' WHERE id = 1")
    broken = runner.invoke(app, ["audit", "verify", "--database-url", url])
    assert broken.exit_code == 1
    assert "audit chain broken at entry 1" in broken.output
    plain = runner.invoke(app, ["audit", "verify", "--database-url", f"sqlite:///{tmp_path / 'new.db'}"])
    assert plain.exit_code == 0 and "audit chain intact: 0 entries" in plain.output
