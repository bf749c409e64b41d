"""Requests per second and latency through the gateway vs straight to the fake upstream, same run. JSON.

    .venv/bin/python bench/gateway.py [--seconds 10] [--connections 32]

Both sides serve the same non-streamed chat completion. The gateway runs `spendgate serve` (one uvicorn
worker, SQLite ledger, memory counters) with a daily budget on the calling user, so every request is
authorized, forwarded, settled and recorded. Load comes from `wrk` (Debian package `wrk`) in its own
process; without it the script says so and stops. Latency figures are wrk's: at the given number of
connections (throughput) and with one connection (the latency the gateway adds to a call).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from spendgate.testing import FakeUpstream

MASTER = "bench-master-key-0123456789abcdef"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wrk(url: str, key: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        )
    out = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        assert m is not None, out
        value, unit = float(m.group(1)), m.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 3)

    return {
        "req_per_s": round(rps),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def start_gateway(fake: FakeUpstream, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "SPENDGATE_MASTER_KEY": MASTER,
        "SPENDGATE_OPENAI_BASE_URL": fake.openai_base_url,
        "OPENAI_API_KEY": "sk-bench",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "spendgate", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the gateway did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/gateway.py needs wrk: apt-get install wrk")
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream() as fake:
        direct_url = f"{fake.openai_base_url}/chat/completions"
        result["direct"] = wrk(direct_url, "sk-bench", args.seconds, args.connections)
        result["direct_1_connection"] = wrk(direct_url, "sk-bench", max(3, args.seconds // 2), 1)
        proc, base = start_gateway(fake, Path(tmp))
        stack = contextlib.ExitStack()
        try:
            admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER}"}, timeout=10)
            stack.callback(admin.close)
            admin.post("/api/v1/users", json={"user_id": "bench", "tier": "enterprise"}).raise_for_status()
            key = admin.post("/api/v1/keys", json={"user_id": "bench", "role": "member"}).json()["key"]
            admin.post(
                "/api/v1/limits", json={"scope": "user", "scope_id": "bench", "amount": "1000000"}
            ).raise_for_status()
            result["gateway"] = wrk(f"{base}/v1/chat/completions", key, args.seconds, args.connections)
            result["gateway_1_connection"] = wrk(f"{base}/v1/chat/completions", key, max(3, args.seconds // 2), 1)
            summary = admin.get("/api/v1/usage/summary", params={"user_id": "bench"}).json()
            result["gateway"]["events_recorded"] = summary["requests"]
        finally:
            stack.close()
            proc.terminate()
            proc.wait(timeout=10)
    direct, gw = result["direct"], result["gateway"]
    result["gateway_share_of_direct"] = round(gw["req_per_s"] / direct["req_per_s"], 3) if direct["req_per_s"] else None
    one_gw, one_direct = result["gateway_1_connection"], result["direct_1_connection"]
    result["added_p50_ms_unloaded"] = round(one_gw["p50_ms"] - one_direct["p50_ms"], 3)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
