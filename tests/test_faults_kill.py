"""SIGKILL the service under load: after a restart every acknowledged call is in the ledger exactly once,
the holds of the calls that were killed lapse, and the budget counters agree with the ledger."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from spendgate.testing import FakeUpstream

MASTER = "faults-master-key-0123456789abcd"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
HOLD_TTL_S = 3
THREADS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _service(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    serve = [sys.executable, "-m", "spendgate", "serve", "--port", str(port)]
    proc = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("spendgate serve did not start")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)


def _load(base: str, key: str, acknowledged: list[str], stop: threading.Event, n: int) -> None:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
        i = 0
        while not stop.is_set():
            tag = f"{n}-{i}"
            i += 1
            try:
                answer = client.post("/v1/chat/completions", json=BODY, headers={"x-spendgate-tags": f"req={tag}"})
            except httpx.HTTPError:
                continue  # the service was killed under this call: not acknowledged
            if answer.status_code == 200:
                acknowledged.append(tag)


@contextmanager
def _loading(base: str, key: str, at_least: int) -> Iterator[list[str]]:
    """``THREADS`` threads calling the gateway with ``key`` until the block ends (then joined); the block
    starts once ``at_least`` calls were acknowledged (or 30 s passed). Yields the acknowledged calls' tags."""
    acknowledged: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_load, args=(base, key, acknowledged, stop, n)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(acknowledged) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        yield acknowledged
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)


@pytest.mark.parametrize("journal", [False, True], ids=["direct", "journal"])
def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path, redis_prefix: str, journal: bool) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with FakeUpstream() as fake:
        env = {
            **os.environ,
            "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
            "SPENDGATE_COUNTERS_URL": f"redis://127.0.0.1:6379/0?prefix={redis_prefix}",
            "SPENDGATE_MASTER_KEY": MASTER,
            "SPENDGATE_OPENAI_BASE_URL": fake.openai_base_url,
            "SPENDGATE_HOLD_TTL_S": str(HOLD_TTL_S),
            "OPENAI_API_KEY": "sk-upstream",
        }
        if journal:
            env["SPENDGATE_JOURNAL_DIR"] = str(tmp_path / "journal")
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER}"}, timeout=20)
        with _service(env, port) as proc:
            admin.post("/api/v1/users", json={"user_id": "dana"}).raise_for_status()
            key = admin.post("/api/v1/keys", json={"user_id": "dana", "role": "member"}).json()["key"]
            limit = {"scope": "user", "scope_id": "dana", "metric": "cost", "period": "day", "amount": "100"}
            admin.post("/api/v1/limits", json=limit).raise_for_status()
            with _loading(base, key, 150) as acknowledged:
                proc.send_signal(signal.SIGKILL)  # mid-load: calls in flight die with it
                proc.wait(timeout=10)
        assert len(acknowledged) >= 150
        with _service(env, port):
            exported = admin.get("/api/v1/export", params={"format": "json", "user_id": "dana"}).json()
            tags = [event["tags"].get("req") for event in exported]
            assert len(tags) == len(set(tags))  # nothing recorded twice
            assert set(acknowledged) <= set(tags)  # every acknowledged call is in the ledger
            assert len(tags) <= len(acknowledged) + THREADS  # at most the calls in flight besides
            ledger_cost = sum((Decimal(event["cost"]) for event in exported), Decimal(0))
            time.sleep(HOLD_TTL_S + 0.5)  # the holds of the killed calls lapse
            status = _limit_status(admin)
            assert Decimal(status["reserved"]) == 0
            assert Decimal(status["spent"]) == ledger_cost  # the counters agree with the ledger to the cent
        admin.close()


def _limit_status(admin: httpx.Client) -> dict[str, Any]:
    answer = admin.get("/api/v1/budgets/status", params={"user_id": "dana"})
    answer.raise_for_status()
    [status] = [s for s in answer.json()["limits"] if s["limit"]["id"] == "user:dana|cost|day|UTC"]
    return dict(status)
