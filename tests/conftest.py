"""Shared fixtures: database URLs for SQLite (a temp file) and PostgreSQL (a fresh database per session).

PostgreSQL is the real server on 127.0.0.1:5432 (see ``ledger_fixtures``), Redis the one on 127.0.0.1:6379.
Without them their cases skip with the reason, except under CI (CI=true), where a missing service is a
failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the real Redis (db 0); every key under it is deleted afterwards."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        message = f"Redis not reachable on 127.0.0.1:6379: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: a missing service is a failure)")
        pytest.skip(message)
    prefix = f"sgtest-{uuid.uuid4().hex[:10]}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
