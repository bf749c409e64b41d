"""Brute-force protection: an address that fails authentication too often is locked out for a while."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spendgate.server._auth_guard import MAX_TRACKED, AuthGuard
from spendgate.settings import Settings
from test_admin_support import open_env


def test_the_limit_counts_failures_inside_the_window_only() -> None:
    guard = AuthGuard(limit=3, window_s=10, lockout_s=60)
    assert not guard.failed("a", 0) and not guard.failed("a", 5)
    assert not guard.failed("a", 11)  # the first failure left the window: 2 within 10 s
    assert guard.retry_after("a", 11) is None and guard.locked() == 0
    assert guard.failed("a", 12)  # 5, 11, 12: three within 10 s
    assert guard.active and guard.locked() == 1
    assert guard.retry_after("a", 12) == 60 and guard.retry_after("a", 71) == 1
    assert guard.retry_after("b", 12) is None and guard.retry_after(None, 12) is None
    assert guard.retry_after("a", 72) is None  # the lockout ended (and is forgotten)
    assert guard.locked() == 0 and not guard.failed("a", 73)  # counting starts afresh


def test_a_disabled_guard_never_locks_and_memory_stays_bounded() -> None:
    off = AuthGuard(limit=0, window_s=10, lockout_s=60)
    assert not any(off.failed("a", t) for t in range(100)) and not off.active
    assert not AuthGuard(limit=1, window_s=10, lockout_s=0).failed("a", 0)
    assert not AuthGuard(limit=1, window_s=10, lockout_s=60).failed(None, 0)
    guard = AuthGuard(limit=2, window_s=10, lockout_s=60)
    for i in range(MAX_TRACKED + 10):
        guard.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 0)
    assert len(guard._failures) == MAX_TRACKED
    assert not guard.failed("10.0.0.0", 1)  # the oldest were forgotten: this is its first failure again


def test_settings_check_the_guard() -> None:
    with pytest.raises(ValueError, match="auth_failure_window_s"):
        Settings(auth_failure_window_s=0)
    with pytest.raises(ValueError, match="auth_failure_limit"):
        Settings(auth_failure_limit=-1)


def test_the_service_locks_out_an_address_guessing_keys(tmp_path: Path) -> None:
    with open_env(tmp_path, auth_failure_limit=5, auth_failure_window_s=60, auth_lockout_s=120) as env:
        for i in range(5):
            guess = {"Authorization": f"Bearer sk-sg-guess-{i}"}
            assert env.client.get("/api/v1/usage/summary", headers=guess).status_code == 401
        locked = env.call("GET", "/api/v1/usage/summary", "admin")  # even a good key, from that address
        assert locked.status_code == 429 and locked.headers["Retry-After"] == "120"
        assert locked.json()["error"]["type"] == "rate_limit_error"
        gateway = env.client.post("/v1/chat/completions", headers=env.auth("member"), json={"model": "gpt-4o"})
        assert gateway.status_code == 429  # the gateway's routes are guarded the same way
        services = env.client.app.state.services  # type: ignore[attr-defined]
        assert services.auth_failures.pending() == 5  # lockouts are not counted again as failures
        env.clock.advance(timedelta(seconds=119))
        assert env.call("GET", "/api/v1/usage/summary", "admin").headers["Retry-After"] == "1"
        env.clock.advance(timedelta(seconds=1))
        assert env.call("GET", "/api/v1/usage/summary", "admin").status_code == 200
