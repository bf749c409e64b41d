"""The genai-prices catalog: provider/model lookup and compiled catalog prices over time.

The bundled ``genai_prices.data.providers`` list is read directly (never through genai-prices'
process-global snapshot) and only on first use. Lookup follows genai-prices: a provider by id or its
``provider_match``, a model by its ``match`` logic (case-insensitive) with one step through the
provider's ``fallback_model_providers``; ``"openai/gpt-4o"``-style refs are accepted too.

A :class:`CatalogPricer` holds one model's prices for one service tier. ``ConditionalPrice`` s and
price variants with start dates split time into intervals, each compiled once; prices with a time of
day (DeepSeek's off-peak hours) are resolved per call and compiled once per combination.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from importlib.metadata import version as _package_version
from typing import TYPE_CHECKING

from spendgate.errors import PricingError, UnknownModelError
from spendgate.pricing._breakdown import CostBreakdown, ModelPriceInfo
from spendgate.pricing._compiled import CompiledPrice, Label, TokenHandler
from spendgate.pricing._units import base_price, linear_price, price_items
from spendgate.usage import Usage

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, PriceVariant, Provider

__all__ = ["Catalog", "CatalogModel", "CatalogPricer", "Located", "tier_context"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAIN_KEYS = {
    "input_mtok": "input_mtok",
    "output_mtok": "output_mtok",
    "cache_read_mtok": "cache_read_mtok",
    "cache_write_mtok": "cache_write_mtok",
    "output_reasoning_mtok": "reasoning_mtok",
}
#: genai-prices bills Groq Whisper audio at 10 seconds at least (hard-coded in ModelInfo.calc_price).
_AUDIO_FLOORS = {("groq", "whisper-large-v3"), ("groq", "whisper-large-v3-turbo")}


def tier_context(tier: str | None) -> dict[str, str] | None:
    """The genai-prices price context selecting a service tier's variant (``None`` for standard)."""
    if tier is None:
        return None
    if tier == "batch":
        return {"processing": "batch"}
    if tier == "fast":  # OpenAI spells it service_tier, Anthropic speed
        return {"service_tier": "fast", "speed": "fast"}
    return {"service_tier": tier}


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """A catalog model found for a provider: ``owner`` lists it (another provider on fallback)."""

    provider: Provider
    model: ModelInfo
    owner: Provider

    @property
    def own(self) -> bool:
        """Whether the provider lists the model itself (variants only apply then, as in genai-prices)."""
        return self.owner is self.provider


@dataclass(frozen=True, slots=True)
class Located:
    """Result of a lookup: canonical provider id, the model ref without a provider prefix, the match."""

    provider_id: str
    model_ref: str
    found: CatalogModel | None
    detail: str = ""


class Catalog:
    """The genai-prices provider list, loaded lazily, with memoised provider lookups."""

    def __init__(self, providers: Sequence[Provider] | None = None) -> None:
        self._providers = list(providers) if providers is not None else None
        self._by_name: dict[str, Provider | None] = {}

    @property
    def providers(self) -> list[Provider]:
        if self._providers is None:
            from genai_prices.data import providers

            self._providers = providers
        return self._providers

    @property
    def version(self) -> str:
        return _package_version("genai-prices")

    def provider(self, name: str) -> Provider | None:
        """The catalog provider for an id or alias (``"OpenAI"``, ``"azure"``...), else ``None``."""
        key = name.strip().lower()
        if key not in self._by_name:
            from genai_prices.data_snapshot import find_provider_by_id

            self._by_name[key] = find_provider_by_id(self.providers, key) if key else None
        return self._by_name[key]

    def canonical(self, name: str) -> str:
        """The catalog id for a provider name, or the name lower-cased for providers not in the catalog."""
        found = self.provider(name)
        return found.id if found is not None else name.strip().lower()

    def models(self, provider: str | None = None) -> Iterator[tuple[Provider, ModelInfo]]:
        for entry in self.providers:
            if provider is None or entry.id == provider:
                for model in entry.models:
                    yield entry, model

    def locate(self, provider: str, model: str) -> Located:
        """Find ``model`` (lower-cased, stripped) of ``provider`` (likewise) like genai-prices does."""
        ref = model
        found = self.provider(provider) if provider else None
        if provider and found is None and provider != "litellm":
            return Located(provider, ref, None, f"provider {provider!r} is not in the genai-prices catalog")
        if found is None and "/" in ref:
            prefix, rest = ref.split("/", 1)
            if (named := self.provider(prefix)) is not None:
                found, ref = named, rest
        if found is None:
            found = next((p for p in self.providers if p.model_match and p.model_match.is_match(ref)), None)
            if found is None:
                return Located(provider, ref, None, "no catalog provider matches this model; name the provider")
        info = found.find_model(ref, all_providers=self.providers)
        if info is None and "/" in ref and self.provider(ref.split("/", 1)[0]) is not None:
            rest = ref.split("/", 1)[1]
            if (info := found.find_model(rest, all_providers=self.providers)) is not None:
                ref = rest
        if info is None:
            return Located(found.id, ref, None, f"not in the genai-prices catalog of provider {found.id!r}")
        owner = found
        if not any(candidate is info for candidate in found.models):
            owner = next(p for p in self.providers if any(candidate is info for candidate in p.models))
        return Located(found.id, ref, CatalogModel(found, info, owner))


def _conditional_suffix(model: ModelInfo, at: datetime) -> str:
    from genai_prices.types import StartDateConstraint

    if isinstance(model.prices, list):
        for conditional in reversed(model.prices):
            constraint = conditional.constraint
            if constraint is None:
                return ""
            if constraint.active(at):
                if isinstance(constraint, StartDateConstraint):
                    return f"@{constraint.start_date.isoformat()}"
                return f"@{constraint.start_time:%H:%M}-{constraint.end_time:%H:%M}"
    return ""


def _price_info(found: CatalogModel, model_price: ModelPrice, label: Label) -> ModelPriceInfo:
    items = price_items(model_price)
    main: dict[str, object] = {}
    other = {}
    thresholds: set[int] = set()
    for unit, value in items:
        if not isinstance(value, Decimal):
            thresholds.update(tier.start for tier in value.tiers)
        if unit.price_key in _MAIN_KEYS:
            main[_MAIN_KEYS[unit.price_key]] = base_price(value)
        elif unit.price_key == "requests_kcount":
            main["per_request"] = base_price(value) / unit.per
        else:
            other[unit.price_key] = base_price(value)
    return ModelPriceInfo(
        provider=label.provider,
        model=found.model.id,
        model_id=found.model.id,
        source="catalog",
        price_version=label.price_version,
        service_tier=label.service_tier,
        context_tiers=tuple(sorted(thresholds)),
        other_prices=other,
        context_window=found.model.context_window,
        **main,  # type: ignore[arg-type]  # keys are ModelPriceInfo's Decimal fields
    )


class CatalogPricer:
    """One catalog model's prices for one service tier, compiled per interval of time."""

    has_volume_tiers = False

    def __init__(
        self,
        found: CatalogModel,
        tier: str | None,
        version: str,
        *,
        token_fallback: CompiledPrice | None = None,
    ) -> None:
        from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

        self._found = found
        self._tier = tier
        self._version = f"genai-prices@{version}:{found.owner.id}/{found.model.id}"
        self._token_fallback = token_fallback
        self._context = tier_context(tier)
        # genai-prices applies a model's variants only for the provider that lists it
        variants = (found.model.price_variants or []) if self._context and found.own else []
        context = self._context or {}
        self._variants: list[PriceVariant] = [
            v for v in variants if all(context.get(key) == value for key, value in v.when.items())
        ]
        constraints = [v.constraint for v in self._variants]
        if isinstance(found.model.prices, list):
            constraints.extend(conditional.constraint for conditional in found.model.prices)
        self._dynamic = any(isinstance(c, TimeOfDateConstraint) for c in constraints)
        self._by_signature: dict[tuple[int, tuple[int, ...]], CompiledPrice | None] = {}
        dates = sorted({c.start_date for c in constraints if isinstance(c, StartDateConstraint)})
        self._starts = [datetime.combine(day, time(), UTC) for day in dates]
        self._prices = [] if self._dynamic else [self._compile(at) for at in (_EPOCH, *self._starts)]
        self.static = self._prices[0] if not self._dynamic and not self._starts else None

    def select(self, at: datetime, monthly_volume: int) -> CompiledPrice:
        """The compiled price in force at ``at`` (``monthly_volume`` is not used by catalog prices)."""
        if self._dynamic:
            key = self._signature(at)
            if key not in self._by_signature:
                self._by_signature[key] = self._compile(at)
            price = self._by_signature[key]
        else:
            price = self._prices[bisect_right(self._starts, at)]
        if price is None:
            raise self._no_tier_price()
        return price

    def _signature(self, at: datetime) -> tuple[int, tuple[int, ...]]:
        chosen = 0
        prices = self._found.model.prices
        if isinstance(prices, list):
            for index in range(len(prices) - 1, -1, -1):
                constraint = prices[index].constraint
                if constraint is None or constraint.active(at):
                    chosen = index
                    break
        active = tuple(i for i, v in enumerate(self._variants) if v.constraint is None or v.constraint.active(at))
        return chosen, active

    def _no_tier_price(self) -> PricingError:
        found = self._found
        return PricingError(
            f"no {self._tier!r} price for {found.provider.id}/{found.model.id} at that time: the genai-prices"
            f" catalog has none; add a price override with service_tier={self._tier!r}, or price it as standard"
        )

    def _compile(self, at: datetime) -> CompiledPrice | None:
        found = self._found
        active = [v for v in self._variants if v.constraint is None or v.constraint.active(at)]
        if self._context and not active:
            return None
        model_price = found.model.get_prices(at, self._context if found.own else None)
        suffix = _conditional_suffix(found.model, at)
        for variant in active:
            if any(value is not None for value in vars(variant.prices).values()):
                suffix += "+" + ",".join(f"{key}={value}" for key, value in sorted(variant.when.items()))
        label = Label(
            provider=found.provider.id,
            model_id=found.model.id,
            price_version=self._version + suffix,
            source="catalog",
            service_tier=self._tier,
        )
        linear = linear_price(model_price)
        floors = [("audio_seconds", Decimal(10))] if (found.owner.id, found.model.id) in _AUDIO_FLOORS else []
        handler: TokenHandler | None = None
        if not linear.prices_tokens:
            handler = self._token_handler(model_price)
        return CompiledPrice(
            label=label,
            info=_price_info(found, model_price, label),
            terms=linear.terms,
            thresholds=linear.thresholds,
            overlaps=linear.overlaps,
            guards=linear.guards,
            floors=floors,
            on_token_usage=handler,
        )

    def _token_handler(self, model_price: ModelPrice) -> TokenHandler:
        if self._token_fallback is not None:
            return self._token_fallback.evaluate
        provider_id = self._found.provider.id
        keys = ", ".join(sorted(unit.price_key for unit, _ in price_items(model_price))) or "nothing"
        detail = f"the catalog prices {self._found.model.id} only by {keys}, not by tokens"

        def refuse(usage: Usage, model: str) -> CostBreakdown:
            raise UnknownModelError(provider_id, model, detail)

        return refuse
