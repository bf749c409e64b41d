"""Price files and validation: TOML and YAML, and errors naming the file, the entry and the field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate.errors import ConfigurationError
from spendgate.pricing import PriceBook, PriceFile, PriceOverride, load_overrides
from spendgate.usage import Usage
from test_pricing_overrides import AUG, JAN, MTOK, override

DATA = Path(__file__).parent / "data" / "pricing"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input": Decimal(-1)}, "^input: must be a non-negative decimal"),
        ({"input": "abc"}, "^input: must be a non-negative decimal"),
        ({"input": True}, "^input: must be a non-negative decimal"),
        ({}, "at least one price"),
        ({"input": 1, "currency": "EUR"}, "^currency: only USD"),
        ({"input": 1, "service_tier": "turbo"}, "^service_tier: must be one of"),
        ({"input": 1, "provider": " "}, "^provider: must be a non-empty string"),
        ({"input": 1, "effective_from": "someday"}, "^effective_from: must be an ISO 8601"),
        ({"input": 1, "effective_from": 2026}, "^effective_from: must be a date"),
        ({"input": 1, "note": 5}, "^note: must be a string"),
        (
            {"input": 1, "context_tiers": [{"above_input_tokens": 10, "input": 1, "output": 2}]},
            "^context_tiers: need the base",
        ),
        (
            {"input": 1, "output": 1, "context_tiers": [{"above_input_tokens": -1, "input": 1, "output": 2}]},
            r"^context_tiers\[0\]\.above_input_tokens",
        ),
        (
            {"input": 1, "output": 1, "context_tiers": [{"above_input_tokens": 5, "input": 1}]},
            r"^context_tiers\[0\]\.output: is required",
        ),
        (
            {"input": 1, "output": 1, "context_tiers": [{"above_input_tokens": 5, "input": 1, "output": 1}] * 2},
            "same above_input_tokens",
        ),
        ({"input": 1, "context_tiers": "nope"}, "^context_tiers: must be a list"),
        ({"input": 1, "context_tiers": [3]}, r"^context_tiers\[0\]: must be a table"),
        ({"input": 1, "volume_tiers": [{"above_monthly_tokens": 5, "discount_percent": 120}]}, "at most 100"),
        ({"input": 1, "volume_tiers": [{"above_monthly_tokens": 5, "discount_percent": 5, "input": 1}]}, "not both"),
        ({"input": 1, "volume_tiers": [{"above_monthly_tokens": 5, "input": 1}]}, r"^volume_tiers\[0\]\.output"),
        (
            {
                "input": 1,
                "output": 1,
                "context_tiers": [{"above_input_tokens": 5, "input": 1, "output": 1}],
                "volume_tiers": [{"above_monthly_tokens": 5, "input": 1, "output": 1}],
            },
            "cannot be combined",
        ),
        (
            {"input": 1, "time_of_day": [{"start": "25:00", "end": "06:00", "timezone": "UTC", "multiplier": 1}]},
            r"time_of_day\[0\]\.start",
        ),
        (
            {"input": 1, "time_of_day": [{"start": "24:00", "end": "06:00", "timezone": "UTC", "multiplier": 1}]},
            "only as an end",
        ),
        (
            {"input": 1, "time_of_day": [{"start": "06:00", "end": "06:00", "timezone": "UTC", "multiplier": 1}]},
            "must differ",
        ),
        (
            {"input": 1, "time_of_day": [{"start": "6pm", "end": "06:00", "timezone": "UTC", "multiplier": 1}]},
            '"HH:MM"',
        ),
        (
            {
                "input": 1,
                "time_of_day": [{"start": "01:00", "end": "06:00", "timezone": "Mars/Olympus", "multiplier": 1}],
            },
            "IANA",
        ),
        (
            {
                "input": 1,
                "time_of_day": [{"start": "01:00", "end": "06:00", "timezone": "UTC", "multiplier": 1, "x": 1}],
            },
            r"time_of_day\[0\]\.x: unknown field",
        ),
    ],
)
def test_invalid_overrides_name_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        override(**fields)


def test_price_files_in_toml_and_yaml_are_the_same() -> None:
    toml, yaml = load_overrides(DATA / "prices.toml"), load_overrides(str(DATA / "prices.yaml"))
    assert isinstance(toml, PriceFile) and toml == yaml
    assert len(toml.overrides) == 6 and toml.exchange_rates["EUR"] == Decimal("0.92")
    assert [f.provider for f in toml.fallback] == [None, "selfhost"]


def test_a_book_from_the_example_file() -> None:
    book = PriceBook.from_file(DATA / "prices.toml", exchange_rates={"EUR": Decimal("0.9")})
    assert book.cost("openai", "gpt-4o", MTOK, at=JAN).total == Decimal(10)
    assert book.cost("openai", "gpt-4o", MTOK, at=AUG).total == Decimal(9)
    assert book.cost("openai", "gpt-4o", MTOK, at=AUG, currency="EUR").total == Decimal("8.1")  # argument wins
    assert book.cost("openai", "ft:gpt-4o-mini:acme:1", MTOK, at=AUG).total == Decimal("1.5")
    assert book.cost("legacy", "gpt-4", Usage(input_tokens=1), at=AUG).total == Decimal("0.0001")
    # 22:30 in Berlin, a 150k-token call, 200M tokens already this month: tier, discount and night rate
    night = datetime(2026, 8, 15, 20, 30, tzinfo=UTC)
    usage = Usage(input_tokens=150_000, output_tokens=10_000, processing_seconds=Decimal(4))
    cost = book.cost("selfhost", "llama-3.1-70b", usage, at=night, monthly_volume=200_000_000)
    tokens = (Decimal("1.00") * 150_000 + Decimal("3.00") * 10_000) / 10**6 * Decimal("0.8")
    assert cost.total == (tokens + Decimal("0.0002") + Decimal("0.0004") * 4) * Decimal("0.5")
    assert cost.price_version == "override:selfhost-llama-2026"
    estimate = book.cost("selfhost", "mistral-7b", MTOK, at=AUG)
    assert (estimate.total, estimate.estimated) == (Decimal(3), True)
    assert book.cost("acme", "x", MTOK).total == Decimal(20)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD = '[[overrides]]\nprovider = "a"\nmodel = "m"\neffective_from = 2026-01-01\ninput = "1"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD
            + GOOD.replace("2026-01-01", "2026-01-02")
            + '[[overrides]]\nprovider = "a"\nmodel = "m"\neffective_from = 2026-02-01\ninput = "-1"\n',
            r"overrides\[2\]\.input: must be a non-negative decimal",
        ),
        (GOOD + GOOD, r"overrides\[1\]\.effective_from: overrides\[0\] already prices a/m"),
        (
            GOOD + GOOD.replace("2026-01-01", "2026-02-01").replace('"1"', '"1"\nid = "a/m@2026-01-01"'),
            r"overrides\[1\]\.id: overrides\[0\] already has id",
        ),
        (GOOD + 'inptu = "2"\n', r"overrides\[0\]\.inptu: unknown field"),
        (
            GOOD + "[[overrides.context_tiers]]\nabove_input_tokens = 10\ninput = 1\noutput = -2\n",
            r"overrides\[0\]\.context_tiers\[0\]\.output",
        ),
        ("[prices]\n", "prices: unknown top-level key"),
        ('overrides = "x"\n', "overrides: must be a list"),
        ("overrides = [1]\n", r"overrides\[0\]: must be a table"),
        ("[[overrides]\n", "not valid TOML"),
        ('fallback = "cheap"\n', "fallback: must be a table"),
        ("[fallback]\ninput = 1\n", "fallback.output"),
        ("[fallback]\ninput = 1\noutput = 1\nproviders = 3\n", "fallback.providers: must be a table"),
        ("[fallback.providers.acme]\ninput = 1\n", "fallback.providers.acme.output"),
        ("[fallback.providers]\nacme = 3\n", "fallback.providers.acme: must be a table"),
        ('exchange_rates = "0.9"\n', "exchange_rates: must be a table"),
        ('[exchange_rates]\nEUR = "-1"\n', "exchange_rates.EUR: must be a positive decimal"),
    ],
)
def test_file_errors_name_the_file_the_entry_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "prices.toml", text)
    with pytest.raises(ConfigurationError, match=message) as exc:
        load_overrides(path)
    assert str(exc.value).startswith(f"{path}: ")


def test_yaml_errors_and_file_problems(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"prices.yaml: overrides\[0\]\.output: must be a non-negative decimal"
    ):
        load_overrides(
            write(
                tmp_path,
                "prices.yaml",
                "overrides:\n  - {provider: a, model: m, effective_from: 2026-01-01, output: -3}\n",
            )
        )
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_overrides(write(tmp_path, "bad.yml", "overrides: [\n"))
    with pytest.raises(ConfigurationError, match="the top level must be a table"):
        load_overrides(write(tmp_path, "list.yaml", "- 1\n"))
    assert load_overrides(write(tmp_path, "empty.yaml", "")) == PriceFile()
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_overrides(tmp_path / "missing.toml")
    with pytest.raises(ConfigurationError, match=r"use \.toml, \.yaml or \.yml"):
        load_overrides(write(tmp_path, "prices.json", "{}"))


def test_a_book_refuses_things_that_are_not_overrides_or_fallbacks() -> None:
    with pytest.raises(ConfigurationError, match="PriceOverride"):
        PriceBook([{"provider": "a"}])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="FallbackPrice"):
        PriceBook(fallback=[{"input": 1}])  # type: ignore[list-item]


def test_from_mapping_without_a_location_names_the_field() -> None:
    with pytest.raises(ConfigurationError, match=r"^input: must be a non-negative decimal"):
        PriceOverride.from_mapping({"provider": "a", "model": "m", "effective_from": "2026-01-01", "input": -1})
    with pytest.raises(ConfigurationError, match=r"^model: is required"):
        PriceOverride.from_mapping({"provider": "a", "effective_from": "2026-01-01", "input": 1})
    with pytest.raises(ConfigurationError, match=r"^service_tier: must be a string or null"):
        override(input=1, service_tier=5)
