"""Issue 4's contract, name by name: `spendgate serve` configured by SPENDGATE_* variables, the admin and
metering routes, and the official SDKs through the gateway against spendgate's fake upstream."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from spendgate import Settings
from spendgate.testing import FakeUpstream

MASTER = "contract-master-key-0123456789"


def test_base_url_variables_set_the_upstreams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDGATE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("SPENDGATE_ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    settings = Settings()
    assert settings.upstreams["openai"].base_url == "http://127.0.0.1:9/v1"
    assert settings.upstreams["anthropic"].base_url == "http://127.0.0.1:9"
    assert settings.upstreams["anthropic"].wire == "anthropic" and settings.upstreams["openai"].models


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, FakeUpstream]]:
    with FakeUpstream() as fake:
        port = _free_port()
        env = {
            **os.environ,
            "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'svc.db'}",
            "SPENDGATE_COUNTERS_URL": "memory://",
            "SPENDGATE_MASTER_KEY": MASTER,
            "SPENDGATE_OPENAI_BASE_URL": fake.openai_base_url,
            "SPENDGATE_ANTHROPIC_BASE_URL": fake.anthropic_base_url,
            "OPENAI_API_KEY": "sk-upstream-openai",
            "ANTHROPIC_API_KEY": "sk-upstream-anthropic",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "spendgate", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                pytest.fail("spendgate serve did not become ready")
            yield base, fake
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_the_contract_end_to_end(service: tuple[str, FakeUpstream]) -> None:
    base, fake = service
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER}"}, timeout=10) as admin:
        _contract(base, fake, admin)


def _contract(base: str, fake: FakeUpstream, admin: httpx.Client) -> None:
    user = admin.post(
        "/api/v1/users", json={"user_id": "alice", "username": "alice", "email": "a@x.io", "tier": "premium"}
    )
    assert user.status_code == 201, user.text
    made = admin.post("/api/v1/keys", json={"user_id": "alice", "role": "member"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert key.startswith("sk-sg-")
    limit = admin.post("/api/v1/limits", json={"scope": "user", "scope_id": "alice", "metric": "cost", "period": "day",
                                               "amount": "5.00", "level": "hard"})  # fmt: skip
    assert limit.status_code in (200, 201), limit.text

    oai = openai.OpenAI(base_url=f"{base}/v1", api_key=key)
    reply = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=20, stream=True))  # fmt: skip
    assert chunks and all(c.usage is None for c in chunks)  # the usage chunk spendgate asked for stays hidden
    claude = anthropic.Anthropic(base_url=base, api_key=key)
    message = claude.messages.create(
        model="claude-sonnet-4-6", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.usage.input_tokens > 0
    assert fake.requests[0].headers["authorization"] == "Bearer sk-upstream-openai"  # provider keys stay server-side

    summary = admin.get("/api/v1/usage/summary", params={"user_id": "alice"}).json()
    assert summary["requests"] == 3 and summary["input_tokens"] > 0 and summary["output_tokens"] > 0
    assert Decimal(summary["cost"]) > 0

    events = admin.post("/api/v1/events", json={"events": [
        {"event_id": "ext-1", "user_id": "bob-from-billing", "provider": "openai", "model": "gpt-4o",
         "usage": {"input_tokens": 100, "output_tokens": 10}, "latency_ms": 80, "success": True},
    ]})  # fmt: skip
    assert events.status_code == 200, events.text
    assert [(r["event_id"], r["duplicate"]) for r in events.json()["results"]] == [("ext-1", False)]
    again = admin.post("/api/v1/events", json={"events": [{"event_id": "ext-1", "user_id": "bob-from-billing",
                       "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 100}}]})  # fmt: skip
    assert again.json()["results"][0]["duplicate"] is True
    assert admin.get("/api/v1/users/bob-from-billing").status_code == 200  # created on the fly

    csv = admin.get("/api/v1/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.count("\n") == 1 + 4
    as_json = admin.get("/api/v1/export", params={"format": "json"}).json()
    assert {e["event_id"] for e in as_json} >= {"ext-1"} and len(as_json) == 4
    assert httpx.get(f"{base}/api/v1/usage/summary", timeout=5).status_code == 401
