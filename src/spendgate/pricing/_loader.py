"""Price files: overrides, fallback prices and exchange rates from TOML or YAML.

Schema (see docs/pricing.md)::

    [[overrides]]            # a list of PriceOverride tables (fields as in PriceOverride)
    [fallback]               # optional: input, output (USD/MTok) and/or providers.<id>.{input, output}
    [exchange_rates]         # optional: CODE = rate (units of CODE per 1 USD)

Errors name the file, the entry and the field: ``prices.toml: overrides[2].input: must be ...``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from spendgate.errors import ConfigurationError
from spendgate.pricing._currency import parse_rates
from spendgate.pricing._fields import FieldError
from spendgate.pricing._overrides import FallbackPrice, PriceOverride

__all__ = ["PriceFile", "load_overrides", "parse_price_file"]

_TOP_LEVEL = ("overrides", "fallback", "exchange_rates")


@dataclass(frozen=True, slots=True)
class PriceFile:
    """The contents of a price file, ready for ``PriceBook(overrides, fallback=..., exchange_rates=...)``."""

    overrides: tuple[PriceOverride, ...] = ()
    fallback: tuple[FallbackPrice, ...] = ()
    exchange_rates: Mapping[str, Decimal] = field(default_factory=dict)


def load_overrides(path: str | Path) -> PriceFile:
    """Read a ``.toml``, ``.yaml`` or ``.yml`` price file; raises ConfigurationError naming file, entry and field."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigurationError(f"{path}: unknown price file type {suffix!r}; use .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read the price file: {exc}") from None
    try:
        data: Any = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        kind = "TOML" if suffix == ".toml" else "YAML"
        raise ConfigurationError(f"{path}: not valid {kind}: {exc}") from None
    try:
        return parse_price_file(data)
    except FieldError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None


def parse_price_file(data: object) -> PriceFile:
    """Validate already-parsed price file contents (a mapping); raises FieldError with the path."""
    if data is None:
        return PriceFile()
    if not isinstance(data, Mapping):
        raise FieldError("", f"the top level must be a table/mapping with {list(_TOP_LEVEL)}")
    for key in data:
        if key not in _TOP_LEVEL:
            raise FieldError(str(key), f"unknown top-level key (expected {list(_TOP_LEVEL)})")
    return PriceFile(
        overrides=_overrides(data.get("overrides", [])),
        fallback=_fallbacks(data.get("fallback")),
        exchange_rates=parse_rates(data.get("exchange_rates")),
    )


def _overrides(entries: object) -> tuple[PriceOverride, ...]:
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence):
        raise FieldError("overrides", "must be a list of tables ([[overrides]] in TOML)")
    out: list[PriceOverride] = []
    seen: dict[tuple[str, str, str | None, datetime], int] = {}
    ids: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"overrides[{index}]"
        override = PriceOverride.from_mapping(entry, where=where)
        version = override.version_key
        if version in seen:
            raise FieldError(
                f"{where}.effective_from",
                f"overrides[{seen[version]}] already prices {override.provider}/{override.model} from that moment;"
                " a correction is a new version with a later effective_from",
            )
        if override.id in ids:
            raise FieldError(f"{where}.id", f"overrides[{ids[override.id]}] already has id {override.id!r}")
        seen[version] = ids[override.id] = index
        out.append(override)
    return tuple(out)


def _fallbacks(table: object) -> tuple[FallbackPrice, ...]:
    if table is None:
        return ()
    if not isinstance(table, Mapping):
        raise FieldError("fallback", "must be a table/mapping with input, output and/or providers")
    default = {key: value for key, value in table.items() if key != "providers"}
    out = [FallbackPrice.from_mapping(default, where="fallback")] if default else []
    providers = table.get("providers", {})
    if not isinstance(providers, Mapping):
        raise FieldError("fallback.providers", "must be a table/mapping of provider ids to {input, output}")
    for name, prices in providers.items():
        where = f"fallback.providers.{name}"
        if not isinstance(prices, Mapping) or "provider" in prices:
            raise FieldError(where, "must be a table/mapping with input and output")
        out.append(FallbackPrice.from_mapping({**prices, "provider": str(name)}, where=where))
    return tuple(out)
