"""open_counters URLs, argument checks shared by every backend, and the package surface."""

from __future__ import annotations

import pytest

from spendgate import counters
from spendgate.counters import (
    MAX_RATE_AMOUNT,
    CounterStore,
    CounterUnavailable,
    MemoryCounterStore,
    RedisCounterStore,
    ReserveItem,
    open_counters,
)
from spendgate.errors import ConfigurationError, SpendgateError
from test_counters_support import REDIS_URL, T0, drop_prefix, new_prefix, redis_or_skip

# -- URLs ------------------------------------------------------------------------------------------


def test_memory_url_and_its_options() -> None:
    store = open_counters("memory://?max_keys=1&settled_ttl=0")
    assert isinstance(store, MemoryCounterStore) and isinstance(store, CounterStore)
    assert store.init("a", 0, expire_at=None)
    with pytest.raises(CounterUnavailable, match="max_keys=1"):
        store.init("b", 0, expire_at=None)
    assert store.commit("h", {"a": 1}, now=T0).ok
    assert not store.commit("h", {"a": 1}, now=T0 + 0.001).already  # settled_ttl=0: no marker kept


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("memory://?max_key=5", "unknown memory:// options"),
        ("memory://?max_keys=many", "not a valid number"),
        ("memory://?max_holds=0", "max_holds"),
        ("redis://127.0.0.1:6379/0?hash_tag={x}", "hash_tag"),
        ("redis://127.0.0.1:6379/0?settled_ttl=soon", "not a valid number"),
        ("redis://127.0.0.1:6379/0?socket_timeout=abc", "socket_timeout"),
        ("sqlite:///counters.db", "unknown counter store URL"),
        ("counters", "unknown counter store URL"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_counters(url)


def test_redis_url_options_reach_the_store_and_the_driver() -> None:
    raw = redis_or_skip()
    prefix = new_prefix()
    store = open_counters(f"{REDIS_URL}?prefix={prefix}&hash_tag=team7&socket_timeout=5&settled_ttl=60")
    try:
        assert isinstance(store, RedisCounterStore)
        assert store.key_prefix == f"{prefix}{{team7}}:"
        assert store._client.get_connection_kwargs()["socket_timeout"] == 5.0
        assert store.init("k", 1, expire_at=None)
        assert store.commit("h", {"k": 1}, now=T0).ok
        assert 59_000 < raw.pttl(f"{prefix}{{team7}}:h:h") <= 60_000
        assert raw.hget(f"{prefix}{{team7}}:c:k", "s") == "2"
    finally:
        store.close()
        drop_prefix(raw, prefix)
        raw.close()


def test_redis_url_gets_default_timeouts() -> None:
    store = open_counters("rediss://127.0.0.1:1/0")
    assert isinstance(store, RedisCounterStore)
    kwargs = store._client.get_connection_kwargs()
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2.0, 2.0)
    assert store.key_prefix == "spendgate:{sg}:"
    store.close()


def test_cluster_url_that_cannot_connect_is_unavailable() -> None:
    with pytest.raises(CounterUnavailable, match="cannot connect"):
        open_counters("redis+cluster://127.0.0.1:1?socket_connect_timeout=0.2")


# -- argument checks (shared by every backend) -----------------------------------------------------


@pytest.fixture
def store() -> MemoryCounterStore:
    store = MemoryCounterStore()
    assert store.init("k", 0, expire_at=None)
    return store


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: ReserveItem("", 1), ValueError),
        (lambda: ReserveItem("k", -1), ValueError),
        (lambda: ReserveItem("k", True), TypeError),
        (lambda: ReserveItem("k", 1.0), TypeError),  # type: ignore[arg-type]
        (lambda: ReserveItem("k", 1, cap=2**63), ValueError),
        (lambda: ReserveItem("k", 1, expire_at="tomorrow"), TypeError),  # type: ignore[arg-type]
        (lambda: ReserveItem("k", 1, expire_at=True), TypeError),
        (lambda: ReserveItem("k", 1, expire_at=float("inf")), ValueError),
    ],
)
def test_reserve_items_check_themselves(make: object, error: type[Exception]) -> None:
    assert callable(make)
    with pytest.raises(error):
        make()


def test_reserve_arguments_are_checked(store: MemoryCounterStore) -> None:
    item = ReserveItem("k", 1, 10)
    with pytest.raises(ValueError, match="at least one"):
        store.reserve("h", [], ttl_s=60, now=T0)
    with pytest.raises(ValueError, match="each key once"):
        store.reserve("h", [item, item], ttl_s=60, now=T0)
    with pytest.raises(TypeError, match="ReserveItem"):
        store.reserve("h", [("k", 1)], ttl_s=60, now=T0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="hold_id"):
        store.reserve("", [item], ttl_s=60, now=T0)
    with pytest.raises(ValueError, match="ttl_s must be positive"):
        store.reserve("h", [item], ttl_s=0, now=T0)
    with pytest.raises(ValueError, match="now must be a finite"):
        store.reserve("h", [item], ttl_s=60, now=float("nan"))
    with pytest.raises(ValueError, match="now must be a finite"):
        store.reserve("h", [item], ttl_s=60, now=True)
    assert store.read(["k"], now=T0)["k"].reserved == 0


def test_amount_arguments_are_checked(store: MemoryCounterStore) -> None:
    with pytest.raises(ValueError, match=r"actual\['k'\]"):
        store.commit("h", {"k": -5}, now=T0)
    with pytest.raises(TypeError, match="partial"):
        store.release("h", {"k": 1.5}, now=T0)  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="actual key"):
        store.commit("h", {"": 1}, now=T0)
    with pytest.raises(ValueError, match="spent"):
        store.init("n", -1, expire_at=None)
    with pytest.raises(ValueError, match="expire_at"):
        store.init("n", 1, expire_at=float("inf"))
    with pytest.raises(ValueError, match="expected"):
        store.compare_and_set("k", -1, 0)
    with pytest.raises(ValueError, match="key"):
        store.read([""], now=T0)
    assert not store.commit("h", {"k": 0}, now=T0).already  # nothing invalid was applied before


def test_rate_and_lease_arguments_are_checked(store: MemoryCounterStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.rate_acquire("r", 1, MAX_RATE_AMOUNT + 1, 60, now=T0)
    with pytest.raises(ValueError, match="window_s"):
        store.rate_acquire("r", 1, 10, 0, now=T0)
    with pytest.raises(ValueError, match="delta"):
        store.rate_adjust("r", -(MAX_RATE_AMOUNT + 1), 60, now=T0)
    with pytest.raises(ValueError, match="entry_id"):
        store.rate_adjust("r", 1, 60, now=T0, entry_id="")
    with pytest.raises(ValueError, match="lease_id"):
        store.concurrency_acquire("c", "", 1, ttl_s=5, now=T0)
    with pytest.raises(ValueError, match="lease_id"):
        store.concurrency_release("c", "")
    with pytest.raises(ValueError, match="ttl_s"):
        store.concurrency_acquire("c", "a", 1, ttl_s=-1, now=T0)
    assert store.rate_acquire("r", 10, 10, 60, now=T0).allowed  # the failed calls left no trace


# -- surface ---------------------------------------------------------------------------------------


def test_errors_derive_from_spendgate_error() -> None:
    assert issubclass(counters.CounterUnavailable, SpendgateError)
    assert issubclass(counters.CounterOverflow, SpendgateError)
    assert counters.CounterUnavailable.code == "counter_unavailable"
    assert counters.CounterOverflow.code == "counter_overflow"


def test_all_is_sorted_and_resolves() -> None:
    exported = list(counters.__all__)
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(counters, name) is not None
    with pytest.raises(AttributeError, match="nope"):
        counters.nope  # noqa: B018
