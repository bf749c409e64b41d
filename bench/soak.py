"""A soak: a fixed rate of calls through the gateway (budgets, journal and ledger on) for ``--minutes``.

Runs ``spendgate serve`` (one worker, SQLite ledger, write-ahead journal) in front of the fake upstream,
sends ``--rate`` calls per second from a pool of threads on a fixed schedule, and every ``--window``
seconds samples the gateway's memory (RSS) and the window's latency percentiles. At the end the ledger's
totals are compared with what was sent. Prints JSON; ``flat`` says whether memory and p50 latency stayed
within 20 % (memory: of the first window after warm-up) over the run.

    .venv/bin/python bench/soak.py --minutes 10 --rate 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from spendgate.testing import FakeUpstream

sys.path.insert(0, str(Path(__file__).parent))
from gateway import free_port, running, wait_ready

MASTER = "soak-master-key-0123456789abcdef"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _pct(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100)[int(q) - 1], 2) if len(values) >= 2 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=100, help="calls per second")
    parser.add_argument("--window", type=float, default=30, help="seconds per sample")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream() as fake:
        env = {**os.environ, "SPENDGATE_DATABASE_URL": f"sqlite:///{tmp}/soak.db", "SPENDGATE_JOURNAL_DIR": f"{tmp}/j",
               "SPENDGATE_MASTER_KEY": MASTER, "SPENDGATE_OPENAI_BASE_URL": fake.openai_base_url,
               "OPENAI_API_KEY": "sk-upstream"}  # fmt: skip
        serve = [sys.executable, "-m", "spendgate", "serve", "--port", str(port)]
        with running(serve, env) as proc, httpx.Client(base_url=base, headers={"Authorization": f"Bearer {MASTER}"},
                                                       timeout=30) as admin:  # fmt: skip
            wait_ready(proc, f"{base}/readyz", "the gateway")
            admin.post("/api/v1/users", json={"user_id": "soak"}).raise_for_status()
            key = admin.post("/api/v1/keys", json={"user_id": "soak", "role": "member"}).json()["key"]
            admin.post(
                "/api/v1/limits", json={"scope": "user", "scope_id": "soak", "amount": "1000"}
            ).raise_for_status()
            result = _run(base, key, proc.pid, args)
            time.sleep(3)  # the journal's writer drains its last batch
            summary = admin.get("/api/v1/usage/summary", params={"user_id": "soak"}).json()
    windows = result["windows"]
    steady = windows[1:] if len(windows) > 2 else windows
    rss_growth = (steady[-1]["rss_mb"] - steady[0]["rss_mb"]) / steady[0]["rss_mb"]
    p50s = [w["p50_ms"] for w in steady]
    p50_drift = (max(p50s) - min(p50s)) / min(p50s)
    print(json.dumps({
        "minutes": args.minutes, "rate": args.rate, "sent": result["sent"], "ok": result["ok"],
        "errors": result["errors"], "ledger_requests": summary["requests"],
        "ledger_equals_acknowledged": summary["requests"] == result["ok"],
        "rss_growth": round(rss_growth, 3), "p50_drift": round(p50_drift, 3),
        "flat": abs(rss_growth) <= 0.2 and p50_drift <= 0.2, "windows": windows,
    }, indent=2))  # fmt: skip


def _run(base: str, key: str, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"sent": 0, "ok": 0, "errors": 0}
    local = threading.local()

    def call() -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        started = time.perf_counter()
        try:
            ok = client.post("/v1/chat/completions", json=BODY).status_code == 200
        except httpx.HTTPError:
            ok = False
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            counts["ok" if ok else "errors"] += 1
            if ok:
                latencies.append(elapsed)

    windows: list[dict[str, Any]] = []
    start = time.monotonic()
    end = start + args.minutes * 60
    next_window = start + args.window
    interval = 1 / args.rate
    with ThreadPoolExecutor(max_workers=32) as pool:
        n = 0
        while (now := time.monotonic()) < end:
            due = start + n * interval
            if due > now:
                time.sleep(due - now)
            pool.submit(call)
            n += 1
            counts["sent"] = n
            if time.monotonic() >= next_window:
                with lock:
                    window, latencies[:] = list(latencies), []
                windows.append({"t_s": round(time.monotonic() - start), "rss_mb": _rss_mb(pid), "calls": len(window),
                                "p50_ms": _pct(window, 50), "p99_ms": _pct(window, 99)})  # fmt: skip
                next_window += args.window
    return {**counts, "windows": windows}


if __name__ == "__main__":
    main()
