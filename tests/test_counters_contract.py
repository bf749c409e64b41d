"""The CounterStore contract: the same assertions against memory:// and the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spendgate.counters import (
    INT64_MAX,
    BaseCounterStore,
    CounterOverflow,
    CounterState,
    CounterStatus,
    CounterUnavailable,
    Denial,
    ReserveItem,
    with_init,
)
from test_counters_support import BACKENDS, T0, open_backend


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[BaseCounterStore]:
    with open_backend(request.param) as opened:
        yield opened


def ready(store: BaseCounterStore, **spent: int) -> None:
    """Initialize each key with its spend (as a cold start from the ledger would)."""
    for key, value in spent.items():
        assert store.init(key, value, expire_at=None)


def state(store: BaseCounterStore, key: str, now: float = T0) -> tuple[int, int]:
    found = store.read([key], now=now)[key]
    assert found.initialized
    return found.spent, found.reserved


# -- reservations ------------------------------------------------------------------------------------


def test_reserve_is_all_or_nothing_across_keys(store: BaseCounterStore) -> None:
    ready(store, team=0, user=40, track=0)
    items = [ReserveItem("team", 30, 1000), ReserveItem("user", 30, 50), ReserveItem("track", 30)]
    refused = store.reserve("h1", items, ttl_s=60, now=T0)
    assert refused.status is CounterStatus.DENIED and not refused.ok
    assert refused.denied == Denial("user", 30, 50, 40, 0)
    assert refused.denied.available == 10
    assert store.read(["team", "user", "track"], now=T0) == {
        "team": CounterState(0, 0),
        "user": CounterState(40, 0),
        "track": CounterState(0, 0),
    }
    fits = [ReserveItem("team", 10, 1000), ReserveItem("user", 10, 50), ReserveItem("track", 10)]
    held = store.reserve("h2", fits, ttl_s=60, now=T0)
    assert held.ok and held.expires_at == T0 + 60 and not held.already
    assert [state(store, key) for key in ("team", "user", "track")] == [(0, 10), (40, 10), (0, 10)]


def test_caps_hold_exactly_at_the_boundary(store: BaseCounterStore) -> None:
    ready(store, k=60)
    assert store.reserve("a", [ReserveItem("k", 40, 100)], ttl_s=60, now=T0).ok  # 60 + 40 == cap
    over = store.reserve("b", [ReserveItem("k", 1, 100)], ttl_s=60, now=T0)
    assert over.denied == Denial("k", 1, 100, 60, 40)
    assert over.denied.available == 0
    assert store.reserve("c", [ReserveItem("k", 0, 100)], ttl_s=60, now=T0).ok  # nothing more still fits
    assert store.commit("a", {"k": 40}, now=T0 + 1).ok
    assert state(store, "k") == (100, 0)
    assert not store.reserve("d", [ReserveItem("k", 1, 100)], ttl_s=60, now=T0 + 2).ok


def test_uncapped_items_always_succeed(store: BaseCounterStore) -> None:
    ready(store, soft=10**15)
    assert store.reserve("h", [ReserveItem("soft", 10**15)], ttl_s=60, now=T0).ok
    assert state(store, "soft") == (10**15, 10**15)


def test_large_values_are_compared_exactly(store: BaseCounterStore) -> None:
    cap = 10**18 + 5  # far beyond 2**53: a double could not tell these apart
    ready(store, big=10**18)
    assert store.reserve("a", [ReserveItem("big", 5, cap)], ttl_s=60, now=T0).ok
    assert store.reserve("b", [ReserveItem("big", 1, cap)], ttl_s=60, now=T0).denied == Denial("big", 1, cap, 10**18, 5)
    result = store.commit("a", {"big": 3}, now=T0)
    assert result.ok and result.spent == {"big": 10**18 + 3}  # the spend after, exact
    assert state(store, "big") == (10**18 + 3, 0)


def test_commit_reports_the_spend_after_it_for_the_keys_it_added_to(store: BaseCounterStore) -> None:
    ready(store, a=10, b=20, c=30)
    assert store.reserve("h", [ReserveItem("a", 5), ReserveItem("b", 5)], ttl_s=60, now=T0).ok
    result = store.commit("h", {"a": 4, "b": 0, "c": 2}, now=T0)
    assert result.spent == {"a": 14, "c": 32}  # b got nothing added: not reported
    assert store.commit("h", {"a": 4}, now=T0).spent == {}  # already settled: nothing added


def test_int64_overflow_is_refused_without_change(store: BaseCounterStore) -> None:
    ready(store, edge=INT64_MAX - 10)
    assert store.reserve("a", [ReserveItem("edge", 10)], ttl_s=60, now=T0).ok  # exactly INT64_MAX
    with pytest.raises(CounterOverflow, match="edge"):
        store.reserve("b", [ReserveItem("edge", 1)], ttl_s=60, now=T0)
    assert state(store, "edge") == (INT64_MAX - 10, 10)
    with pytest.raises(CounterOverflow) as raised:
        store.commit("c", {"edge": 11}, now=T0)
    assert (raised.value.key, raised.value.amount, raised.value.current) == ("edge", 11, INT64_MAX - 10)
    assert isinstance(raised.value, OverflowError)
    assert store.commit("a", {"edge": 10}, now=T0).ok  # the same hold, settled in range
    assert state(store, "edge") == (INT64_MAX, 0)


def test_reserve_is_idempotent_by_hold_id(store: BaseCounterStore) -> None:
    ready(store, k=0)
    first = store.reserve("h", [ReserveItem("k", 25, 100)], ttl_s=60, now=T0)
    again = store.reserve("h", [ReserveItem("k", 25, 100)], ttl_s=60, now=T0 + 5)
    assert first.ok and again.ok and again.already and not first.already
    assert again.expires_at == first.expires_at == T0 + 60
    assert state(store, "k") == (0, 25)
    assert store.commit("h", {"k": 20}, now=T0 + 6).ok
    after = store.reserve("h", [ReserveItem("k", 25, 100)], ttl_s=60, now=T0 + 7)
    assert after.status is CounterStatus.SETTLED and not after.ok
    assert state(store, "k") == (20, 0)


def test_a_lapsed_hold_id_can_hold_again_once(store: BaseCounterStore) -> None:
    ready(store, k=0, old=0)
    assert store.reserve("h", [ReserveItem("k", 30, 100), ReserveItem("old", 5)], ttl_s=10, now=T0).ok
    renewed = store.reserve("h", [ReserveItem("k", 40, 100)], ttl_s=10, now=T0 + 10)
    assert renewed.ok and not renewed.already and renewed.expires_at == T0 + 20
    assert state(store, "k", T0 + 10) == (0, 40)
    assert state(store, "old", T0 + 10) == (0, 0)
    assert store.commit("h", {"k": 35}, now=T0 + 11).hold_found
    assert (state(store, "k", T0 + 11), state(store, "old", T0 + 11)) == ((35, 0), (0, 0))


# -- hold expiry ---------------------------------------------------------------------------------------


def test_expired_holds_free_their_reservation(store: BaseCounterStore) -> None:
    ready(store, k=0, other=0)
    assert store.reserve("old", [ReserveItem("k", 70, 100), ReserveItem("other", 5)], ttl_s=30, now=T0).ok
    assert state(store, "k", T0 + 29.999) == (0, 70)
    assert not store.reserve("new", [ReserveItem("k", 70, 100)], ttl_s=30, now=T0 + 29.999).ok
    assert state(store, "k", T0 + 30) == (0, 0)  # a hold lapses at exactly now + ttl
    assert store.reserve("new", [ReserveItem("k", 70, 100)], ttl_s=30, now=T0 + 30).ok
    assert state(store, "other", T0 + 30) == (0, 0)  # read drops lapsed holds on every key it reads
    late = store.commit("old", {"k": 50, "other": 2}, now=T0 + 40)  # the call happened: spend counts
    assert late.ok and not late.hold_found and not late.already
    assert state(store, "k", T0 + 40) == (50, 70)  # the new hold is untouched
    assert store.commit("old", {"k": 50, "other": 2}, now=T0 + 41).already
    assert state(store, "k", T0 + 41) == (50, 70)
    assert state(store, "other", T0 + 41) == (2, 0)


def test_commit_of_a_lapsed_hold_before_any_read(store: BaseCounterStore) -> None:
    ready(store, k=0)
    assert store.reserve("h", [ReserveItem("k", 80, 100)], ttl_s=30, now=T0).ok
    result = store.commit("h", {"k": 10}, now=T0 + 31)
    assert result.ok and not result.hold_found
    assert state(store, "k", T0 + 31) == (10, 0)  # its reservation went away with it, exactly once


# -- commit and release ----------------------------------------------------------------------------


def test_commit_replaces_the_reservation_with_the_actual(store: BaseCounterStore) -> None:
    ready(store, a=5, b=0, extra=0)
    assert store.reserve("h", [ReserveItem("a", 100, 1000), ReserveItem("b", 100)], ttl_s=60, now=T0).ok
    done = store.commit("h", {"a": 70, "extra": 3}, now=T0 + 1)
    assert done.ok and done.hold_found and not done.already and done.hold_id == "h"
    assert [state(store, key) for key in ("a", "b", "extra")] == [(75, 0), (0, 0), (3, 0)]
    repeat = store.commit("h", {"a": 70, "extra": 3}, now=T0 + 2)
    assert repeat.ok and repeat.already and not repeat.hold_found
    assert store.release("h", now=T0 + 3).already
    assert [state(store, key) for key in ("a", "b", "extra")] == [(75, 0), (0, 0), (3, 0)]


def test_release_drops_the_hold_and_charges_partial_use(store: BaseCounterStore) -> None:
    ready(store, a=0, b=0)
    assert store.reserve("failed", [ReserveItem("a", 100, 500)], ttl_s=60, now=T0).ok
    assert store.reserve("partial", [ReserveItem("b", 100, 500)], ttl_s=60, now=T0).ok
    gone = store.release("failed", now=T0 + 1)
    assert gone.ok and gone.hold_found
    assert store.release("partial", {"b": 30}, now=T0 + 1).hold_found
    assert state(store, "a") == (0, 0)
    assert state(store, "b") == (30, 0)
    assert store.release("partial", {"b": 30}, now=T0 + 2).already
    assert store.commit("failed", {"a": 99}, now=T0 + 2).already
    assert (state(store, "a"), state(store, "b")) == ((0, 0), (30, 0))


def test_commit_without_a_hold_records_spend_once(store: BaseCounterStore) -> None:
    ready(store, k=0)
    first = store.commit("event-1", {"k": 42}, now=T0)
    assert first.ok and not first.hold_found and not first.already
    assert store.commit("event-1", {"k": 42}, now=T0 + 600).already  # within both defaults (memory: 15 min)
    assert state(store, "k") == (42, 0)


# -- cold start: needs_init, init, with_init ---------------------------------------------------------


def test_reserve_on_uninitialized_keys_changes_nothing(store: BaseCounterStore) -> None:
    ready(store, known=0)
    items = [ReserveItem("known", 10, 100), ReserveItem("cold1", 10, 100), ReserveItem("cold2", 10)]
    result = store.reserve("h", items, ttl_s=60, now=T0)
    assert result.status is CounterStatus.NEEDS_INIT
    assert result.needs_init == ("cold1", "cold2")
    assert store.read(["known", "cold1"], now=T0) == {
        "known": CounterState(0, 0),
        "cold1": CounterState(0, 0, initialized=False),
    }
    assert store.init("cold1", 500, expire_at=None)
    assert not store.init("cold1", 7, expire_at=None)  # SETNX: the first initializer wins
    assert state(store, "cold1") == (500, 0)


def test_with_init_loads_each_missing_key_once_then_succeeds(store: BaseCounterStore) -> None:
    ready(store, known=0)
    loaded: list[str] = []
    ledger = {"cold1": 90, "cold2": 7}

    def load(key: str) -> int:
        loaded.append(key)
        return ledger[key]

    items = [ReserveItem("known", 10, 100), ReserveItem("cold1", 10, 100), ReserveItem("cold2", 10)]
    result = with_init(store, lambda: store.reserve("h", items, ttl_s=60, now=T0), load)
    assert result.ok
    assert loaded == ["cold1", "cold2"]
    assert [state(store, key) for key in ("known", "cold1", "cold2")] == [(0, 10), (90, 10), (7, 10)]
    refused = with_init(store, lambda: store.reserve("h2", [ReserveItem("cold1", 1, 100)], ttl_s=60, now=T0), load)
    assert refused.status is CounterStatus.DENIED
    assert loaded == ["cold1", "cold2"]  # initialized keys are never loaded again


def test_commit_on_an_uninitialized_key_waits_for_init(store: BaseCounterStore) -> None:
    ready(store, a=0)
    assert store.reserve("h", [ReserveItem("a", 50, 100)], ttl_s=60, now=T0).ok
    pending = store.commit("h", {"a": 5, "cold": 3, "zero": 0}, now=T0 + 1)
    assert pending.status is CounterStatus.NEEDS_INIT and pending.needs_init == ("cold",)
    assert state(store, "a") == (0, 50)  # the hold is still in place, nothing was added
    settle = lambda: store.commit("h", {"a": 5, "cold": 3, "zero": 0}, now=T0 + 1)  # noqa: E731
    done = with_init(store, settle, lambda key: {"cold": 100}[key], attempts=2)
    assert done.ok and done.hold_found
    assert state(store, "a") == (5, 0)
    assert state(store, "cold") == (103, 0)
    assert not store.read(["zero"], now=T0)["zero"].initialized  # a zero amount needs no key


def test_with_init_gives_up_when_keys_do_not_stick(store: BaseCounterStore) -> None:
    calls: list[str] = []

    def load(key: str) -> int:
        calls.append(key)
        return 0

    op = lambda: store.reserve("h", [ReserveItem("gone", 1, 10)], ttl_s=60, now=T0)  # noqa: E731
    with pytest.raises(CounterUnavailable, match="expire_at"):
        with_init(store, op, load, expire_at={"gone": 1.0}, attempts=2)  # expired in 1970
    assert calls == ["gone"]
    with pytest.raises(ValueError, match="attempts"):
        with_init(store, op, load, attempts=0)


# -- reconciliation and reads ------------------------------------------------------------------------


def test_compare_and_set_corrects_only_an_unchanged_counter(store: BaseCounterStore) -> None:
    ready(store, k=100)
    assert not store.compare_and_set("k", 99, 5)
    assert state(store, "k") == (100, 0)
    assert store.compare_and_set("k", 100, 5)
    assert state(store, "k") == (5, 0)
    assert not store.compare_and_set("missing", 0, 1)
    assert not store.read(["missing"], now=T0)["missing"].initialized


def test_read_of_nothing_and_duplicates(store: BaseCounterStore) -> None:
    ready(store, k=3)
    assert store.read([], now=T0) == {}
    assert store.read(["k", "k"], now=T0) == {"k": CounterState(3, 0)}
    assert CounterState(3, 4).total == 7


def test_keys_expire_at_their_expire_at(store: BaseCounterStore) -> None:
    store.read(["any"], now=T0)  # the memory store's clock follows the calls' `now`
    assert store.init("past", 10, expire_at=1.0)  # 1970: gone at once (Redis uses its own clock)
    assert not store.read(["past"], now=T0)["past"].initialized
    assert store.init("past", 20, expire_at=T0 + 86_400)
    assert state(store, "past") == (20, 0)


# -- rate limits -----------------------------------------------------------------------------------


def test_sliding_window_is_exact_at_the_edge(store: BaseCounterStore) -> None:
    for offset in (0.0, 10.0, 20.0):
        assert store.rate_acquire("rpm", 1, 3, 60, now=T0 + offset).allowed
    still = store.rate_acquire("rpm", 1, 3, 60, now=T0 + 59.9)  # the first request still counts
    assert not still.allowed and still.used == 3 and still.limit == 3 and still.entry_id is None
    assert still.retry_after == pytest.approx(0.1, abs=1e-6)
    later = store.rate_acquire("rpm", 1, 3, 60, now=T0 + 60.1)  # it slid out of the window
    assert later.allowed and later.used == 3 and later.retry_after is None
    assert not store.rate_acquire("rpm", 1, 3, 60, now=T0 + 60.2).allowed


def test_window_edge_and_retry_after_over_several_entries(store: BaseCounterStore) -> None:
    for offset in (0.0, 10.0, 20.0):
        assert store.rate_acquire("rpm", 1, 3, 60, now=T0 + offset).allowed
    two = store.rate_acquire("rpm", 2, 3, 60, now=T0 + 30)  # needs the entries at T0 and T0+10 gone
    assert not two.allowed and two.retry_after == pytest.approx(40.0)
    assert store.rate_acquire("rpm", 1, 3, 60, now=T0 + 60).allowed  # the window is (now - 60, now]


def test_tokens_are_reserved_then_adjusted(store: BaseCounterStore) -> None:
    first = store.rate_acquire("tpm", 1000, 1500, 60, now=T0)
    assert first.allowed and first.used == 1000 and first.entry_id
    refused = store.rate_acquire("tpm", 600, 1500, 60, now=T0 + 1)
    assert not refused.allowed and refused.used == 1000
    assert refused.retry_after == pytest.approx(59.0)
    store.rate_adjust("tpm", -300, 60, now=T0 + 2, entry_id=first.entry_id)  # the call used 700
    second = store.rate_acquire("tpm", 600, 1500, 60, now=T0 + 3)
    assert second.allowed and second.used == 1300
    store.rate_adjust("tpm", 400, 60, now=T0 + 4, entry_id=second.entry_id)  # it used 1000: over, but it happened
    blocked = store.rate_acquire("tpm", 1, 1500, 60, now=T0 + 5)
    assert not blocked.allowed and blocked.used == 1700
    assert blocked.retry_after == pytest.approx(55.0)  # the 700 at T0 must slide out first
    assert store.rate_acquire("tpm", 1, 1500, 60, now=T0 + 60.5).used == 1001


def test_rate_adjust_without_an_entry_takes_from_the_newest(store: BaseCounterStore) -> None:
    assert store.rate_acquire("w", 500, 10_000, 60, now=T0).allowed
    assert store.rate_acquire("w", 400, 10_000, 60, now=T0 + 10).allowed
    store.rate_adjust("w", -600, 60, now=T0 + 11)  # 400 from the newest, 200 from the older
    assert store.rate_acquire("w", 0, 10_000, 60, now=T0 + 12).used == 300
    assert store.rate_acquire("w", 0, 10_000, 60, now=T0 + 61).used == 0  # the 300 slid out with its entry
    store.rate_adjust("w", 250, 60, now=T0 + 62)  # no entry named: a new one at `now`
    assert store.rate_acquire("w", 0, 10_000, 60, now=T0 + 121.9).used == 250
    assert store.rate_acquire("w", 0, 10_000, 60, now=T0 + 122.1).used == 0
    assert store.rate_acquire("w", 70, 10_000, 60, now=T0 + 123).allowed
    store.rate_adjust("w", -1000, 60, now=T0 + 124)  # more than the window holds: it empties
    assert store.rate_acquire("w", 10_000, 10_000, 60, now=T0 + 125).allowed


def test_rate_adjust_of_an_entry_that_slid_out(store: BaseCounterStore) -> None:
    gone = store.rate_acquire("w", 100, 1000, 60, now=T0)
    store.rate_adjust("w", -50, 60, now=T0 + 70, entry_id=gone.entry_id)  # nothing left to correct
    assert store.rate_acquire("w", 0, 1000, 60, now=T0 + 70).used == 0
    store.rate_adjust("w", 30, 60, now=T0 + 71, entry_id=gone.entry_id)  # more was used: counted from now
    assert store.rate_acquire("w", 0, 1000, 60, now=T0 + 72).used == 30
    store.rate_adjust("w", 0, 60, now=T0 + 72)  # no-op
    entry = store.rate_acquire("w", 10, 1000, 60, now=T0 + 73)
    store.rate_adjust("w", -10, 60, now=T0 + 74, entry_id=entry.entry_id)  # down to zero: removed
    assert store.rate_acquire("w", 0, 1000, 60, now=T0 + 75).used == 30


def test_an_amount_over_the_limit_never_fits(store: BaseCounterStore) -> None:
    result = store.rate_acquire("w", 11, 10, 60, now=T0)
    assert not result.allowed and result.retry_after is None and result.used == 0


# -- concurrency leases ------------------------------------------------------------------------------


def test_concurrency_leases(store: BaseCounterStore) -> None:
    assert store.concurrency_acquire("c", "a", 2, ttl_s=30, now=T0)
    assert store.concurrency_acquire("c", "b", 2, ttl_s=30, now=T0 + 1)
    assert not store.concurrency_acquire("c", "x", 2, ttl_s=30, now=T0 + 2)
    assert store.concurrency_acquire("c", "a", 2, ttl_s=30, now=T0 + 3)  # renewal keeps the slot: until T0+33
    store.concurrency_release("c", "b")
    store.concurrency_release("c", "never-held")
    store.concurrency_release("never-used", "a")
    assert store.concurrency_acquire("c", "x", 2, ttl_s=30, now=T0 + 4)
    assert not store.concurrency_acquire("c", "y", 2, ttl_s=30, now=T0 + 32.9)
    assert store.concurrency_acquire("c", "y", 2, ttl_s=30, now=T0 + 33)  # a's renewed lease lapsed
    assert not store.concurrency_acquire("c", "z", 2, ttl_s=30, now=T0 + 33.5)  # x (until T0+34) and y
    assert store.concurrency_acquire("c", "z", 2, ttl_s=30, now=T0 + 34)
    assert not store.concurrency_acquire("none", "a", 0, ttl_s=30, now=T0)


def test_ping(store: BaseCounterStore) -> None:
    assert store.ping()
