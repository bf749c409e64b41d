"""The Meter's edges: input errors, configuration, volume-tier prices, re-rating errors, the entry point."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate import InvalidUsageError, Meter, PriceBook, PriceOverride, Settings, SpendgateError, Usage
from spendgate.pricing import VolumeTier
from spendgate.testing import FakeClock

T0 = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
GOOD: dict[str, Any] = {"provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 3}}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"provider": None}, "provider"),
        ({"model": "  "}, "model"),
        ({"usage": 12}, "usage"),
        ({"usage": {"input_tokens": "many"}}, "usage.input_tokens"),
        ({"timestamp": "last tuesday"}, "timestamp"),
        ({"timestamp": 1700000000}, "timestamp"),
        ({"timestamp": "2026-01-01T00:00:00"}, "timestamp"),
        ({"batch": "yes"}, "batch"),
        ({"colour": "red"}, "colour"),
        ({"latency_ms": -5}, "latency_ms"),
    ],
)
def test_every_bad_field_is_named(sqlite_url: str, change: dict[str, Any], field: str) -> None:
    with Meter(database_url=sqlite_url) as meter:
        event = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
        with pytest.raises(InvalidUsageError) as exc:
            meter.validate(event)
        assert exc.value.field == field
        with pytest.raises(InvalidUsageError) as many:
            meter.record_many([GOOD, event])
        assert many.value.field == f"events[1].{field}"
        assert meter.summary().requests == 0


def test_missing_required_field(sqlite_url: str) -> None:
    with Meter(database_url=sqlite_url) as meter, pytest.raises(InvalidUsageError, match="usage: is required"):
        meter.record(provider="openai", model="gpt-4o")


def test_settings_and_url_conflict(sqlite_url: str, tmp_path: Path) -> None:
    with pytest.raises(SpendgateError, match="not both"):
        Meter(database_url=f"sqlite:///{tmp_path / 'other.db'}", settings=Settings(database_url=sqlite_url))


def test_bad_price_file_closes_the_store(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "prices.toml"
    bad.write_text(
        '[[overrides]]\nprovider = "x"\nmodel = "y"\neffective_from = 2026-01-01\ninput = "-1"\noutput = "1"\n'
    )
    with pytest.raises(SpendgateError, match=r"overrides\[0\]\.input"):
        Meter(settings=Settings(database_url=sqlite_url, price_file=bad))


def test_price_file_and_exchange_rates_from_settings(sqlite_url: str) -> None:
    price_file = Path(__file__).parent / "data" / "pricing" / "prices.toml"
    settings = Settings(database_url=sqlite_url, price_file=price_file, exchange_rates={"EUR": Decimal("0.5")})
    with Meter(settings=settings) as meter:
        usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
        negotiated = meter.cost("openai", "gpt-4o", usage, at=T0)
        assert negotiated.total == Decimal("10.00") and negotiated.price_version.startswith("override:")
        assert meter.cost("openai", "gpt-4o", usage, at=T0, currency="EUR").total == Decimal("5.00")


def test_volume_tiers_read_the_months_usage_from_the_ledger(sqlite_url: str) -> None:
    override = PriceOverride(
        provider="selfhost",
        model="bulk",
        effective_from=date(2026, 1, 1),
        input=Decimal("1"),
        output=Decimal("1"),
        volume_tiers=[VolumeTier(above_monthly_tokens=1_000_000, discount_percent=Decimal("50"))],
    )
    with Meter(database_url=sqlite_url, price_book=PriceBook([override]), clock=FakeClock(T0)) as meter:
        million = Usage(input_tokens=1_000_000)
        first = meter.record(provider="selfhost", model="bulk", usage=Usage(input_tokens=1_500_000), timestamp=T0)
        assert first.cost is not None and first.cost.total == Decimal("1.5")  # volume before it: 0
        assert meter.monthly_volume("selfhost", "bulk", T0) == 0  # the window is half-open: [1st, at)
        assert meter.monthly_volume("selfhost", "bulk", T0.replace(hour=13)) == 1_500_000
        second = meter.record(
            provider="selfhost", model="bulk", usage=Usage(input_tokens=10), timestamp=T0.replace(hour=13)
        )
        assert second.cost is not None and second.cost.total == Decimal("0.000005")  # half price past 1M tokens
        assert meter.cost("selfhost", "bulk", million, at=T0.replace(hour=14)).total == Decimal("0.5")
        # the next month starts again at full price
        assert meter.cost("selfhost", "bulk", million, at=datetime(2026, 6, 1, tzinfo=UTC)).total == Decimal("1")


def test_rerate_reports_events_it_cannot_price(sqlite_url: str) -> None:
    batch_price = PriceOverride(
        provider="selfhost",
        model="m",
        effective_from=date(2026, 1, 1),
        service_tier="batch",
        input=Decimal("1"),
        output=Decimal("1"),
    )
    standard_only = PriceOverride(
        provider="selfhost", model="m", effective_from=date(2026, 1, 1), input=Decimal("2"), output=Decimal("2")
    )
    with Meter(database_url=sqlite_url, price_book=PriceBook([batch_price, standard_only])) as meter:
        r = meter.record(
            event_id="b1", provider="selfhost", model="m", usage=Usage(input_tokens=1_000_000), batch=True, timestamp=T0
        )
        assert r.cost is not None and r.cost.total == Decimal("1")
        assert meter.store.get("b1").service_tier == "batch"  # type: ignore[union-attr]
    with Meter(database_url=sqlite_url, price_book=PriceBook([standard_only])) as later:
        report = later.rerate(since=datetime(2026, 1, 1, tzinfo=UTC))
        assert report.changed == 0 and [e for e, _ in report.errors] == ["b1"]
        assert "batch" in report.errors[0][1]
        assert later.summary().cost == Decimal("1")


def test_module_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "spendgate", "--help"], capture_output=True, text=True, check=True)
    assert "Meter, price and govern LLM usage" in out.stdout
    assert "rerate" in out.stdout
