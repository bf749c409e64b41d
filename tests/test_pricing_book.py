"""PriceBook: lookups, unknown models and fallbacks, currencies, service tiers, exact Decimal breakdowns."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.errors import ConfigurationError, CurrencyError, InvalidUsageError, PricingError, UnknownModelError
from spendgate.pricing import CostBreakdown, FallbackPrice, ModelPriceInfo, PriceBook
from spendgate.pricing._catalog import Catalog, Located
from spendgate.testing import FakeClock
from spendgate.usage import Usage
from test_properties import usages

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
MTOK = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
PARTS = ("input", "cache_read", "cache_write", "output", "reasoning", "request", "other")


class NoClock:
    """A clock that must not be read: proves the plain catalog path never looks at the time."""

    def now(self) -> datetime:
        raise AssertionError("the clock was read")


def parts(cost: CostBreakdown) -> list[Decimal]:
    return [getattr(cost, name) for name in PARTS]


def test_the_contract_gpt_4o() -> None:
    cost = PriceBook().cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=100))
    assert cost.total == Decimal("0.0035")
    assert (cost.input, cost.output) == (Decimal("0.0025"), Decimal("0.001"))
    assert (cost.provider, cost.model, cost.model_id, cost.currency) == ("openai", "gpt-4o", "gpt-4o", "USD")
    assert cost.price_version == f"genai-prices@{genai_prices.__version__}:openai/gpt-4o"
    assert cost.estimated is False and cost.service_tier is None


def test_breakdown_is_exact_decimal_and_adds_up() -> None:
    usage = Usage(input_tokens=12_345, output_tokens=6_789, cache_read_tokens=2_000, reasoning_tokens=1_000)
    cost = PriceBook().cost("openai", "gpt-4o", usage)
    assert all(type(part) is Decimal for part in [*parts(cost), cost.total])
    assert sum(parts(cost), Decimal(0)) == cost.total
    assert cost.input == Decimal("2.5") * (12_345 - 2_000) / 1_000_000
    assert cost.cache_read == Decimal("1.25") * 2_000 / 1_000_000
    assert cost.output == Decimal("10") * 6_789 / 1_000_000  # reasoning is part of output for gpt-4o
    assert cost.reasoning == 0
    data = cost.to_dict()
    assert data["total"] == str(cost.total) and data["estimated"] is False and data["service_tier"] is None


def test_the_fast_breakdown_is_a_real_frozen_cost_breakdown() -> None:
    cost = PriceBook().cost("openai", "gpt-4o", Usage(input_tokens=10, output_tokens=5))
    assert type(cost) is CostBreakdown
    with pytest.raises(dataclasses.FrozenInstanceError):
        cost.total = Decimal(0)  # type: ignore[misc]
    rebuilt = CostBreakdown(**{f.name: getattr(cost, f.name) for f in dataclasses.fields(cost)})
    assert rebuilt == cost and hash(rebuilt) == hash(cost)
    assert pickle.loads(pickle.dumps(cost)) == cost


def test_plain_catalog_prices_never_read_the_clock() -> None:
    book = PriceBook(clock=NoClock())
    assert book.cost("openai", "gpt-4o", MTOK).total == Decimal("12.5")
    with pytest.raises(AssertionError, match="clock was read"):
        book.cost("openai", "o3", MTOK)  # o3's price changed on 2025-06-10: the time matters


def test_dated_catalog_prices_follow_the_clock() -> None:
    clock = FakeClock(datetime(2025, 6, 1, tzinfo=UTC))
    book = PriceBook(clock=clock)
    before = book.cost("openai", "o3", MTOK)
    clock.set(datetime(2025, 7, 1, tzinfo=UTC))
    after = book.cost("openai", "o3", MTOK)
    assert (before.total, after.total) == (Decimal(50), Decimal(10))
    assert before.price_version.endswith("openai/o3") and after.price_version.endswith("openai/o3@2025-06-10")
    naive = book.cost("openai", "o3", MTOK, at=datetime(2025, 6, 1))  # naive timestamps are UTC
    assert naive.total == before.total


def test_time_of_day_catalog_prices_are_resolved_per_call() -> None:
    book = PriceBook()
    usage = Usage(input_tokens=50_000, output_tokens=10_000)
    for hour in (2, 10, 20, 23):
        at = datetime(2026, 11, 15, hour, tzinfo=UTC)
        expected = calc_price(
            GenaiUsage(input_tokens=50_000, output_tokens=10_000),
            "deepseek-chat",
            provider_id="deepseek",
            genai_request_timestamp=at,
        )
        assert book.cost("deepseek", "deepseek-chat", usage, at=at).total == expected.total_price
    peak = book.cost("deepseek", "deepseek-chat", usage, at=datetime(2026, 11, 15, 10, tzinfo=UTC))
    night = book.cost("deepseek", "deepseek-chat", usage, at=datetime(2026, 11, 15, 20, tzinfo=UTC))
    assert peak.total != night.total and peak.price_version != night.price_version


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("OpenAI", "GPT-4o"),
        (" openai ", "gpt-4o "),
        ("", "openai/gpt-4o"),
        ("openai", "openai/gpt-4o"),
        ("litellm", "openai/gpt-4o"),
    ],
)
def test_lookup_is_case_insensitive_and_accepts_prefixed_refs(provider: str, model: str) -> None:
    cost = PriceBook().cost(provider, model, MTOK)
    assert (cost.provider, cost.model_id, cost.total, cost.model) == ("openai", "gpt-4o", Decimal("12.5"), model)


def test_fallback_providers_and_model_match() -> None:
    book = PriceBook()
    azure = book.cost("azure", "gpt-4o", MTOK)
    assert (azure.provider, azure.total) == ("azure", Decimal("12.5"))
    assert azure.price_version.endswith(":openai/gpt-4o")  # the price row used is OpenAI's
    claude = book.cost("", "claude-sonnet-4-0", MTOK)  # provider found by the model name
    assert claude.provider == "anthropic" and claude.total == Decimal(18)
    with pytest.raises(UnknownModelError, match="no catalog provider matches"):
        book.cost("", "mystery-model", MTOK)


def test_unknown_model_fails_with_a_fix_and_is_negatively_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    book = PriceBook()
    with pytest.raises(UnknownModelError) as exc:
        book.cost("acme", "acme-llm-1", MTOK)
    assert "acme-llm-1" in str(exc.value) and "override" in str(exc.value) and "fallback" in str(exc.value)
    assert exc.value.provider == "acme" and exc.value.code == "unknown_model"
    with pytest.raises(UnknownModelError, match="catalog of provider 'openai'"):
        book.cost("openai", "gpt-99-imaginary", MTOK)
    lookups: list[str] = []
    original = Catalog.locate

    def counting(self: Catalog, provider: str, model: str) -> Located:
        lookups.append(model)
        return original(self, provider, model)

    monkeypatch.setattr(Catalog, "locate", counting)
    for _ in range(3):
        with pytest.raises(UnknownModelError) as again:
            book.cost("acme", "acme-llm-1", MTOK)
        assert again.value is not exc.value
    assert lookups == []  # the miss was cached


def test_fallback_prices_are_estimates() -> None:
    book = PriceBook(
        fallback=[
            FallbackPrice(input=Decimal(1), output=Decimal(3)),
            FallbackPrice(input=Decimal(2), output=Decimal(4), provider="Acme"),
        ]
    )
    default = book.cost("nobody", "mystery", MTOK)
    assert (default.total, default.estimated, default.price_version) == (Decimal(4), True, "fallback:default")
    acme = book.cost("acme", "acme-llm-1", MTOK)
    assert (acme.total, acme.estimated, acme.price_version) == (Decimal(6), True, "fallback:acme")
    assert book.cost("openai", "gpt-4o", MTOK).estimated is False  # catalog prices win
    assert book.price("acme", "x").source == "fallback"
    with pytest.raises(ConfigurationError, match="two fallback"):
        PriceBook(fallback=[FallbackPrice(input=Decimal(1), output=Decimal(1))] * 2)


def test_a_catalog_price_without_token_prices_never_charges_tokens_zero() -> None:
    with pytest.raises(UnknownModelError, match="only by input_mchars, not by tokens"):
        PriceBook().cost("openai", "tts-1", Usage(input_tokens=100))
    whisper = PriceBook().cost("openai", "whisper-1", Usage(audio_seconds=Decimal(60)))
    assert whisper.total > 0 and whisper.other == whisper.total
    estimated = PriceBook(fallback=FallbackPrice(input=Decimal(1), output=Decimal(1))).cost(
        "openai", "tts-1", Usage(input_tokens=1_000_000)
    )
    assert (estimated.total, estimated.estimated) == (Decimal(1), True)


def test_groq_whisper_bills_ten_seconds_at_least_like_genai_prices() -> None:
    short = PriceBook().cost("groq", "whisper-large-v3", Usage(audio_seconds=Decimal(3)))
    expected = calc_price(GenaiUsage(audio_seconds=3), "whisper-large-v3", provider_id="groq")
    assert short.total == expected.total_price > 0
    assert short.total == PriceBook().cost("groq", "whisper-large-v3", Usage(audio_seconds=Decimal(10))).total


def test_cached_audio_tokens_are_derived_as_the_fewest_consistent_with_the_counts() -> None:
    usage = Usage(input_tokens=1_000, input_audio_tokens=600, cache_read_tokens=800, output_tokens=50)
    cost = PriceBook().cost("openai", "gpt-realtime", usage, at=NOW)
    # 800 cached, only 400 of the input is not audio: at least 400 cached tokens are audio
    genai = GenaiUsage(
        input_tokens=1_000, input_audio_tokens=600, cache_read_tokens=800, cache_audio_read_tokens=400, output_tokens=50
    )
    assert (
        cost.total == calc_price(genai, "gpt-realtime", provider_id="openai", genai_request_timestamp=NOW).total_price
    )
    assert all(part >= 0 for part in parts(cost))


def test_service_tiers_from_the_catalog() -> None:
    book = PriceBook()
    usage = Usage(input_tokens=100_000, output_tokens=10_000)
    standard = book.cost("openai", "gpt-4o", usage, at=NOW)
    batch = book.cost("openai", "gpt-4o", usage, at=NOW, batch=True)
    assert batch.total * 2 == standard.total and batch.service_tier == "batch"
    assert batch.price_version.endswith("+processing=batch")
    assert book.cost("openai", "gpt-4o", usage, at=NOW, service_tier="batch") == batch
    sonnet = book.cost("anthropic", "claude-sonnet-4-5", usage, at=NOW)
    assert book.cost("anthropic", "claude-sonnet-4-5", usage, at=NOW, batch=True).total * 2 == sonnet.total
    flex = book.cost("openai", "gpt-5", usage, at=NOW, service_tier="flex")
    priority = book.cost("openai", "gpt-5", usage, at=NOW, service_tier="Priority")
    plain = book.cost("openai", "gpt-5", usage, at=NOW)
    assert flex.total < plain.total < priority.total
    assert (flex.service_tier, priority.service_tier) == ("flex", "priority")
    for same in ("default", "standard"):
        assert book.cost("openai", "gpt-5", usage, at=NOW, service_tier=same).total == plain.total


def test_a_service_tier_nobody_prices_is_refused_not_priced_as_standard() -> None:
    book = PriceBook()
    with pytest.raises(PricingError, match="no 'flex' price for openai/gpt-4o"):
        book.cost("openai", "gpt-4o", MTOK, at=NOW, service_tier="flex")
    with pytest.raises(PricingError, match="batch"):
        book.cost("azure", "gpt-4o", MTOK, at=NOW, batch=True)  # OpenAI's variants are not Azure's
    with pytest.raises(PricingError, match="batch"):
        book.cost("openai", "gpt-4o", MTOK, at=datetime(2026, 1, 1, tzinfo=UTC), batch=True)  # not modelled yet
    with pytest.raises(PricingError, match="conflicts"):
        book.cost("openai", "gpt-4o", MTOK, batch=True, service_tier="flex")


def test_currency_conversion() -> None:
    book = PriceBook(exchange_rates={"eur": Decimal("0.92"), "JPY": Decimal("150.5")})
    usd = book.cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=200))
    eur = book.cost(
        "openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=200), currency="EUR"
    )
    assert eur.currency == "EUR" and eur.price_version == usd.price_version
    assert parts(eur) == [part * Decimal("0.92") for part in parts(usd)]
    assert eur.total == sum(parts(eur), Decimal(0)) == usd.total * Decimal("0.92")
    assert book.cost("openai", "gpt-4o", MTOK, currency="jpy").total == Decimal("12.5") * Decimal("150.5")
    with pytest.raises(CurrencyError, match="GBP"):
        book.cost("openai", "gpt-4o", MTOK, currency="GBP")
    with pytest.raises(CurrencyError):
        PriceBook().cost("openai", "gpt-4o", MTOK, currency="EUR")  # no built-in (stale) rates


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({"EUR": Decimal(0)}, "exchange_rates.EUR: must be a positive decimal"),
        ({"EURO": Decimal(1)}, "not a three-letter"),
        ({"USD": Decimal(2)}, "must be 1"),
        ({"GBP": "lots"}, "exchange_rates.GBP"),
    ],
)
def test_bad_exchange_rates_are_configuration_errors(rates: dict[str, Decimal], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PriceBook(exchange_rates=rates)


def test_price_sheet_and_search() -> None:
    book = PriceBook()
    info = book.price("openai", "gpt-4o")
    assert isinstance(info, ModelPriceInfo)
    assert (info.input_mtok, info.output_mtok, info.cache_read_mtok, info.source) == (
        Decimal("2.5"),
        Decimal(10),
        Decimal("1.25"),
        "catalog",
    )
    assert info.context_window == 128_000 and info.other_prices["web_searches_kcount"] == Decimal(10)
    tiers = book.price("openai", "gpt-5.4", at=NOW)
    assert tiers.context_tiers == (272_000,)
    assert info.to_dict()["input_mtok"] == "2.5"
    found = book.search("GPT-4O-MINI", provider="openai", limit=3)
    assert 0 < len(found) <= 3 and all("gpt-4o-mini" in i.model_id and i.provider == "openai" for i in found)
    assert len(book.search("gpt", limit=5)) == 5
    assert book.search("no-such-model-anywhere") == []
    assert book.catalog_version == genai_prices.__version__


def test_bad_arguments() -> None:
    book = PriceBook()
    with pytest.raises(TypeError, match="Usage"):
        book.cost("openai", "gpt-4o", {"input_tokens": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidUsageError, match="model"):
        book.cost("openai", " ", MTOK)
    with pytest.raises(InvalidUsageError, match="monthly_volume"):
        book.cost("openai", "o3", MTOK, at=NOW, monthly_volume=-1)
    with pytest.raises(PricingError, match="service_tier"):
        book.cost("openai", "gpt-4o", MTOK, service_tier=1)  # type: ignore[arg-type]


def test_cached_tokens_fill_text_first_then_each_modality() -> None:
    # 800 cached of 1000; 600 audio + 300 image leave 100 text tokens: 700 cached are audio/image
    usage = Usage(input_tokens=1_000, input_audio_tokens=600, input_image_tokens=300, cache_read_tokens=800)
    cost = PriceBook().cost("openai", "gpt-realtime", usage, at=NOW)
    genai = GenaiUsage(
        input_tokens=1_000,
        input_audio_tokens=600,
        input_image_tokens=300,
        cache_read_tokens=800,
        cache_audio_read_tokens=600,
        cache_image_read_tokens=100,
    )
    assert (
        cost.total == calc_price(genai, "gpt-realtime", provider_id="openai", genai_request_timestamp=NOW).total_price
    )


def test_counts_no_split_can_explain_are_refused() -> None:
    from genai_prices.types import ModelPrice

    from spendgate.pricing._compiled import CompiledPrice, Label
    from spendgate.pricing._units import linear_price

    prices = {
        "input": 1,
        "cache_read": 1,
        "cache_write": 1,
        "input_audio": 1,
        "cache_audio_read": 1,
        "cache_audio_write": 1,
    }
    linear = linear_price(ModelPrice(**{f"{key}_mtok": Decimal(value) for key, value in prices.items()}))
    label = Label(provider="test", model_id="m", price_version="test", source="catalog")
    info = ModelPriceInfo(provider="test", model="m", model_id="m", source="catalog", price_version="test")
    price = CompiledPrice(
        label=label,
        info=info,
        terms=linear.terms,
        overlaps=linear.overlaps,
        guards=linear.guards,
        thresholds=linear.thresholds,
    )
    fine = price.evaluate(
        Usage(input_tokens=100, cache_read_tokens=50, cache_write_tokens=50, input_audio_tokens=100), "m"
    )
    assert fine.total == Decimal(100) / 1_000_000
    # 30 text tokens cannot hold the 60 cached-text tokens that this split implies
    with pytest.raises(InvalidUsageError) as exc:
        price.evaluate(Usage(input_tokens=100, cache_read_tokens=60, cache_write_tokens=40, input_audio_tokens=70), "m")
    assert exc.value.field == "input_tokens"


def book_usages(max_input: int = 2_000_000) -> st.SearchStrategy[Usage]:
    """Usages genai-prices can price too (no images, no seconds of audio or processing)."""
    return usages(max_input=max_input, max_output=2_000_000, max_searches=20, media=False)


PROPERTY_BOOK = PriceBook()
PROPERTY_MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-5.4"),
    ("openai", "gpt-realtime"),
    ("openai", "gpt-4o-realtime-preview"),
    ("google", "gemini-2.5-flash"),
    ("anthropic", "claude-sonnet-4-5"),
    ("perplexity", "sonar-deep-research"),
]


@settings(max_examples=300, deadline=None)
@given(usage=book_usages(), model=st.sampled_from(PROPERTY_MODELS))
def test_costs_are_never_negative(usage: Usage, model: tuple[str, str]) -> None:
    cost = PROPERTY_BOOK.cost(*model, usage, at=NOW)
    assert all(part >= 0 for part in parts(cost))
    assert sum(parts(cost), Decimal(0)) == cost.total


@settings(max_examples=200, deadline=None)
@given(
    a=book_usages(max_input=60_000), b=book_usages(max_input=60_000), model=st.sampled_from(["gpt-4o", "gpt-4.1", "o3"])
)
def test_plain_per_token_prices_are_additive(a: Usage, b: Usage, model: str) -> None:
    book = PROPERTY_BOOK
    together = book.cost("openai", model, a + b, at=NOW)
    assert book.cost("openai", model, a, at=NOW).total + book.cost("openai", model, b, at=NOW).total == together.total
