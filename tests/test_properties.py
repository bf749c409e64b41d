"""Properties of pricing over the whole catalog and over price overrides (issue 8).

``test_pricing_book.py`` and ``test_pricing_units.py`` check non-negative parts and additivity on a
few models and random genai-prices sheets; this file covers every catalog model, cliff tiers,
monotonicity, overrides (minimum charges, tiers, volume and time-of-day rules) and unknown models.

How tiers work: a cliff tier picks one price for the whole call by its total input tokens, so cost is
affine (linear plus the per-request fee) only among usages whose input falls in the same tier segment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spendgate.errors import InvalidUsageError, UnknownModelError
from spendgate.pricing import (
    ContextTier,
    CostBreakdown,
    FallbackPrice,
    PriceBook,
    PriceOverride,
    TimeOfDayRule,
    VolumeTier,
)
from spendgate.pricing._catalog import _AUDIO_FLOORS, Catalog
from spendgate.usage import Usage

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
PARTS = ("input", "cache_read", "cache_write", "output", "reasoning", "request", "other")
BOOK = PriceBook()
CATALOG = sorted({(provider.id, model.id) for provider, model in Catalog().models()})
EMPTY = Usage()
CUSTOM = ("acme", "acme-llm")


@st.composite
def usages(
    draw: st.DrawFn,
    *,
    max_input: int = 600_000,
    overlap: bool = True,
    max_output: int = 200_000,
    max_searches: int = 5,
    media: bool = True,
) -> Usage:
    """Any valid usage; with ``overlap=False`` its cached tokens fit in its text tokens; ``media=False``
    leaves out images and seconds of audio and processing (what genai-prices' ``Usage`` cannot say)."""
    input_tokens = draw(st.integers(0, max_input))
    audio = draw(st.integers(0, input_tokens))
    image = draw(st.integers(0, input_tokens - audio))
    room = input_tokens if overlap else input_tokens - audio - image
    cache_read = draw(st.integers(0, room))
    cache_write = draw(st.integers(0, room - cache_read))
    output_tokens = draw(st.integers(0, max_output))
    reasoning = draw(st.integers(0, output_tokens))
    extra: dict[str, Any] = {
        "images": draw(st.integers(0, 5)),
        "audio_seconds": Decimal(draw(st.integers(0, 36_000))) / 10,
        "processing_seconds": Decimal(draw(st.integers(0, 6_000))) / 100,
    }
    return Usage(
        input_tokens=input_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        input_audio_tokens=audio,
        input_image_tokens=image,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning,
        output_audio_tokens=draw(st.integers(0, output_tokens - reasoning)),
        web_searches=draw(st.integers(0, max_searches)),
        **(extra if media else {}),
    )


def cached_fits_text(usage: Usage) -> bool:
    text = usage.input_tokens - usage.input_audio_tokens - usage.input_image_tokens
    return usage.cache_read_tokens + usage.cache_write_tokens <= text


def check_breakdown(cost: CostBreakdown, *, exact: bool = True) -> None:
    """Every part and the total are Decimals, none negative, and the parts add up to the total."""
    parts = [getattr(cost, name) for name in PARTS]
    assert all(type(part) is Decimal and part.is_finite() and part >= 0 for part in parts)
    assert type(cost.total) is Decimal
    assert_sums(sum(parts, Decimal(0)), cost.total, exact=exact)


def assert_sums(together: Decimal, apart: Decimal, *, exact: bool, scale: Decimal | None = None) -> None:
    """Equal; or, where a rate does not terminate, equal to Decimal's 28 significant digits (of ``scale``)."""
    if exact:
        assert together == apart
    else:
        assert abs(together - apart) <= abs(apart if scale is None else scale).scaleb(-26)


def token_priced(book: PriceBook, provider: str, model: str) -> bool:
    try:
        book.cost(provider, model, Usage(input_tokens=1), at=NOW)
    except UnknownModelError:
        return False
    return True


def segment(book: PriceBook, provider: str, model: str, input_tokens: int) -> int:
    """Which cliff-tier segment ``input_tokens`` falls in (0 below the first tier)."""
    return sum(input_tokens > start for start in book.price(provider, model, at=NOW).context_tiers)


# -- the catalog ---------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(ref=st.sampled_from(CATALOG), usage=usages())
def test_every_catalog_model_prices_any_usage_as_non_negative_decimals(ref: tuple[str, str], usage: Usage) -> None:
    try:
        cost = BOOK.cost(*ref, usage, at=NOW)
    except UnknownModelError:
        # a model the catalog cannot find by its own id, or one priced by no token unit: refused, never free
        assert not token_priced(BOOK, *ref)
        return
    except InvalidUsageError:
        # only a split of cached tokens over audio/image tokens that no derivation explains is refused
        assert not cached_fits_text(usage)
        return
    check_breakdown(cost)
    cached = usage.cache_read_tokens + usage.cache_write_tokens
    if usage.input_tokens > cached + usage.input_audio_tokens + usage.input_image_tokens:
        assert cost.total > 0  # plain text input is never free in the catalog


@settings(max_examples=300, deadline=None)
@given(
    ref=st.sampled_from(CATALOG),
    a=usages(max_input=400_000, overlap=False),
    b=usages(max_input=400_000, overlap=False),
)
def test_catalog_costs_are_affine_within_a_tier_segment(ref: tuple[str, str], a: Usage, b: Usage) -> None:
    assume(token_priced(BOOK, *ref) and ref not in _AUDIO_FLOORS)  # Groq Whisper bills 10 s at least
    both = a + b
    assume(segment(BOOK, *ref, a.input_tokens) == segment(BOOK, *ref, b.input_tokens))
    assume(segment(BOOK, *ref, both.input_tokens) == segment(BOOK, *ref, a.input_tokens))
    flat = BOOK.cost(*ref, EMPTY, at=NOW).total  # the per-request fee, if any
    together = BOOK.cost(*ref, both, at=NOW).total + flat
    apart = BOOK.cost(*ref, a, at=NOW).total + BOOK.cost(*ref, b, at=NOW).total
    # a price per hour of audio is divided by 3600 per call, as genai-prices does: $4.80/h is
    # 0.0001333...3 for 0.1 s, rounded to 28 digits, so two such calls may differ from one in the last digit
    hourly = both.audio_seconds and any(key.endswith("_hours") for key in BOOK.price(*ref, at=NOW).other_prices)
    assert_sums(together, apart, exact=not hourly)


@settings(max_examples=300, deadline=None)
@given(ref=st.sampled_from(CATALOG), usage=usages(overlap=False), more=usages(max_input=300_000, overlap=False))
def test_catalog_costs_never_fall_when_usage_grows(ref: tuple[str, str], usage: Usage, more: Usage) -> None:
    """No catalog tier is cheaper than the prices below it, so more of anything never costs less.

    Only while cached tokens fit in the text tokens: see test_caching_an_image_token_never_lowers_the_cost.
    """
    assume(token_priced(BOOK, *ref))
    assert BOOK.cost(*ref, usage + more, at=NOW).total >= BOOK.cost(*ref, usage, at=NOW).total


@pytest.mark.xfail(strict=True, reason="bug: cached tokens beyond the text count as audio first, whatever was cached")
def test_caching_an_image_token_never_lowers_the_cost() -> None:
    audio = Usage(input_tokens=1, input_audio_tokens=1)  # $32/MTok
    cached_image = Usage(input_tokens=1, input_image_tokens=1, cache_read_tokens=1)
    # the cached token is taken for the audio one ($0.40/MTok cached), the image one is charged in full ($5/MTok)
    assert BOOK.cost("openai", "gpt-realtime", audio + cached_image, at=NOW).total >= Decimal("0.000032")


# -- overrides -----------------------------------------------------------------------------------------

prices = st.integers(0, 40_000).map(lambda cents: Decimal(cents) / 1000)
maybe_price = st.none() | prices


@st.composite
def overrides(draw: st.DrawFn, *, minimum: st.SearchStrategy[Decimal | None] = maybe_price) -> PriceOverride:
    tiers = draw(st.lists(st.integers(1, 500_000), max_size=2, unique=True))
    context = [
        ContextTier(above_input_tokens=start, input=draw(prices), output=draw(prices), cache_read=draw(maybe_price))
        for start in tiers
    ]
    volume = [
        VolumeTier(above_monthly_tokens=start, discount_percent=Decimal(draw(st.integers(0, 100))))
        for start in draw(st.lists(st.integers(0, 10**8), max_size=2, unique=True))
    ]
    rules = []
    if draw(st.booleans()):
        rules.append(TimeOfDayRule(start="09:00", end="17:00", timezone="Europe/Berlin", multiplier=draw(prices)))
    return PriceOverride(
        provider="acme",
        model="acme-llm",
        effective_from=date(2026, 1, 1),
        input=draw(prices),
        output=draw(prices),
        cache_read=draw(maybe_price),
        cache_write=draw(maybe_price),
        reasoning=draw(maybe_price),
        per_request=draw(maybe_price),
        minimum_charge=draw(minimum),
        per_second=draw(maybe_price),
        context_tiers=context,
        volume_tiers=volume,
        time_of_day=rules,
    )


instants = st.datetimes(min_value=datetime(2026, 1, 2), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))
volumes = st.integers(0, 2 * 10**8)


@settings(max_examples=200, deadline=None)
@given(override=overrides(), usage=usages(), at=instants, volume=volumes)
def test_override_costs_are_non_negative_decimals(
    override: PriceOverride, usage: Usage, at: datetime, volume: int
) -> None:
    cost = PriceBook([override]).cost(*CUSTOM, usage, at=at, monthly_volume=volume)
    check_breakdown(cost, exact=True)
    assert cost.price_version == f"override:{override.id}" and not cost.estimated
    if override.minimum_charge is not None:
        assert cost.total >= override.minimum_charge


@settings(max_examples=200, deadline=None)
@given(override=overrides(minimum=st.none()), a=usages(), b=usages(), at=instants, volume=volumes)
def test_override_costs_are_affine_within_a_tier_segment(
    override: PriceOverride, a: Usage, b: Usage, at: datetime, volume: int
) -> None:
    book = PriceBook([override])
    both = a + b
    for usage in (a, b):
        assume(segment(book, *CUSTOM, usage.input_tokens) == segment(book, *CUSTOM, both.input_tokens))

    def total(usage: Usage) -> Decimal:
        return book.cost(*CUSTOM, usage, at=at, monthly_volume=volume).total

    assert_sums(total(both) + total(EMPTY), total(a) + total(b), exact=True)


def test_a_tier_price_scaled_from_a_repeating_ratio_is_rounded_so_sums_stay_exact() -> None:
    tier = ContextTier(above_input_tokens=0, input=Decimal(1), output=Decimal(1))
    override = PriceOverride(
        provider="acme", model="acme-llm", effective_from=date(2026, 1, 1), input=Decimal(3), output=Decimal(1),
        cache_write=Decimal(1), context_tiers=[tier],
    )  # fmt: skip
    # the tier's cache writes would cost $1/3 per MTok: rounded to $0.333333333333 (a pico-dollar per MTok)
    book = PriceBook([override])
    three = book.cost(*CUSTOM, Usage(input_tokens=3, cache_write_tokens=3), at=NOW)
    assert three.cache_write == Decimal("0.333333333333").scaleb(-6) * 3
    one = book.cost(*CUSTOM, Usage(input_tokens=1, cache_write_tokens=1), at=NOW)
    two = book.cost(*CUSTOM, Usage(input_tokens=2, cache_write_tokens=2), at=NOW)
    assert one.total + two.total == three.total + book.cost(*CUSTOM, Usage(), at=NOW).total  # exactly


@settings(max_examples=200, deadline=None)
@given(override=overrides(minimum=prices), usage=usages(), at=instants, volume=volumes)
def test_a_minimum_charge_only_tops_up(override: PriceOverride, usage: Usage, at: datetime, volume: int) -> None:
    body = override.to_mapping()
    del body["minimum_charge"]
    plain = PriceBook([PriceOverride.from_mapping(body)]).cost(*CUSTOM, usage, at=at, monthly_volume=volume)
    cost = PriceBook([override]).cost(*CUSTOM, usage, at=at, monthly_volume=volume)
    assert override.minimum_charge is not None
    assert cost.total == max(override.minimum_charge, plain.total)
    topped_up = cost.request - plain.request  # the top-up lands in ``request``
    assert_sums(topped_up, cost.total - plain.total, exact=True, scale=cost.total)


@settings(max_examples=200, deadline=None)
@given(override=overrides(), usage=usages(), more=usages(max_input=300_000), at=instants, volume=volumes)
def test_override_costs_never_fall_when_usage_grows_within_a_segment(
    override: PriceOverride, usage: Usage, more: Usage, at: datetime, volume: int
) -> None:
    book = PriceBook([override])
    grown = usage + more
    assume(segment(book, *CUSTOM, usage.input_tokens) == segment(book, *CUSTOM, grown.input_tokens))
    before = book.cost(*CUSTOM, usage, at=at, monthly_volume=volume).total
    assert book.cost(*CUSTOM, grown, at=at, monthly_volume=volume).total >= before


# -- unknown models ------------------------------------------------------------------------------------

unknown_models = st.text(alphabet="qxz0189-", min_size=1, max_size=12).map(lambda text: f"sg-{text}")
providers = st.sampled_from(["openai", "anthropic", "azure", "aws", "groq", "acme", "nobody"])


@settings(max_examples=100, deadline=None)
@given(provider=providers, model=unknown_models, usage=usages())
def test_an_unknown_model_raises_and_is_never_free(provider: str, model: str, usage: Usage) -> None:
    with pytest.raises(UnknownModelError):
        BOOK.cost(provider, model, usage, at=NOW)


FALLBACK = FallbackPrice(input=Decimal("0.5"), output=Decimal("1.5"))
ESTIMATING = PriceBook(fallback=FALLBACK)


@settings(max_examples=100, deadline=None)
@given(provider=providers, model=unknown_models, usage=usages())
def test_an_unknown_model_with_a_fallback_is_an_explicit_estimate(provider: str, model: str, usage: Usage) -> None:
    cost = ESTIMATING.cost(provider, model, usage, at=NOW)
    check_breakdown(cost)
    assert cost.estimated and cost.price_version == "fallback:default"
    assert cost.total == (FALLBACK.input * usage.input_tokens + FALLBACK.output * usage.output_tokens) / 1_000_000
