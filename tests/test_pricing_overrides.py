"""Price overrides: versions by effective date, custom models, every pricing model, and price files."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.errors import ConfigurationError, PricingError, UnknownModelError
from spendgate.pricing import (
    ContextTier,
    FallbackPrice,
    PriceBook,
    PriceOverride,
    TimeOfDayRule,
    VolumeTier,
)
from spendgate.testing import FakeClock
from spendgate.usage import Usage

DATA = Path(__file__).parent / "data" / "pricing"
JAN = datetime(2026, 1, 15, tzinfo=UTC)
AUG = datetime(2026, 8, 15, tzinfo=UTC)
MTOK = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


def override(**fields: Any) -> PriceOverride:
    base: dict[str, Any] = {"provider": "selfhost", "model": "llama", "effective_from": date(2026, 1, 1)}
    return PriceOverride(**{**base, **fields})


def test_an_override_wins_from_its_effective_date_on() -> None:
    book = PriceBook(
        [
            PriceOverride(
                provider="OpenAI", model="GPT-4o", effective_from=date(2026, 3, 1), input=Decimal(2), output=Decimal(8)
            )
        ]
    )
    before = book.cost("openai", "gpt-4o", MTOK, at=datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
    after = book.cost("openai", "gpt-4o", MTOK, at=datetime(2026, 3, 1, tzinfo=UTC))
    assert before.total == Decimal("12.5") and before.price_version.startswith("genai-prices@")
    assert after.total == Decimal(10) and after.price_version == "override:openai/gpt-4o@2026-03-01"
    assert (after.provider, after.model_id) == ("openai", "gpt-4o")
    assert book.price("openai", "gpt-4o", at=after_date()).source == "override"


def after_date() -> datetime:
    return datetime(2026, 3, 2, tzinfo=UTC)


def test_versions_are_listed_and_never_edited_in_place() -> None:
    first = override(input=Decimal(1), output=Decimal(2))
    book = PriceBook([first])
    with pytest.raises(ConfigurationError, match="never edited in place"):
        book.add_override(override(input=Decimal(9), output=Decimal(9)))
    with pytest.raises(ConfigurationError, match="already exists"):
        book.add_override(override(effective_from=date(2026, 2, 1), id=first.id, input=Decimal(1)))
    second = override(effective_from=date(2026, 7, 1), input=Decimal("0.5"), output=Decimal(1), note="correction")
    book.add_override(second)
    book.add_override(override(service_tier="batch", input=Decimal("0.5"), output=Decimal(1)))  # another tier: fine
    assert [o.id for o in book.overrides("selfhost", "llama")] == [
        "selfhost/llama@2026-01-01",
        "selfhost/llama@2026-07-01",
        "selfhost/llama@2026-01-01+batch",
    ]
    assert book.overrides("openai") == []
    assert book.cost("selfhost", "llama", MTOK, at=JAN).total == Decimal(3)
    assert book.cost("selfhost", "llama", MTOK, at=AUG).total == Decimal("1.5")
    assert book.cost("selfhost", "llama", MTOK, at=AUG).price_version == "override:selfhost/llama@2026-07-01"


def test_a_custom_model_has_no_price_before_its_first_version() -> None:
    book = PriceBook([override(input=Decimal(1), output=Decimal(2))])
    with pytest.raises(UnknownModelError):
        book.cost("selfhost", "llama", MTOK, at=datetime(2025, 12, 31, tzinfo=UTC))
    clock = FakeClock(JAN)
    assert (
        PriceBook([override(input=Decimal(1), output=Decimal(2))], clock=clock).cost("selfhost", "llama", MTOK).total
        == 3
    )


def test_adding_an_override_reprices_cached_models_at_once() -> None:
    book = PriceBook()
    assert book.cost("openai", "gpt-4o", MTOK, at=AUG).total == Decimal("12.5")
    with pytest.raises(UnknownModelError):
        book.cost("selfhost", "llama", MTOK, at=AUG)  # cached as a miss
    book.add_override(
        PriceOverride(provider="openai", model="gpt-4o", effective_from=JAN, input=Decimal(1), output=Decimal(1))
    )
    book.add_override(override(input=Decimal(1)))
    assert book.cost("openai", "gpt-4o", MTOK, at=AUG).total == Decimal(2)
    assert book.cost("selfhost", "llama", MTOK, at=AUG).total == Decimal(1)


def test_globs_for_fine_tune_families_and_the_most_specific_match_wins() -> None:
    book = PriceBook(
        [
            PriceOverride(provider="openai", model="ft:*", effective_from=JAN, input=Decimal(9), output=Decimal(9)),
            PriceOverride(
                provider="openai",
                model="ft:gpt-4o-mini:*",
                effective_from=JAN,
                input=Decimal("0.3"),
                output=Decimal("1.2"),
            ),
            PriceOverride(
                provider="openai",
                model="ft:gpt-4o-mini:acme:special",
                effective_from=JAN,
                input=Decimal(5),
                output=Decimal(5),
            ),
        ]
    )
    family = book.cost("openai", "FT:gpt-4o-mini:acme:abc123", MTOK, at=AUG)
    assert family.total == Decimal("1.5") and family.model_id == "ft:gpt-4o-mini:*"
    assert book.cost("openai", "ft:gpt-4o-mini:acme:special", MTOK, at=AUG).total == Decimal(10)
    assert book.cost("openai", "ft:gpt-3.5:x", MTOK, at=AUG).total == Decimal(18)
    assert book.overrides(model="ft:gpt-4o-mini:acme:zzz")[0].model == "ft:*"
    with pytest.raises(UnknownModelError):
        book.cost("openai", "xft:gpt-4o-mini:a", MTOK, at=AUG)


def test_minimum_charge_per_request() -> None:
    # the seeds' GPT-4 row: $0.03/1K input, $0.06/1K output, minimum $0.0001 per request
    gpt4 = PriceOverride(
        provider="legacy",
        model="gpt-4",
        effective_from=JAN,
        input=Decimal(30),
        output=Decimal(60),
        minimum_charge=Decimal("0.0001"),
    )
    book = PriceBook([gpt4])
    tiny = book.cost("legacy", "gpt-4", Usage(input_tokens=1, output_tokens=1), at=AUG)
    assert tiny.total == Decimal("0.0001")
    assert tiny.request == Decimal("0.0001") - Decimal("0.00009")  # the top-up
    assert tiny.input + tiny.output + tiny.request == tiny.total
    big = book.cost("legacy", "gpt-4", Usage(input_tokens=1000, output_tokens=1000), at=AUG)
    assert (big.total, big.request) == (Decimal("0.09"), Decimal(0))


def test_per_request_and_per_second_prices() -> None:
    book = PriceBook([override(per_request=Decimal("0.002"), per_second=Decimal("0.0004"), input=Decimal(1))])
    usage = Usage(input_tokens=1_000_000, processing_seconds=Decimal("12.5"))
    cost = book.cost("selfhost", "llama", usage, at=AUG)
    assert (cost.input, cost.request, cost.other) == (Decimal(1), Decimal("0.002"), Decimal("0.005"))
    assert cost.total == Decimal("1.007")
    gpu_only = PriceBook([override(per_second=Decimal("0.001"))])
    assert gpu_only.cost(
        "selfhost", "llama", Usage(input_tokens=5, processing_seconds=Decimal(2)), at=AUG
    ).total == Decimal("0.002")


def test_cache_and_reasoning_prices() -> None:
    book = PriceBook(
        [
            override(
                input=Decimal(2),
                output=Decimal(8),
                cache_read=Decimal("0.5"),
                cache_write=Decimal("2.5"),
                reasoning=Decimal(10),
            )
        ]
    )
    usage = Usage(
        input_tokens=4_000_000,
        cache_read_tokens=2_000_000,
        cache_write_tokens=1_000_000,
        output_tokens=3_000_000,
        reasoning_tokens=1_000_000,
    )
    cost = book.cost("selfhost", "llama", usage, at=AUG)
    assert (cost.input, cost.cache_read, cost.cache_write) == (Decimal(2), Decimal(1), Decimal("2.5"))
    assert (cost.output, cost.reasoning) == (Decimal(16), Decimal(10))
    plain = PriceBook([override(input=Decimal(2), output=Decimal(8))]).cost("selfhost", "llama", usage, at=AUG)
    assert (plain.input, plain.cache_read, plain.output, plain.reasoning) == (
        Decimal(8),
        Decimal(0),
        Decimal(24),
        Decimal(0),
    )


def test_context_tiers_are_cliffs_on_total_input() -> None:
    tiers = [ContextTier(above_input_tokens=200_000, input=Decimal(6), output=Decimal("22.5"))]
    book = PriceBook([override(input=Decimal(3), output=Decimal(15), cache_read=Decimal("0.3"), context_tiers=tiers)])
    at_limit = book.cost("selfhost", "llama", Usage(input_tokens=200_000, output_tokens=1_000), at=AUG)
    above = book.cost(
        "selfhost", "llama", Usage(input_tokens=200_001, output_tokens=1_000, cache_read_tokens=100_000), at=AUG
    )
    assert at_limit.total == Decimal(3) * 200_000 / 10**6 + Decimal(15) * 1_000 / 10**6
    assert above.input == Decimal(6) * 100_001 / 10**6  # every token at the tier price
    assert above.cache_read == Decimal("0.6") * 100_000 / 10**6  # omitted cache price scales with input
    assert above.output == Decimal("22.5") * 1_000 / 10**6
    assert book.price("selfhost", "llama", at=AUG).context_tiers == (200_000,)


def test_volume_tiers_are_chosen_by_the_volume_before_the_call() -> None:
    tiers = [
        VolumeTier(above_monthly_tokens=1_000_000, input=Decimal("0.8"), output=Decimal("1.6")),
        VolumeTier(above_monthly_tokens=10_000_000, discount_percent=Decimal(50)),
    ]
    book = PriceBook([override(input=Decimal(1), output=Decimal(2), per_request=Decimal("0.01"), volume_tiers=tiers)])
    assert book.has_volume_tiers("selfhost", "llama") and not book.has_volume_tiers("openai", "gpt-4o")
    cost = [
        book.cost("selfhost", "llama", MTOK, at=AUG, monthly_volume=v).total
        for v in (0, 1_000_000, 1_000_001, 10_000_001)
    ]
    assert cost == [Decimal("3.01"), Decimal("3.01"), Decimal("2.41"), Decimal("1.51")]  # discount spares the fee


def test_time_of_day_modifier_in_its_time_zone() -> None:
    night = TimeOfDayRule(start="22:00", end="06:00", timezone="Europe/Berlin", multiplier=Decimal("0.5"))
    clock = FakeClock(datetime(2026, 7, 1, 19, 59, tzinfo=UTC))  # 21:59 in Berlin (summer time)
    book = PriceBook(
        [override(input=Decimal(1), output=Decimal(1), per_request=Decimal(1), time_of_day=[night])], clock=clock
    )
    assert book.cost("selfhost", "llama", MTOK).total == Decimal(3)
    clock.set(datetime(2026, 7, 1, 20, 0, tzinfo=UTC))  # 22:00 in Berlin
    assert book.cost("selfhost", "llama", MTOK).total == Decimal("1.5")
    assert book.cost("selfhost", "llama", MTOK, at=datetime(2026, 12, 1, 4, 59, tzinfo=UTC)).total == Decimal("1.5")
    assert book.cost("selfhost", "llama", MTOK, at=datetime(2026, 12, 1, 5, 0, tzinfo=UTC)).total == Decimal(3)
    assert book.price("selfhost", "llama", at=AUG).has_time_of_day


def test_service_tier_overrides() -> None:
    book = PriceBook(
        [
            override(input=Decimal(1), output=Decimal(1)),
            override(service_tier="batch", input=Decimal("0.5"), output=Decimal("0.5")),
            PriceOverride(provider="openai", model="gpt-4o", effective_from=JAN, input=Decimal(2), output=Decimal(8)),
        ]
    )
    batch = book.cost("selfhost", "llama", MTOK, at=AUG, batch=True)
    assert (batch.total, batch.service_tier) == (Decimal(1), "batch")
    with pytest.raises(PricingError, match="flex"):
        book.cost("selfhost", "llama", MTOK, at=AUG, service_tier="flex")
    # a standard-price override does not hide the catalog's batch price
    november = datetime(2026, 11, 15, tzinfo=UTC)  # the catalog's batch prices start 2026-10-14
    assert book.cost("openai", "gpt-4o", MTOK, at=november, batch=True).total == Decimal("6.25")
    assert book.cost("openai", "gpt-4o", MTOK, at=AUG).total == Decimal(10)


def test_mapping_round_trip() -> None:
    full = override(
        effective_from=datetime(2026, 1, 1, 12, 30),
        input=Decimal("0.5"),
        output=Decimal(1),
        per_request=Decimal("0.001"),
        context_tiers=[{"above_input_tokens": 1000, "input": "1", "output": "2"}],
        volume_tiers=[{"above_monthly_tokens": 5, "discount_percent": 10}],
        time_of_day=[{"start": "08:00", "end": "24:00", "timezone": "UTC", "multiplier": "2"}],
        service_tier="Priority",
        note="n",
    )
    assert full.id == "selfhost/llama@2026-01-01T12:30:00+00:00+priority"
    assert full.effective_from_datetime == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    data = full.to_mapping()
    assert data["input"] == "0.5" and data["context_tiers"] == [
        {"above_input_tokens": 1000, "input": "1", "output": "2"}
    ]
    assert PriceOverride.from_mapping(data) == full
    assert FallbackPrice.from_mapping({"input": 1, "output": "2.5"}) == FallbackPrice(
        input=Decimal(1), output=Decimal("2.5")
    )


def test_search_lists_custom_models_in_force_or_coming() -> None:
    clock = FakeClock(AUG)
    book = PriceBook(
        [
            override(input=Decimal(1), output=Decimal(1)),
            override(effective_from=date(2026, 6, 1), input=Decimal(2), output=Decimal(2)),
            override(effective_from=date(2027, 1, 1), input=Decimal(3), output=Decimal(3)),
            override(model="llama-next", effective_from=date(2027, 1, 1), input=Decimal(4), output=Decimal(4)),
            override(model="llama-batch-only", service_tier="batch", input=Decimal(5)),
        ],
        clock=clock,
    )
    found = {info.model_id: info for info in book.search("LLAMA", provider="selfhost")}
    assert set(found) == {"llama", "llama-next"}
    assert found["llama"].input_mtok == Decimal(2) and found["llama"].source == "override"
    assert found["llama-next"].to_dict()["effective_from"] == "2027-01-01T00:00:00+00:00"
    assert book.search("llama", provider="selfhost", limit=1) == [found["llama"]]
    assert any(info.source == "catalog" for info in book.search("llama"))
    assert "overrides=5" in repr(book)


def test_a_fallback_prices_a_custom_model_before_its_first_version() -> None:
    book = PriceBook(
        [override(input=Decimal(1), output=Decimal(1))], fallback=FallbackPrice(input=Decimal(7), output=Decimal(7))
    )
    early = book.cost("selfhost", "llama", MTOK, at=datetime(2025, 1, 1, tzinfo=UTC))
    assert (early.total, early.estimated) == (Decimal(14), True)
    assert book.cost("selfhost", "llama", MTOK, at=AUG).estimated is False


def test_a_daytime_window_and_volume_tiers_asked_twice() -> None:
    day = TimeOfDayRule(start="08:00", end="18:00", timezone="America/New_York", multiplier=Decimal(2))
    tiers = [VolumeTier(above_monthly_tokens=10, discount_percent=Decimal(10))]
    book = PriceBook([override(input=Decimal(1), time_of_day=[day], volume_tiers=tiers)])
    usage = Usage(input_tokens=1_000_000)
    assert book.cost("selfhost", "llama", usage, at=datetime(2026, 8, 3, 12, tzinfo=UTC)).total == Decimal(
        2
    )  # 08:00 EDT
    assert book.cost("selfhost", "llama", usage, at=datetime(2026, 8, 3, 11, 59, tzinfo=UTC)).total == Decimal(1)
    assert book.has_volume_tiers("selfhost", "llama") is book.has_volume_tiers("selfhost", "llama") is True
