"""The control store (limits, crossings, queue, audit) on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from ledger_fixtures import T0, FixedClock
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageStore, open_store


def test_objects_round_trip_and_are_audited(ledger_store: UsageStore, ledger_clock: FixedClock) -> None:
    control = ledger_store.control
    assert control.put("limit", "l1", {"amount": "1.00", "scope": "user:alice"}, actor="admin@x") is True
    ledger_clock.advance(seconds=5)
    assert control.put("limit", "l1", {"amount": "2.00", "scope": "user:alice"}, actor="admin@x") is False
    assert control.put("limit", "l2", {"amount": "5"}) is True
    assert control.put("grant", "g1", {"limit_id": "l1"}) is True
    assert control.get("limit", "l1") == {"amount": "2.00", "scope": "user:alice"}
    assert control.get("limit", "nope") is None
    assert [o.get("amount") for o in control.list_objects("limit")] == ["2.00", "5"]
    with pytest.raises(InvalidUsageError, match="already exists"):
        control.put("limit", "l2", {"amount": "6"}, create_only=True)
    assert control.delete("limit", "l2", actor="admin@x") is True
    assert control.delete("limit", "l2") is False
    assert [o["amount"] for o in control.list_objects("limit")] == ["2.00"]
    entries = control.audit_entries()
    assert [(e.action, e.target) for e in entries] == [
        ("limit.create", "limit:l1"),
        ("limit.update", "limit:l1"),
        ("limit.create", "limit:l2"),
        ("grant.create", "grant:g1"),
        ("limit.delete", "limit:l2"),
    ]
    assert entries[1].body == {
        "before": {"amount": "1.00", "scope": "user:alice"},
        "after": {"amount": "2.00", "scope": "user:alice"},
    }
    assert entries[1].actor == "admin@x" and entries[1].at == T0 + timedelta(seconds=5)
    control.audit("admin@x", "breaker.set", "global", {"reason": "runaway"})
    assert control.audit_entries(since=T0 + timedelta(seconds=1))[-1].action == "breaker.set"
    with pytest.raises(InvalidUsageError):
        control.put("limit", "", {})


def test_crossings_are_recorded_once(ledger_store: UsageStore) -> None:
    control = ledger_store.control
    assert control.record_crossing("l1", "day:2026-03-10@UTC", "0.5", T0, {"used": "0.51"}) is True
    assert control.record_crossing("l1", "day:2026-03-10@UTC", "0.5", T0 + timedelta(hours=1), {"used": "0.6"}) is False
    assert control.record_crossing("l1", "day:2026-03-11@UTC", "0.5", T0 + timedelta(days=1), {}) is True
    assert control.record_crossing("l2", "day:2026-03-10@UTC", "0.8", T0, {}) is True
    found = control.crossings(limit_id="l1")
    assert [(c.window_key, c.body) for c in found] == [
        ("day:2026-03-10@UTC", {"used": "0.51"}),
        ("day:2026-03-11@UTC", {}),
    ]
    assert len(control.crossings(since=T0 + timedelta(hours=2))) == 1
    assert len(control.crossings(window_key="day:2026-03-10@UTC")) == 2


def test_queue_orders_by_priority_and_age(ledger_store: UsageStore, ledger_clock: FixedClock) -> None:
    control = ledger_store.control
    assert control.enqueue("q1", priority=0, run_after=T0, body={"user": "free"})
    ledger_clock.advance(seconds=1)
    assert control.enqueue("q2", priority=2, run_after=T0, body={"user": "enterprise"})
    assert control.enqueue("q3", priority=1, run_after=T0 + timedelta(hours=1), body={"user": "later"})
    assert control.enqueue("q1", priority=5, run_after=T0, body={}) is False
    claimed = control.claim(T0 + timedelta(minutes=1), limit=10)
    assert [c.id for c in claimed] == ["q2", "q1"] and all(c.status == "running" and c.attempts == 1 for c in claimed)
    assert control.claim(T0 + timedelta(minutes=1)) == []
    control.finish("q2", status="done", result={"event_id": "e9"})
    control.finish("q1", status="queued", run_after=T0 + timedelta(hours=2))
    assert [c.id for c in control.claim(T0 + timedelta(hours=1, minutes=1))] == ["q3"]
    again = control.claim(T0 + timedelta(hours=3))
    assert [(c.id, c.attempts) for c in again] == [("q1", 2)]
    done = control.queued("done")
    assert [(q.id, q.result) for q in done] == [("q2", {"event_id": "e9"})]
    assert {q.id for q in control.queued()} == {"q1", "q2", "q3"}
    with pytest.raises(InvalidUsageError, match="status"):
        control.finish("q1", status="running")


def test_two_workers_never_claim_the_same_request(ledger_url: str) -> None:
    clock = FixedClock(T0)
    with open_store(ledger_url, clock=clock) as store:
        for i in range(60):
            store.control.enqueue(f"r{i}", priority=i % 3, run_after=T0, body={"i": i})
        claimed: list[str] = []
        lock = threading.Lock()

        def worker() -> None:
            with open_store(ledger_url, clock=clock) as mine:
                while batch := mine.control.claim(T0, limit=7):
                    with lock:
                        claimed.extend(item.id for item in batch)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claimed) == sorted(f"r{i}" for i in range(60))
