"""Turn a genai-prices ``ModelPrice`` into linear :class:`~spendgate.pricing._compiled.Term` s.

genai-prices prices *units* that form a hierarchy by their dimensions (``input_tokens`` ⊃
``cache_read_tokens`` ⊃ ``cache_audio_read_tokens``...). Each priced unit is charged for its *leaf*
count: its own count minus the leaf counts of its priced descendants (``decompose.compute_leaf_values``).
Leaves are signed sums of counts, so the whole price is linear in the counts: we work the leaves out
symbolically once, here, instead of per call.

Usage counts spendgate's :class:`~spendgate.usage.Usage` has are mapped to genai-prices usage keys by
:data:`USAGE_FIELDS`; units it cannot express (characters, pixels, document pages, 1-hour cache writes,
...) have a count of zero, so their prices are never charged. Joint counts such as cached audio tokens
are derived as the fewest consistent with the counts (:class:`~spendgate.pricing._compiled.OverlapGroup`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from itertools import combinations
from typing import TYPE_CHECKING, Any

from spendgate.pricing._compiled import (
    CACHE_READ,
    CACHE_WRITE,
    INPUT,
    OTHER,
    OUTPUT,
    REASONING,
    REQUEST,
    Guard,
    OverlapGroup,
    Term,
)

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice, TieredPrices
    from genai_prices.units import UnitDef, UnitRegistry

__all__ = ["USAGE_FIELDS", "LinearPrice", "base_price", "linear_price", "price_items"]

#: genai-prices usage key -> spendgate ``Usage`` attribute.
USAGE_FIELDS: Mapping[str, str] = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "output_reasoning_tokens": "reasoning_tokens",
    "input_audio_tokens": "input_audio_tokens",
    "output_audio_tokens": "output_audio_tokens",
    "input_image_tokens": "input_image_tokens",
    "web_searches": "web_searches",
    "audio_seconds": "audio_seconds",
}

_FIELD_NAMES = frozenset(USAGE_FIELDS.values())
_POWERS_OF_TEN = {10**exponent: exponent for exponent in range(13)}


@cache
def _registry() -> UnitRegistry:
    """genai-prices' unit registry, built from its public unit data (immutable, so cached)."""
    from genai_prices.data_units import unit_data
    from genai_prices.units import UnitRegistry

    return UnitRegistry(unit_data)


@dataclass(frozen=True, slots=True)
class LinearPrice:
    """A ``ModelPrice`` as terms over usage counts, ready for :class:`CompiledPrice`."""

    terms: tuple[Term, ...]
    thresholds: tuple[int, ...]
    overlaps: tuple[OverlapGroup, ...]
    guards: tuple[Guard, ...]
    prices_tokens: bool
    """Whether any token unit is priced (a price may be only per image, character or second)."""


def price_items(model_price: ModelPrice) -> list[tuple[UnitDef, Decimal | TieredPrices]]:
    """The priced units of ``model_price``; price keys this genai-prices version does not know are skipped."""
    registry = _registry()
    items: list[tuple[UnitDef, Any]] = []
    for key, value in vars(model_price).items():
        if key.startswith("_") or value is None:
            continue
        try:
            unit = registry.unit_for_price_key(key)
        except KeyError:
            continue
        items.append((unit, value))
    return items


def base_price(value: Decimal | TieredPrices) -> Decimal:
    """The price below the first tier."""
    return value if isinstance(value, Decimal) else value.base


def _segment_price(value: Decimal | TieredPrices, input_tokens: int) -> Decimal:
    """The price that applies at ``input_tokens`` total input (cliff tiers, like ``calc_unit_price``)."""
    if isinstance(value, Decimal):
        return value
    for tier in reversed(value.tiers):
        if input_tokens > tier.start:
            return tier.price
    return value.base


def _part(unit: UnitDef) -> int:
    dims = unit.dimensions
    family = dims.get("family")
    if family == "requests":
        return REQUEST
    if family != "tokens":
        return OTHER
    token_type = dims.get("token_type")
    if token_type == "cache_read":
        return CACHE_READ
    if token_type == "cache_write":
        return CACHE_WRITE
    if token_type == "reasoning":
        return REASONING
    if dims.get("modality") not in (None, "text"):
        return OTHER
    return INPUT if dims.get("direction") == "input" else OUTPUT


def _is_descendant_or_self(ancestor: UnitDef, descendant: UnitDef) -> bool:
    return ancestor.dimensions.items() <= descendant.dimensions.items()


def _leaves(units: list[UnitDef]) -> dict[str, dict[str, int]]:
    """Leaf count of each unit as {usage key: coefficient}, in genai-prices' order (most specific first)."""
    ordered = sorted(units, key=lambda unit: (-len(unit.dimensions), unit.usage_key))
    leaves: dict[str, dict[str, int]] = {}
    for unit in ordered:
        vector = {unit.usage_key: 1}
        for other in ordered:
            if other is not unit and other.usage_key in leaves and _is_descendant_or_self(unit, other):
                for key, coef in leaves[other.usage_key].items():
                    vector[key] = vector.get(key, 0) - coef
        leaves[unit.usage_key] = {key: coef for key, coef in vector.items() if coef}
    return leaves


def _overlaps(units: list[UnitDef]) -> tuple[OverlapGroup, ...]:
    """Groups deriving priced joint counts (cached audio tokens...) of two expressible priced units."""
    registry = _registry()
    priced = {unit.usage_key for unit in units}
    expressible = sorted((unit for unit in units if unit.usage_key in USAGE_FIELDS), key=lambda u: u.usage_key)
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for first, second in combinations(expressible, 2):
        if not first.is_compatible_with(second):
            continue
        if _is_descendant_or_self(first, second) or _is_descendant_or_self(second, first):
            continue
        join = registry.find_join(first, second)
        if join is None or join.usage_key not in priced or join.usage_key in USAGE_FIELDS:
            continue
        common = dict(first.dimensions.items() & second.dimensions.items())
        whole = next((u for u in registry.units.values() if dict(u.dimensions) == common), None)
        shared, other = (first, second) if "token_type" in first.dimensions else (second, first)
        if whole is None or whole.usage_key not in USAGE_FIELDS or "token_type" in other.dimensions:
            continue
        key = (USAGE_FIELDS[whole.usage_key], USAGE_FIELDS[shared.usage_key])
        groups.setdefault(key, []).append((USAGE_FIELDS[other.usage_key], join.usage_key))
    return tuple(
        OverlapGroup(
            whole=whole_field,
            shared=shared_field,
            others=tuple(other for other, _ in sorted(members)),
            names=tuple(name for _, name in sorted(members)),
        )
        for (whole_field, shared_field), members in sorted(groups.items())
    )


def _coefficient(price: Decimal, per: int) -> tuple[Decimal, int]:
    """Price per single unit and the divisor still to apply (only for sizes that are not powers of 10)."""
    exponent = _POWERS_OF_TEN.get(per)
    if exponent is None:
        return price, per
    return price.scaleb(-exponent), 1


def linear_price(model_price: ModelPrice) -> LinearPrice:
    """Compile ``model_price`` to terms over spendgate usage counts."""
    items = price_items(model_price)
    units = [unit for unit, _ in items if unit.usage_key != "requests"]
    thresholds = tuple(
        sorted({tier.start for _, value in items if not isinstance(value, Decimal) for tier in value.tiers})
    )
    representative = (0, *(start + 1 for start in thresholds))
    overlaps = _overlaps(units)
    derived = {name for group in overlaps for name in group.names}
    leaves = _leaves(units)

    def variable(usage_key: str) -> str | None:
        return USAGE_FIELDS.get(usage_key) or (usage_key if usage_key in derived else None)

    terms: list[Term] = []
    guards: list[Guard] = []
    for unit, value in items:
        counts: tuple[tuple[str, int], ...] = ()
        if unit.usage_key != "requests":
            named = [(variable(key), coef) for key, coef in leaves[unit.usage_key].items()]
            counts = tuple(sorted(((name, coef) for name, coef in named if name), key=lambda c: (-c[1], c[0])))
            if not counts:
                continue  # a unit Usage cannot express: its count is always zero
            if derived and len(counts) > 1:
                field = next(name for name, _ in counts if name in _FIELD_NAMES)
                guards.append(Guard(field=field, counts=counts))
        prices = [_coefficient(_segment_price(value, tokens), unit.per) for tokens in representative]
        if all(not coef for coef, _ in prices):
            continue
        terms.append(Term(part=_part(unit), coefs=tuple(c for c, _ in prices), counts=counts, divisor=prices[0][1]))
    return LinearPrice(
        terms=tuple(terms),
        thresholds=thresholds,
        overlaps=overlaps,
        guards=tuple(guards),
        prices_tokens=any(unit.dimensions.get("family") == "tokens" for unit, _ in items),
    )
