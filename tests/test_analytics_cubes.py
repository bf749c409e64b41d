"""The analytics queue and worker: what the write path enqueues, and cubes that equal sums of raw events.

The reference here recomputes every cube row from ``iter_events`` (current costs) with plain Python;
the worker's cubes must equal it after any mix of inserts, duplicates, re-ratings and refreshes.
"""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from ledger_fixtures import T0, make_event
from spendgate.analytics import pending, prune_cubes, refresh
from spendgate.analytics._sketch import RELATIVE_ERROR, Sketch, SketchSum, bin_of
from spendgate.errors import InvalidUsageError, LedgerError
from spendgate.ledger import CostAdjustment, UsageEvent, UsageStore, open_store
from spendgate.ledger._analytics_queue import engine_of
from spendgate.ledger._analytics_schema import CUBES, analytics_queue
from spendgate.ledger._money import to_units
from spendgate.usage import Usage


def _random_events(rng: random.Random, n: int, prefix: str) -> list[UsageEvent]:
    return [
        make_event(
            event_id=f"{prefix}-{i}",
            timestamp=T0 + timedelta(seconds=rng.randint(-2 * 86400, 2 * 86400)),
            provider=rng.choice(["openai", "anthropic"]),
            model=rng.choice(["m1", "m2", "m3"]),
            usage=Usage(input_tokens=rng.randint(50, 5000), output_tokens=rng.randint(0, 900),
                        cache_read_tokens=rng.randint(0, 50)),
            cost=rng.choice([None, Decimal(rng.randint(0, 10**7)).scaleb(-9)]),
            user_id=rng.choice([None, "ann", "bob", "cy"]),
            team_id=rng.choice([None, "ml", "ops"]),
            api_key_id=rng.choice([None, "k1", "k2"]),
            session_id=rng.choice([None, "s1", "s2", "s3"]),
            request_type=rng.choice([None, "chat", "embed"]),
            currency=rng.choice(["USD", "USD", "EUR"]),
            tags=rng.choice([{}, {"env": "prod"}, {"env": "dev", "app": "x"}]),
            latency_ms=rng.choice([None, rng.randint(0, 20_000)]),
            success=rng.random() > 0.1,
            cached=rng.random() > 0.8,
            cache_savings=rng.choice([None, Decimal("0.0001")]),
            tokens_estimated=rng.random() > 0.9,
        )
        for i in range(n)
    ]  # fmt: skip


def _reference(store: UsageStore) -> dict[tuple[Any, ...], tuple[int, int, int, int, int]]:
    """(cube, key) -> (requests, cost units, unpriced, input tokens, latency sum), from raw events."""
    out: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for e in store.iter_events():
        minute = e.timestamp.replace(second=0, microsecond=0)
        hour, day = minute.replace(minute=0), minute.replace(hour=0, minute=0)
        team, cur = e.team_id or "", e.currency
        keys: list[tuple[Any, ...]] = [("analytics_series", g, b, cur) for g, b in
                                       (("minute", minute), ("hour", hour), ("day", day))]  # fmt: skip
        main = (team, e.provider, e.model, e.request_type or "", cur)
        keys += [("analytics_main", "hour", hour, *main), ("analytics_main", "day", day, *main)]
        pairs = [(d, v) for d, v in (("user", e.user_id), ("api_key", e.api_key_id), ("session", e.session_id)) if v]
        pairs += [("tag", f"{k}={v}") for k, v in e.tags.items()]
        for dim, value in pairs:
            keys.append(("analytics_entities", "hour", dim, hour, value, team, cur))
            keys.append(("analytics_entities", "day", dim, day, value, team, cur))
            keys.append(("analytics_entity_models", "day", dim, day, value, team, e.provider, e.model, cur))
        for key in keys:
            sums = out[key]
            sums[0] += 1
            sums[1] += 0 if e.cost is None else to_units(e.cost)
            sums[2] += e.cost is None
            sums[3] += e.usage.input_tokens
            sums[4] += e.latency_ms or 0
    return {key: (s[0], s[1], s[2], s[3], s[4]) for key, s in out.items()}


def _cubes(store: UsageStore) -> dict[tuple[Any, ...], tuple[int, int, int, int, int]]:
    out = {}
    with engine_of(store).transaction("read") as conn:
        for spec in CUBES.values():
            t = spec.table
            columns = [t.c[k] for k in spec.key]
            measures = [t.c.requests, t.c.cost, t.c.unpriced_requests, t.c.input_tokens, t.c.latency_sum]
            for row in conn.execute(sa.select(*columns, *measures)):
                out[(spec.name, *row[: len(columns)])] = tuple(int(v) for v in row[len(columns) :])
    return {k: v for k, v in out.items() if v[0]}  # type: ignore[misc]


def _drain(store: UsageStore) -> int:
    total = 0
    while moved := refresh(store, max_events=97):
        total += moved
    return total


def change(event_id: str, old: Decimal | None, new: Decimal | None, old_v: str | None, new_v: str) -> CostAdjustment:
    """Re-rate ``event_id`` from (old, old_v) to (new, new_v)."""
    return CostAdjustment(
        event_id=event_id, old_cost=old, new_cost=new, old_price_version=old_v, new_price_version=new_v
    )


def _rerate(store: UsageStore, events: list[UsageEvent], rng: random.Random) -> None:
    changes = []
    for event in events:
        current = store.get(event.event_id)
        assert current is not None
        new = rng.choice([None, Decimal(rng.randint(0, 10**6)).scaleb(-9)])
        changes.append(change(event.event_id, current.cost, new, current.price_version, f"v{rng.random()}"))
    store.apply_adjustments(changes)


def test_each_write_transaction_enqueues_its_new_ids_once(ledger_store: UsageStore) -> None:
    ledger_store.record_many([make_event(event_id="a"), make_event(event_id="b"), make_event(event_id="a")])
    ledger_store.record(make_event(event_id="b"))  # a duplicate: nothing new, no queue row
    with engine_of(ledger_store).transaction("read") as conn:
        rows = conn.execute(sa.select(analytics_queue.c.kind, analytics_queue.c.body)).all()
    assert [(r.kind, r.body) for r in rows] == [("events", '["a", "b"]')]
    backlog = pending(ledger_store)
    assert (backlog.rows, backlog.items, backlog.oldest) == (1, 2, T0)
    ledger_store.apply_adjustments([change("a", Decimal("0.00045"), Decimal("0.001"), None, "v2")])
    assert pending(ledger_store).items == 3
    assert refresh(ledger_store) == 3
    assert refresh(ledger_store) == 0
    assert pending(ledger_store) == type(backlog)(0, 0, None)


def test_cubes_equal_sums_of_raw_events_after_inserts_duplicates_and_rerating(ledger_store: UsageStore) -> None:
    rng = random.Random(7)
    events = _random_events(rng, 300, "x")
    ledger_store.record_many(events[:150])
    ledger_store.record_many(events[100:200])  # 50 duplicates
    assert _drain(ledger_store) == 200
    _rerate(ledger_store, events[:40], rng)  # re-rated after their refresh
    ledger_store.record_many(events[200:])
    _rerate(ledger_store, events[180:230], rng)  # half refreshed, half still queued
    _rerate(ledger_store, events[180:200], rng)  # twice
    assert _drain(ledger_store) == 100 + 40 + 50 + 20
    assert _cubes(ledger_store) == _reference(ledger_store)


def test_rerating_before_or_after_refresh_gives_the_same_cubes(tmp_path: Any) -> None:
    results = []
    for order in ("before", "after"):
        rng = random.Random(3)
        with open_store(f"sqlite:///{tmp_path / order}.db") as store:
            events = _random_events(rng, 120, "r")
            store.record_many(events)
            if order == "after":
                _drain(store)
            _rerate(store, events[::3], rng)
            _drain(store)
            results.append(_cubes(store))
            assert results[-1] == _reference(store)
    assert results[0] == results[1]


def test_sketches_in_cubes_hold_every_value_once(ledger_store: UsageStore) -> None:
    ledger_store.record_many(make_event(latency_ms=ms, timestamp=T0 + timedelta(seconds=ms)) for ms in range(0, 600))
    _drain(ledger_store)
    with engine_of(ledger_store).transaction("read") as conn:
        t = CUBES["analytics_series"].table
        texts = conn.execute(sa.select(t.c.latency_sketch).where(t.c.granularity == "minute")).scalars().all()
    merged = SketchSum()
    for text in texts:
        merged.add_text(text)
    assert merged.count == 600
    assert merged.zeros == 1
    p50, p99 = merged.quantiles([0.5, 0.99])
    assert p50 is not None and abs(p50 - 299) <= RELATIVE_ERROR * 299
    assert p99 is not None and abs(p99 - 593) <= RELATIVE_ERROR * 593


@pytest.mark.postgres
def test_concurrent_refresh_on_postgresql_counts_every_event_once(ledger_pg_url: str) -> None:
    from ledger_fixtures import truncate

    truncate(ledger_pg_url)
    rng = random.Random(11)
    with open_store(ledger_pg_url) as store:
        for start in range(0, 1200, 50):  # 24 queue rows
            store.record_many(_random_events(rng, 50, f"c{start}"))
        moved: list[int] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def work() -> None:
            try:
                barrier.wait()
                total = 0
                while step := refresh(store, max_events=60):
                    total += step
                moved.append(total)
            except BaseException as error:  # surfaced below
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sum(moved) == 1200
        assert pending(store).rows == 0
        assert _cubes(store) == _reference(store)


def test_prune_cubes_deletes_old_buckets_of_one_granularity(ledger_store: UsageStore) -> None:
    ledger_store.record_many([make_event(timestamp=T0 - timedelta(days=3)), make_event(timestamp=T0)])
    _drain(ledger_store)
    before = len(_cubes(ledger_store))
    deleted = prune_cubes(ledger_store, "minute", T0 - timedelta(days=1))
    assert deleted == 1
    assert len(_cubes(ledger_store)) == before - 1
    assert prune_cubes(ledger_store, "hour", T0 - timedelta(days=1)) > 1
    with pytest.raises(InvalidUsageError, match="granularity"):
        prune_cubes(ledger_store, "week", T0)
    with pytest.raises(InvalidUsageError, match="before"):
        prune_cubes(ledger_store, "day", datetime(2024, 1, 1))


def test_refresh_validates_and_needs_a_sql_store(ledger_store: UsageStore) -> None:
    with pytest.raises(InvalidUsageError, match="max_events"):
        refresh(ledger_store, max_events=0)
    with pytest.raises(LedgerError, match="SQL usage store"):
        refresh(object())  # type: ignore[arg-type]


def test_events_deleted_before_refresh_are_skipped(ledger_store: UsageStore) -> None:
    ledger_store.record_many([make_event(event_id="gone"), make_event(event_id="kept")])
    with engine_of(ledger_store).transaction("delete", write=True) as conn:
        conn.execute(sa.text("DELETE FROM usage_events WHERE event_id = 'gone'"))
    assert refresh(ledger_store) == 2
    assert _cubes(ledger_store) == _reference(ledger_store)


@pytest.mark.parametrize("seed", range(5))
def test_sketch_quantiles_are_within_the_relative_error(seed: int) -> None:
    rng = random.Random(seed)
    values = sorted(rng.lognormvariate(5, 2) for _ in range(2000)) + [0.0] * rng.randint(0, 50)
    values.sort()
    halves = (Sketch(), Sketch())
    for i, value in enumerate(values):
        halves[i % 2].add_bin(bin_of(value))
    merged = SketchSum()
    for half in halves:
        merged.add_text(Sketch.decode(half.encode()).encode())
    assert merged.count == len(values)
    for q, got in zip((0.0, 0.5, 0.95, 0.99, 1.0), merged.quantiles([0.0, 0.5, 0.95, 0.99, 1.0]), strict=True):
        exact = values[int(q * (len(values) - 1))]
        assert got is not None and abs(got - exact) <= RELATIVE_ERROR * exact + 1e-12
    low, high = merged.extreme(False), merged.extreme(True)
    assert low is not None and high is not None
    assert abs(high - values[-1]) <= RELATIVE_ERROR * values[-1]
    assert abs(low - values[0]) <= RELATIVE_ERROR * values[0] + 1e-12


def test_sketch_removals_cancel_and_empty_sketches_encode_empty() -> None:
    sketch = Sketch()
    sketch.add_bin(bin_of(5.0))
    sketch.add_bin(bin_of(5.0), -1)
    sketch.add_bin(None, 2)
    sketch.add_bin(None, -2)
    assert sketch.encode() == ""
    assert SketchSum().quantiles([0.5]) == [None]
    assert SketchSum().extreme(True) is None
    only_zeros = Sketch()
    only_zeros.add_bin(None, 3)
    merged = SketchSum()
    merged.add_text(only_zeros.encode())
    assert merged.quantiles([0.99]) == [0.0] and merged.extreme(True) == 0.0


def test_timestamps_are_bucketed_in_utc(ledger_store: UsageStore) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2024, 3, 10, 0, 30, tzinfo=ZoneInfo("America/New_York"))  # 05:30 UTC
    ledger_store.record(make_event(timestamp=local))
    _drain(ledger_store)
    keys = {k for k in _cubes(ledger_store) if k[0] == "analytics_series" and k[1] == "hour"}
    assert keys == {("analytics_series", "hour", datetime(2024, 3, 10, 5, tzinfo=UTC), "USD")}
