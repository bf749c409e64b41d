"""Compiling genai-prices unit hierarchies to linear terms: any valid price set, any usage, same total."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices.types import ModelPrice, Tier, TieredPrices
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spendgate.pricing import ModelPriceInfo
from spendgate.pricing._compiled import INPUT, CompiledPrice, Label, Term
from spendgate.pricing._units import linear_price, price_items
from spendgate.usage import Usage

KEYS = (
    "cache_read_mtok",
    "cache_write_mtok",
    "cache_write_1h_mtok",
    "output_reasoning_mtok",
    "input_audio_mtok",
    "output_audio_mtok",
    "input_image_mtok",
    "input_text_mtok",
    "web_searches_kcount",
    "audio_hours",
    "requests_kcount",
    "input_mchars",
)
#: Joint units genai-prices requires once both parents are priced.
JOINS = {
    ("cache_read_mtok", "input_audio_mtok"): "cache_audio_read_mtok",
    ("cache_read_mtok", "input_image_mtok"): "cache_image_read_mtok",
    ("cache_read_mtok", "input_text_mtok"): "cache_text_read_mtok",
    ("cache_write_mtok", "input_audio_mtok"): "cache_audio_write_mtok",
    ("cache_write_mtok", "input_image_mtok"): "cache_image_write_mtok",
    ("cache_write_mtok", "input_text_mtok"): "cache_text_write_mtok",
    ("cache_write_1h_mtok", "input_text_mtok"): "cache_text_write_1h_mtok",
    ("cache_write_1h_mtok", "input_audio_mtok"): "cache_audio_write_1h_mtok",
    ("cache_write_1h_mtok", "input_image_mtok"): "cache_image_write_1h_mtok",
    ("output_reasoning_mtok", "output_audio_mtok"): "output_audio_reasoning_mtok",
}
INFO = ModelPriceInfo(provider="test", model="m", model_id="m", source="catalog", price_version="test")
LABEL = Label(provider="test", model_id="m", price_version="test", source="catalog")

prices = st.integers(min_value=0, max_value=5_000).map(lambda cents: Decimal(cents) / 100)


@st.composite
def model_prices(draw: st.DrawFn) -> ModelPrice:
    keys = {"input_mtok", "output_mtok", *draw(st.sets(st.sampled_from(KEYS)))}
    if "cache_write_1h_mtok" in keys:
        keys.add("cache_write_mtok")
    keys |= {join for (a, b), join in JOINS.items() if a in keys and b in keys}
    values: dict[str, Decimal | TieredPrices] = {key: draw(prices) for key in keys}
    for key in ("input_mtok", "output_mtok", "cache_read_mtok"):
        if key in values and draw(st.booleans()):
            values[key] = TieredPrices(base=draw(prices), tiers=[Tier(start=200_000, price=draw(prices))])
    return ModelPrice(**values)


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    """Usage whose cached and modality tokens do not overlap (no joint counts to derive)."""
    input_tokens = draw(st.integers(min_value=0, max_value=400_000))
    parts: list[int] = []
    for _ in range(4):  # cache reads, cache writes, audio, image: disjoint parts of the input
        parts.append(draw(st.integers(min_value=0, max_value=input_tokens - sum(parts))))
    cache_read, cache_write, audio, image = parts
    output_tokens = draw(st.integers(min_value=0, max_value=100_000))
    reasoning = draw(st.integers(min_value=0, max_value=output_tokens))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning,
        output_audio_tokens=draw(st.integers(min_value=0, max_value=output_tokens - reasoning)),
        web_searches=draw(st.integers(min_value=0, max_value=9)),
        audio_seconds=Decimal(draw(st.integers(min_value=0, max_value=7_200))) / 10,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        input_audio_tokens=audio,
        input_image_tokens=image,
    )


def compiled(model_price: ModelPrice) -> CompiledPrice:
    linear = linear_price(model_price)
    return CompiledPrice(
        label=LABEL,
        info=INFO,
        terms=linear.terms,
        thresholds=linear.thresholds,
        overlaps=linear.overlaps,
        guards=linear.guards,
    )


def genai_usage(usage: Usage) -> GenaiUsage:
    joins = {join.replace("_mtok", "_tokens") for join in JOINS.values()}
    return GenaiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
        input_audio_tokens=usage.input_audio_tokens,
        output_audio_tokens=usage.output_audio_tokens,
        input_image_tokens=usage.input_image_tokens,
        web_searches=usage.web_searches,
        audio_seconds=usage.audio_seconds,
        **dict.fromkeys(joins, 0),
    )


@settings(max_examples=400, deadline=None)
@given(model_price=model_prices(), usage=usages())
def test_any_valid_price_set_matches_genai_prices(model_price: ModelPrice, usage: Usage) -> None:
    from genai_prices.data_units import unit_data
    from genai_prices.units import UnitRegistry
    from genai_prices.validation import validate_model_price

    try:
        validate_model_price(
            {key for key, value in vars(model_price).items() if value is not None}, UnitRegistry(unit_data)
        )
    except ValueError:
        assume(False)
    cost = compiled(model_price).evaluate(usage, "m")
    expected = model_price.calc_price(genai_usage(usage))["total_price"]
    assert cost.total == expected
    parts = (cost.input, cost.cache_read, cost.cache_write, cost.output, cost.reasoning, cost.request, cost.other)
    assert sum(parts, Decimal(0)) == cost.total and all(part >= 0 for part in parts)


def test_units_spendgate_cannot_express_and_unknown_keys_are_never_charged() -> None:
    model_price = ModelPrice(
        input_mtok=Decimal(1), input_mchars=Decimal(50), output_mtok=Decimal(0), made_up_mtok=Decimal(7)
    )
    assert [unit.price_key for unit, _ in price_items(model_price)] == ["input_mtok", "input_mchars", "output_mtok"]
    linear = linear_price(model_price)
    assert [term.part for term in linear.terms] == [INPUT]  # free output and characters add no term
    cost = compiled(model_price).evaluate(Usage(input_tokens=1_000_000, output_tokens=5), "m")
    assert (cost.total, cost.output) == (Decimal(1), Decimal(0))


def test_compiled_prices_check_their_shape() -> None:
    with pytest.raises(ValueError, match="one coefficient per tier segment"):
        CompiledPrice(label=LABEL, info=INFO, terms=[Term(INPUT, (Decimal(1), Decimal(2)), (("input_tokens", 1),))])
    with pytest.raises(ValueError, match="identifiers"):
        CompiledPrice(label=LABEL, info=INFO, terms=[Term(INPUT, (Decimal(1),), (("u.x; import os", 1),))])
    price = CompiledPrice(label=LABEL, info=INFO, terms=[])
    assert price.evaluate(Usage(input_tokens=5), "m").total == 0
    assert repr(price) == "CompiledPrice('test', terms=0, segments=1)"
    assert "def evaluate(u, model):" in price.source
