"""The service's core: app factory, errors as JSON, API keys and roles, health, `spendgate serve`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from spendgate import Meter, Settings
from spendgate.cli import app as cli
from spendgate.server import IdentityStore, Team, User, create_app
from spendgate.server._deps import Reader, own
from spendgate.testing import FakeClock

MASTER = "master-key-for-tests-0123456789"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'srv.db'}", master_key=MASTER)  # type: ignore[arg-type]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)

    @app.get("/whoami")
    def whoami(principal: Reader, user_id: str | None = None) -> dict[str, str | None]:
        return {"role": principal.role, "user": own(principal, user_id)}

    with TestClient(app) as c:
        yield c


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"ledger": "ok", "counters": "ok"}
    jobs = ready.json()["jobs"]  # the background jobs the service runs, for information
    assert {"retention", "anomalies"} <= set(jobs)
    assert client.get("/docs").status_code == 200
    assert "/readyz" in client.get("/openapi.json").json()["paths"]


def test_errors_are_json_with_the_right_status(client: TestClient) -> None:
    missing = client.get("/whoami")
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    bad = client.get("/whoami", headers={"Authorization": "Bearer sk-sg-nope-nope"})
    assert bad.status_code == 401
    assert client.get("/nowhere").json()["error"]["type"] == "not_found"
    assert client.get("/whoami", headers={"x-api-key": MASTER}).json() == {"role": "admin", "user": None}


def test_keys_roles_expiry_revocation_and_rotation(settings: Settings) -> None:
    clock = FakeClock(T0)
    meter = Meter(settings=settings, clock=clock)
    ids = IdentityStore(meter.store.control, clock)
    ids.put_team(Team(team_id="ml", name="Machine learning"), actor="admin", create=True)
    ids.put_user(User(user_id="ann", email="ann@example.com", tier="premium", team_id="ml"), actor="admin", create=True)
    ids.put_user(User(user_id="gone", is_active=False), actor="admin")
    member, member_token = ids.create_key(role="member", user_id="ann", team_id="ml", name="laptop", actor="admin")
    viewer, viewer_token = ids.create_key(role="viewer", actor="admin", expires_at=T0 + timedelta(days=1))
    _, gone_token = ids.create_key(role="member", user_id="gone", actor="admin")
    assert member_token.startswith(f"sk-sg-{member.key_id}-") and member_token not in repr(member)
    principal = ids.verify(member_token)
    assert principal is not None and (principal.role, principal.user_id, principal.tier) == ("member", "ann", "premium")
    assert ids.verify(member_token[:-1] + ("A" if member_token[-1] != "A" else "B")) is None
    assert ids.verify(gone_token) is None  # an inactive user's keys stop working
    assert "hash" not in member.public() and member.public()["name"] == "laptop"

    app = create_app(settings, meter=meter)

    @app.get("/whoami")
    def whoami(principal: Reader, user_id: str | None = None) -> dict[str, str | None]:
        return {"role": principal.role, "user": own(principal, user_id)}

    with TestClient(app) as c:
        auth = {"Authorization": f"Bearer {member_token}"}
        assert c.get("/whoami", headers=auth).json() == {"role": "member", "user": "ann"}
        other = c.get("/whoami", params={"user_id": "bob"}, headers=auth)
        assert other.status_code == 403 and other.json()["error"]["type"] == "permission_error"
        assert c.get("/whoami", params={"user_id": "bob"}, headers={"x-api-key": viewer_token}).json()["user"] == "bob"
        clock.advance(days=2)
        assert c.get("/whoami", headers={"x-api-key": viewer_token}).status_code == 401  # expired
        rotated = app.state.services.identity.rotate_key(member.key_id, actor="admin")  # the app sees it at once
        assert rotated is not None
        assert c.get("/whoami", headers=auth).status_code == 401  # the old secret is revoked
        assert c.get("/whoami", headers={"x-api-key": rotated[1]}).json()["user"] == "ann"
    assert ids.rotate_key("nope", actor="admin") is None
    assert {k.key_id for k in ids.list_keys()} >= {member.key_id, viewer.key_id}
    assert [u.user_id for u in ids.list_users()] == ["ann", "gone"] and ids.get_team("ml") is not None
    assert ids.delete_user("gone", actor="admin") and ids.delete_team("ml", actor="admin") and ids.list_teams() == []
    assert any(e.target == f"api_key:{member.key_id}" for e in meter.store.control.audit_entries())
    meter.close()


def test_serve_refuses_several_workers_on_memory_counters(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--workers", "2", "-d", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2 and "redis://" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_starts_the_service(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "spendgate", "serve", "--port", str(port), "-d", f"sqlite:///{tmp_path / 's.db'}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("spendgate serve did not start within 30 s")
        assert answer.status_code == 200 and answer.json()["status"] == "ready"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_verified_keys_are_cached_for_a_few_seconds(settings: Settings) -> None:
    meter = Meter(settings=settings)
    here = IdentityStore(meter.store.control, meter.clock)
    elsewhere = IdentityStore(meter.store.control, meter.clock, cache_s=3600)  # another replica
    _, token = here.create_key(role="viewer", actor="admin")
    assert elsewhere.verify(token) is not None
    key_id = token.split("-")[2]
    assert here.revoke_key(key_id, actor="admin") is not None
    assert here.verify(token) is None  # a change made here applies here at once
    assert elsewhere.verify(token) is not None  # another replica trusts its cache until it expires
    elsewhere.forget()
    assert elsewhere.verify(token) is None
    meter.close()
