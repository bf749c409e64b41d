"""Hundreds of concurrent reservations against one cap: the cap holds and every reported commit counts once.

Redis: 2 separate processes x 4 threads, each process with its own connection pool, sharing one server.
memory://: 8 threads in this process. Every worker starts on uninitialized keys, so the cold-start race
(``with_init`` in many places at once, SETNX wins once) is part of the run.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from spendgate.counters import BaseCounterStore, CounterStatus, ReserveItem, open_counters, with_init
from test_counters_support import REDIS_URL, T0, drop_prefix, new_prefix, open_backend, redis_or_skip

CAP = 6_000
THREADS = 4
ROUNDS = 20  # per thread; each round holds 3 reservations at once, then settles them
BATCH = 3


@dataclass
class Tally:
    committed: int = 0  # what this worker's successful commits/releases added to the capped key
    own: int = 0  # the same, on this worker's process key
    reserved: int = 0
    denied: int = 0
    over_cap_seen: int = 0  # reads where spent + reserved exceeded the cap (must stay 0)

    def add(self, other: Tally) -> None:
        for name in ("committed", "own", "reserved", "denied", "over_cap_seen"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def run_worker(store: BaseCounterStore, name: str, process_key: str, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    for round_ in range(ROUNDS):
        now = T0 + round_ * 0.01
        held: list[tuple[str, int]] = []
        for slot in range(BATCH):
            hold_id = f"{name}-{round_}-{slot}"
            amount = rng.randint(10, 60)
            items = [ReserveItem("budget", amount, CAP), ReserveItem(process_key, amount)]
            reserve = partial(store.reserve, hold_id, items, ttl_s=300, now=now)
            result = with_init(store, reserve, lambda _key: 0)
            if result.ok:
                tally.reserved += 1
                held.append((hold_id, amount))
                if store.read(["budget"], now=now)["budget"].total > CAP:
                    tally.over_cap_seen += 1
            else:
                assert result.status is CounterStatus.DENIED
                tally.denied += 1
        for hold_id, amount in held:
            actual = rng.randint(0, amount)
            spend = {"budget": actual, process_key: actual}
            if rng.random() < 0.2:
                done = store.release(hold_id, spend if actual % 2 else None, now=now)
                actual = actual if actual % 2 else 0
            else:
                done = store.commit(hold_id, spend, now=now)
            assert done.ok and done.hold_found and not done.already
            assert store.commit(hold_id, spend, now=now).already  # a retried settle adds nothing
            tally.committed += actual
            tally.own += actual
    return tally


def run_threads(store: BaseCounterStore, process: int, threads: int) -> Tally:
    tallies: list[Tally] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(thread: int) -> None:
        try:
            start.wait()
            tallies.append(run_worker(store, f"p{process}t{thread}", f"proc:{process}", process * 100 + thread))
        except BaseException as error:  # surfaced in the parent
            errors.append(error)

    workers = [threading.Thread(target=work, args=(thread,)) for thread in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total


def process_main(prefix: str, process: int, start: Any, results: Any) -> None:
    """One worker process: its own connection pool and THREADS threads, started together with the other."""
    store = open_counters(f"{REDIS_URL}?prefix={prefix}")
    try:
        assert isinstance(store, BaseCounterStore)
        start.wait(timeout=60)
        results.put((process, os.getpid(), run_threads(store, process, THREADS)))
    except BaseException as error:  # reported to the parent, which fails the test
        results.put((process, os.getpid(), repr(error)))
    finally:
        store.close()


def check(store: BaseCounterStore, tallies: list[Tally], threads: int) -> None:
    total = Tally()
    for tally in tallies:
        total.add(tally)
    budget = store.read(["budget"], now=T0 + 1)["budget"]
    assert budget.spent == total.committed
    assert budget.spent <= CAP
    assert budget.reserved == 0
    assert total.over_cap_seen == 0
    assert total.denied > 0  # the cap was contended
    assert total.reserved + total.denied == threads * ROUNDS * BATCH
    assert budget.spent > CAP - 200  # denials happened because the budget was (nearly) used up
    for process, tally in enumerate(tallies):
        assert store.read([f"proc:{process}"], now=T0 + 1)[f"proc:{process}"].spent == tally.own


def test_two_processes_share_one_cap_on_redis() -> None:
    raw = redis_or_skip()
    prefix = new_prefix()
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=process_main, args=(prefix, p, start, results)) for p in range(2)]
    try:
        for worker in workers:
            worker.start()
        reports = sorted(results.get(timeout=120) for _ in workers)
        for worker in workers:
            worker.join(timeout=30)
        assert [worker.exitcode for worker in workers] == [0, 0]
        assert len({pid for _, pid, _ in reports} | {os.getpid()}) == 3  # two processes besides this one
        tallies = [tally for _, _, tally in reports]
        assert all(isinstance(tally, Tally) for tally in tallies), tallies
        with open_backend("redis", prefix) as store:
            check(store, tallies, 2 * THREADS)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        drop_prefix(raw, prefix)
        raw.close()


def test_threads_share_one_cap_in_memory() -> None:
    with open_backend("memory") as store:
        tallies = [run_threads(store, 0, 2 * THREADS)]
        check(store, tallies, 2 * THREADS)
