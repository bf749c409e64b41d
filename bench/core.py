"""Core figures: cost µs, token-count µs, ledger record events/s per backend. Prints JSON.

    .venv/bin/python bench/core.py [--events 50000] [--no-postgres]

Not a test: figures depend on the machine. BENCHMARKS.md records the latest run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from spendgate.ledger import UsageEvent, open_store
from spendgate.pricing import PriceBook
from spendgate.tokens import TokenCounter
from spendgate.usage import Usage

PG_SERVER = os.environ.get("SPENDGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def per_call_us(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Best-of-`repeat` mean time per call, in microseconds."""
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def bench_cost() -> dict[str, float]:
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    book = PriceBook()
    usage = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=200)
    gusage = GUsage(input_tokens=1200, output_tokens=300, cache_read_tokens=200)
    ours = book.cost("openai", "gpt-4o", usage).total
    theirs = calc_price(gusage, "gpt-4o", provider_id="openai").total_price
    assert ours == theirs, (ours, theirs)
    return {
        "cost_us": round(per_call_us(lambda: book.cost("openai", "gpt-4o", usage), 100_000), 3),
        "cost_anthropic_us": round(per_call_us(lambda: book.cost("anthropic", "claude-sonnet-4-0", usage), 100_000), 3),
        "genai_prices_calc_price_us": round(
            per_call_us(lambda: calc_price(gusage, "gpt-4o", provider_id="openai"), 2_000), 1
        ),
    }


def bench_tokens() -> dict[str, float]:
    cached = TokenCounter()
    uncached = TokenCounter(cache_size=0)
    msgs = [{"role": "user", "content": "Hello, how are you today?"}]
    counter = iter(range(10**9))

    def fresh() -> object:
        return uncached.count(
            "openai", "gpt-4o", messages=[{"role": "user", "content": f"Hello {next(counter)}, how are you?"}]
        )

    return {
        "tokens_short_chat_us": round(per_call_us(lambda: cached.count("openai", "gpt-4o", messages=msgs), 50_000), 3),
        "tokens_short_chat_uncached_us": round(per_call_us(fresh, 20_000), 3),
        "tokens_anthropic_heuristic_us": round(
            per_call_us(lambda: uncached.count("anthropic", "claude-sonnet-4-0", messages=msgs), 20_000), 3
        ),
    }


def make_events(n: int, prefix: str) -> list[UsageEvent]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    usage = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=200)
    from decimal import Decimal

    return [
        UsageEvent(
            event_id=f"{prefix}-{i}",
            timestamp=t0 + timedelta(seconds=i),
            provider="openai",
            model="gpt-4o",
            usage=usage,
            cost=Decimal("0.005"),
            price_version="bench",
            user_id=f"user{i % 100}",
            team_id=f"team{i % 10}",
            latency_ms=200,
        )
        for i in range(n)
    ]


def bench_store(url: str, n: int) -> dict[str, float]:
    store = open_store(url)
    try:
        events = make_events(n, uuid.uuid4().hex)
        start = time.perf_counter()
        for i in range(0, n, 1000):
            store.record_many(events[i : i + 1000])
        batched = n / (time.perf_counter() - start)

        # one event per call from 8 threads: group commit shares transactions between them
        singles = make_events(min(n, 8000), uuid.uuid4().hex)
        chunks = [singles[i::8] for i in range(8)]
        latencies: list[float] = []
        lock = threading.Lock()

        def worker(chunk: list[UsageEvent]) -> None:
            mine: list[float] = []
            for event in chunk:
                t = time.perf_counter()
                store.record(event)
                mine.append(time.perf_counter() - t)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        concurrent = len(singles) / (time.perf_counter() - start)
        q = statistics.quantiles(latencies, n=100)
        return {
            "batched_events_per_s": round(batched),
            "single_8_threads_events_per_s": round(concurrent),
            "single_p50_ms": round(q[49] * 1e3, 3),
            "single_p99_ms": round(q[98] * 1e3, 3),
        }
    finally:
        store.close()


def bench_postgres(n: int) -> dict[str, Any]:
    import sqlalchemy as sa

    name = f"spendgate_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            return bench_store(f"{PG_SERVER}/{name}", n)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except sa.exc.OperationalError as exc:
        return {"error": f"PostgreSQL unavailable: {exc.orig}"}
    finally:
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        **bench_cost(),
        **bench_tokens(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = bench_store(f"sqlite:///{tmp}/bench.db", args.events)
    if not args.no_postgres:
        result["postgresql"] = bench_postgres(args.events)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
