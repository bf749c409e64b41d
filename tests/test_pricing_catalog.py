"""Every token-priced model of the genai-prices catalog costs exactly what genai-prices' calc_price says.

For each provider's models, a set of usages (plain, cache reads, cache writes, over the 200k/272k
context tiers, reasoning) is priced by spendgate and by genai-prices at standard processing, at each
service-tier/batch variant the model has, and at timestamps around every dated or time-of-day price.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price
from genai_prices.data import providers
from genai_prices.types import ModelInfo, ModelPrice, Provider, StartDateConstraint, TimeOfDateConstraint

from spendgate.errors import PricingError, UnknownModelError
from spendgate.pricing import PriceBook
from spendgate.usage import Usage

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
USAGES = (
    Usage(input_tokens=1_000, output_tokens=500),
    Usage(input_tokens=12_345, output_tokens=678, cache_read_tokens=10_000),
    Usage(input_tokens=50_000, output_tokens=2_000, cache_read_tokens=20_000, cache_write_tokens=5_000),
    Usage(input_tokens=300_001, output_tokens=4_000, cache_read_tokens=100_000, cache_write_tokens=1_000),
    Usage(input_tokens=5_000, output_tokens=3_000, reasoning_tokens=2_000),
)
BOOK = PriceBook()


def _genai_usage(usage: Usage) -> GenaiUsage:
    return GenaiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )


def _price_sets(model: ModelInfo) -> list[ModelPrice]:
    sets = [model.prices] if isinstance(model.prices, ModelPrice) else [c.prices for c in model.prices]
    return sets + [variant.prices for variant in model.price_variants or []]


def _has_token_prices(model: ModelInfo) -> bool:
    return any(
        getattr(prices, "input_mtok", None) is not None or getattr(prices, "output_mtok", None) is not None
        for prices in _price_sets(model)
    )


def _tiers(model: ModelInfo) -> list[str | None]:
    """Standard plus each service tier / batch variant the model has, as spendgate names them."""
    tiers: list[str | None] = [None]
    for variant in model.price_variants or []:
        when = variant.when
        if when == {"processing": "batch"}:
            tiers.append("batch")
        elif set(when) == {"service_tier"} and when["service_tier"] != "default":
            tiers.append(when["service_tier"])
        elif when == {"speed": "fast"}:
            tiers.append("fast")
    return list(dict.fromkeys(tiers))


def _moments(model: ModelInfo) -> list[datetime]:
    """Now, plus the day of and the day before every start date, and both sides of every time window."""
    constraints = [v.constraint for v in model.price_variants or []]
    if not isinstance(model.prices, ModelPrice):
        constraints += [c.constraint for c in model.prices]
    moments = [NOW]
    for constraint in constraints:
        if isinstance(constraint, StartDateConstraint):
            start = datetime.combine(constraint.start_date, time(12), UTC)
            moments += [start, start - timedelta(days=1)]
        elif isinstance(constraint, TimeOfDateConstraint):
            for clock in (constraint.start_time, constraint.end_time):
                at = datetime.combine(NOW.date(), clock.replace(tzinfo=None), clock.tzinfo or UTC)
                moments += [at, at - timedelta(minutes=1)]
    return sorted(set(moments))


def _context(tier: str | None) -> dict[str, str] | None:
    if tier is None:
        return None
    if tier == "batch":
        return {"processing": "batch"}
    if tier == "fast":
        return {"service_tier": "fast", "speed": "fast"}
    return {"service_tier": tier}


def _token_priced_models(provider: Provider) -> Iterator[ModelInfo]:
    return (model for model in provider.models if _has_token_prices(model))


def _check(provider: Provider, model: ModelInfo, tier: str | None, at: datetime, usage: Usage) -> str | None:
    """None when spendgate agrees with genai-prices, else a description of the disagreement."""
    try:
        expected = calc_price(
            _genai_usage(usage),
            model.id,
            provider_id=provider.id,
            genai_request_timestamp=at,
            price_context=_context(tier),
        )
    except LookupError:
        with pytest.raises(UnknownModelError):
            BOOK.cost(provider.id, model.id, usage, at=at, service_tier=tier)
        return None
    try:
        got = BOOK.cost(provider.id, model.id, usage, at=at, service_tier=tier)
    except UnknownModelError as exc:
        # only a price without any token price may refuse token usage (never a silent zero)
        if "not by tokens" in str(exc) and not any(
            getattr(expected.model_price, key, None) is not None for key in ("input_mtok", "output_mtok")
        ):
            return None
        return f"unexpected {exc}"
    except PricingError:
        # no variant for the tier at this moment: genai-prices would silently charge the standard price
        standard = calc_price(_genai_usage(usage), model.id, provider_id=provider.id, genai_request_timestamp=at)
        return None if standard.total_price == expected.total_price else "tier refused although priced"
    if got.total != expected.total_price:
        return f"spendgate {got.total} != genai-prices {expected.total_price} ({got.price_version})"
    parts = (got.input, got.cache_read, got.cache_write, got.output, got.reasoning, got.request, got.other)
    if sum(parts, Decimal(0)) != got.total or any(part < 0 for part in parts):
        return f"parts {parts} do not add up to {got.total}"
    return None


@pytest.mark.parametrize("provider", providers, ids=lambda p: p.id)
def test_catalog_models_match_genai_prices(provider: Provider) -> None:
    failures: list[str] = []
    checked = 0
    for model in _token_priced_models(provider):
        for tier in _tiers(model):
            for at in _moments(model):
                for usage in USAGES:
                    problem = _check(provider, model, tier, at, usage)
                    checked += 1
                    if problem:
                        failures.append(f"{provider.id}/{model.id} tier={tier} at={at:%Y-%m-%d %H:%M}: {problem}")
    assert not failures, f"{len(failures)} of {checked} disagree:\n" + "\n".join(failures[:30])


def test_the_sweep_covers_the_catalog() -> None:
    models = [m for p in providers for m in _token_priced_models(p)]
    assert len(models) > 1_500
    assert sum(len(_tiers(m)) > 1 for m in models) > 50  # batch / flex / priority variants
    assert sum(len(_moments(m)) > 1 for m in models) > 100  # dated or time-of-day prices
