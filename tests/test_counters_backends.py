"""What only one backend has: memory:// bounds and clock, Redis key layout, TTLs, scripts and failures."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from spendgate.counters import (
    CounterState,
    CounterUnavailable,
    MemoryCounterStore,
    RedisCounterStore,
    ReserveItem,
    open_counters,
)
from spendgate.counters._deadlines import Deadlines
from test_counters_support import REDIS_URL, T0, drop_prefix, new_prefix, open_backend, redis_or_skip

# -- memory:// --------------------------------------------------------------------------------------


def test_memory_keys_expire_by_the_latest_now_seen() -> None:
    store = MemoryCounterStore()
    assert store.init("day", 5, expire_at=T0 + 100)
    assert store.reserve("h", [ReserveItem("day", 1, 10, expire_at=T0 + 200)], ttl_s=30, now=T0).ok
    assert store.read(["day"], now=T0 + 199.9)["day"] == CounterState(5, 0)
    assert not store.read(["day"], now=T0 + 200)["day"].initialized  # the reserve moved its expiry
    released = store.release("h", now=T0 + 20)  # its key is gone: the hold has nothing left to free
    assert released.ok and released.hold_found
    assert store.init("day", 0, expire_at=None)  # a new window starts from the ledger again


def test_memory_bounds_keys_and_evicts_the_oldest_holds() -> None:
    store = MemoryCounterStore(max_keys=2, max_holds=2)
    assert store.init("a", 0, expire_at=T0 + 10)
    assert store.rate_acquire("r", 1, 5, 60, now=T0).allowed
    with pytest.raises(CounterUnavailable, match="max_keys=2"):
        store.init("b", 0, expire_at=None)
    with pytest.raises(CounterUnavailable, match="full"):
        store.concurrency_acquire("c", "lease", 1, ttl_s=5, now=T0)
    assert store.read(["a"], now=T0 + 61) == {"a": CounterState(0, 0, initialized=False)}  # both expired
    assert store.init("b", 0, expire_at=None)
    for hold_id in ("h1", "h2", "h3"):
        assert store.commit(hold_id, {"b": 1}, now=T0 + 62).ok
    assert not store.commit("h1", {"b": 1}, now=T0 + 63).already  # evicted: the bound wins over the marker
    assert store.commit("h3", {"b": 1}, now=T0 + 63).already
    assert store.read(["b"], now=T0 + 63)["b"].spent == 4


def test_memory_forgets_settled_markers_after_their_ttl() -> None:
    store = MemoryCounterStore(settled_ttl_s=100)
    assert store.init("k", 0, expire_at=None)
    assert store.reserve("h", [ReserveItem("k", 5, 10)], ttl_s=30, now=T0).ok
    assert store.commit("h", {"k": 5}, now=T0 + 1).ok
    assert store.commit("h", {"k": 5}, now=T0 + 130).already  # kept for hold TTL + settled TTL
    assert not store.commit("h", {"k": 5}, now=T0 + 131.1).already
    assert store.read(["k"], now=T0 + 132)["k"].spent == 10


def test_memory_store_garbage_collects_windows_and_leases() -> None:
    store = MemoryCounterStore(max_keys=2)
    assert store.rate_acquire("r1", 1, 5, 60, now=T0).allowed
    assert not store.rate_acquire("r2", 6, 5, 60, now=T0).allowed  # an empty window is dropped too
    assert not store.concurrency_acquire("c1", "a", 0, ttl_s=10, now=T0)
    assert store.concurrency_acquire("c2", "a", 1, ttl_s=10, now=T0 + 1)  # r2 and c1 are gone
    with pytest.raises(CounterUnavailable):
        store.concurrency_acquire("c3", "a", 1, ttl_s=10, now=T0 + 1)
    store.rate_adjust("r1", 5, 60, now=T0 + 2)  # r1 now lasts until T0+62
    assert store.concurrency_acquire("c3", "a", 1, ttl_s=10, now=T0 + 61)  # c2 lapsed at T0+11
    assert store.rate_acquire("r1", 0, 10, 60, now=T0 + 61).used == 5


def test_memory_store_rejects_bad_settings_and_use_after_close() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryCounterStore(max_keys=0)
    store = MemoryCounterStore()
    assert store.ping()
    assert "max_keys" in repr(store)
    store.close()
    assert not store.ping()
    with pytest.raises(CounterUnavailable, match="closed"):
        store.read(["k"], now=T0)


def test_deadlines_pop_due_in_order_and_compact() -> None:
    deadlines = Deadlines()
    for i in range(100):
        deadlines.set(f"n{i}", float(i))
    for i in range(100):
        deadlines.set(f"n{i}", float(1000 + i))  # moved: the old heap entries are stale
    for i in range(0, 100, 2):
        deadlines.discard(f"n{i}")
    assert len(deadlines) == 50 and "n1" in deadlines and "n0" not in deadlines
    assert deadlines.pop_due(999.0) == []
    assert deadlines.pop_due(1003.0) == ["n1", "n3"]
    assert deadlines.pop_earliest() == "n5"
    while deadlines.pop_earliest() is not None:
        pass
    assert len(deadlines) == 0 and deadlines.pop_due(math.inf) == []


# -- redis:// ----------------------------------------------------------------------------------------


@pytest.fixture
def redis_store() -> Iterator[tuple[RedisCounterStore, redis.Redis]]:
    raw = redis_or_skip()
    with open_backend("redis") as store:
        assert isinstance(store, RedisCounterStore)
        yield store, raw
    raw.close()


def test_redis_keys_share_one_cluster_slot(redis_store: tuple[RedisCounterStore, redis.Redis]) -> None:
    store, raw = redis_store
    assert store.init("lim_a|day:2026-03-10@UTC", 0, expire_at=None)
    assert store.init("lim_b|month:2026-03@Europe/Paris", 0, expire_at=None)
    items = [ReserveItem("lim_a|day:2026-03-10@UTC", 5, 10), ReserveItem("lim_b|month:2026-03@Europe/Paris", 5)]
    assert store.reserve("h{odd}", items, ttl_s=60, now=T0).ok
    assert store.rate_acquire("rpm:{user}", 1, 10, 60, now=T0).allowed
    assert store.concurrency_acquire("conc", "lease", 1, ttl_s=60, now=T0)
    keys = list(raw.scan_iter(match=f"{store.key_prefix}*"))
    assert len(keys) == 8  # 2 counters + 2 hold indexes + hold record + window + amounts + leases
    assert {key_slot(key.encode()) for key in keys} == {key_slot(b"{sg}")}


def test_redis_sets_key_expiry_from_expire_at(redis_store: tuple[RedisCounterStore, redis.Redis]) -> None:
    store, raw = redis_store
    expire_at = time.time() + 3600
    assert store.init("day", 0, expire_at=expire_at)
    assert raw.pttl(f"{store.key_prefix}c:day") == pytest.approx(3_600_000, abs=5000)
    later = time.time() + 7200
    assert store.reserve("h", [ReserveItem("day", 1, 10, expire_at=later)], ttl_s=30, now=T0).ok
    for kind in ("c", "x"):
        assert raw.pttl(f"{store.key_prefix}{kind}:day") == pytest.approx(7_200_000, abs=5000)
    hold_ttl = raw.pttl(f"{store.key_prefix}h:h")
    assert hold_ttl == pytest.approx((30 + 86_400) * 1000, abs=5000)  # hold TTL + settled TTL
    assert store.rate_acquire("w", 1, 10, 60, now=T0).allowed
    assert 60_000 < raw.pttl(f"{store.key_prefix}w:w") <= 61_000


def test_redis_rebuilt_key_keeps_no_holds_of_its_lost_life(redis_store: tuple[RedisCounterStore, redis.Redis]) -> None:
    store, raw = redis_store
    assert store.init("k", 10, expire_at=None)
    assert store.reserve("before", [ReserveItem("k", 50, 100)], ttl_s=60, now=T0).ok
    raw.delete(f"{store.key_prefix}c:k")  # Redis lost the counter (failover, eviction)
    assert store.reserve("after", [ReserveItem("k", 1, 100)], ttl_s=60, now=T0).needs_init == ("k",)
    assert store.init("k", 10, expire_at=None)  # rebuilt from the ledger
    assert raw.exists(f"{store.key_prefix}x:k") == 0
    assert store.reserve("after", [ReserveItem("k", 30, 100)], ttl_s=60, now=T0).ok
    assert store.commit("before", {"k": 40}, now=T0 + 1).ok
    assert store.read(["k"], now=T0 + 1)["k"] == CounterState(50, 30)


def test_redis_reloads_scripts_after_noscript(redis_store: tuple[RedisCounterStore, redis.Redis]) -> None:
    store, _ = redis_store
    script = store._scripts["read"]
    real_sha = script.sha
    script.sha = "0" * 40  # what the server answers after a restart or SCRIPT FLUSH: NOSCRIPT
    assert store.read(["k"], now=T0)["k"] == CounterState(0, 0, initialized=False)
    assert script.sha == real_sha


def test_redis_works_with_a_bytes_client() -> None:
    redis_or_skip().close()
    prefix = new_prefix()
    client = redis.Redis.from_url(REDIS_URL)  # decode_responses=False: replies are bytes
    store = RedisCounterStore(client, prefix=prefix, hash_tag="t1")
    try:
        assert store.init("k", 7, expire_at=None)
        assert store.reserve("h", [ReserveItem("k", 3, 10)], ttl_s=60, now=T0).expires_at == T0 + 60
        assert store.read(["k"], now=T0)["k"] == CounterState(7, 3)
        assert not store.rate_acquire("r", 5, 4, 60, now=T0).allowed
        assert store.key_prefix == f"{prefix}{{t1}}:" and "t1" in repr(store)
    finally:
        drop_prefix(client, prefix)
        store.close()


def test_redis_driver_errors_become_counter_unavailable(redis_store: tuple[RedisCounterStore, redis.Redis]) -> None:
    store, raw = redis_store
    raw.set(f"{store.key_prefix}c:wrong", "a string, not a hash")
    with pytest.raises(CounterUnavailable, match="reserve failed") as raised:
        store.reserve("h", [ReserveItem("wrong", 1, 10)], ttl_s=60, now=T0)
    assert isinstance(raised.value.__cause__, redis.ResponseError)
    raw.set(f"{store.key_prefix}l:wrong", "not a zset")
    with pytest.raises(CounterUnavailable, match="concurrency_release"):
        store.concurrency_release("wrong", "lease")


def test_unreachable_redis_raises_counter_unavailable() -> None:
    store = open_counters("redis://127.0.0.1:1/0?socket_connect_timeout=0.2")
    assert not store.ping()
    with pytest.raises(CounterUnavailable, match="redis counter store: reserve failed"):
        store.reserve("h", [ReserveItem("k", 1, 10)], ttl_s=60, now=T0)
    with pytest.raises(CounterUnavailable):
        store.init("k", 0, expire_at=None)
    store.close()


def test_redis_store_rejects_bad_key_parts() -> None:
    client = redis.Redis(host="127.0.0.1", port=1)
    with pytest.raises(ValueError, match="hash_tag"):
        RedisCounterStore(client, hash_tag="")
    with pytest.raises(ValueError, match="prefix"):
        RedisCounterStore(client, prefix="a{b}")
    with pytest.raises(ValueError, match="settled_ttl_s"):
        RedisCounterStore(client, settled_ttl_s=-1)
    client.close()
