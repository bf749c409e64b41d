"""Recommendations on synthetic traffic whose right answer is known: every type triggered and not, savings exact.

Prices (USD per million tokens) are overrides, so the hand-computed figures hold whatever the catalog says:
acme/big 10 in, 30 out, 1 cache read, 12.5 cache write, batch 5/15; acme/small 1/2; otherco/big 8/24;
otherco/tinier 0.5/1; acme/night 10/10, twice that from 08:00 to 20:00 UTC.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from spendgate import Meter, Settings
from spendgate.analytics._recommend import (
    Recommendation,
    RecommendationConfig,
    RecommendationReport,
    Recommender,
    recommend,
)
from spendgate.budgets import DowngradeChains
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageEvent
from spendgate.pricing import PriceBook, PriceOverride, TimeOfDayRule
from spendgate.testing import FakeClock
from spendgate.usage import Usage

NOW = datetime(2026, 3, 11, tzinfo=UTC)
SINCE = datetime(2026, 3, 1, tzinfo=UTC)
NOON = datetime(2026, 3, 10, 12, tzinfo=UTC)
_E = date(2020, 1, 1)
CHAINS = DowngradeChains.from_dict({"acme/big": ["acme/small"]})
_ids = itertools.count()


def book() -> PriceBook:
    peak = TimeOfDayRule(start="08:00", end="20:00", timezone="UTC", multiplier=D(2))
    return PriceBook(
        [
            PriceOverride(provider="acme", model="big", effective_from=_E, input=D(10), output=D(30), cache_read=D(1),
                          cache_write=D("12.5")),
            PriceOverride(provider="acme", model="big", effective_from=_E, input=D(5), output=D(15),
                          service_tier="batch"),
            PriceOverride(provider="acme", model="small", effective_from=_E, input=D(1), output=D(2)),
            PriceOverride(provider="otherco", model="big", effective_from=_E, input=D(8), output=D(24)),
            PriceOverride(provider="otherco", model="tinier", effective_from=_E, input=D("0.5"), output=D(1)),
            PriceOverride(provider="acme", model="night", effective_from=_E, input=D(10), output=D(10),
                          time_of_day=[peak]),
        ]
    )  # fmt: skip


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[Meter]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}")
    with Meter(settings=settings, clock=FakeClock(NOW), price_book=book()) as running:
        yield running


def calls(meter: Meter, n: int, model: str, input_tokens: int, output_tokens: int, **fields: Any) -> None:
    """``n`` recorded calls to acme/``model`` (or ``provider=...``) at noon on 2026-03-10 unless ``timestamp``."""
    fields.setdefault("provider", "acme")
    fields.setdefault("timestamp", NOON)
    usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    usage.update(fields.pop("usage", {}))
    meter.record_many([{"event_id": f"c{next(_ids)}", "model": model, "usage": usage, **fields} for _ in range(n)])


def loose(**changes: Any) -> RecommendationConfig:
    """No floors (every recommendation found is shown), plus ``changes``."""
    return RecommendationConfig(**{"min_savings": D(0), "min_confidence": 0.0, "min_requests": 1, **changes})


def run(meter: Meter, config: RecommendationConfig | None = None, **filters: Any) -> RecommendationReport:
    config = config or loose()
    return recommend(meter.store, meter.prices, since=SINCE, until=NOW, config=config, chains=CHAINS, **filters)


def of(report: RecommendationReport, kind: str) -> list[Recommendation]:
    return [r for r in report.recommendations if r.type == kind]


def test_model_downgrade_for_short_calls(meter: Meter) -> None:
    calls(meter, 20, "big", 100, 50)  # 0.0025 each; on acme/small 0.0002
    calls(meter, 5, "big", 2000, 500)  # not short: not counted
    [rec] = of(run(meter), "model_downgrade")
    assert (rec.requests, rec.affected_cost, rec.savings, rec.savings_percent) == (
        20,
        D("0.05"),
        D("0.046"),
        D("92.00"),
    )
    assert rec.evidence["alternative"] == "acme/small" and rec.quality_impact == "minimal" and rec.effort == "low"
    assert rec.confidence == 0.64  # 0.8 * 20 / (20 + 5)
    assert rec.id == "model_downgrade:all:acme/big:20260301-20260311"


def test_no_downgrade_for_long_calls_or_without_a_chain(meter: Meter) -> None:
    calls(meter, 20, "big", 2000, 500)
    assert of(run(meter), "model_downgrade") == []
    calls(meter, 20, "big", 100, 50)
    no_chains = recommend(meter.store, meter.prices, since=SINCE, until=NOW, config=loose(), chains=DowngradeChains({}))
    assert of(no_chains, "model_downgrade") == []


def test_provider_switch_to_the_same_model_elsewhere(meter: Meter) -> None:
    calls(meter, 20, "big", 2000, 500)  # 0.035 each; at otherco 0.028
    [rec] = of(run(meter), "provider_switch")
    assert (rec.requests, rec.savings, rec.savings_percent) == (20, D("0.14"), D("20.00"))
    assert rec.evidence["to_provider"] == "otherco" and rec.evidence["same_model"] is True
    assert (rec.quality_impact, rec.confidence) == ("none", 0.76)
    elsewhere = loose(switch_providers=frozenset({"nobody"}))
    assert of(run(meter, elsewhere), "provider_switch") == []


def test_provider_switch_within_a_configured_class(meter: Meter) -> None:
    calls(meter, 20, "small", 1000, 1000)  # 0.003 each; otherco/tinier 0.0015
    assert of(run(meter), "provider_switch") == []  # no acme/small anywhere else
    classes = loose(model_classes={"small": ("acme/small", "otherco/tinier")})
    [rec] = of(run(meter, classes), "provider_switch")
    assert rec.savings == D("0.03") and rec.evidence["same_model"] is False and "same class" in rec.description


def test_caching_saves_exactly_the_repeated_calls(meter: Meter) -> None:
    for repeat in range(3):
        for prompt in range(10):
            calls(meter, 1, "small", 100, 50, prompt_hash=f"p{prompt}", timestamp=NOON + timedelta(minutes=repeat))
    calls(meter, 1, "big", 100, 50, prompt_hash="p0")  # the same prompt on another model is not a repeat
    calls(meter, 4, "small", 100, 50, prompt_hash="p1", cached=True)  # answered by the cache already
    report = run(meter)
    [rec] = of(report, "caching")
    assert (rec.requests, rec.savings, rec.affected_cost, rec.savings_percent) == (20, D("0.004"), D("0.004"), D("100"))
    assert rec.evidence["repeated_calls_by_model"] == {"acme/small": 20}
    assert rec.evidence["share_of_spend"] == "47.06"  # 0.004 of 0.0085
    assert report.cached_requests == 4 and report.requests == 31


def test_no_caching_without_repeats(meter: Meter) -> None:
    for prompt in range(30):
        calls(meter, 1, "small", 100, 50, prompt_hash=f"p{prompt}")
    calls(meter, 30, "small", 100, 50)  # no prompt hash at all
    assert of(run(meter), "caching") == []


def test_batch_api_for_non_urgent_request_types(meter: Meter) -> None:
    calls(meter, 20, "big", 2000, 500, request_type="eval")  # 0.035 each; batch 0.0175
    calls(meter, 20, "big", 2000, 500, request_type="chat")  # urgent
    calls(meter, 20, "big", 2000, 500, request_type="eval", batch=True)  # batched already
    calls(meter, 20, "small", 2000, 500, request_type="eval")  # no batch price
    report = run(meter)
    [rec] = of(report, "batch_api")
    assert (rec.requests, rec.savings, rec.savings_percent) == (20, D("0.35"), D("50.00"))
    [switch] = of(report, "provider_switch")  # alternatives are priced in the call's own tier: otherco has no batch
    assert (switch.requests, switch.savings) == (40, 40 * D("0.007"))
    assert rec.evidence["request_types"] == ["eval"] and rec.evidence["model"] == "big"
    custom = loose(non_urgent_request_types=frozenset({"chat"}))
    [chat] = of(run(meter, custom), "batch_api")
    assert chat.evidence["request_types"] == ["chat"] and chat.savings == D("0.35")


def test_prompt_caching_for_long_repeated_prompts(meter: Meter) -> None:
    for repeat in range(4):
        for prompt in range(5):
            calls(meter, 1, "big", 2000, 100, prompt_hash=f"long{prompt}", timestamp=NOON + timedelta(minutes=repeat))
    [rec] = of(run(meter), "prompt_caching")
    # 15 repeats at 0.023, as cache reads 0.005; 5 first calls pay a cache-write premium of 0.005
    assert (rec.requests, rec.affected_cost) == (15, D("0.345"))
    assert rec.savings == D("0.245") == 15 * (D("0.023") - D("0.005")) - 5 * D("0.005")
    assert rec.savings_percent == D("71.01")


@pytest.mark.parametrize(
    ("model", "input_tokens", "usage"),
    [("big", 500, {}), ("big", 2000, {"cache_read_tokens": 1500}), ("small", 2000, {})],
    ids=["short-prompt", "already-cached", "no-cheaper-cache-reads"],
)
def test_no_prompt_caching(meter: Meter, model: str, input_tokens: int, usage: dict[str, int]) -> None:
    for repeat in range(4):
        for prompt in range(5):
            calls(meter, 1, model, input_tokens, 100, prompt_hash=f"h{prompt}", usage=usage,
                  timestamp=NOON + timedelta(minutes=repeat))  # fmt: skip
    report = run(meter)
    assert of(report, "prompt_caching") == [] and len(of(report, "caching")) == 1


def test_context_trimming(meter: Meter) -> None:
    calls(meter, 10, "small", 10000, 100)  # 0.0102 each; 30 % less input: 0.0072
    calls(meter, 10, "small", 10000, 2000)  # input only 5x the output
    calls(meter, 10, "small", 3000, 10)  # under 4000 input tokens
    [rec] = of(run(meter), "context_trimming")
    assert (rec.requests, rec.savings, rec.savings_percent) == (10, D("0.03"), D("29.41"))
    assert (rec.effort, rec.quality_impact) == ("high", "moderate")


def test_off_peak_scheduling(meter: Meter) -> None:
    calls(meter, 10, "night", 1000, 1000, request_type="batch")  # 12:00, peak: 0.04; from 20:00 0.02
    calls(meter, 1, "night", 1000, 1000, request_type="batch", timestamp=NOON.replace(hour=19, minute=50))
    calls(meter, 10, "night", 1000, 1000, request_type="batch", timestamp=NOON.replace(hour=21))  # off-peak already
    calls(meter, 10, "night", 1000, 1000, request_type="chat")  # urgent
    [rec] = of(run(meter), "off_peak")
    assert (rec.requests, rec.affected_cost, rec.savings, rec.savings_percent) == (11, D("0.44"), D("0.22"), D("50.00"))
    short_wait = loose(off_peak_max_delay=timedelta(hours=1))
    [late] = of(run(meter, short_wait), "off_peak")  # only the 19:50 call reaches 20:00 within an hour
    assert (late.requests, late.savings) == (1, D("0.02"))


def test_floors_decide_what_is_shown(meter: Meter) -> None:
    calls(meter, 20, "big", 2000, 500)  # provider switch: saves 0.14 at confidence 0.76
    report = run(meter, RecommendationConfig())  # the seeds' floors: 5.0 and 0.7
    assert report.recommendations == () and report.withheld == 1
    assert [r.type for r in run(meter, RecommendationConfig(min_savings=D("0.14"))).recommendations] == [
        "provider_switch"
    ]
    assert run(meter, RecommendationConfig(min_savings=D("0.14"), min_confidence=0.77)).recommendations == ()
    assert run(meter, RecommendationConfig(min_savings=D("0.15"))).recommendations == ()
    assert run(meter, RecommendationConfig(min_savings=D(0), min_requests=21)).recommendations == ()


def test_priority_follows_the_share_of_spend(meter: Meter) -> None:
    calls(meter, 20, "big", 2000, 500)  # switch saves 20 % of all spend
    assert of(run(meter), "provider_switch")[0].priority == "high"
    calls(meter, 300, "small", 10000, 10000)  # spend grows 14x: the same savings are now 1.44 %
    rec = of(run(meter), "provider_switch")[0]
    assert rec.priority == "low" and rec.savings == D("0.14")
    assert of(run(meter, loose(medium_share=D("0.01"))),
              "provider_switch")[0].priority == "medium"  # fmt: skip


def test_results_are_sorted_by_savings_and_in_the_seeds_shape(meter: Meter) -> None:
    calls(meter, 20, "big", 2000, 500, request_type="eval")
    report = run(meter)
    assert [r.type for r in report.recommendations] == ["batch_api", "provider_switch"]
    body = report.to_dict()["recommendations"][0]
    assert list(body)[:11] == [
        "recommendation_id", "optimization_type", "priority", "title", "description", "potential_savings",
        "potential_savings_percentage", "currency", "implementation_effort", "quality_impact", "confidence_score",
    ]  # fmt: skip
    assert body["potential_savings"] == "0.35" and body["potential_savings_percentage"] == "50.00"
    assert body["action_items"] and body["affected_requests"] == 20


def test_filters_pin_whose_traffic_it_is(meter: Meter) -> None:
    calls(meter, 20, "big", 2000, 500, user_id="ann")
    calls(meter, 20, "big", 2000, 500, user_id="bob")
    calls(meter, 20, "big", 2000, 500, user_id="ann", timestamp=SINCE - timedelta(hours=1))  # before the period
    report = run(meter, user_id="ann")
    [rec] = of(report, "provider_switch")
    assert rec.requests == 20 and report.requests == 20
    assert rec.id == "provider_switch:user:ann:acme/big:20260301-20260311"


def test_unpriced_and_other_currency_calls_are_counted_not_analysed(meter: Meter) -> None:
    calls(meter, 3, "unknown-model", 10, 10, provider="nowhere")
    meter.store.record_many(
        [UsageEvent(event_id="eur", timestamp=NOON, provider="acme", model="big", usage=Usage(input_tokens=5),
                    cost=D(1), currency="EUR")]
    )  # fmt: skip
    report = run(meter)
    assert (report.unpriced_requests, report.other_currency_requests, report.requests) == (3, 1, 0)
    assert report.to_dict()["cost"] == "0" and report.recommendations == ()


def test_prompt_tracking_is_bounded_and_keeps_the_heavy_hitters() -> None:
    prices = book()
    config = loose(max_tracked_prompts=10)
    recommender = Recommender(prices, since=SINCE, until=NOW, config=config, chains=CHAINS)
    cost = prices.cost("acme", "small", Usage(input_tokens=100, output_tokens=50)).total
    for i in range(500):
        digest = "hot" if i % 10 == 0 else f"cold{i}"
        recommender.add(
            UsageEvent(
                event_id=f"e{i}",
                timestamp=NOON,
                provider="acme",
                model="small",
                usage=Usage(input_tokens=100, output_tokens=50),
                cost=cost,
                prompt_hash=digest,
            )
        )
        assert len(recommender._prompts) <= 10
    report = recommender.report()
    [rec] = of(report, "caching")
    assert report.prompt_tracking_capped and rec.savings == 49 * cost and rec.requests == 49
    assert rec.confidence == round(0.85 * 0.9 * 49 / 54, 2)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"min_savings": D(-1)}, "min_savings"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"max_tracked_prompts": 0}, "max_tracked_prompts"),
        ({"context_trim_fraction": D(1)}, "context_trim_fraction"),
        ({"off_peak_max_delay": timedelta(0)}, "off_peak_max_delay"),
    ],
)
def test_config_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidUsageError) as caught:
        RecommendationConfig(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_recommend_on_each_backend(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Meter(settings=Settings(database_url=url), clock=FakeClock(NOW), price_book=book()) as meter:
        for repeat in range(3):
            calls(meter, 1, "small", 100, 50, prompt_hash="same", timestamp=NOON + timedelta(seconds=repeat))
        [rec] = run(meter).recommendations
        assert (rec.type, rec.savings, rec.requests) == ("caching", D("0.0004"), 2)
