"""Schema migrations, backend URLs and connection settings."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledger_fixtures import create_pg_database, drop_pg_database, make_event
from spendgate.errors import ConfigurationError, LedgerError
from spendgate.ledger import open_store, upgrade
from spendgate.ledger._engine import LedgerEngine, parse_url
from spendgate.ledger._migrate import VERSION_TABLE, alembic_config, head_revision
from spendgate.ledger._schema import metadata

LEDGER_TABLES = {
    "usage_events",
    "usage_rollups",
    "cost_adjustments",
    "price_overrides",
    "control_objects",
    "threshold_crossings",
    "request_queue",
    "audit_log",
    "analytics_queue",
    "analytics_series",
    "analytics_main",
    "analytics_entities",
    "analytics_entity_models",
    "alert_rules",
    "alerts",
    "alert_deliveries",
    "auth_failures",
    "pii_keys",
    VERSION_TABLE,
}


def inspect(url: str) -> tuple[set[str], str | None]:
    """(table names, schema revision) of the database at ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            revision = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
            return tables, revision
    finally:
        engine.dispose()


def schema_diff(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """An empty, never migrated database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = create_pg_database()
    yield url
    drop_pg_database(url)


backends = pytest.mark.parametrize(
    "fresh_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@backends
def test_upgrade_creates_the_schema_and_is_idempotent(fresh_url: str) -> None:
    assert inspect(fresh_url) == (set(), None)
    upgrade(fresh_url)
    tables, revision = inspect(fresh_url)
    assert tables == LEDGER_TABLES
    assert revision == head_revision() == "0007"
    assert schema_diff(fresh_url) == []  # the migrations build exactly what the metadata describes
    with open_store(fresh_url, create=False) as store:
        store.record(make_event(event_id="kept"))
    upgrade(fresh_url)  # a no-op: data and revision untouched
    assert inspect(fresh_url) == (LEDGER_TABLES, "0007")
    with open_store(fresh_url) as store:
        assert store.get("kept") is not None


@backends
def test_concurrent_first_migrations_are_safe(fresh_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def migrate() -> None:
        try:
            start.wait()
            with open_store(fresh_url) as store:
                store.record(make_event(event_id="same"))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert inspect(fresh_url) == (LEDGER_TABLES, "0007")
    with open_store(fresh_url) as store:
        assert store.count() == 1


@backends
def test_open_without_create_refuses_an_unmigrated_database(fresh_url: str) -> None:
    with pytest.raises(LedgerError, match="spendgate db upgrade"):
        open_store(fresh_url, create=False)
    assert inspect(fresh_url)[1] is None


def test_alembic_command_line_use_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"spendgate\.ledger\.upgrade"):
        command.upgrade(alembic_config(), "head")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql+pymysql://root@localhost/db", "'mysql+pymysql'"),
        ("redis://localhost:6379/0", "'redis'"),
        ("postgresql+asyncpg://u@h/db", "'postgresql+asyncpg'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("not a url", "invalid ledger URL"),
    ],
)
def test_unsupported_urls_are_configuration_errors(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match="URL") as info:
        open_store(url)
    assert fragment in str(info.value)


def test_url_schemes_are_normalised() -> None:
    assert parse_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("sqlite:///x.db").drivername == "sqlite+pysqlite"


def test_bad_options_are_configuration_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigurationError, match="durability"):
        open_store(url, durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        open_store(url, busy_timeout=0)
    with pytest.raises(ConfigurationError, match="max_batch"):
        open_store(url, max_batch=0)


def test_unreachable_databases_are_ledger_errors(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="could not read the schema version of sqlite") as info:
        open_store(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'usage.db'}")
    assert "unable to open database file" in str(info.value)
    assert info.value.__cause__ is not None
    with pytest.raises(LedgerError, match=r"postgresql\+psycopg://postgres:\*\*\*@127.0.0.1:1/nothing"):
        open_store("postgresql+psycopg://postgres:secret@127.0.0.1:1/nothing", busy_timeout=2)


@pytest.mark.parametrize(("durability", "synchronous"), [("process", 1), ("power", 2)])
def test_sqlite_connection_settings(tmp_path: Path, durability: str, synchronous: int) -> None:
    engine = LedgerEngine(f"sqlite:///{tmp_path / 's.db'}", durability=durability, busy_timeout=7)  # type: ignore[arg-type]
    try:
        with engine.transaction("inspect") as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == synchronous
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_always_commits_synchronously(ledger_pg_url: str) -> None:
    engine = LedgerEngine(ledger_pg_url, durability="process")
    try:
        with engine.transaction("inspect") as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    finally:
        engine.dispose()


class _DriverError(Exception):
    """Stands in for a driver exception carrying a SQLSTATE."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def test_write_retries_deadlocks_and_serialization_failures(tmp_path: Path) -> None:
    engine = LedgerEngine(f"sqlite:///{tmp_path / 'r.db'}")
    calls: list[int] = []

    def flaky(conn: sa.Connection) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise sa.exc.OperationalError("UPDATE t", {}, _DriverError("deadlock detected", "40P01"))
        if len(calls) == 2:
            raise sa.exc.OperationalError("UPDATE t", {}, _DriverError("could not serialize", "40001"))
        return "done"

    def always_deadlocked(conn: sa.Connection) -> str:
        calls.append(1)
        raise sa.exc.OperationalError("UPDATE t", {}, _DriverError("deadlock detected", "40P01"))

    def disk_full(conn: sa.Connection) -> str:
        calls.append(1)
        raise sa.exc.OperationalError("UPDATE t", {}, _DriverError("disk full", None))

    try:
        assert engine.write("update", flaky) == "done"
        assert len(calls) == 3
        calls.clear()
        with pytest.raises(LedgerError, match="deadlock detected"):
            engine.write("update", always_deadlocked, attempts=4)
        assert len(calls) == 4
        calls.clear()
        with pytest.raises(LedgerError, match=r"could not update sqlite\+pysqlite:///.*: disk full"):
            engine.write("update", disk_full)
        assert len(calls) == 1
    finally:
        engine.dispose()
