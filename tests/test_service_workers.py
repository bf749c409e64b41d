"""Two gateway worker processes share one hard limit through Redis: the limit holds, nothing is lost."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from spendgate.testing import FakeUpstream

MASTER = "workers-master-key-0123456789ab"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_two_workers_hold_one_limit(tmp_path: Path, redis_prefix: str) -> None:
    with FakeUpstream() as fake:
        port = _free_port()
        env = {
            **os.environ,
            "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'workers.db'}",
            "SPENDGATE_COUNTERS_URL": f"redis://127.0.0.1:6379/0?prefix={redis_prefix}",
            "SPENDGATE_MASTER_KEY": MASTER,
            "SPENDGATE_OPENAI_BASE_URL": fake.openai_base_url,
            "OPENAI_API_KEY": "sk-upstream",
        }
        serve = [sys.executable, "-m", "spendgate", "serve", "--port", str(port), "--workers", "2"]
        proc = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER}"}, timeout=20) as admin:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    try:
                        if admin.get("/readyz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.3)
                else:
                    pytest.fail("spendgate serve --workers 2 did not start")
                admin.post("/api/v1/users", json={"user_id": "dana"}).raise_for_status()
                key = admin.post("/api/v1/keys", json={"user_id": "dana", "role": "member"}).json()["key"]
                limit = Decimal("0.0005")  # about 98 calls of ~$0.0000051
                admin.post(
                    "/api/v1/limits", json={"scope": "user", "scope_id": "dana", "amount": str(limit)}
                ).raise_for_status()
                # A limit reaches every worker within policy_refresh_s (1 s); a call the other worker
                # authorized before that is not counted on the new limit's counter until reconciliation.
                time.sleep(1.5)

                def call(_: int) -> int:
                    with httpx.Client(base_url=base, timeout=20) as client:
                        return client.post(
                            "/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}
                        ).status_code

                with ThreadPoolExecutor(max_workers=12) as pool:
                    codes = list(pool.map(call, range(120)))
                assert set(codes) <= {200, 402} and codes.count(200) > 0 and codes.count(402) > 0
                summary = admin.get("/api/v1/usage/summary", params={"user_id": "dana"}).json()
                assert Decimal(summary["cost"]) <= limit  # the limit held across both workers
                assert summary["requests"] == codes.count(200)  # every answered call was recorded once
                status = admin.get("/api/v1/budgets/status", params={"user_id": "dana"}).json()
                row = status[0] if isinstance(status, list) else status["limits"][0]
                assert Decimal(row["spent"]) == Decimal(summary["cost"]) and Decimal(row["reserved"]) == 0
        finally:
            proc.terminate()
            proc.wait(timeout=15)
