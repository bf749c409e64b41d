"""UsageEvent, EventFilter, CostAdjustment and money conversion: validation without a database."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger_fixtures import T0, make_event
from spendgate import ledger
from spendgate.errors import InvalidUsageError
from spendgate.ledger import MAX_MONEY, CostAdjustment, EventFilter, UsageEvent
from spendgate.ledger._money import from_units, quantize, to_units
from spendgate.usage import Usage


def test_exports_are_sorted_and_resolvable() -> None:
    assert ledger.__all__ == sorted(ledger.__all__)
    for name in ledger.__all__:
        assert getattr(ledger, name) is not None


def test_event_converts_timestamp_to_utc_and_copies_mappings() -> None:
    tags = {"feature": "chat"}
    meta = {"trace": (1, 2)}
    event = make_event(
        timestamp=datetime(2024, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))), tags=tags, metadata=meta
    )
    assert event.timestamp == datetime(2024, 1, 1, 7, 30, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC
    tags["feature"] = "changed"
    assert event.tags == {"feature": "chat"}
    assert event.metadata == {"trace": [1, 2]}  # what JSON storage gives back
    with pytest.raises(FrozenInstanceError):
        event.cost = Decimal(1)  # type: ignore[misc]


def test_event_accepts_int_cost_and_reports_priced_and_estimated() -> None:
    priced = make_event(cost=2, tokens_estimated=True)
    assert priced.cost == Decimal(2)
    assert isinstance(priced.cost, Decimal)
    assert priced.priced
    assert priced.estimated
    unpriced = make_event(cost=None)
    assert not unpriced.priced
    assert not unpriced.estimated


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("event_id", "", "must not be empty"),
        ("event_id", "x" * 201, "at most 200"),
        ("event_id", 7, "must be a string"),
        ("provider", "", "must not be empty"),
        ("model", None, "must be a string"),
        ("user_id", "", "use None"),
        ("user_agent", "u" * 2001, "at most 2000"),
        ("timestamp", datetime(2024, 1, 1), "timezone-aware"),
        ("timestamp", "2024-01-01", "must be a datetime"),
        ("usage", {"input_tokens": 1}, "spendgate.usage.Usage"),
        ("cost", Decimal("-0.01"), "non-negative"),
        ("cost", Decimal("NaN"), "finite"),
        ("cost", 0.1, "floats are not exact"),
        ("cost", MAX_MONEY + 1, "at most"),
        ("cost", Decimal("1E+100"), "at most"),
        ("cache_savings", Decimal("-1"), "non-negative"),
        ("currency", "usd", "three-letter"),
        ("currency", "EURO", "three-letter"),
        ("latency_ms", -1, "between 0"),
        ("latency_ms", True, "must be an integer"),
        ("request_bytes", -5, "between 0"),
        ("response_bytes", 1.5, "must be an integer"),
        ("status_code", 99, "between 100 and 599"),
        ("status_code", 600, "between 100 and 599"),
        ("success", 1, "must be a bool"),
        ("cached", None, "must be a bool"),
        ("tags", {"a": 1}, "strings"),
        ("tags", ["a"], "mapping"),
        ("metadata", {"when": datetime(2024, 1, 1)}, "JSON-serializable"),
        ("metadata", {"x": float("nan")}, "JSON-serializable"),
        ("metadata", {1: "a"}, "keys must be strings"),
        ("metadata", "text", "must be a mapping"),
    ],
)
def test_invalid_event_names_the_field(field: str, value: Any, fragment: str) -> None:
    with pytest.raises(InvalidUsageError) as info:
        make_event(**{field: value})
    assert info.value.field == field
    assert fragment in str(info.value)


def test_status_code_bounds_are_inclusive() -> None:
    assert make_event(status_code=100).status_code == 100
    assert make_event(status_code=599).status_code == 599


@pytest.mark.parametrize(
    ("value", "units"),
    [
        (Decimal("0.000000075"), 75_000),
        (Decimal("1234567.123456789012"), 1_234_567_123_456_789_012),
        (Decimal("0.0000000000005"), 0),  # half-even: 0.5 pico rounds to 0
        (Decimal("0.0000000000015"), 2),  # 1.5 pico rounds to 2
        (Decimal("0.0000000000025"), 2),  # 2.5 pico rounds to 2
        (Decimal(0), 0),
    ],
)
def test_money_units_round_half_even(value: Decimal, units: int) -> None:
    assert to_units(value) == units
    assert from_units(units) == quantize(value)


def test_from_units_is_tidy() -> None:
    assert str(from_units(100 * 10**12)) == "100"
    assert str(from_units(1_500_000_000_000)) == "1.5"
    assert from_units(0) == 0


def test_to_units_refuses_what_does_not_fit() -> None:
    with pytest.raises(OverflowError):
        to_units(MAX_MONEY + Decimal("0.000000000001"))
    with pytest.raises(ValueError, match="non-finite"):
        to_units(Decimal("Infinity"))


@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_units_round_trip_exactly(units: int) -> None:
    assert to_units(from_units(units)) == units


@given(st.decimals(min_value=0, max_value=MAX_MONEY - 1, allow_nan=False, allow_infinity=False, places=12))
def test_twelve_place_decimals_are_stored_exactly(value: Decimal) -> None:
    assert from_units(to_units(value)) == value


def test_event_filter_validates() -> None:
    flt = EventFilter(since=datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    assert flt.since == datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidUsageError, match="timezone-aware"):
        EventFilter(until=datetime(2024, 1, 1))
    with pytest.raises(InvalidUsageError) as info:
        EventFilter(since=T0, until=T0 - timedelta(seconds=1))
    assert info.value.field == "until"
    with pytest.raises(InvalidUsageError) as info:
        EventFilter(success="yes")  # type: ignore[arg-type]
    assert info.value.field == "success"
    with pytest.raises(InvalidUsageError) as info:
        EventFilter(user_id="")
    assert info.value.field == "user_id"


def test_cost_adjustment_validates() -> None:
    fields: dict[str, Any] = {"event_id": "e1", "old_cost": None, "old_price_version": None, "new_price_version": "v2"}
    adj = CostAdjustment(new_cost=Decimal(3), **fields)
    assert (adj.new_cost, adj.reason, adj.created_at) == (Decimal(3), "rerate", None)
    when = CostAdjustment(
        new_cost=None, created_at=datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), **fields
    )
    assert when.created_at == datetime(2024, 1, 1, tzinfo=UTC)
    for bad, field in (
        ({"new_cost": Decimal("-1")}, "new_cost"),
        ({"new_cost": None, "old_cost": 0.5}, "old_cost"),
        ({"new_cost": None, "reason": ""}, "reason"),
        ({"new_cost": None, "created_at": datetime(2024, 1, 1)}, "created_at"),
        ({"new_cost": None, "event_id": ""}, "event_id"),
    ):
        with pytest.raises(InvalidUsageError) as info:
            CostAdjustment(**{**fields, **bad})
        assert info.value.field == field


def test_usage_event_equality_covers_every_field() -> None:
    base = make_event(event_id="same")
    assert base == UsageEvent(**{f: getattr(base, f) for f in base.__dataclass_fields__})
    assert base != make_event(event_id="same", usage=Usage(input_tokens=1))
    assert len({base, make_event(event_id="same"), make_event(event_id="other")}) == 2  # hashable despite dicts
