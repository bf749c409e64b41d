"""Fixtures and helpers shared by the ledger tests (``tests/test_ledger_*.py``).

The contract tests run against SQLite (a fresh file per test) and the real PostgreSQL server on
127.0.0.1:5432. For PostgreSQL a fresh database ``spendgate_t_<hex>`` is created once per test
session (other suites run at the same time), migrated once, truncated between tests and dropped at
the end. An unreachable server skips those tests, except under CI (``CI=true``), where it fails.

``tests/conftest.py`` imports the fixtures from here, so every test module can use them; test modules
import the helpers directly. This module holds no assertions, so it opts out of assertion rewriting
(PYTEST_DONT_REWRITE).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from spendgate.ledger import UsageEvent, UsageStore, open_store, upgrade
from spendgate.usage import Usage

PG_HOST = "127.0.0.1"
PG_PORT = 5432
_ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test connect_timeout=5"

#: A fixed, UTC instant the tests build timestamps from.
T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


class FixedClock:
    """A clock that says what it is told."""

    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


_counter = iter(range(10**12))


def make_event(**overrides: Any) -> UsageEvent:
    """A valid priced event with a unique id; keyword arguments override fields."""
    values: dict[str, Any] = {
        "event_id": f"evt-{next(_counter)}",
        "timestamp": T0,
        "provider": "openai",
        "model": "gpt-4o",
        "usage": Usage(input_tokens=100, output_tokens=20),
        "cost": Decimal("0.00045"),
        "user_id": "alice",
        "team_id": "research",
        "api_key_id": "key-1",
        "latency_ms": 250,
    }
    values.update(overrides)
    return UsageEvent(**values)


def _unreachable(error: Exception) -> None:
    message = f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT}: {error}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def create_pg_database() -> str:
    """Create (and return the URL of) a fresh, empty database; skip or fail when unreachable."""
    name = f"spendgate_t_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as error:
        _unreachable(error)
    return f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(url: str) -> None:
    """Drop a database made by :func:`create_pg_database`, disconnecting whoever still uses it."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def truncate(url: str) -> None:
    """Empty every spendgate table of a PostgreSQL test database (the migration history stays)."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'spendgate_alembic_version'"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")


@pytest.fixture(scope="session")
def ledger_pg_url() -> Iterator[str]:
    """A migrated PostgreSQL test database for the whole session (dropped at the end)."""
    url = create_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def ledger_sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file URL."""
    return f"sqlite:///{tmp_path / 'usage.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, ledger_sqlite_url: str) -> str:
    """The URL of an empty ledger on each backend."""
    if request.param == "sqlite":
        return ledger_sqlite_url
    url: str = request.getfixturevalue("ledger_pg_url")
    truncate(url)
    return url


@pytest.fixture
def ledger_clock() -> FixedClock:
    """A fixed clock at :data:`T0`."""
    return FixedClock()


@pytest.fixture
def ledger_store(ledger_url: str, ledger_clock: FixedClock) -> Iterator[UsageStore]:
    """An open, empty store on each backend."""
    with open_store(ledger_url, clock=ledger_clock) as opened:
        yield opened


def raw_execute(url: str, statement: str) -> None:
    """Run SQL behind the store's back (to simulate damage)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()
