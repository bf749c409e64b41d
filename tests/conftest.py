"""Shared fixtures: database URLs for SQLite (a temp file) and PostgreSQL (a fresh database per session).

PostgreSQL is the real server on 127.0.0.1:5432. Without it the PostgreSQL cases skip with the reason,
except under CI (CI=true), where a missing service is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_SERVER = os.environ.get("SPENDGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def service_missing(message: str) -> None:
    """Skip (locally) or fail (under CI) for a service that is not reachable."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing service is a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session, dropped at the end."""
    import sqlalchemy as sa

    name = f"spendgate_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        service_missing(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc.orig}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_pg(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    sa.text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                    )
                )
            ]
            if tables:
                conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables)))
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database, emptied before the test."""
    _truncate_pg(pg_database)
    return pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def meter_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: the contract suite runs against both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meter.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
