"""Analytics figures: refresh throughput and dashboard query times over N generated events. Prints JSON.

    .venv/bin/python bench/analytics.py [--events 10000000] [--backend sqlite|postgresql|both] [--runs 5]
        [--keep PATH]

Generates 90 days of realistic traffic (~200 users in ~10 teams, ~300 keys, 4 providers, 12 models,
3 request types, a few tags, sessions of a few hours), inserts it in bulk (SQLite executemany in big
transactions, PostgreSQL COPY) with one analytics queue row per 5,000 events, runs the worker to
completion (events/s), records a live tail of 2,000 events through the store (left queued, as between
two worker runs), then times every dashboard query (median and max of ``--runs``) for the last 24 h,
7 d, 30 d and 90 d, without a filter and with a team or a model filter. Target: <= 100 ms a query.
``--keep PATH`` (SQLite) builds the database at PATH and keeps it; when PATH exists it is reused as it
is (no load, refresh or new tail), so two versions of the code can be timed on the same data.
Not a test: figures depend on the machine (the load average before and after is printed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from spendgate.analytics import Analytics, Filters, refresh
from spendgate.analytics._analytics import Granularity
from spendgate.ledger import UsageEvent, UsageStore, open_store
from spendgate.usage import Usage

PG_SERVER = os.environ.get("SPENDGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
END = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 90
CHUNK = 5000
PROVIDERS = {"openai": 3, "anthropic": 3, "google": 3, "mistral": 3}
MODELS = [
    (p, f"{p}-model-{i}", 50 * (i + 1) * (2 if p == "anthropic" else 1)) for p, n in PROVIDERS.items() for i in range(n)
]
COLUMNS = (
    "event_id", "timestamp", "provider", "model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "input_audio_tokens", "output_audio_tokens", "input_image_tokens",
    "images", "web_searches", "audio_seconds", "processing_seconds", "cost", "original_cost", "currency",
    "cost_estimated", "tokens_estimated", "user_id", "team_id", "api_key_id", "session_id", "request_type", "tags",
    "latency_ms", "success", "cached", "cache_savings", "recorded_at",
)  # fmt: skip


def generate(n: int, seed: int = 1) -> Iterator[tuple[Any, ...]]:
    """``n`` events in time order over the 90 days before END (a daily rhythm), as ``COLUMNS`` tuples."""
    rng = random.Random(seed)
    users = [(f"user{u:03d}", f"team{u % 10}") for u in range(200)]
    keys = {user: [f"key{u:03d}", f"key{u + 200:03d}"] if u < 100 else [f"key{u:03d}"] for u, (user, _) in
            enumerate(users)}  # fmt: skip
    kinds = ["chat", "chat", "chat", "embedding", "completion"]
    tag_sets = [None, '{"env":"prod"}', '{"env":"prod","feature":"search"}', '{"env":"dev"}', '{"feature":"chat"}']
    start = (END - timedelta(days=DAYS)).timestamp()
    mean_gap = DAYS * 86400 / n
    t = start
    for i in range(n):
        hour = (t % 86400) / 3600
        t += rng.expovariate(1.0) * mean_gap * (1.6 - 0.9 * math.sin(math.pi * (hour - 6) / 12))
        if t >= END.timestamp():
            t = END.timestamp() - 1e-3
        user, team = users[min(int(rng.paretovariate(1.2)) - 1, 199)] if rng.random() < 0.7 else rng.choice(users)
        provider, model, price = MODELS[min(int(rng.expovariate(0.35)), 11)]
        tokens_in, tokens_out = int(rng.lognormvariate(6.5, 1.0)), int(rng.lognormvariate(5, 1.0))
        cost = None if rng.random() < 0.01 else (tokens_in * price + tokens_out * price * 4) * 1000
        cached = rng.random() < 0.05
        stamp = datetime.fromtimestamp(t, UTC)
        yield (
            f"e{i:09d}", stamp, provider, model, tokens_in, tokens_out, tokens_in // 4 if cached else 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, cost, cost, "USD", False, rng.random() < 0.02, user, team, rng.choice(keys[user]),
            f"{user}-{int(t // 14400)}", rng.choice(kinds), rng.choice(tag_sets),
            int(rng.lognormvariate(6.7, 0.6)), rng.random() > 0.03, cached, cost if cached else None, stamp,
        )  # fmt: skip


def _queue_rows(ids: list[str]) -> tuple[str, str, str]:
    return ("2026-03-01 00:00:00.000000", "events", json.dumps(ids))


def load_sqlite(path: str, n: int) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    insert = f"INSERT INTO usage_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    started = time.perf_counter()
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        rows = [tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v for v in row)
                for row in batch]  # fmt: skip
        with conn:
            conn.executemany(insert, rows)
            for s in range(0, len(rows), CHUNK):
                conn.execute("INSERT INTO analytics_queue (created_at, kind, body) VALUES (?, ?, ?)",
                             _queue_rows([r[0] for r in rows[s : s + CHUNK]]))  # fmt: skip
        batch.clear()

    for row in generate(n):
        batch.append(row)
        if len(batch) == 200_000:
            flush()
    flush()
    conn.close()
    return time.perf_counter() - started


def _pg_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def load_postgres(url: str, n: int) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        ids: list[str] = []
        with conn.cursor() as cur, cur.copy(f"COPY usage_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in generate(n):
                copy.write("\t".join(map(_pg_text, row)) + "\n")
                ids.append(row[0])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO analytics_queue (created_at, kind, body) VALUES (%s, %s, %s)",
                [_queue_rows(ids[s : s + CHUNK]) for s in range(0, len(ids), CHUNK)],
            )
        conn.commit()
        conn.execute("ANALYZE")
    return time.perf_counter() - started


def live_tail(store: UsageStore, count: int = 2000) -> None:
    usage = Usage(input_tokens=900, output_tokens=150)
    base = END - timedelta(minutes=30)
    prefix = uuid.uuid4().hex[:6]
    store.record_many(
        UsageEvent(event_id=f"tail-{prefix}-{i}", timestamp=base + timedelta(seconds=i * 0.5), provider="openai",
                   model="openai-model-0", usage=usage, cost=Decimal("0.0012"), user_id=f"user{i % 200:03d}",
                   team_id=f"team{i % 10}", api_key_id=f"key{i % 200:03d}", session_id=f"tail-{i % 50}",
                   request_type="chat", latency_ms=400 + i % 300, tags={"env": "prod"})
        for i in range(count)
    )  # fmt: skip


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    fn()  # warm caches once, as a dashboard that is open would
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def queries(analytics: Analytics, runs: int) -> dict[str, Any]:
    until = END - timedelta(minutes=17, seconds=23)  # "now": ragged edges, like a live dashboard
    spans = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
    filters = {"all": None, "team": Filters(team_id="team3"), "model": Filters(model="openai-model-1")}
    out: dict[str, Any] = {}
    for label, span in spans.items():
        since = until - span
        grain: Granularity = "hour" if span <= timedelta(days=1) else "day"
        for flabel, flt in filters.items():
            calls: dict[str, Callable[[], object]] = {
                "summary": partial(analytics.summary, since, until, flt),
                "top_users": partial(analytics.top_users, since, until, flt, n=10),
                "by_model": partial(analytics.breakdown, "model", since, until, flt),
                "by_tag": partial(analytics.breakdown, "tag", since, until, flt),
                "timeseries_cost": partial(analytics.timeseries, grain, "cost", since, until, flt),
                "timeseries_latency": partial(analytics.timeseries, grain, "latency", since, until, flt),
                "heatmap": partial(analytics.heatmap, since, until, flt),
                "efficiency": partial(analytics.efficiency, since, until, flt),
            }
            for name, call in calls.items():
                out[f"{label}/{flabel}/{name}"] = timed(call, runs)
    return out


def analyze(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()


def cube_rows(url: str) -> dict[str, dict[str, int]]:
    """Rows per cube and granularity: what a query's cost grows with (it saturates, events do not)."""
    import sqlalchemy as sa

    from spendgate.ledger._analytics_schema import CUBES

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            out: dict[str, dict[str, int]] = {}
            for name, spec in CUBES.items():
                t = spec.table
                counts = sa.select(t.c.granularity, sa.func.count()).group_by(t.c.granularity)
                out[name] = {str(g): int(n) for g, n in conn.execute(counts)}
            return out
    finally:
        engine.dispose()


def prepare(url: str, n: int, load: Callable[[], float]) -> dict[str, Any]:
    """Load ``n`` events, refresh the cubes, ANALYZE, then record the live tail (left queued)."""
    open_store(url).close()  # migrate
    result: dict[str, Any] = {"load_s": round(load(), 1)}
    print(f"loaded {n} events in {result['load_s']} s", file=sys.stderr, flush=True)
    with open_store(url) as store:
        started, moved = time.perf_counter(), 0
        while step := refresh(store, max_events=50_000):
            moved += step
        elapsed = time.perf_counter() - started
        result.update(refreshed=moved, refresh_s=round(elapsed, 1), refresh_events_per_s=round(moved / elapsed))
        print(f"refreshed: {result}", file=sys.stderr, flush=True)
        analyze(url)  # planner statistics for the filled cubes (autovacuum / a periodic ANALYZE in production)
        result["cube_rows"] = cube_rows(url)
        live_tail(store)
    return result


def bench(url: str, n: int, runs: int, load: Callable[[], float], *, prepared: bool = False) -> dict[str, Any]:
    """Prepare the database (unless ``prepared``: reused as it is), then time the queries."""
    result: dict[str, Any] = {"reused": url} if prepared else prepare(url, n, load)
    with open_store(url) as store:
        analytics = Analytics(store)
        day = END - timedelta(days=1)
        result["sources"] = {
            "summary": analytics.summary(day, END).source,
            "top_users, model filter": analytics.top_users(day, END, Filters(model="openai-model-1")).source,
        }
        result["queries"] = queries(analytics, runs)
        slowest = max(result["queries"].items(), key=lambda kv: kv[1]["median_ms"])
        result["slowest_median"] = {slowest[0]: slowest[1]}
        result["over_100ms"] = sorted(k for k, v in result["queries"].items() if v["median_ms"] > 100)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", metavar="PATH", help="SQLite database to build and keep, or to reuse if it exists")
    args = parser.parse_args()
    result: dict[str, Any] = {"events": args.events, "machine": f"{os.cpu_count()} cores"}
    result["load_average_before"] = os.getloadavg()
    if args.keep and args.backend in ("sqlite", "both"):
        path, prepared = args.keep, os.path.exists(args.keep)
        result["sqlite"] = bench(
            f"sqlite:///{path}", args.events, args.runs, lambda: load_sqlite(path, args.events), prepared=prepared
        )
    elif args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/analytics.db"
            result["sqlite"] = bench(
                f"sqlite:///{path}", args.events, args.runs, lambda: load_sqlite(path, args.events)
            )
    if args.backend in ("postgresql", "both"):
        import sqlalchemy as sa

        name = f"spendgate_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = f"{PG_SERVER}/{name}"
            result["postgresql"] = bench(url, args.events, args.runs, lambda: load_postgres(url, args.events))
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
