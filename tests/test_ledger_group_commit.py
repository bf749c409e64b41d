"""The leader/follower group committer, with a fake write function (no database)."""

from __future__ import annotations

import threading
import time

import pytest

from spendgate.ledger._group_commit import GroupCommitter


class Recorder:
    """A write function that records its batches and can be told to fail or to be slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.poison: set[int] = set()
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        if self.poison.intersection(items):
            raise ValueError(f"poisoned batch {sorted(self.poison.intersection(items))}")
        time.sleep(self.delay)
        with self.lock:
            self.batches.append(list(items))
        return [item * 10 for item in items]


def test_single_caller_writes_its_items() -> None:
    write = Recorder()
    committer = GroupCommitter(write, max_batch=100)
    assert committer.submit([1, 2, 3]) == [10, 20, 30]
    assert committer.submit([]) == []
    assert write.batches == [[1, 2, 3]]
    assert committer.batches == 1


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitter(Recorder(), max_batch=0)


def test_concurrent_callers_share_batches_and_get_their_own_results() -> None:
    write = Recorder(delay=0.01)
    committer = GroupCommitter(write, max_batch=1000)
    results: dict[int, list[int]] = {}

    def worker(n: int) -> None:
        results[n] = committer.submit([n, n + 1000])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: [n * 10, (n + 1000) * 10] for n in range(40)}
    written = sorted(item for batch in write.batches for item in batch)
    assert written == sorted(list(range(40)) + [n + 1000 for n in range(40)])
    assert len(write.batches) < 40  # commits were shared
    assert committer.batches == len(write.batches)


def test_batches_respect_max_batch_but_take_at_least_one_slot() -> None:
    write = Recorder(delay=0.005)
    committer = GroupCommitter(write, max_batch=3)
    big = committer.submit(list(range(5)))  # larger than max_batch: written alone, whole
    assert big == [0, 10, 20, 30, 40]
    threads = [threading.Thread(target=committer.submit, args=([n, n],)) for n in range(100, 120)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(batch) <= 3 for batch in write.batches[1:])
    assert write.batches[0] == [0, 1, 2, 3, 4]


def test_failure_of_one_caller_does_not_fail_the_others() -> None:
    write = Recorder(delay=0.005)
    write.poison = {13}
    committer = GroupCommitter(write, max_batch=1000)
    outcomes: dict[int, object] = {}

    def worker(n: int) -> None:
        try:
            outcomes[n] = committer.submit([n])
        except ValueError as error:
            outcomes[n] = error

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(outcomes[13], ValueError)
    assert all(outcomes[n] == [n * 10] for n in range(30) if n != 13)
    # the committer is still usable afterwards
    assert committer.submit([99]) == [990]


def test_interrupted_leader_releases_leadership() -> None:
    calls = []

    def write(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return items

    committer = GroupCommitter(write, max_batch=10)
    with pytest.raises(KeyboardInterrupt):
        committer.submit([1])
    assert committer.submit([2]) == [2]
