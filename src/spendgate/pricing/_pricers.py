"""Pricers: what the price book caches per (provider, model, service tier).

A pricer turns a moment and the scope's monthly volume into the :class:`CompiledPrice` in force. One
whose price never changes exposes it as ``static``, so the book can cache the compiled price itself
and never read the clock for it. :class:`Timeline` switches between the catalog (or fallback) price
and the override versions at their ``effective_from``; :class:`OverridePricer` picks volume tiers
and time-of-day multipliers; :class:`MissingPricer` is the negative cache entry.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, Inexact, localcontext
from typing import Protocol

from spendgate.errors import PricingError
from spendgate.pricing._breakdown import ModelPriceInfo
from spendgate.pricing._compiled import (
    CACHE_READ,
    CACHE_WRITE,
    INPUT,
    OTHER,
    OUTPUT,
    REASONING,
    REQUEST,
    ZERO,
    CompiledPrice,
    Label,
    Term,
)
from spendgate.pricing._overrides import FallbackPrice, PriceOverride

__all__ = ["MissingPricer", "OverridePricer", "Pricer", "StaticPricer", "Timeline", "compile_fallback"]

_ONE = Decimal(1)


class Pricer(Protocol):
    """Resolves the compiled price in force at a moment for a monthly volume."""

    @property
    def static(self) -> CompiledPrice | None: ...

    @property
    def has_volume_tiers(self) -> bool: ...

    def select(self, at: datetime, monthly_volume: int) -> CompiledPrice: ...


class StaticPricer:
    """A price that never changes (a fallback price)."""

    has_volume_tiers = False

    def __init__(self, price: CompiledPrice) -> None:
        self.static: CompiledPrice | None = price

    def select(self, at: datetime, monthly_volume: int) -> CompiledPrice:
        assert self.static is not None
        return self.static


class MissingPricer:
    """No price: every lookup raises a fresh error from ``error()`` (a negative cache entry)."""

    static = None
    has_volume_tiers = False

    def __init__(self, error: Callable[[], PricingError]) -> None:
        self._error = error

    def select(self, at: datetime, monthly_volume: int) -> CompiledPrice:
        raise self._error()


class Timeline:
    """``base`` until the first override version's ``effective_from``, then each version in turn."""

    static = None

    def __init__(self, base: Pricer, versions: Sequence[tuple[datetime, Pricer]]) -> None:
        self._base = base
        self._starts = [start for start, _ in versions]
        self._pricers = [pricer for _, pricer in versions]
        self.has_volume_tiers = any(pricer.has_volume_tiers for pricer in self._pricers)

    def select(self, at: datetime, monthly_volume: int) -> CompiledPrice:
        index = bisect_right(self._starts, at)
        pricer = self._base if index == 0 else self._pricers[index - 1]
        return pricer.select(at, monthly_volume)


@dataclass(frozen=True, slots=True)
class _Sheet:
    """Token prices per million tokens for one tier segment (``None``: not priced separately)."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    reasoning: Decimal | None

    def rebased(
        self, input: Decimal, output: Decimal, cache_read: Decimal | None, cache_write: Decimal | None
    ) -> _Sheet:
        """Prices of a tier: omitted cache prices scale with input, reasoning with output."""
        return _Sheet(
            input=input,
            output=output,
            cache_read=cache_read if cache_read is not None else _scale(self.cache_read, input, self.input),
            cache_write=cache_write if cache_write is not None else _scale(self.cache_write, input, self.input),
            reasoning=_scale(self.reasoning, output, self.output),
        )

    def discounted(self, factor: Decimal) -> _Sheet:
        return _Sheet(*(None if price is None else price * factor for price in self._prices()))

    def _prices(self) -> tuple[Decimal | None, ...]:
        return self.input, self.output, self.cache_read, self.cache_write, self.reasoning


#: A tier's derived price whose ratio does not terminate ($1 under $3 in a $1 tier: $1/3) is rounded to this
#: ($ per million tokens), so that it is a terminating decimal and every sum of costs stays exact.
DERIVED_PRICE_QUANTUM = Decimal("1e-12")


def _scale(price: Decimal | None, new: Decimal, old: Decimal | None) -> Decimal | None:
    if price is None:
        return None
    if not old:
        return new
    with localcontext() as ctx:
        ctx.traps[Inexact] = True
        try:
            return price * new / old
        except Inexact:
            pass
    return (price * new / old).quantize(DERIVED_PRICE_QUANTUM)


def _token_terms(sheets: Sequence[_Sheet]) -> list[Term]:
    """Terms for per-token prices; a part priced in some segment only uses its parent price elsewhere."""

    def coefs(
        pick: Callable[[_Sheet], Decimal | None], parent: Callable[[_Sheet], Decimal | None]
    ) -> tuple[Decimal, ...]:
        out = []
        for sheet in sheets:
            price = pick(sheet)
            if price is None:
                price = parent(sheet)
            out.append(ZERO if price is None else price.scaleb(-6))
        return tuple(out)

    def priced(pick: Callable[[_Sheet], Decimal | None]) -> bool:
        return any(pick(s) is not None for s in sheets)

    has_read, has_write = priced(lambda s: s.cache_read), priced(lambda s: s.cache_write)
    has_reasoning = priced(lambda s: s.reasoning)
    input_counts = [("input_tokens", 1)]
    input_counts += [("cache_read_tokens", -1)] if has_read else []
    input_counts += [("cache_write_tokens", -1)] if has_write else []
    terms = [Term(INPUT, coefs(lambda s: s.input, lambda s: None), tuple(input_counts))]
    if has_read:
        terms.append(Term(CACHE_READ, coefs(lambda s: s.cache_read, lambda s: s.input), (("cache_read_tokens", 1),)))
    if has_write:
        terms.append(Term(CACHE_WRITE, coefs(lambda s: s.cache_write, lambda s: s.input), (("cache_write_tokens", 1),)))
    output_counts = (("output_tokens", 1), ("reasoning_tokens", -1)) if has_reasoning else (("output_tokens", 1),)
    terms.append(Term(OUTPUT, coefs(lambda s: s.output, lambda s: None), output_counts))
    if has_reasoning:
        terms.append(Term(REASONING, coefs(lambda s: s.reasoning, lambda s: s.output), (("reasoning_tokens", 1),)))
    return terms


class OverridePricer:
    """One override version: picks the volume tier and the time-of-day multiplier, compiles each once."""

    def __init__(self, override: PriceOverride, provider_id: str) -> None:
        self.override = override
        self._provider_id = provider_id
        self._thresholds = [tier.above_monthly_tokens for tier in override.volume_tiers]
        self._compiled: dict[tuple[int, Decimal], CompiledPrice] = {}
        self.has_volume_tiers = bool(self._thresholds)
        dynamic = self.has_volume_tiers or bool(override.time_of_day)
        self.static = None if dynamic else self._price(0, _ONE)

    def select(self, at: datetime, monthly_volume: int) -> CompiledPrice:
        # bisect_left counts the thresholds strictly below the volume: tier i applies above its threshold
        index = bisect_left(self._thresholds, monthly_volume)
        multiplier = next((rule.multiplier for rule in self.override.time_of_day if rule.applies(at)), _ONE)
        return self._price(index, multiplier)

    def _price(self, volume_index: int, multiplier: Decimal) -> CompiledPrice:
        key = (volume_index, multiplier)
        if key not in self._compiled:
            price = self._compile(volume_index)
            self._compiled[key] = price if multiplier == _ONE else price.scaled(multiplier)
        return self._compiled[key]

    def _compile(self, volume_index: int) -> CompiledPrice:
        o = self.override
        base = _Sheet(o.input, o.output, o.cache_read, o.cache_write, o.reasoning)
        volume = o.volume_tiers[volume_index - 1] if volume_index else None
        if volume is not None and volume.discount_percent is None:
            assert volume.input is not None  # VolumeTier checks: prices or a discount
            assert volume.output is not None
            base = base.rebased(volume.input, volume.output, volume.cache_read, volume.cache_write)
        sheets = [base, *(base.rebased(t.input, t.output, t.cache_read, t.cache_write) for t in o.context_tiers)]
        if volume is not None and volume.discount_percent is not None:
            sheets = [sheet.discounted(1 - volume.discount_percent / 100) for sheet in sheets]
        segments = len(sheets)
        terms = _token_terms(sheets)
        if o.per_second is not None:
            terms.append(Term(OTHER, (o.per_second,) * segments, (("processing_seconds", 1),)))
        if o.per_request is not None:
            terms.append(Term(REQUEST, (o.per_request,) * segments))
        label = Label(
            provider=self._provider_id,
            model_id=o.model,
            price_version=f"override:{o.id}",
            source="override",
            service_tier=o.service_tier,
        )
        return CompiledPrice(
            label=label,
            info=self._info(label),
            terms=[term for term in terms if any(term.coefs)],
            thresholds=[tier.above_input_tokens for tier in o.context_tiers],
            minimum=o.minimum_charge,
        )

    def _info(self, label: Label) -> ModelPriceInfo:
        o = self.override
        return ModelPriceInfo(
            provider=label.provider,
            model=o.model,
            model_id=o.model,
            source="override",
            price_version=label.price_version,
            service_tier=o.service_tier,
            input_mtok=o.input,
            output_mtok=o.output,
            cache_read_mtok=o.cache_read,
            cache_write_mtok=o.cache_write,
            reasoning_mtok=o.reasoning,
            per_request=o.per_request,
            minimum_charge=o.minimum_charge,
            per_second=o.per_second,
            context_tiers=tuple(tier.above_input_tokens for tier in o.context_tiers),
            has_volume_tiers=self.has_volume_tiers,
            has_time_of_day=bool(o.time_of_day),
            effective_from=o.effective_from_datetime,
            note=o.note,
        )


def compile_fallback(fallback: FallbackPrice, provider_id: str, model: str, tier: str | None) -> CompiledPrice:
    """The fallback price as a compiled price whose costs are marked ``estimated``."""
    label = Label(
        provider=provider_id,
        model_id=model,
        price_version=f"fallback:{fallback.provider or 'default'}",
        source="fallback",
        estimated=True,
        service_tier=tier,
    )
    terms = [
        Term(INPUT, (fallback.input.scaleb(-6),), (("input_tokens", 1),)),
        Term(OUTPUT, (fallback.output.scaleb(-6),), (("output_tokens", 1),)),
    ]
    info = ModelPriceInfo(
        provider=provider_id,
        model=model,
        model_id=model,
        source="fallback",
        price_version=label.price_version,
        service_tier=tier,
        input_mtok=fallback.input,
        output_mtok=fallback.output,
        estimated=True,
    )
    return CompiledPrice(label=label, info=info, terms=[term for term in terms if any(term.coefs)])
