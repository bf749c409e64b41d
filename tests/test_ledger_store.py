"""Contract tests of UsageStore, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ledger_fixtures import T0, FixedClock, make_event, raw_execute
from spendgate.errors import ConfigurationError, InvalidUsageError, LedgerError
from spendgate.ledger import EventFilter, RecordResult, UsageEvent, UsageStore, UsageSummary
from spendgate.usage import Usage


def full_event(event_id: str = "full-1") -> UsageEvent:
    return UsageEvent(
        event_id=event_id,
        timestamp=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        provider="anthropic",
        model="claude-sonnet-4",
        model_used="claude-sonnet-4-20250514",
        usage=Usage(
            input_tokens=1000,
            output_tokens=300,
            cache_read_tokens=200,
            cache_write_tokens=100,
            reasoning_tokens=50,
            input_audio_tokens=10,
            output_audio_tokens=20,
            input_image_tokens=30,
            images=2,
            web_searches=3,
            audio_seconds=Decimal("12.345678"),
            processing_seconds=Decimal("0.5"),
        ),
        cost=Decimal("1234567.123456789012"),
        currency="EUR",
        price_version="2024-05-01",
        cost_estimated=True,
        tokens_estimated=True,
        user_id="u-1",
        team_id="t-1",
        api_key_id="k-1",
        session_id="s-1",
        request_type="chat",
        service_tier="flex",
        tags={"feature": "search", "env": "prod"},
        metadata={"trace": {"id": "abc", "depth": 2}, "ratio": 0.25, "flags": [True, None]},
        latency_ms=1234,
        success=False,
        error_kind="timeout",
        action="warn",
        cached=True,
        cache_savings=Decimal("0.000000075"),
        prompt_hash="sha256:deadbeef",
        client_ip="2001:db8::1",
        user_agent="pytest/1.0",
        service="llm",
        endpoint="/v1/messages",
        status_code=504,
        request_bytes=2048,
        response_bytes=0,
    )


# -- writing and reading back -------------------------------------------------------------------


def test_every_field_round_trips(ledger_store: UsageStore, ledger_clock: FixedClock) -> None:
    assert isinstance(ledger_store, UsageStore)
    event = full_event()
    assert ledger_store.record(event) == RecordResult("full-1", duplicate=False)
    loaded = ledger_store.get("full-1")
    assert loaded == event
    assert loaded is not None
    assert loaded.cost == Decimal("1234567.123456789012")
    assert loaded.cache_savings == Decimal("0.000000075")
    assert loaded.usage.audio_seconds == Decimal("12.345678")
    assert loaded.timestamp.tzinfo is UTC
    stored = ledger_store.get_stored("full-1")
    assert stored is not None
    assert stored.original_cost == event.cost
    assert stored.original_price_version == "2024-05-01"
    assert stored.recorded_at == ledger_clock.now()
    assert ledger_store.get("missing") is None
    assert ledger_store.get_stored("missing") is None


def test_minimal_event_round_trips_with_defaults(ledger_store: UsageStore) -> None:
    event = UsageEvent(event_id="m", timestamp=T0, provider="openai", model="gpt-4o-mini", usage=Usage())
    ledger_store.record(event)
    assert ledger_store.get("m") == event


def test_costs_are_exact_and_sum_exactly(ledger_store: UsageStore) -> None:
    small, big = Decimal("0.000000075"), Decimal("1234567.123456789012")
    events = [make_event(cost=small) for _ in range(3)]
    # one big cost per user: each rollup cell fits 64 bits, the total of all 8 does not
    events += [make_event(cost=big, user_id=f"whale-{n}") for n in range(8)]
    ledger_store.record_many(events)
    summary = ledger_store.summary()
    assert summary.cost == small * 3 + big * 8
    assert summary.cost * 10**12 > 2**63
    assert all(ledger_store.get(e.event_id) == e for e in events)
    assert ledger_store.check_rollups() == []


def test_extra_digits_round_half_even_to_pico_units(ledger_store: UsageStore) -> None:
    ledger_store.record(make_event(event_id="r1", cost=Decimal("0.0000000000025")))
    ledger_store.record(make_event(event_id="r2", cost=Decimal("0.0000000000035")))
    loaded = [ledger_store.get(i) for i in ("r1", "r2")]
    assert [e.cost if e else None for e in loaded] == [Decimal("0.000000000002"), Decimal("0.000000000004")]
    assert ledger_store.check_rollups() == []


# -- idempotency ----------------------------------------------------------------------------------


def test_recording_twice_stores_once(ledger_store: UsageStore) -> None:
    event = make_event(event_id="dup")
    assert ledger_store.record(event).duplicate is False
    changed = replace(event, cost=Decimal(99), usage=Usage(input_tokens=5))
    assert ledger_store.record(changed) == RecordResult("dup", duplicate=True)
    assert ledger_store.get("dup") == event  # the first version stays
    assert ledger_store.count() == 1
    assert ledger_store.summary().requests == 1
    assert ledger_store.summary().cost == event.cost
    assert ledger_store.check_rollups() == []


def test_duplicates_within_and_between_batches(ledger_store: UsageStore) -> None:
    a, b = make_event(event_id="a"), make_event(event_id="b")
    a_again = replace(a, cost=Decimal(7))
    first = ledger_store.record_many([a, b, a_again])
    assert [r.duplicate for r in first] == [False, False, True]
    assert ledger_store.get("a") == a
    second = ledger_store.record_many([make_event(event_id="c"), b, make_event(event_id="c")])
    assert [(r.event_id, r.duplicate) for r in second] == [("c", False), ("b", True), ("c", True)]
    assert ledger_store.count() == 3
    hourly = ledger_store.rollups("hour")
    assert sum(row.requests for row in hourly) == 3
    assert ledger_store.check_rollups() == []
    assert ledger_store.record_many([]) == []


# -- unpriced events ------------------------------------------------------------------------------


def test_unpriced_events_stay_unpriced_and_are_counted(ledger_store: UsageStore) -> None:
    ledger_store.record_many([make_event(event_id="p", cost=Decimal("0.5")), make_event(event_id="u", cost=None)])
    unpriced = ledger_store.get("u")
    assert unpriced is not None
    assert unpriced.cost is None
    summary = ledger_store.summary()
    assert summary.requests == 2
    assert summary.unpriced_requests == 1
    assert summary.cost == Decimal("0.5")
    assert ledger_store.count(EventFilter(priced=False)) == 1
    assert [e.event_id for e in ledger_store.iter_events(EventFilter(priced=True))] == ["p"]
    rows = ledger_store.rollups("day")
    assert [(r.requests, r.unpriced_requests, r.cost) for r in rows] == [(2, 1, Decimal("0.5"))]
    only_unpriced = ledger_store.summary(EventFilter(priced=False))
    assert only_unpriced.cost == 0
    assert only_unpriced.currency is None


# -- queries --------------------------------------------------------------------------------------


@pytest.fixture
def varied(ledger_store: UsageStore) -> UsageStore:
    hour = timedelta(hours=1)
    ledger_store.record_many(
        [
            make_event(event_id="e1", timestamp=T0, user_id="alice", cost=Decimal("1.00"), latency_ms=100),
            make_event(
                event_id="e2",
                timestamp=T0 + hour,
                user_id="bob",
                team_id="ops",
                cost=Decimal("3.00"),
                success=False,
                latency_ms=None,
                request_type="embedding",
                session_id="s9",
            ),
            make_event(
                event_id="e3",
                timestamp=T0 + 2 * hour,
                user_id="alice",
                provider="anthropic",
                model="claude",
                cost=None,
                tokens_estimated=True,
                cached=True,
                latency_ms=300,
            ),
            make_event(
                event_id="e4",
                timestamp=T0 + 2 * hour,
                user_id=None,
                api_key_id="key-2",
                cost=Decimal("0.50"),
                cost_estimated=True,
                latency_ms=200,
                usage=Usage(
                    input_tokens=10, output_tokens=5, cache_read_tokens=4, cache_write_tokens=2, reasoning_tokens=1
                ),
            ),
        ]
    )
    return ledger_store


def ids(ledger_store: UsageStore, flt: EventFilter | None = None) -> list[str]:
    return [event.event_id for event in ledger_store.iter_events(flt)]


def test_filters_and_half_open_windows(varied: UsageStore) -> None:
    hour = timedelta(hours=1)
    assert ids(varied, EventFilter(since=T0 + hour, until=T0 + 2 * hour)) == ["e2"]
    assert ids(varied, EventFilter(since=T0 + hour)) == ["e2", "e3", "e4"]
    assert ids(varied, EventFilter(until=T0 + hour)) == ["e1"]
    assert ids(varied, EventFilter(since=T0, until=T0)) == []
    # a window given in another time zone means the same instants
    plus2 = timezone(timedelta(hours=2))
    assert ids(varied, EventFilter(since=(T0 + hour).astimezone(plus2), until=(T0 + 2 * hour).astimezone(plus2))) == [
        "e2"
    ]
    assert ids(varied, EventFilter(user_id="alice")) == ["e1", "e3"]
    assert ids(varied, EventFilter(team_id="ops")) == ["e2"]
    assert ids(varied, EventFilter(api_key_id="key-2")) == ["e4"]
    assert ids(varied, EventFilter(session_id="s9")) == ["e2"]
    assert ids(varied, EventFilter(provider="anthropic", model="claude")) == ["e3"]
    assert ids(varied, EventFilter(request_type="embedding")) == ["e2"]
    assert ids(varied, EventFilter(success=False)) == ["e2"]
    assert ids(varied, EventFilter(success=True, priced=True)) == ["e1", "e4"]
    assert ids(varied, EventFilter(currency="EUR")) == []
    assert varied.count() == 4
    assert varied.count(EventFilter(user_id="alice")) == 2


def test_summary_totals(varied: UsageStore) -> None:
    summary = varied.summary()
    assert summary == UsageSummary(
        requests=4,
        successes=3,
        failures=1,
        input_tokens=310,
        output_tokens=65,
        cache_read_tokens=4,
        cache_write_tokens=2,
        reasoning_tokens=1,
        cost=Decimal("4.50"),
        currency="USD",
        unpriced_requests=1,
        estimated_requests=2,
        cached_requests=1,
        avg_latency_ms=200.0,
    )
    empty = varied.summary(EventFilter(user_id="nobody"))
    assert empty == UsageSummary()


def test_totals_by_orders_by_cost(varied: UsageStore) -> None:
    by_user = varied.totals_by("user_id")
    assert [(value, s.cost, s.requests) for value, s in by_user] == [
        ("bob", Decimal("3.00"), 1),
        ("alice", Decimal("1.00"), 2),
        (None, Decimal("0.50"), 1),
    ]
    by_provider = varied.totals_by("provider", EventFilter(since=T0 + timedelta(hours=1)))
    assert [(value, s.requests, s.unpriced_requests) for value, s in by_provider] == [
        ("openai", 2, 0),
        ("anthropic", 1, 1),
    ]
    with pytest.raises(ValueError, match="cannot group by"):
        varied.totals_by("cost")  # type: ignore[arg-type]


def test_iter_events_streams_in_timestamp_then_id_order(ledger_store: UsageStore) -> None:
    events = [make_event(event_id=f"s{i:03d}", timestamp=T0 + timedelta(minutes=i % 7)) for i in range(60)]
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    ledger_store.record_many(shuffled[:30])
    ledger_store.record_many(shuffled[30:])
    expected = sorted(events, key=lambda e: (e.timestamp, e.event_id))
    stream = ledger_store.iter_events(batch_size=7)
    assert next(stream) == expected[0]
    assert [expected[0], *stream] == expected
    assert [
        e.event_id for e in ledger_store.iter_events(EventFilter(since=T0 + timedelta(minutes=6)), batch_size=2)
    ] == [e.event_id for e in expected if e.timestamp >= T0 + timedelta(minutes=6)]
    with pytest.raises(ValueError, match="batch_size"):
        list(ledger_store.iter_events(batch_size=0))


def test_mixed_currencies_are_not_summed_together(ledger_store: UsageStore) -> None:
    ledger_store.record_many([make_event(currency="USD", cost=Decimal(1)), make_event(currency="EUR", cost=Decimal(2))])
    with pytest.raises(LedgerError, match="several currencies"):
        ledger_store.summary()
    assert ledger_store.summary(EventFilter(currency="EUR")).cost == Decimal(2)
    assert ledger_store.summary(EventFilter(currency="EUR")).currency == "EUR"
    assert ledger_store.check_rollups() == []
    assert {row.currency for row in ledger_store.rollups("day")} == {"USD", "EUR"}


# -- price overrides ------------------------------------------------------------------------------


def test_price_overrides_are_stored_as_versions(ledger_store: UsageStore, ledger_clock: FixedClock) -> None:
    body = {"id": "ovr-1", "input_mtok": "2.50", "tiers": [{"above": 200000, "input_mtok": "5"}], "note": None}
    june = datetime(2024, 6, 1, tzinfo=UTC)
    ledger_store.save_price_override("ovr-3", "openai", "gpt-4o", june, {"id": "ovr-3"})
    ledger_clock.advance(seconds=1)
    ledger_store.save_price_override("ovr-2", "openai", "gpt-4o", june, {"id": "ovr-2"})  # same date, later
    january_in_paris = datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    ledger_store.save_price_override("ovr-1", "openai", "gpt-4o", january_in_paris, body)
    # bodies come back as saved, by effective date, then by when they were saved
    assert ledger_store.list_price_overrides() == [body, {"id": "ovr-3"}, {"id": "ovr-2"}]
    with pytest.raises(ConfigurationError, match="already exists"):
        ledger_store.save_price_override("ovr-1", "openai", "gpt-4o", june, {"id": "ovr-1", "input_mtok": "1"})
    assert ledger_store.list_price_overrides()[0] == body  # never edited in place
    with pytest.raises(InvalidUsageError) as info:
        ledger_store.save_price_override("ovr-4", "openai", "gpt-4o", datetime(2024, 1, 1), body)
    assert info.value.field == "effective_from"
    with pytest.raises(InvalidUsageError) as info:
        ledger_store.save_price_override("ovr-4", "openai", "gpt-4o", june, {"price": Decimal(1)})
    assert info.value.field == "body"
    with pytest.raises(InvalidUsageError) as info:
        ledger_store.save_price_override("", "openai", "gpt-4o", june, body)
    assert info.value.field == "id"
    assert len(ledger_store.list_price_overrides()) == 3


# -- refusals and failures ------------------------------------------------------------------------


def test_invalid_input_is_refused_and_nothing_is_written(ledger_store: UsageStore) -> None:
    good = make_event()
    with pytest.raises(InvalidUsageError) as info:
        ledger_store.record_many([good, make_event(latency_ms=-3)])  # fails while building the batch
    assert info.value.field == "latency_ms"
    with pytest.raises(TypeError, match="expected UsageEvent"):
        ledger_store.record_many([good, {"event_id": "x"}])  # type: ignore[list-item]
    assert ledger_store.count() == 0
    assert ledger_store.rollups("hour") == []


def test_driver_errors_become_ledger_errors(ledger_store: UsageStore, ledger_url: str) -> None:
    raw_execute(ledger_url, "ALTER TABLE usage_rollups RENAME TO usage_rollups_away")
    try:
        with pytest.raises(LedgerError, match="could not write usage events to") as info:
            ledger_store.record(make_event())
        assert isinstance(info.value.__cause__, sa.exc.DBAPIError)
        assert "usage_rollups" in str(info.value)
        assert ledger_store.count() == 0  # the event insert was rolled back with the failed rollup upsert
        with pytest.raises(LedgerError, match="could not read rollups from"):
            ledger_store.rollups("day")
    finally:
        raw_execute(ledger_url, "ALTER TABLE usage_rollups_away RENAME TO usage_rollups")
    ledger_store.record(make_event())
    assert ledger_store.count() == 1


def test_closed_store_refuses_work(ledger_url: str, ledger_clock: FixedClock) -> None:
    from spendgate.ledger import open_store

    opened = open_store(ledger_url, clock=ledger_clock)
    assert ledger_url.rsplit("/", 1)[1] in opened.url
    opened.close()
    with pytest.raises(LedgerError, match="closed"):
        opened.record(make_event())
    with pytest.raises(LedgerError, match="closed"):
        opened.count()
