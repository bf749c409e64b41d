"""Many writers at once: every id stored once, duplicates reported right, rollups consistent."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

from ledger_fixtures import T0, FixedClock, make_event
from spendgate.ledger import RecordResult, UsageEvent, open_store

THREADS = 8
PER_THREAD = 500
STRIDE = 400  # thread t writes ids t*400 .. t*400+499: 100 ids overlap with the next thread


def thread_events(t: int) -> list[UsageEvent]:
    return [
        make_event(
            event_id=f"c-{i}",
            timestamp=T0 + timedelta(minutes=i % 180),
            user_id=f"user-{i % 5}",
            cost=None if i % 7 == 0 else Decimal(i) / 1000,
            tags={"writer": str(t)},
        )
        for i in range(t * STRIDE, t * STRIDE + PER_THREAD)
    ]


def test_concurrent_writers_store_each_id_once(ledger_url: str, ledger_clock: FixedClock) -> None:
    stores = [open_store(ledger_url, clock=ledger_clock) for _ in range(2)]  # two "processes"
    results: dict[int, list[tuple[UsageEvent, RecordResult]]] = {}
    errors: list[BaseException] = []
    calls = Counter[int]()
    start = threading.Barrier(THREADS)

    def writer(t: int) -> None:
        store = stores[t % 2]
        events = thread_events(t)
        out: list[tuple[UsageEvent, RecordResult]] = []
        try:
            start.wait()
            position = 0
            while position < len(events):
                if position % 3 == 0:  # singles and small batches, interleaved
                    chunk = events[position : position + 1]
                    out.append((chunk[0], store.record(chunk[0])))
                else:
                    chunk = events[position : position + 25]
                    out.extend(zip(chunk, store.record_many(chunk), strict=True))
                calls[store is stores[0]] += 1
                position += len(chunk)
        except BaseException as error:  # surfaced below
            errors.append(error)
        results[t] = out

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        unique_ids = {f"c-{i}" for i in range((THREADS - 1) * STRIDE + PER_THREAD)}
        firsts = Counter(result.event_id for out in results.values() for _, result in out if not result.duplicate)
        assert set(firsts) == unique_ids
        assert set(firsts.values()) == {1}  # every id reported as new exactly once
        reader = stores[0]
        assert reader.count() == len(unique_ids)
        for out in results.values():
            for event, result in out:
                assert result.event_id == event.event_id
                if not result.duplicate:
                    assert reader.get(event.event_id) == event  # the version that won is the one stored
        assert reader.summary().requests == len(unique_ids)
        assert reader.check_rollups() == []
        # writers shared commits: fewer write transactions than record calls
        written = sum(getattr(store, "batches_written", 0) for store in stores)
        assert 0 < written < sum(calls.values())
    finally:
        for store in stores:
            store.close()
