"""The price book: catalog prices, override versions and fallbacks behind one fast ``cost()``.

Each (provider, model, service tier, batch) asked is resolved once into a pricer (see ``_pricers``)
and cached, misses included, so an unknown model fails fast. A price that cannot change with time
or volume is cached as the :class:`CompiledPrice` itself: ``cost()`` is then a dict lookup and the
compiled function, and never reads the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from spendgate.clock import Clock, SystemClock
from spendgate.errors import ConfigurationError, CurrencyError, InvalidUsageError, PricingError, UnknownModelError
from spendgate.pricing._breakdown import CostBreakdown, ModelPriceInfo
from spendgate.pricing._catalog import Catalog, CatalogPricer, Located
from spendgate.pricing._compiled import CompiledPrice
from spendgate.pricing._currency import convert, parse_rates
from spendgate.pricing._loader import load_overrides
from spendgate.pricing._overrides import FallbackPrice, PriceOverride, normalize_tier
from spendgate.pricing._pricers import MissingPricer, OverridePricer, Pricer, StaticPricer, Timeline, compile_fallback
from spendgate.usage import Usage

__all__ = ["PriceBook"]

_Key = tuple[str, str, str | None, bool]


def _request_tier(service_tier: str | None, batch: bool) -> str | None:
    if service_tier is not None and not isinstance(service_tier, str):
        raise PricingError(f"service_tier must be a string or None, got {type(service_tier).__name__}")
    tier = normalize_tier(service_tier)
    if batch:
        if tier not in (None, "batch"):
            raise PricingError(f"batch=True conflicts with service_tier={service_tier!r}; batch is its own tier")
        return "batch"
    return tier


class PriceBook:
    """Exact Decimal costs from the genai-prices catalog, your overrides and an optional fallback.

    >>> PriceBook().cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=100)).total
    Decimal('0.0035000')

    Construction is cheap: the catalog is loaded and each model compiled on first use. Thread-safe.
    """

    def __init__(
        self,
        overrides: Iterable[PriceOverride] = (),
        *,
        fallback: FallbackPrice | Iterable[FallbackPrice] | None = None,
        exchange_rates: Mapping[str, Decimal] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._catalog = Catalog()
        self._rates = {"USD": Decimal(1), **parse_rates(exchange_rates)}
        self._fallbacks: dict[str | None, FallbackPrice] = {}
        for item in [fallback] if isinstance(fallback, FallbackPrice) else fallback or ():
            if not isinstance(item, FallbackPrice):
                raise ConfigurationError(f"fallback must be FallbackPrice objects, got {type(item).__name__}")
            if item.provider in self._fallbacks:
                raise ConfigurationError(f"two fallback prices for provider {item.provider or 'default'!r}")
            self._fallbacks[item.provider] = item
        self._overrides: list[PriceOverride] = []
        self._version_keys: set[tuple[str, str, str | None, datetime]] = set()
        self._override_pricers: dict[tuple[str, str], OverridePricer] = {}
        self._entries: dict[_Key, CompiledPrice | Pricer] = {}
        self._volume: dict[tuple[str, str], bool] = {}
        self._lock = threading.RLock()
        for override in overrides:
            self.add_override(override)

    @classmethod
    def from_file(
        cls, path: str | Path, *, exchange_rates: Mapping[str, Decimal] | None = None, clock: Clock | None = None
    ) -> PriceBook:
        """A book from a price file; ``exchange_rates`` given here win over the file's."""
        price_file = load_overrides(path)
        rates = {**price_file.exchange_rates, **(exchange_rates or {})}
        return cls(price_file.overrides, fallback=price_file.fallback, exchange_rates=rates, clock=clock)

    def __repr__(self) -> str:
        return f"PriceBook(overrides={len(self._overrides)}, exchange_rates={sorted(self._rates)})"

    @property
    def catalog_version(self) -> str:
        """The genai-prices version whose catalog is used."""
        return self._catalog.version

    # -- pricing -----------------------------------------------------------------------------------

    def cost(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        at: datetime | None = None,
        service_tier: str | None = None,
        batch: bool = False,
        currency: str = "USD",
        monthly_volume: int = 0,
    ) -> CostBreakdown:
        """The exact cost of ``usage`` on ``provider``/``model`` at ``at`` (default: now, by the clock).

        ``monthly_volume`` is the tokens the scope already used this month (only volume-tier overrides
        use it). Raises UnknownModelError (no price, no fallback), PricingError (service tier not
        priced), CurrencyError (no rate for ``currency``).
        """
        price = self._entries.get((provider, model, service_tier, batch))
        if price is None:
            price = self._entry(provider, model, service_tier, batch)
        if not isinstance(price, CompiledPrice):
            price = self._select(price, at, monthly_volume)
        if not isinstance(usage, Usage):
            raise TypeError(f"usage must be a spendgate Usage, got {type(usage).__name__}")
        breakdown = price.evaluate(usage, model)
        if currency == "USD":
            return breakdown
        return self._convert(breakdown, currency)

    def static_price(self, provider: str, model: str) -> CompiledPrice | None:
        """The standard price of ``provider``/``model`` when it is cached and cannot change with time or volume.

        None otherwise (not resolved yet, versions over time, volume tiers, no price). The same object is
        returned until an override changes the model's price, so a caller may remember what it computed
        from it, and check with ``is`` that it still holds.
        """
        price = self._entries.get((provider, model, None, False))
        return price if type(price) is CompiledPrice else None

    def price(
        self, provider: str, model: str, *, at: datetime | None = None, service_tier: str | None = None
    ) -> ModelPriceInfo:
        """The price sheet in force at ``at`` (default now): per-MTok rates, version and source."""
        entry = self._entries.get((provider, model, service_tier, False)) or self._entry(
            provider, model, service_tier, False
        )
        compiled = entry if isinstance(entry, CompiledPrice) else self._select(entry, at, 0)
        return replace(compiled.info, model=model)

    def has_volume_tiers(self, provider: str, model: str) -> bool:
        """Whether an override for this model has monthly volume tiers (the caller must pass ``monthly_volume``)."""
        known = self._volume.get((provider, model))
        if known is None:
            with self._lock:
                known = any(o.volume_tiers for o in self._overrides) and any(
                    o.volume_tiers for o in self._matching(self._locate(provider, model), model.strip().lower())
                )
                self._volume[(provider, model)] = known
        return known

    def _select(self, pricer: Pricer, at: datetime | None, monthly_volume: int) -> CompiledPrice:
        when = self._clock.now() if at is None else at
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if type(monthly_volume) is not int or monthly_volume < 0:
            raise InvalidUsageError("monthly_volume", f"must be a non-negative integer, got {monthly_volume!r}")
        return pricer.select(when, monthly_volume)

    def _convert(self, breakdown: CostBreakdown, currency: str) -> CostBreakdown:
        code = currency.strip().upper() if isinstance(currency, str) else str(currency)
        rate = self._rates.get(code)
        if rate is None:
            raise CurrencyError(
                f"no exchange rate configured for {currency!r}; configure exchange_rates ({code} per 1 USD)"
                f" in the price file or the PriceBook (configured: {', '.join(sorted(self._rates))})"
            )
        return convert(breakdown, code, rate)

    # -- resolution (cache misses) -------------------------------------------------------------------

    def _entry(self, provider: str, model: str, service_tier: str | None, batch: bool) -> CompiledPrice | Pricer:
        key = (provider, model, service_tier, batch)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                pricer = self._build(provider, model, _request_tier(service_tier, batch))
                entry = pricer.static if pricer.static is not None else pricer
                self._entries[key] = entry
            return entry

    def _locate(self, provider: str, model: str) -> Located:
        for name, value in (("provider", provider), ("model", model)):
            if not isinstance(value, str) or (name == "model" and not value.strip()):
                raise InvalidUsageError(name, f"must be a non-empty string, got {value!r}")
        return self._catalog.locate(provider.strip().lower(), model.strip().lower())

    def _build(self, provider: str, model: str, tier: str | None) -> Pricer:
        located = self._locate(provider, model)
        fallback = self._fallback(located.provider_id)
        fallback_price = None
        if fallback is not None:
            fallback_price = compile_fallback(fallback, located.provider_id, located.model_ref, tier)
        matching = self._matching(located, model.strip().lower())
        base: Pricer
        if located.found is not None:
            base = CatalogPricer(located.found, tier, self.catalog_version, token_fallback=fallback_price)
        elif tier is not None and matching:
            message = (
                f"no {tier!r} price for {located.provider_id}/{located.model_ref}: its overrides are for other"
                f" service tiers; add an override with service_tier={tier!r}"
            )
            base = MissingPricer(lambda: PricingError(message))
        elif fallback_price is not None:
            base = StaticPricer(fallback_price)
        else:
            detail = located.detail
            base = MissingPricer(lambda: UnknownModelError(provider, model, detail))
        candidates = [o for o in matching if o.service_tier == tier]
        versions: list[tuple[datetime, Pricer]] = []
        for start in sorted({o.effective_from_datetime for o in candidates}):
            in_force = [o for o in candidates if o.effective_from_datetime <= start]
            winner = max(in_force, key=lambda o: (o.specificity, o.effective_from_datetime))
            versions.append((start, self._override_pricer(winner, located.provider_id)))
        return Timeline(base, versions) if versions else base

    def _matching(self, located: Located, ref: str) -> list[PriceOverride]:
        return [
            o
            for o in self._overrides
            if self._catalog.canonical(o.provider) == located.provider_id
            and (o.matches(located.model_ref) or o.matches(ref))
        ]

    def _fallback(self, provider_id: str) -> FallbackPrice | None:
        for name, fallback in self._fallbacks.items():
            if name is not None and self._catalog.canonical(name) == provider_id:
                return fallback
        return self._fallbacks.get(None)

    def _override_pricer(self, override: PriceOverride, provider_id: str) -> OverridePricer:
        key = (override.id, provider_id)
        if key not in self._override_pricers:
            self._override_pricers[key] = OverridePricer(override, provider_id)
        return self._override_pricers[key]

    # -- overrides -----------------------------------------------------------------------------------

    def add_override(self, override: PriceOverride) -> None:
        """Add a price version; a second version with the same provider/model/tier/effective_from is refused."""
        if not isinstance(override, PriceOverride):
            raise ConfigurationError(f"expected a PriceOverride, got {type(override).__name__}")
        with self._lock:
            if override.version_key in self._version_keys:
                raise ConfigurationError(
                    f"{override.provider}/{override.model} (service tier {override.service_tier or 'standard'}) already"
                    f" has a price version from {override.effective_from_datetime.isoformat()}; prices are never edited"
                    " in place: add the correction as a new version with a later effective_from"
                )
            if any(o.id == override.id for o in self._overrides):
                raise ConfigurationError(f"a price override with id {override.id!r} already exists")
            self._overrides.append(override)
            self._version_keys.add(override.version_key)
            for key in list(self._entries):
                ref = key[1].strip().lower()
                if override.matches(ref) or ("/" in ref and override.matches(ref.split("/", 1)[1])):
                    del self._entries[key]
            self._volume.clear()

    def overrides(self, provider: str | None = None, model: str | None = None) -> list[PriceOverride]:
        """All override versions (optionally of one provider and/or matching one model), oldest first."""
        wanted = self._catalog.canonical(provider) if provider is not None else None
        ref = model.strip().lower() if model is not None else None
        found = [
            o
            for o in self._overrides
            if (wanted is None or self._catalog.canonical(o.provider) == wanted) and (ref is None or o.matches(ref))
        ]
        return sorted(found, key=lambda o: (o.provider, o.model, o.service_tier or "", o.effective_from_datetime))

    def search(self, query: str, *, provider: str | None = None, limit: int = 50) -> list[ModelPriceInfo]:
        """Models whose id or name contains ``query`` (case-insensitive): catalog first, then custom models."""
        needle = query.strip().lower()
        wanted = self._catalog.canonical(provider) if provider is not None else None
        found: list[ModelPriceInfo] = []
        seen: set[tuple[str, str]] = set()
        for entry, model in self._catalog.models(wanted):
            if len(found) >= limit:
                return found
            if needle not in model.id.lower() and needle not in (model.name or "").lower():
                continue
            try:
                info = self.price(entry.id, model.id)
            except PricingError:
                continue  # an id its own match logic does not accept, or no price at this time
            if (info.provider, info.model_id) not in seen:
                seen.add((info.provider, info.model_id))
                found.append(info)
        now = self._clock.now()
        for override in self._current_custom(wanted, now):
            pid = self._catalog.canonical(override.provider)
            if len(found) < limit and needle in override.model and (pid, override.model) not in seen:
                seen.add((pid, override.model))
                found.append(self._override_pricer(override, pid).select(now, 0).info)
        return found

    def _current_custom(self, provider: str | None, now: datetime) -> list[PriceOverride]:
        """Per standard-tier override model: the version in force now, else the next one."""
        latest: dict[tuple[str, str], PriceOverride] = {}
        for o in self.overrides(provider):
            if o.service_tier is not None:
                continue
            key = (o.provider, o.model)
            if key not in latest or o.effective_from_datetime <= now:
                latest[key] = o  # ascending dates: the last one in force, else the first to come
        return list(latest.values())
