"""Contract tests of rollups and re-rating (cost adjustments), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ledger_fixtures import T0, FixedClock, make_event, raw_execute
from spendgate.errors import LedgerError
from spendgate.ledger import CostAdjustment, UsageStore


def adjust(
    event_id: str,
    old_cost: Decimal | None,
    old_version: str | None,
    new_cost: Decimal | None,
    new_version: str | None,
    reason: str = "rerate",
) -> CostAdjustment:
    return CostAdjustment(
        event_id=event_id,
        old_cost=old_cost,
        new_cost=new_cost,
        old_price_version=old_version,
        new_price_version=new_version,
        reason=reason,
    )


# -- rollups ---------------------------------------------------------------------------------------


def test_a_rollup_cell_that_would_overflow_is_refused(ledger_store: UsageStore) -> None:
    big = Decimal("5000000")
    ledger_store.record(make_event(event_id="first", cost=big))
    with pytest.raises(LedgerError, match="could not write usage events"):
        ledger_store.record(make_event(event_id="second", cost=big))  # same hour, key: 10 M > 9.2 M
    assert ledger_store.get("second") is None
    assert ledger_store.summary().cost == big
    assert ledger_store.check_rollups() == []
    with pytest.raises(LedgerError, match="could not write usage events"):
        ledger_store.record_many([make_event(cost=big, user_id="new"), make_event(cost=big, user_id="new")])
    assert ledger_store.count() == 1


def test_rollups_stay_consistent_after_mixed_inserts(ledger_store: UsageStore) -> None:
    rng = random.Random(3)
    for batch in range(5):
        events = [
            make_event(
                timestamp=T0 + timedelta(minutes=rng.randrange(0, 3000)),
                user_id=rng.choice(["a", "b", None]),
                team_id=rng.choice(["x", None]),
                api_key_id=rng.choice(["k1", "k2", None]),
                model=rng.choice(["m1", "m2"]),
                cost=rng.choice([None, Decimal("0.000001"), Decimal("2.5")]),
                success=rng.random() > 0.2,
                latency_ms=rng.choice([None, 10, 99]),
                cached=rng.random() > 0.5,
                tokens_estimated=rng.random() > 0.7,
            )
            for _ in range(40)
        ]
        ledger_store.record_many(events + events[:5])  # with duplicates
        ledger_store.record(make_event(event_id=f"single-{batch}", timestamp=T0 - timedelta(days=batch)))
    assert ledger_store.check_rollups() == []
    total = ledger_store.summary()
    for granularity in ("hour", "day"):
        rows = ledger_store.rollups(granularity)
        assert sum(r.requests for r in rows) == total.requests
        assert sum((r.cost for r in rows), Decimal(0)) == total.cost
        assert sum(r.unpriced_requests for r in rows) == total.unpriced_requests
        assert sum(r.failures for r in rows) == total.failures


def test_hourly_and_daily_buckets_follow_utc(ledger_store: UsageStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    ledger_store.record_many(
        [
            make_event(event_id="late", timestamp=datetime(2024, 3, 10, 23, 59, 59, 999999, tzinfo=UTC)),
            make_event(event_id="midnight", timestamp=datetime(2024, 3, 11, 0, 0, tzinfo=UTC)),
            # 01:30 at UTC+2 is 23:30 UTC on the previous day
            make_event(event_id="local", timestamp=datetime(2024, 3, 11, 1, 30, tzinfo=plus2)),
        ]
    )
    hourly = [(r.bucket_start, r.requests) for r in ledger_store.rollups("hour")]
    assert hourly == [
        (datetime(2024, 3, 10, 23, tzinfo=UTC), 2),
        (datetime(2024, 3, 11, 0, tzinfo=UTC), 1),
    ]
    daily = [(r.bucket_start, r.requests) for r in ledger_store.rollups("day")]
    assert daily == [(datetime(2024, 3, 10, tzinfo=UTC), 2), (datetime(2024, 3, 11, tzinfo=UTC), 1)]
    window = ledger_store.rollups(
        "hour", since=datetime(2024, 3, 11, tzinfo=UTC), until=datetime(2024, 3, 12, tzinfo=UTC)
    )
    assert [r.bucket_start for r in window] == [datetime(2024, 3, 11, tzinfo=UTC)]
    with pytest.raises(ValueError, match="granularity"):
        ledger_store.rollups("week")  # type: ignore[arg-type]


def test_rollup_rows_use_empty_string_for_unset_dimensions(ledger_store: UsageStore) -> None:
    ledger_store.record_many([make_event(user_id=None, team_id=None, api_key_id=None) for _ in range(3)])
    (row,) = ledger_store.rollups("hour")
    assert (row.user_id, row.team_id, row.api_key_id, row.requests) == ("", "", "", 3)


def test_check_rollups_detects_damage_and_rebuild_repairs(ledger_store: UsageStore, ledger_url: str) -> None:
    ledger_store.record_many([make_event(user_id="u1"), make_event(user_id="u2", cost=None)])
    raw_execute(ledger_url, "UPDATE usage_rollups SET requests = requests + 5 WHERE user_id = 'u1'")
    raw_execute(ledger_url, "DELETE FROM usage_rollups WHERE user_id = 'u2' AND granularity = 'day'")
    raw_execute(
        ledger_url,
        "INSERT INTO usage_rollups SELECT 'hour', bucket_start, 'ghost', team_id, api_key_id, provider, model,"
        " currency, requests, successes, failures, input_tokens, output_tokens, cache_read_tokens,"
        " cache_write_tokens, reasoning_tokens, cost, unpriced_requests, estimated_requests, latency_ms_sum,"
        " latency_requests, cached_requests FROM usage_rollups WHERE user_id = 'u1' AND granularity = 'hour'",
    )
    problems = ledger_store.check_rollups()
    assert len(problems) == 4
    assert any("requests 6 != 1" in p for p in problems)
    assert any("events without a rollup row" in p and "'u2'" in p for p in problems)
    assert any("rollup row without events" in p and "'ghost'" in p for p in problems)
    assert ledger_store.rebuild_rollups() == 4
    assert ledger_store.check_rollups() == []


# -- re-rating -------------------------------------------------------------------------------------


def test_adjustments_update_cost_keep_original_and_fix_rollups(
    ledger_store: UsageStore, ledger_clock: FixedClock
) -> None:
    ledger_store.record_many(
        [
            make_event(event_id="a", cost=Decimal("1.00"), price_version="v1"),
            make_event(event_id="b", cost=None),
            make_event(event_id="c", cost=Decimal("2.00"), price_version="v1"),
        ]
    )
    ledger_clock.advance(hours=1)
    changed = ledger_store.apply_adjustments(
        [
            adjust("a", Decimal("1.00"), "v1", Decimal("0.75"), "v2", reason="price drop"),
            adjust("b", None, None, Decimal("0.10"), "v2", reason="now priced"),
            adjust("c", Decimal("2.00"), "v1", None, None, reason="model withdrawn"),
            adjust("a", Decimal("0.75"), "v2", Decimal("0.75"), "v2"),  # a no-op: not counted, not logged
        ]
    )
    assert changed == 3
    a = ledger_store.get_stored("a")
    assert a is not None
    assert (a.event.cost, a.event.price_version) == (Decimal("0.75"), "v2")
    assert (a.original_cost, a.original_price_version) == (Decimal("1.00"), "v1")
    b = ledger_store.get_stored("b")
    assert b is not None
    assert (b.event.cost, b.original_cost) == (Decimal("0.10"), None)
    c = ledger_store.get("c")
    assert c is not None
    assert c.cost is None
    summary = ledger_store.summary()
    assert (summary.cost, summary.unpriced_requests) == (Decimal("0.85"), 1)
    assert ledger_store.check_rollups() == []
    (day,) = ledger_store.rollups("day")
    assert (day.cost, day.unpriced_requests) == (Decimal("0.85"), 1)

    history = ledger_store.adjustments()
    assert [
        (h.event_id, h.old_cost, h.new_cost, h.old_price_version, h.new_price_version, h.reason) for h in history
    ] == [
        ("a", Decimal("1.00"), Decimal("0.75"), "v1", "v2", "price drop"),
        ("b", None, Decimal("0.10"), None, "v2", "now priced"),
        ("c", Decimal("2.00"), None, "v1", None, "model withdrawn"),
    ]
    assert all(h.created_at == ledger_clock.now() for h in history)
    assert [h.event_id for h in ledger_store.adjustments(event_id="b")] == ["b"]
    assert ledger_store.adjustments(since=ledger_clock.now() + timedelta(seconds=1)) == []
    assert len(ledger_store.adjustments(since=ledger_clock.now())) == 3


def test_adjusting_one_event_twice_in_one_call_chains(ledger_store: UsageStore) -> None:
    ledger_store.record(make_event(event_id="x", cost=Decimal(1)))
    assert (
        ledger_store.apply_adjustments(
            [adjust("x", Decimal(1), None, Decimal(2), None), adjust("x", Decimal(2), None, Decimal(3), "v3")]
        )
        == 2
    )
    assert [(h.old_cost, h.new_cost) for h in ledger_store.adjustments("x")] == [(Decimal(1), Decimal(2)), (2, 3)]
    assert ledger_store.summary().cost == 3
    assert ledger_store.check_rollups() == []
    assert ledger_store.apply_adjustments([]) == 0


def test_adjustments_from_a_stale_read_are_refused(ledger_store: UsageStore, ledger_clock: FixedClock) -> None:
    ledger_store.record_many([make_event(event_id="s1", cost=Decimal(1)), make_event(event_id="s2", cost=Decimal(2))])
    explicit_time = ledger_clock.now() - timedelta(days=1)
    first = CostAdjustment(
        event_id="s1",
        old_cost=Decimal(1),
        new_cost=Decimal("0.5"),
        old_price_version=None,
        new_price_version="v2",
        created_at=explicit_time,
    )
    assert ledger_store.apply_adjustments([first]) == 1
    assert ledger_store.adjustments("s1")[0].created_at == explicit_time
    # another re-rater read s1 before the change above: its adjustment must not silently win
    stale = adjust("s1", Decimal(1), None, Decimal("0.7"), "v3")
    with pytest.raises(LedgerError, match="'s1' changed since it was read"):
        ledger_store.apply_adjustments([adjust("s2", Decimal(2), None, Decimal(9), None), stale])
    assert [(e.event_id, e.cost) for e in ledger_store.iter_events()] == [("s1", Decimal("0.5")), ("s2", 2)]
    assert len(ledger_store.adjustments()) == 1
    assert ledger_store.check_rollups() == []


def test_adjusting_unknown_events_changes_nothing(ledger_store: UsageStore) -> None:
    ledger_store.record(make_event(event_id="known", cost=Decimal(1)))
    with pytest.raises(LedgerError, match="unknown events: 'ghost'"):
        ledger_store.apply_adjustments(
            [adjust("known", Decimal(1), None, Decimal(5), None), adjust("ghost", None, None, Decimal(1), None)]
        )
    known = ledger_store.get("known")
    assert known is not None
    assert known.cost == 1
    assert ledger_store.adjustments() == []
    assert ledger_store.check_rollups() == []
    with pytest.raises(TypeError, match="CostAdjustment"):
        ledger_store.apply_adjustments([{"event_id": "known"}])  # type: ignore[list-item]
