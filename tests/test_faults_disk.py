"""A SQLite ledger that cannot take another page (SQLite's "database or disk is full", as on a full disk):
gateway calls are refused with a clear error instead of served unmetered, nothing is corrupted, and
everything acknowledged is in the ledger once there is room again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from spendgate.ledger._engine import engine_of
from spendgate.server._errors import ApiError
from spendgate.server._ledger_guard import LedgerGuard
from spendgate.testing import FakeUpstream
from test_gateway_support import KEY_ENV, UPSTREAM_KEY, Gateway, fake

__all__ = ["fake"]

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello " * 40}], "max_tokens": 5}
HOLD_S = 0.6


@contextmanager
def full_disk(gateway: Gateway) -> Iterator[None]:
    """Every new connection of the ledger may not grow the file (``max_page_count`` = its size now)."""
    engine = engine_of(gateway.meter.store).engine

    def cap(dbapi: Any, _: Any) -> None:
        cursor = dbapi.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages}")
        cursor.close()

    sa.event.listen(engine, "connect", cap)
    engine.dispose()
    try:
        yield
    finally:
        sa.event.remove(engine, "connect", cap)
        engine.dispose()


def _call(gateway: Gateway, n: int) -> Any:
    body = {**BODY, "messages": [{"role": "user", "content": f"{'hello ' * 40}{n}"}]}
    return gateway.http().post("/v1/chat/completions", json=body)


def _integrity(gateway: Gateway) -> str:
    with engine_of(gateway.meter.store).engine.connect() as conn:
        return str(conn.execute(sa.text("PRAGMA integrity_check")).scalar_one())


def test_direct_settles_refuse_calls_while_the_ledger_is_full(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    gateway = Gateway(tmp_path, fake, mode="threads", ledger_failure_hold_s=HOLD_S).start()
    try:
        assert _call(gateway, 0).status_code == 200
        with full_disk(gateway):
            answers = [_call(gateway, n) for n in range(1, 40)]
            failed = next(a for a in answers if a.status_code != 200)  # the page ran out at some call
            assert failed.status_code == 503 and failed.json()["error"]["type"] == "ledger_unavailable"
            assert "disk is full" in failed.json()["error"]["message"]
            upstream_calls = len(fake.requests)
            refused = _call(gateway, 100)  # within the hold: refused before it reaches the provider
            assert refused.status_code == 503 and "refused rather than served unmetered" in refused.text
            assert int(refused.headers["Retry-After"]) >= 1 and len(fake.requests) == upstream_calls
        time.sleep(HOLD_S + 0.1)  # room again, the hold is over: calls are served and metered
        assert _call(gateway, 200).status_code == 200
        served = sum(a.status_code == 200 for a in answers) + 2
        assert gateway.meter.store.count() == served  # every answered call is metered, none twice
        assert _integrity(gateway) == "ok"
    finally:
        gateway.stop()


def test_journaled_settles_are_kept_until_the_ledger_has_room(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    gateway = Gateway(tmp_path, fake, mode="inline", ledger_failure_hold_s=HOLD_S, journal_writer="thread").start()
    try:
        with full_disk(gateway):
            answers = [_call(gateway, n) for n in range(30)]
            assert all(a.status_code == 200 for a in answers)  # acknowledged on the journal's append
            with pytest.raises(Exception, match="disk is full"):
                gateway.meter.flush()  # the journal cannot drain into a full ledger: it keeps everything
        gateway.meter.flush()
        assert gateway.meter.store.count() == 30 and _integrity(gateway) == "ok"
    finally:
        gateway.stop()


def test_the_guard_can_be_turned_off_and_lapses() -> None:
    off = LedgerGuard(0)
    off.tripped("disk full")
    off.check()  # never refuses
    assert off.trips == 0
    guard = LedgerGuard(0.05)
    guard.tripped("disk full")
    with pytest.raises(ApiError) as refused:
        guard.check()
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "1"}
    time.sleep(0.06)
    guard.check()  # the hold is over
    assert guard.trips == 1
