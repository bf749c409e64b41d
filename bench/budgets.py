"""authorize + settle throughput and latency with memory:// and redis:// counters (SQLite ledger). Prints JSON.

    .venv/bin/python bench/budgets.py [--calls 5000] [--threads 1,8] [--no-redis]

Each call: authorize (count nothing: input tokens given; price the worst case; read counters; decide;
reserve on a user daily, a team monthly and a global daily limit) then settle (commit counters, write
the ledger event durably, check thresholds). `memory_journal` settles through the write-ahead journal
(Settings.journal_dir): acknowledged on append, written to the ledger in batches by the journal's writer
process. Also `authorize` alone, which is the budget check.

`ops_per_s` is wall-clock; `cpu_us_per_op` is the CPU time of this process (all its threads, not the
journal's writer process) per operation: on a machine shared with other work it is the steadier figure,
and 1e6 / cpu_us_per_op is what one core of this process does.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendgate import Meter, Settings, Usage

USAGE = Usage(input_tokens=1200, output_tokens=300)


def setup(meter: Meter) -> None:
    meter.set_limit(scope="global", period="day", amount=Decimal("1000000"))
    meter.set_limit(scope="team", scope_id="t0", period="month", amount=Decimal("1000000"))
    for i in range(100):
        meter.set_limit(scope="user", scope_id=f"u{i}", period="day", amount=Decimal("10000"))


def run(meter: Meter, calls: int, threads: int, settle: bool) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = calls // threads

    def worker(n: int) -> None:
        mine: list[float] = []
        for i in range(per_thread):
            t = time.perf_counter()
            d = meter.authorize(user_id=f"u{(n * per_thread + i) % 100}", team_id="t0", provider="openai",
                                model="gpt-4o", input_tokens=1200, max_tokens=400)  # fmt: skip
            assert d.allowed, d.reason
            if settle:
                meter.settle(d, USAGE, latency_ms=100)
            else:
                meter.release(d)
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    start, cpu = time.perf_counter(), time.process_time()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    q = statistics.quantiles(latencies, n=100)
    return {
        "ops_per_s": round(len(latencies) / elapsed),
        "cpu_us_per_op": round(cpu / len(latencies) * 1e6, 1),
        "p50_ms": round(q[49] * 1e3, 3),
        "p99_ms": round(q[98] * 1e3, 3),
    }


def authorize_only(meter: Meter, calls: int) -> dict[str, float]:
    latencies: list[float] = []
    for i in range(calls):
        t = time.perf_counter()
        d = meter.authorize(user_id=f"u{i % 100}", team_id="t0", provider="openai", model="gpt-4o",
                            input_tokens=1200, max_tokens=400, reservation_id=f"a{i}")  # fmt: skip
        latencies.append(time.perf_counter() - t)
        assert d.allowed
    q = statistics.quantiles(latencies, n=100)
    return {
        "ops_per_s": round(calls / sum(latencies)),
        "p50_ms": round(q[49] * 1e3, 3),
        "p99_ms": round(q[98] * 1e3, 3),
    }


def backend(counters_url: str, calls: int, threads: list[int], journal: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            counters_url=counters_url,
            journal_dir=Path(tmp) / "journal" if journal else None,
        )
        with Meter(settings=settings) as meter:
            measure(meter, calls, threads, out)
    return out


def measure(meter: Meter, calls: int, threads: list[int], out: dict[str, Any]) -> None:
    setup(meter)
    run(meter, 200, 1, settle=True)  # warm-up
    gc.collect()  # a full collection left pending by the warm-up would land inside the next phase
    out["authorize_only"] = authorize_only(meter, calls)
    for n in threads:
        gc.collect()
        out[f"authorize_settle_{n}_threads"] = run(meter, calls, n, settle=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args()
    threads = [int(x) for x in args.threads.split(",")]
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    result["memory"] = backend("memory://", args.calls, threads)
    result["memory_journal"] = backend("memory://", args.calls, threads, journal=True)
    if not args.no_redis:
        prefix = f"sgbench-{uuid.uuid4().hex[:8]}:"
        try:
            result["redis"] = backend(f"redis://127.0.0.1:6379/0?prefix={prefix}", args.calls, threads)
        finally:
            import redis

            client = redis.Redis(host="127.0.0.1", port=6379)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
