"""The Meter facade: the issue's contract, unpriced usage, batches, exports, re-rating, overrides."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from spendgate import AsyncMeter, InvalidUsageError, Meter, PriceOverride, Settings, UnknownModelError, Usage
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_contract(meter_url: str) -> None:
    meter = Meter(database_url=meter_url)
    try:
        assert meter.cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=100)).total == Decimal("0.0035")
        count = meter.count_tokens("openai", "gpt-4o", text="hello world")
        assert (count.total, count.exact) == (2, True)
        chat = meter.count_tokens("openai", "gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert chat.total == 1 + 3 + 3 + 1  # "user" + "hi" + per-message 3 + reply priming 3
        r = meter.record(
            event_id="e1",
            user_id="alice",
            provider="openai",
            model="gpt-4o",
            usage=Usage(input_tokens=10, output_tokens=5),
            latency_ms=120,
            success=True,
        )
        assert r.duplicate is False
        assert r.cost is not None and r.cost.total == Decimal("0.000075")
        again = meter.record(
            event_id="e1", user_id="alice", provider="openai", model="gpt-4o", usage=Usage(input_tokens=10)
        )
        assert again.duplicate is True
        s = meter.summary(user_id="alice")
        assert (s.requests, s.input_tokens, s.output_tokens, s.cost) == (1, 10, 5, Decimal("0.000075"))
        assert meter.summary(user_id="bob").requests == 0
    finally:
        meter.close()


def test_unknown_model_is_recorded_unpriced_not_zero(tmp_path: object, sqlite_url: str) -> None:
    with Meter(database_url=sqlite_url) as meter:
        with pytest.raises(UnknownModelError, match="override"):
            meter.cost("acme", "acme-llm-1", Usage(input_tokens=1))
        r = meter.record(provider="acme", model="acme-llm-1", usage=Usage(input_tokens=7, output_tokens=3))
        assert r.duplicate is False and r.cost is None and not r.priced
        s = meter.summary()
        assert s.requests == 1 and s.unpriced_requests == 1 and s.cost == 0 and s.input_tokens == 7
        event = next(meter.events())
        assert event.cost is None and event.price_version is None


def test_unknown_model_can_be_refused(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, record_unpriced=False)
    with Meter(settings=settings) as meter:
        with pytest.raises(UnknownModelError):
            meter.record(provider="acme", model="nope", usage=Usage(input_tokens=1))
        assert meter.summary().requests == 0


def test_bad_usage_is_refused_with_the_field_named(sqlite_url: str) -> None:
    with Meter(database_url=sqlite_url) as meter:
        with pytest.raises(InvalidUsageError) as exc:
            meter.record(
                provider="openai",
                model="gpt-4o",
                usage=Usage(input_tokens=5, cache_read_tokens=3, cache_write_tokens=3),
            )
        assert exc.value.field == "cache_read_tokens"
        with pytest.raises(InvalidUsageError, match="timestamp"):
            meter.record(provider="openai", model="gpt-4o", usage=Usage(), timestamp=datetime(2026, 1, 1))
        with pytest.raises(InvalidUsageError, match="colour"):
            meter.record(provider="openai", model="gpt-4o", usage=Usage(), colour="red")
        with pytest.raises(InvalidUsageError, match="provider"):
            meter.record(provider="", model="gpt-4o", usage=Usage())
        assert meter.summary().requests == 0


def test_record_many_is_all_or_nothing(sqlite_url: str) -> None:
    good = {"provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": 10, "output_tokens": 2}}
    bad = {"provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": -1}}
    with Meter(database_url=sqlite_url) as meter:
        with pytest.raises(InvalidUsageError) as exc:
            meter.record_many([good, bad, good])
        assert exc.value.field == "events[1].usage.input_tokens"
        assert meter.summary().requests == 0
        results = meter.record_many([{**good, "event_id": "a"}, {**good, "event_id": "b"}, {**good, "event_id": "a"}])
        assert [r.duplicate for r in results] == [False, False, True]
        assert meter.summary().requests == 2


def _seed(meter: Meter) -> None:
    for i in range(5):
        meter.record(
            event_id=f"ev{i}",
            timestamp=T0 + timedelta(hours=i),
            provider="anthropic" if i % 2 else "openai",
            model="claude-sonnet-4-0" if i % 2 else "gpt-4o-mini",
            usage=Usage(input_tokens=1000 * (i + 1), output_tokens=100, cache_read_tokens=10 * i),
            user_id=f"u{i % 2}",
            team_id="t1",
            tags={"feature": "chat"},
            metadata={"i": i},
            latency_ms=100 + i,
        )


def test_reports_and_exports_agree(sqlite_url: str) -> None:
    with Meter(database_url=sqlite_url) as meter:
        _seed(meter)
        total = meter.summary()
        by_user = dict(meter.report("user_id"))
        assert set(by_user) == {"u0", "u1"}
        assert sum((s.cost for s in by_user.values()), Decimal(0)) == total.cost
        assert meter.summary(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3)).requests == 2

        jl = io.StringIO()
        assert meter.export(jl, format="jsonl") == 5
        rows = [json.loads(line) for line in jl.getvalue().splitlines()]
        assert sum(Decimal(r["cost"]) for r in rows) == total.cost
        assert rows[0]["tags"] == {"feature": "chat"} and rows[0]["usage"]["input_tokens"] == 1000

        arr = io.StringIO()
        assert meter.export(arr, format="json", user_id="u1") == 2
        assert [r["event_id"] for r in json.loads(arr.getvalue())] == ["ev1", "ev3"]

        cs = io.StringIO()
        meter.export(cs, format="csv")
        table = list(csv.DictReader(io.StringIO(cs.getvalue())))
        assert len(table) == 5 and sum(Decimal(r["cost"]) for r in table) == total.cost
        assert table[2]["input_tokens"] == "3000"

        empty = io.StringIO()
        assert meter.export(empty, format="json", user_id="nobody") == 0
        assert json.loads(empty.getvalue()) == []
        with pytest.raises(InvalidUsageError, match="until"):
            meter.summary(since=T0, until=T0)


def test_override_is_shared_through_the_database_and_rerate_keeps_originals(sqlite_url: str) -> None:
    clock = FakeClock(T0)
    with Meter(database_url=sqlite_url, clock=clock) as meter:
        usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
        r = meter.record(event_id="x1", provider="selfhost", model="llama-70b", usage=usage, timestamp=T0)
        assert r.cost is None
        meter.add_price_override(
            PriceOverride(
                provider="selfhost",
                model="llama-70b",
                effective_from=date(2026, 1, 1),
                input=Decimal("1"),
                output=Decimal("2"),
            )
        )
        report = meter.rerate(since=T0 - timedelta(days=1), reason="first price")
        assert (report.examined, report.changed, report.newly_priced, report.delta) == (1, 1, 1, Decimal("3"))
        assert meter.summary().cost == Decimal("3")

    # a second Meter (another process, in real life) sees the stored override
    with Meter(database_url=sqlite_url, clock=clock) as other:
        assert other.cost("selfhost", "llama-70b", usage, at=T0).total == Decimal("3")
        other.add_price_override(
            PriceOverride(
                provider="selfhost",
                model="llama-70b",
                effective_from=date(2026, 3, 1),
                input=Decimal("0.5"),
                output=Decimal("1"),
            )
        )
        dry = other.rerate(since=T0 - timedelta(days=1), dry_run=True)
        assert dry.changed == 1 and dry.delta == Decimal("-1.5")
        assert other.summary().cost == Decimal("3")  # dry run wrote nothing
        done = other.rerate(since=T0 - timedelta(days=1), reason="negotiated rate")
        assert done.delta == Decimal("-1.5")
        assert other.summary().cost == Decimal("1.5")
        event = other.store.get("x1")
        assert event is not None and event.cost == Decimal("1.5")
        adjustments = other.store.adjustments(event_id="x1")
        assert [a.reason for a in adjustments] == ["first price", "negotiated rate"]
        assert adjustments[0].old_cost is None and adjustments[1].old_cost == Decimal("3")
        assert other.rerate(since=T0 - timedelta(days=1)).changed == 0  # idempotent


def test_async_meter_concurrent_records(sqlite_url: str) -> None:
    async def main() -> None:
        async with AsyncMeter(sqlite_url) as meter:
            usage = Usage(input_tokens=100, output_tokens=10)
            results = await asyncio.gather(
                *(
                    meter.record(event_id=f"a{i % 150}", provider="openai", model="gpt-4o", usage=usage)
                    for i in range(200)
                )
            )
            assert sum(not r.duplicate for r in results) == 150
            summary = await meter.summary()
            assert summary.requests == 150
            assert summary.cost == 150 * (await meter.cost("openai", "gpt-4o", usage)).total
            assert meter.count_tokens("openai", "gpt-4o", text="hello world").total == 2
            assert len(await meter.events()) == 150
            buf = io.StringIO()
            assert await meter.export(buf, format="csv") == 150
            assert [s.requests for _, s in await meter.report("model")] == [150]
            assert (await meter.rerate(since=datetime(2020, 1, 1, tzinfo=UTC))).changed == 0
            assert len(await meter.record_many([{"provider": "openai", "model": "gpt-4o", "usage": {}}])) == 1

    asyncio.run(main())
