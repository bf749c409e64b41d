"""Shared fixtures: database URLs for SQLite (a temp file) and PostgreSQL (a fresh database per session).

PostgreSQL is the real server on 127.0.0.1:5432 (see ``ledger_fixtures``). Without it the PostgreSQL
cases skip with the reason, except under CI (CI=true), where a missing service is a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_fixtures import (  # fixtures are registered by being imported here
    ledger_clock,
    ledger_pg_url,
    ledger_sqlite_url,
    ledger_store,
    ledger_url,
    truncate,
)

__all__ = ["ledger_clock", "ledger_pg_url", "ledger_sqlite_url", "ledger_store", "ledger_url"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def pg_url(ledger_pg_url: str) -> str:
    """The session's PostgreSQL database, emptied before the test."""
    truncate(ledger_pg_url)
    return ledger_pg_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def meter_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: the contract suite runs against both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'meter.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
