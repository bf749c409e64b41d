"""Gateway throughput with 1 and 2 worker processes on PostgreSQL + Redis (the shared-state setup). JSON.

Each run serves `spendgate serve --workers N` with the ledger on a fresh PostgreSQL database on
127.0.0.1:5432 and the budget counters on the Redis at 127.0.0.1:6379 (a key prefix of its own), in
front of the fake upstream, and drives it with wrk (16 connections). The direct rate of the fake upstream
is measured in the same run for scale; on a 2-core machine wrk, the upstream and the workers share the
cores, so the ceiling is the machine's, not spendgate's.

    .venv/bin/python bench/scale.py --seconds 8
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from spendgate.testing import FakeUpstream

sys.path.insert(0, str(Path(__file__).parent))
from gateway import MASTER, free_port, gateway_env, running, wait_ready, wrk

_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _serve(fake: FakeUpstream, tmp: Path, workers: int, database: str, prefix: str, seconds: int) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**gateway_env(fake, tmp), "SPENDGATE_DATABASE_URL": database,
           "SPENDGATE_COUNTERS_URL": f"redis://127.0.0.1:6379/0?prefix={prefix}"}  # fmt: skip
    args = [sys.executable, "-m", "spendgate", "serve", "--port", str(port), "--workers", str(workers)]
    with running(args, env) as proc, httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER}"},
                                                  timeout=30) as admin:  # fmt: skip
        wait_ready(proc, f"{base}/readyz", f"spendgate serve --workers {workers}")
        user = f"bench{workers}"
        admin.post("/api/v1/users", json={"user_id": user, "tier": "enterprise"}).raise_for_status()
        key = admin.post("/api/v1/keys", json={"user_id": user, "role": "member"}).json()["key"]
        limit = {"scope": "user", "scope_id": user, "amount": "1000000"}
        admin.post("/api/v1/limits", json=limit).raise_for_status()
        wrk(f"{base}/v1/chat/completions", key, 2, 8)  # warm every worker up
        loaded = wrk(f"{base}/v1/chat/completions", key, seconds, 16)
        time.sleep(1.0)
        recorded = admin.get("/api/v1/usage/summary", params={"user_id": user}).json()["requests"]
    return {**loaded, "events_recorded": recorded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    name = f"spendgate_bench_{secrets.token_hex(4)}"
    prefix = f"sgbench{secrets.token_hex(4)}"
    with psycopg.connect(_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    results: dict[str, Any] = {}
    try:
        with FakeUpstream() as fake, tempfile.TemporaryDirectory() as tmp:
            results["direct"] = wrk(fake.openai_base_url + "/chat/completions", "sk-bench", args.seconds, 16)
            database = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            for workers in (1, 2):
                results[f"workers_{workers}"] = _serve(fake, Path(tmp), workers, database, prefix, args.seconds)
    finally:
        with psycopg.connect(_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        client = redis.Redis(host="127.0.0.1", port=6379)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    one, two = results["workers_1"]["req_per_s"], results["workers_2"]["req_per_s"]
    results["scaling_2_over_1"] = round(two / one, 2) if one else None
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
