"""The write-ahead journal: acknowledged on append, in the ledger after a flush, replayed after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from spendgate import Meter, Settings, Usage
from spendgate.ledger import Journal, UsageEvent, open_store
from spendgate.ledger._journal import event_from_json, event_to_json

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


def test_append_flush_close(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'j.db'}") as store:
        journal = Journal(tmp_path / "journal", store, max_pending=10, max_delay_s=3600)
        for i in range(1, 10):
            journal.append(event(i))
        assert journal.pending == 9 and store.count() == 0  # durable in the journal, not yet in the ledger
        journal.append(event(10))  # the 10th triggers a batch
        assert journal.pending == 0 and store.count() == 10
        journal.append(event(11))
        journal.append(event(11))  # the same id again: the ledger keeps one
        assert journal.flush() == 2 and store.count() == 11
        journal.close()
        assert list((tmp_path / "journal").iterdir()) == []
        assert store.summary().cost == Decimal("0.000066")


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
    assert list((tmp_path / "journal").iterdir()) == []
