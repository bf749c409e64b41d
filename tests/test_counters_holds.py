"""memory:// internals that keep the request path cheap: lapse heaps, deadlines, untracked hold records."""

from __future__ import annotations

import gc
import math

import pytest

from spendgate.counters import CounterState, MemoryCounterStore, ReserveItem
from spendgate.counters._deadlines import Deadlines

T0 = 1_773_100_000.0


def test_deadlines_next_due_bounds_what_pop_due_can_return() -> None:
    deadlines = Deadlines()
    assert deadlines.next_due == math.inf and deadlines.pop_due(T0) == []
    deadlines.set("b", T0 + 20)
    deadlines.set("a", T0 + 10)
    assert deadlines.next_due == T0 + 10
    deadlines.discard("a")  # a stale entry may keep next_due early: popping skips it and moves on
    assert deadlines.next_due == T0 + 10 and deadlines.pop_due(T0 + 15) == []
    assert deadlines.next_due == T0 + 20
    assert deadlines.pop_earliest() == "b" and deadlines.next_due == math.inf


def test_deadlines_rebuild_their_heap_when_stale_entries_pile_up() -> None:
    deadlines = Deadlines()
    for i in range(65):
        deadlines.set("same", T0 + i)  # one name moved 65 times: the 65th entry makes 64 stale ones too many
    assert len(deadlines) == 1 and deadlines._heap == [(T0 + 64, "same")] and deadlines.next_due == T0 + 64
    deadlines.set("same", T0 + 70)
    assert deadlines.next_due == T0 + 64  # the stale entry still surfaces first ...
    assert deadlines.pop_due(T0 + 69) == [] and deadlines.next_due == T0 + 70  # ... and is skipped
    assert deadlines.pop_due(T0 + 70) == ["same"]


def test_settled_holds_leave_the_lapse_heap_compact() -> None:
    store = MemoryCounterStore()
    assert store.init("k", 0, expire_at=None)
    for i in range(200):
        assert store.reserve(f"h{i}", [ReserveItem("k", 1, 1000)], ttl_s=60, now=T0 + i * 0.01).ok
    for i in range(190):
        assert store.commit(f"h{i}", {"k": 1}, now=T0 + 3).ok
    counter = store._counters["k"]
    assert len(counter.holds) == 10 and len(counter.lapses) <= 4 * 64  # compacted along the way
    assert store.read(["k"], now=T0 + 3) == {"k": CounterState(190, 10)}
    assert store.read(["k"], now=T0 + 70) == {"k": CounterState(190, 0)}  # the other ten lapsed
    assert counter.lapses == []


def test_a_lapsed_hold_id_reserved_again_keeps_its_new_lapse_time() -> None:
    store = MemoryCounterStore()
    assert store.init("k", 0, expire_at=None)
    assert store.reserve("h", [ReserveItem("k", 5, 100)], ttl_s=10, now=T0).ok
    again = store.reserve("h", [ReserveItem("k", 7, 100)], ttl_s=10, now=T0 + 11)  # the first one lapsed
    assert again.ok and not again.already
    assert store.read(["k"], now=T0 + 15) == {"k": CounterState(0, 7)}  # its old lapse time removes nothing
    assert store.read(["k"], now=T0 + 21) == {"k": CounterState(0, 0)}


def test_hold_records_are_not_tracked_by_the_garbage_collector() -> None:
    store = MemoryCounterStore()
    assert store.init("a", 0, expire_at=None) and store.init("b", 0, expire_at=None)
    assert store.reserve("h", [ReserveItem("a", 1), ReserveItem("b", 2)], ttl_s=60, now=T0).ok
    assert store.commit("s", {"a": 1}, now=T0).ok
    gc.collect()
    gc.collect()  # a tuple is untracked once what it holds is: one level per collection
    assert not gc.is_tracked(store._holds["h"]) and "s" not in store._holds
    assert not gc.is_tracked(store._settled.deadlines) and "s" in store._settled.deadlines
    assert not gc.is_tracked(store._counters["a"].holds)


def test_settled_markers_go_with_their_bucket_and_replace_the_hold_record() -> None:
    store = MemoryCounterStore(settled_ttl_s=512)  # buckets of 2 s
    assert store.init("k", 0, expire_at=None)
    assert store.reserve("h", [ReserveItem("k", 5, 10)], ttl_s=30, now=T0).ok
    assert store.commit("h", {"k": 4}, now=T0 + 1).ok
    assert "h" not in store._holds and store._settled.deadlines == {"h": T0 + 1 + 542}
    assert store.reserve("h", [ReserveItem("k", 5, 10)], ttl_s=30, now=T0 + 2).status == "settled"
    assert store.commit("x", {"k": 1}, now=T0 + 543).ok  # h is due now, though its bucket may not have ended
    assert not store.commit("h", {"k": 1}, now=T0 + 543).already  # marked again, in a later bucket ...
    assert store.read(["k"], now=T0 + 1500) == {"k": CounterState(6, 0)}
    assert store._settled.deadlines == {} and store._settled._buckets == {}  # ... and both buckets went whole


def test_max_holds_evicts_settled_markers_before_live_holds() -> None:
    store = MemoryCounterStore(max_holds=3)
    assert store.init("k", 0, expire_at=None)
    assert store.reserve("live", [ReserveItem("k", 1)], ttl_s=60, now=T0).ok
    for i, hold_id in enumerate(("s1", "s2", "s3")):
        assert store.commit(hold_id, {"k": 1}, now=T0 + i).ok
    assert [store.commit(h, {"k": 1}, now=T0 + 3).already for h in ("s3", "s2", "s1")] == [True, True, False]
    assert store.read(["k"], now=T0 + 3) == {"k": CounterState(4, 1)}  # the live hold kept its reservation
    assert store.commit("live", {"k": 1}, now=T0 + 4).ok  # its record was still there: the hold came off
    assert store.read(["k"], now=T0 + 4) == {"k": CounterState(5, 0)}


def test_memory_markers_default_to_fifteen_minutes_past_the_hold() -> None:
    store = MemoryCounterStore()
    assert store.init("k", 0, expire_at=None)
    assert store.reserve("h", [ReserveItem("k", 1)], ttl_s=60, now=T0).ok
    assert store.commit("h", {"k": 1}, now=T0).ok
    assert store.commit("h", {"k": 1}, now=T0 + 959).already
    assert not store.commit("h", {"k": 1}, now=T0 + 960).already


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ttl_s": -1.0}, "ttl_s must be positive"),
        ({"ttl_s": math.inf}, "ttl_s must be a finite number"),
        ({"now": math.nan}, "now must be a finite number"),
    ],
)
def test_reserve_checks_float_times_quickly_and_still_refuses_bad_ones(kwargs: dict[str, float], error: str) -> None:
    store = MemoryCounterStore()
    assert store.init("k", 0, expire_at=None)
    with pytest.raises(ValueError, match=error):
        store.reserve("h", [ReserveItem("k", 1)], **{"ttl_s": 60.0, "now": T0, **kwargs})
    assert store.read(["k"], now=T0) == {"k": CounterState(0, 0)}
