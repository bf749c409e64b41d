"""The write-ahead journal: acknowledged on append, in the ledger after a flush, replayed after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate import Meter, Settings, Usage
from spendgate.ledger import Journal, UsageEvent, _journal_writer, open_store
from spendgate.ledger._journal import event_from_json, event_to_json
from spendgate.ledger._journal_writer import serve

CHILD = Path(__file__).with_name("journal_child.py")
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def event(i: int, **extra: object) -> UsageEvent:
    values: dict[str, object] = {
        "event_id": f"j{i}", "timestamp": T0, "provider": "openai", "model": "gpt-4o",
        "usage": Usage(input_tokens=i, output_tokens=1), "cost": Decimal("0.000001") * i, **extra,
    }  # fmt: skip
    return UsageEvent(**values)  # type: ignore[arg-type]


def test_events_round_trip_through_json() -> None:
    full = event(
        7,
        user_id="ann",
        tags={"feature": "chat"},
        metadata={"n": [1, 2]},
        latency_ms=12,
        success=False,
        error_kind="timeout",
        cache_savings=Decimal("0.5"),
        usage=Usage(
            input_tokens=9, cache_read_tokens=3, output_tokens=4, reasoning_tokens=2, audio_seconds=Decimal("1.5")
        ),
    )
    assert event_from_json(event_to_json(full)) == full


def journal_files(directory: Path) -> list[str]:
    """What is left in a journal directory besides its lock file (which stays: other processes share it)."""
    return sorted(p.name for p in directory.iterdir() if p.name != ".drain.lock")


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_append_flush_close(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'j.db'}") as store:
        journal = Journal(tmp_path / "journal", store, max_pending=10, max_delay_s=3600)
        for i in range(1, 10):
            journal.append(event(i))
        assert journal.pending == 9 and store.count() == 0  # durable in the journal, not yet in the ledger
        journal.append(event(10))  # the 10th seals the file: the writer thread takes it to the ledger
        wait_for(lambda: store.count() == 10)
        assert journal.pending == 0
        journal.append(event(11))
        journal.append(event(11))  # the same id again: the ledger keeps one
        journal.flush()
        assert store.count() == 11 and journal.pending == 0
        journal.close()
        assert journal_files(tmp_path / "journal") == []
        assert store.summary().cost == Decimal("0.000066")


def test_a_file_that_waited_max_delay_is_written_without_a_flush(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'd.db'}") as store:
        journal = Journal(tmp_path / "journal", store, max_pending=1000, max_delay_s=0.05)
        journal.append(event(1))
        wait_for(lambda: store.count() == 1)
        journal.close()


def test_a_writer_process_drains_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database_url = f"sqlite:///{tmp_path / 'p.db'}"
    monkeypatch.setattr(_journal_writer, "RESTART_INTERVAL_S", 0.0)
    with open_store(database_url) as store:
        journal = Journal(tmp_path / "journal", store, max_pending=10, max_delay_s=0.05, writer="process",
                          database_url=database_url)  # fmt: skip
        assert journal._process is not None
        writer_pid = journal._process.pid
        assert writer_pid is not None and writer_pid != os.getpid()
        for i in range(1, 26):
            journal.append(event(i))
        wait_for(lambda: store.count() == 25)  # no flush: the writer process wrote them
        os.kill(writer_pid, signal.SIGKILL)  # a writer that dies is restarted; its files wait meanwhile
        for i in range(26, 41):
            journal.append(event(i))
        wait_for(lambda: journal._process is not None and journal._process.pid != writer_pid)
        wait_for(lambda: store.count() == 40)
        journal.append(event(41))
        journal.flush()  # a reader's flush does not wait for the writer's next tick
        assert store.count() == 41
        journal.close()
        assert journal_files(tmp_path / "journal") == []
        assert store.check_rollups() == []


def test_a_writer_process_needs_the_database_url(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'n.db'}") as store, pytest.raises(ValueError, match="database_url"):
        Journal(tmp_path / "journal", store, writer="process")


def test_the_writer_loop_drains_until_its_pipe_closes(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    (directory / "sealed-1-2-x.jsonl").write_bytes(event_to_json(event(1)) + event_to_json(event(2)))
    read_end, write_end = os.pipe()
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as store, os.fdopen(read_end, "rb") as control:
        result: list[int] = []
        runner = threading.Thread(target=lambda: result.append(serve(control, directory, store, 0.02, 100)))
        runner.start()
        wait_for(lambda: store.count() == 2)
        # Sealed as the journal seals: renamed into place whole (a drain between create and write would
        # find it empty and delete it).
        (directory / "tmp-3").write_bytes(event_to_json(event(3)))
        (directory / "tmp-3").rename(directory / "sealed-3-2-y.jsonl")
        os.close(write_end)  # the parent went away: one last drain, then the loop ends
        runner.join(10)
        assert result == [3] and store.count() == 3 and journal_files(directory) == []


def test_recover_replays_complete_lines_of_dead_processes(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    crashed = directory / "journal-99999-dead.jsonl"
    crashed.write_bytes(event_to_json(event(1)) + event_to_json(event(2)) + event_to_json(event(3))[:25])
    with open_store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        journal = Journal(directory, store)
        assert store.count() == 2 and not crashed.exists()  # the half-written third was never acknowledged
        assert journal.recover() == 0
        journal.close()


def test_a_killed_process_loses_no_acknowledged_settle(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'kill.db'}"
    journal_dir = tmp_path / "journal"
    acknowledged: set[str] = set()
    for delay in (0.6, 1.2):
        child = subprocess.Popen(
            [sys.executable, str(CHILD), database_url, str(journal_dir), "4"], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        deadline = time.monotonic() + delay + 5
        start: float | None = None
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged.add(line.strip())
            start = start or time.monotonic()
            if time.monotonic() - start > delay:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        acknowledged.update(x.strip() for x in child.stdout.read().splitlines() if x.strip())
        child.stdout.close()
    assert len(acknowledged) > 50
    with Meter(settings=Settings(database_url=database_url, journal_dir=journal_dir)) as meter:  # recovers
        stored = {e.event_id for e in meter.events()}
        assert acknowledged <= stored
        assert meter.store.check_rollups() == []
        assert meter.summary().requests == len(stored)


def test_meter_with_a_journal_reads_its_own_settles(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", journal_dir=tmp_path / "journal")
    with Meter(settings=settings) as meter:
        meter.set_limit(scope="user", scope_id="ann", metric="requests", amount=3)
        results = []
        for _ in range(3):
            d = meter.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=5, max_tokens=5)
            results.append(meter.settle(d, Usage(input_tokens=5, output_tokens=5)))
        assert meter.settle(d, Usage(input_tokens=5, output_tokens=5)).duplicate is True
        assert [r.duplicate for r in results] == [False] * 3 and results[0].cost is not None
        assert not meter.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=5).allowed
        assert meter.summary(user_id="ann").requests == 3  # the read flushed the journal first
        assert meter.summary(user_id="ann").cost == 3 * results[0].cost.total
    assert journal_files(tmp_path / "journal") == []
