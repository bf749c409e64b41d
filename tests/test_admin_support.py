"""Shared set-up for the admin and metering API tests: an app on a temp SQLite ledger, a fake clock and keys.

(No tests here; the ``test_`` name keeps it among this suite's files.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from spendgate import Meter, Settings
from spendgate.server import IdentityStore, Team, User, create_app
from spendgate.testing import FakeClock

__all__ = ["MASTER", "T0", "Env", "env", "open_env"]

MASTER = "master-key-for-tests-0123456789"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@dataclass
class Env:
    """A running app with keys for every role: ``admin``, ``viewer``, ``member`` (ann) and ``other`` (bob)."""

    client: TestClient
    meter: Meter
    clock: FakeClock
    ids: IdentityStore
    tokens: dict[str, str]

    def auth(self, role: str | None) -> dict[str, str]:
        """Headers of a role's key (``None``: no key at all)."""
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def call(self, method: str, path: str, role: str | None = "admin", **kwargs: Any) -> Any:
        return self.client.request(method, path, headers=self.auth(role), **kwargs)


@contextmanager
def open_env(tmp_path: Path, **settings: Any) -> Iterator[Env]:
    config = Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", master_key=SecretStr(MASTER), **settings)
    clock = FakeClock(T0)
    meter = Meter(settings=config, clock=clock)
    ids = IdentityStore(meter.store.control, clock, cache_s=0)  # an observer: always reads the database
    ids.put_team(Team(team_id="ml", name="Machine learning"), actor="setup", create=True)
    ids.put_user(User(user_id="ann", email="ann@example.com", tier="premium", team_id="ml"), actor="setup")
    ids.put_user(User(user_id="bob", username="bob"), actor="setup")
    tokens = {
        "admin": ids.create_key(role="admin", actor="setup", name="ops")[1],
        "viewer": ids.create_key(role="viewer", actor="setup")[1],
        "member": ids.create_key(role="member", user_id="ann", team_id="ml", actor="setup")[1],
        "other": ids.create_key(role="member", user_id="bob", actor="setup")[1],
        "master": MASTER,
    }
    try:
        with TestClient(create_app(config, meter=meter)) as client:
            yield Env(client=client, meter=meter, clock=clock, ids=ids, tokens=tokens)
    finally:
        meter.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with open_env(tmp_path) as running:
        yield running
