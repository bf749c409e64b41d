"""Cost recommendations from the ledger: each one re-prices the period's actual traffic under a change.

One streaming pass over the period's events (:class:`Recommender`, fed by :func:`recommend`) keeps
per-model sums and a bounded table of repeated prompts; at the end every recommendation's savings are
``actual cost - the same calls re-priced`` with the price book, exact Decimals:

* ``model_downgrade``: calls with short prompts and short answers on a model that has a cheaper
  alternative in the downgrade chains, re-priced on the first cheaper alternative.
* ``provider_switch``: the same model (same catalog id after the vendor prefix, or a member of the
  same configured class) cheaper at another provider in the price book, re-priced there.
* ``caching``: calls whose (provider, model, prompt hash) was already seen in the period; a response
  cache would have answered them, so the saving is their whole cost.
* ``batch_api``: calls of non-urgent request types on models with a batch price, re-priced as batch.
* ``prompt_caching``: repeated prompts of at least ``prompt_cache_min_tokens`` input tokens not already
  read from the provider's cache: the repeats re-priced with their input as cache reads, less the
  cache-write premium of each prompt's first call. The signal is the full-prompt hash, so this is a
  lower bound for prompts sharing only a long prefix.
* ``context_trimming``: calls whose input is at least ``context_ratio`` times their output (and at
  least ``context_min_input_tokens``), re-priced with ``context_trim_fraction`` of their uncached
  input removed.
* ``off_peak``: non-urgent calls on models whose price varies by time of day, re-priced at the
  cheapest quarter hour of the next ``off_peak_max_delay``.

Recommendations overlap (a repeated call can be both cached and batched): their savings are not to be
added up. Memory is bounded: per-model state, at most ``max_tracked_prompts`` prompt hashes (when
full, hashes seen once are dropped, so later repeats of a dropped hash are missed: savings stay a
lower bound), and per-model time-of-day price caches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from spendgate.budgets import DowngradeChains, ModelRef
from spendgate.errors import InvalidUsageError, PricingError
from spendgate.ledger import EventFilter, UsageEvent, UsageStore
from spendgate.pricing import ModelPriceInfo, PriceBook
from spendgate.usage import Usage

__all__ = [
    "DEFAULT_NON_URGENT",
    "TYPES",
    "Recommendation",
    "RecommendationConfig",
    "RecommendationReport",
    "Recommender",
    "recommend",
]

RecommendationType = Literal[
    "model_downgrade", "provider_switch", "caching", "batch_api", "prompt_caching", "context_trimming", "off_peak"
]
TYPES: tuple[RecommendationType, ...] = get_args(RecommendationType)
Priority = Literal["high", "medium", "low"]

#: Request types treated as non-urgent (batchable, deferrable) unless configured.
DEFAULT_NON_URGENT = frozenset({"background", "batch", "bulk", "eval", "evaluation", "offline", "report", "scheduled"})

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_PERCENT = Decimal("0.01")
_REFERENCE = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
_SLOT = 900  # seconds: off-peak times are searched in quarter hours
_SAMPLE = 5  # confidence grows with the calls behind it: n / (n + 5)

# Per type: (base confidence, implementation effort, quality impact).
_TRAITS: Mapping[RecommendationType, tuple[float, str, str]] = {
    "provider_switch": (0.95, "low", "none"),
    "batch_api": (0.9, "medium", "none"),
    "caching": (0.85, "medium", "minimal"),
    "prompt_caching": (0.85, "low", "none"),
    "off_peak": (0.85, "medium", "none"),
    "model_downgrade": (0.8, "low", "minimal"),
    "context_trimming": (0.75, "high", "moderate"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RecommendationConfig:
    """Thresholds of :class:`Recommender`; the floors are the seeds' (savings >= 5.0, confidence >= 0.7)."""

    min_savings: Decimal = Decimal("5.0")
    """Only recommendations saving at least this much (in ``currency``) over the period are returned."""
    min_confidence: float = 0.7
    min_requests: int = 10
    """Fewest calls a recommendation may rest on."""
    currency: str = "USD"
    short_input_tokens: int = 1000
    short_output_tokens: int = 300
    non_urgent_request_types: frozenset[str] = DEFAULT_NON_URGENT
    prompt_cache_min_tokens: int = 1024
    context_ratio: int = 10
    context_min_input_tokens: int = 4000
    context_trim_fraction: Decimal = Decimal("0.3")
    max_tracked_prompts: int = 100_000
    switch_providers: frozenset[str] | None = None
    """Providers a switch may go to (None: any in the price book)."""
    max_switch_candidates: int = 3
    model_classes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Interchangeable models by class name: ``{"frontier": ("openai/gpt-4o", "anthropic/claude-sonnet-4-0")}``."""
    off_peak_max_delay: timedelta = timedelta(hours=24)
    high_share: Decimal = Decimal("0.10")
    """Priority ``high`` when the savings are at least this share of the period's spend."""
    medium_share: Decimal = Decimal("0.02")

    def __post_init__(self) -> None:
        if not isinstance(self.min_savings, Decimal) or not self.min_savings.is_finite() or self.min_savings < 0:
            raise InvalidUsageError("min_savings", f"must be a non-negative Decimal, got {self.min_savings!r}")
        if not 0 <= self.min_confidence <= 1:
            raise InvalidUsageError("min_confidence", f"must be from 0 to 1, got {self.min_confidence!r}")
        for name in ("min_requests", "max_tracked_prompts", "max_switch_candidates", "context_ratio"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidUsageError(name, f"must be a positive integer, got {getattr(self, name)!r}")
        if not 0 < self.context_trim_fraction < 1:
            raise InvalidUsageError("context_trim_fraction", "must be between 0 and 1")
        if not timedelta(0) < self.off_peak_max_delay <= timedelta(days=7):
            raise InvalidUsageError("off_peak_max_delay", "must be positive and at most 7 days")


@dataclass(frozen=True, slots=True, kw_only=True)
class Recommendation:
    """One way to spend less, with what it would have saved on the period's traffic."""

    id: str
    type: RecommendationType
    priority: Priority
    title: str
    description: str
    savings: Decimal
    """Actual cost of the affected calls minus their cost re-priced under the change."""
    savings_percent: Decimal
    """``savings / affected_cost * 100``, to 0.01."""
    affected_cost: Decimal
    requests: int
    currency: str
    effort: str
    quality_impact: str
    confidence: float
    action_items: tuple[str, ...]
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The seeds' shape (amounts and percentages as exact decimal strings)."""
        return {
            "recommendation_id": self.id,
            "optimization_type": self.type,
            "priority": self.priority,
            "title": self.title,
            "description": self.description,
            "potential_savings": _money(self.savings),
            "potential_savings_percentage": format(self.savings_percent, "f"),
            "currency": self.currency,
            "implementation_effort": self.effort,
            "quality_impact": self.quality_impact,
            "confidence_score": self.confidence,
            "action_items": list(self.action_items),
            "affected_requests": self.requests,
            "affected_cost": _money(self.affected_cost),
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RecommendationReport:
    """What one pass found: the recommendations above the floors and what the pass saw."""

    since: datetime
    until: datetime
    currency: str
    requests: int
    """Priced calls in ``currency`` that were analysed."""
    cost: Decimal
    unpriced_requests: int
    other_currency_requests: int
    cached_requests: int
    """Calls already served from spendgate's cache (not analysed)."""
    recommendations: tuple[Recommendation, ...]
    withheld: int
    """Recommendations found but below the savings or confidence floor."""
    prompt_tracking_capped: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "currency": self.currency,
            "requests": self.requests,
            "cost": _money(self.cost),
            "unpriced_requests": self.unpriced_requests,
            "other_currency_requests": self.other_currency_requests,
            "cached_requests": self.cached_requests,
            "withheld": self.withheld,
            "prompt_tracking_capped": self.prompt_tracking_capped,
            "recommendations": [r.to_dict() for r in self.recommendations],
        }


@dataclass(slots=True)
class _Tally:
    """Calls affected by one change: count, actual cost, cost re-priced under the change."""

    requests: int = 0
    cost: Decimal = _ZERO
    alternative: Decimal = _ZERO

    def add(self, actual: Decimal, alternative: Decimal) -> None:
        self.requests += 1
        self.cost += actual
        self.alternative += alternative

    @property
    def savings(self) -> Decimal:
        return self.cost - self.alternative


@dataclass(slots=True)
class _Prompt:
    """One (provider, model, prompt hash): calls seen, repeats' cost, prompt-caching figures."""

    count: int = 1
    repeat_cost: Decimal = _ZERO
    premium: Decimal = _ZERO
    """Cache-write premium of the first call (what marking the prompt cacheable costs once), priced on the
    first repeat's usage (the same prompt: the same input tokens)."""
    cache_cost: Decimal = _ZERO
    cache_alternative: Decimal = _ZERO
    cache_repeats: int = 0


@dataclass(slots=True)
class _Model:
    """Everything kept about one (provider, model)."""

    provider: str
    model: str
    info: ModelPriceInfo | None
    requests: int = 0
    cost: Decimal = _ZERO
    downgrade_to: ModelRef | None = None
    downgrade: _Tally = field(default_factory=_Tally)
    switch_to: list[tuple[str, str]] = field(default_factory=list)
    switch: list[_Tally] = field(default_factory=list)
    batch_priced: bool = False
    batch: _Tally = field(default_factory=_Tally)
    batch_types: dict[str, int] = field(default_factory=dict)
    cache_reads_cheaper: bool = False
    repeats: _Tally = field(default_factory=_Tally)
    """Response caching: repeated calls (alternative 0)."""
    prompt_cache: _Tally = field(default_factory=_Tally)
    """Banked prompt-caching figures of prompts dropped from the table."""
    context: _Tally = field(default_factory=_Tally)
    time_of_day: bool = False
    off_peak: _Tally = field(default_factory=_Tally)
    slot_costs: dict[int, Decimal | None] = field(default_factory=dict)
    best_slot: dict[int, int] = field(default_factory=dict)


def _money(value: Decimal) -> str:
    """An exact decimal string without exponent or trailing zeros (``"0.0035"``)."""
    return format(value.normalize(), "f") if value else "0"


def _bare(model: str) -> str:
    """A model id without its vendor prefix, lower-cased (``"openai/GPT-4o"`` -> ``"gpt-4o"``)."""
    return model.strip().lower().rsplit("/", 1)[-1]


_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


def _adjusted(usage: Usage, **counts: int) -> Usage:
    """A copy of the (validated) ``usage`` with some token counts changed, without re-validating it: the
    callers only move input tokens between plain, cache-read and cache-write, or remove plain ones, which
    keeps every invariant of :class:`Usage` (and is twice as fast as ``dataclasses.replace``).
    """
    copy = object.__new__(Usage)
    for name in _USAGE_FIELDS:
        object.__setattr__(copy, name, counts[name] if name in counts else getattr(usage, name))
    return copy


def _cacheable(usage: Usage) -> int:
    return usage.input_tokens - usage.input_audio_tokens - usage.input_image_tokens


class Recommender:
    """Feed it a period's events with :meth:`add` (any order, one pass); :meth:`report` gives the result.

    ``subject`` names whose traffic this is in recommendation ids (``"all"``, ``"user:ann"``).
    """

    def __init__(
        self,
        prices: PriceBook,
        *,
        since: datetime,
        until: datetime,
        config: RecommendationConfig | None = None,
        chains: DowngradeChains | None = None,
        subject: str = "all",
    ) -> None:
        self.prices = prices
        self.config = config or RecommendationConfig()
        self.chains = DowngradeChains.defaults() if chains is None else chains
        self.since, self.until, self.subject = since, until, subject
        self._models: dict[tuple[str, str], _Model] = {}
        self._prompts: dict[tuple[str, str, str], _Prompt] = {}
        self._capped = False
        self._requests = self._unpriced = self._other_currency = self._cached = 0
        self._cost = _ZERO

    # -- pricing helpers ------------------------------------------------------------------------

    def _price(
        self, provider: str, model: str, usage: Usage, at: datetime, tier: str | None = None, *, batch: bool = False
    ) -> Decimal | None:
        """The cost in the configured currency, or None where there is no such price (tier, model, rate)."""
        try:
            return self.prices.cost(
                provider, model, usage, at=at, service_tier=tier, batch=batch, currency=self.config.currency
            ).total
        except PricingError:
            return None

    def _reference(self, provider: str, model: str, at: datetime) -> Decimal | None:
        return self._price(provider, model, _REFERENCE, at)

    def _resolve(self, provider: str, model: str, at: datetime) -> _Model:
        try:
            info: ModelPriceInfo | None = self.prices.price(provider, model, at=at)
        except PricingError:
            info = None
        state = _Model(provider, model, info)
        own = self._reference(provider, model, at)
        if info is None or own is None:
            return state
        for ref in self.chains.alternatives(provider, model):
            cost = self._reference(ref.provider, ref.model, at)
            if cost is not None and cost < own:
                state.downgrade_to = ref
                break
        state.switch_to = self._switch_candidates(info, provider, model, own, at)
        state.switch = [_Tally() for _ in state.switch_to]
        state.batch_priced = (
            self._price(provider, model, Usage(input_tokens=1000, output_tokens=1000), at, batch=True) is not None
        )
        cache_read, uncached = info.cache_read_mtok, info.input_mtok
        state.cache_reads_cheaper = cache_read is not None and uncached is not None and cache_read < uncached
        state.time_of_day = info.has_time_of_day
        return state

    def _switch_candidates(
        self, info: ModelPriceInfo, provider: str, model: str, own: Decimal, at: datetime
    ) -> list[tuple[str, str]]:
        allowed = self.config.switch_providers
        found: dict[tuple[str, str], Decimal] = {}

        def consider(other_provider: str, other_model: str) -> None:
            if other_provider in (info.provider, provider) or (allowed is not None and other_provider not in allowed):
                return
            cost = self._reference(other_provider, other_model, at)
            if cost is not None and cost < own:
                found[(other_provider, other_model)] = cost

        name = _bare(info.model_id)
        for candidate in self.prices.search(name, limit=500):
            if _bare(candidate.model_id) == name and candidate.input_mtok is not None and candidate.output_mtok:
                consider(candidate.provider, candidate.model_id)
        mine = {f"{provider}/{model}", f"{info.provider}/{info.model_id}"}
        for members in self.config.model_classes.values():
            if mine & set(members):
                for member in members:
                    ref = ModelRef.parse(member)
                    consider(ref.provider, ref.model)
        ranked = sorted(found, key=lambda key: (found[key], key))
        return ranked[: self.config.max_switch_candidates]

    # -- the pass -------------------------------------------------------------------------------

    def add(self, event: UsageEvent) -> None:
        """Account one event."""
        if event.cached:
            self._cached += 1
            return
        if event.cost is None:
            self._unpriced += 1
            return
        if event.currency != self.config.currency:
            self._other_currency += 1
            return
        actual, usage, at, tier = event.cost, event.usage, event.timestamp, event.service_tier
        self._requests += 1
        self._cost += actual
        key = (event.provider, event.model)
        state = self._models.get(key)
        if state is None:
            state = self._models[key] = self._resolve(event.provider, event.model, at)
        state.requests += 1
        state.cost += actual
        if state.info is None:
            return  # no price for the model now: nothing to compare with
        config = self.config
        provider, model = event.provider, event.model
        if (
            state.downgrade_to is not None
            and usage.input_tokens <= config.short_input_tokens
            and usage.output_tokens <= config.short_output_tokens
        ):
            alt = self._price(state.downgrade_to.provider, state.downgrade_to.model, usage, at, tier)
            if alt is not None:
                state.downgrade.add(actual, alt)
        for (other_provider, other_model), tally in zip(state.switch_to, state.switch, strict=True):
            alt = self._price(other_provider, other_model, usage, at, tier)
            if alt is not None:
                tally.add(actual, alt)
        non_urgent = event.request_type in config.non_urgent_request_types
        if non_urgent and state.batch_priced and event.service_tier != "batch":
            alt = self._price(provider, model, usage, at, batch=True)
            if alt is not None:
                state.batch.add(actual, alt)
                kind = event.request_type or ""
                state.batch_types[kind] = state.batch_types.get(kind, 0) + 1
        if usage.input_tokens >= config.context_min_input_tokens and usage.input_tokens >= (
            config.context_ratio * usage.output_tokens
        ):
            uncached = _cacheable(usage) - usage.cache_read_tokens - usage.cache_write_tokens
            cut = int(uncached * config.context_trim_fraction)
            if cut > 0:
                alt = self._price(provider, model, _adjusted(usage, input_tokens=usage.input_tokens - cut), at, tier)
                if alt is not None:
                    state.context.add(actual, alt)
        if non_urgent and state.time_of_day and tier is None:
            self._off_peak(state, actual, usage, at)
        if event.prompt_hash:
            self._prompt(state, event.prompt_hash, actual, usage, at, tier)

    def _off_peak(self, state: _Model, actual: Decimal, usage: Usage, at: datetime) -> None:
        slot = int(at.timestamp()) // _SLOT
        best = state.best_slot.get(slot)
        if best is None:
            span = int(self.config.off_peak_max_delay.total_seconds()) // _SLOT
            best = slot
            best_cost = self._slot_cost(state, slot)
            for candidate in range(slot + 1, slot + span + 1):
                cost = self._slot_cost(state, candidate)
                if cost is not None and (best_cost is None or cost < best_cost):
                    best, best_cost = candidate, cost
            state.best_slot[slot] = best
        if best != slot:
            alt = self._price(state.provider, state.model, usage, datetime.fromtimestamp(best * _SLOT, UTC))
            if alt is not None:
                state.off_peak.add(actual, alt)

    def _slot_cost(self, state: _Model, slot: int) -> Decimal | None:
        if slot not in state.slot_costs:
            when = datetime.fromtimestamp(slot * _SLOT, UTC)
            state.slot_costs[slot] = self._reference(state.provider, state.model, when)
        return state.slot_costs[slot]

    def _prompt(
        self, state: _Model, digest: str, actual: Decimal, usage: Usage, at: datetime, tier: str | None
    ) -> None:
        key = (state.provider, state.model, digest)
        entry = self._prompts.get(key)
        cacheable = _cacheable(usage)
        long_prompt = (
            state.cache_reads_cheaper
            and usage.input_tokens >= self.config.prompt_cache_min_tokens
            and usage.cache_read_tokens * 2 < cacheable
        )
        if entry is None:
            if len(self._prompts) >= self.config.max_tracked_prompts:
                self._prune()
            self._prompts[key] = _Prompt()
            return
        entry.count += 1
        entry.repeat_cost += actual
        state.repeats.add(actual, _ZERO)
        if long_prompt:
            if entry.count == 2:  # the first repeat: the prompt is worth caching; its first call pays the write
                write = _adjusted(usage, cache_read_tokens=0, cache_write_tokens=cacheable)
                written = self._price(state.provider, state.model, write, at, tier)
                plain = self._price(state.provider, state.model, _adjusted(usage, cache_read_tokens=0), at, tier)
                if written is not None and plain is not None:
                    entry.premium = max(written - plain, _ZERO)
            read = _adjusted(usage, cache_read_tokens=cacheable, cache_write_tokens=0)
            alt = self._price(state.provider, state.model, read, at, tier)
            if alt is not None:
                entry.cache_cost += actual
                entry.cache_alternative += alt
                entry.cache_repeats += 1

    def _prune(self) -> None:
        """Drop the least repeated prompts until the table is at most half full, banking their figures."""
        self._capped = True
        floor = 1
        while len(self._prompts) >= self.config.max_tracked_prompts // 2 + 1:
            for key in [k for k, entry in self._prompts.items() if entry.count <= floor]:
                self._bank(key, self._prompts.pop(key))
            floor += 1

    def _bank(self, key: tuple[str, str, str], entry: _Prompt) -> None:
        if entry.cache_repeats:
            tally = self._models[(key[0], key[1])].prompt_cache
            tally.requests += entry.cache_repeats
            tally.cost += entry.cache_cost
            tally.alternative += entry.cache_alternative + entry.premium

    # -- the result -----------------------------------------------------------------------------

    def report(self) -> RecommendationReport:
        """Every recommendation above the floors, largest savings first."""
        for key in list(self._prompts):
            self._bank(key, self._prompts.pop(key))
        found = list(self._candidates())
        shown = [
            r
            for r in found
            if r.savings > 0
            and r.savings >= self.config.min_savings
            and r.confidence >= self.config.min_confidence
            and r.requests >= self.config.min_requests
        ]
        shown.sort(key=lambda r: (-r.savings, r.id))
        return RecommendationReport(
            since=self.since,
            until=self.until,
            currency=self.config.currency,
            requests=self._requests,
            cost=self._cost,
            unpriced_requests=self._unpriced,
            other_currency_requests=self._other_currency,
            cached_requests=self._cached,
            recommendations=tuple(shown),
            withheld=len(found) - len(shown),
            prompt_tracking_capped=self._capped,
        )

    def _make(
        self,
        kind: RecommendationType,
        target: str,
        tally: _Tally,
        *,
        title: str,
        description: str,
        action_items: Iterable[str],
        evidence: Mapping[str, Any],
    ) -> Recommendation:
        base, effort, quality = _TRAITS[kind]
        if kind in ("caching", "prompt_caching") and self._capped:
            base *= 0.9
        savings = tally.savings
        share = savings / self._cost if self._cost else _ZERO
        priority: Priority = (
            "high" if share >= self.config.high_share else "medium" if share >= self.config.medium_share else "low"
        )
        percent = (savings * _HUNDRED / tally.cost).quantize(_PERCENT) if tally.cost else _ZERO
        period = f"{self.since:%Y%m%d}-{self.until:%Y%m%d}"
        return Recommendation(
            id=f"{kind}:{self.subject}:{target}:{period}",
            type=kind,
            priority=priority,
            title=title,
            description=description,
            savings=savings,
            savings_percent=percent,
            affected_cost=tally.cost,
            requests=tally.requests,
            currency=self.config.currency,
            effort=effort,
            quality_impact=quality,
            confidence=round(base * tally.requests / (tally.requests + _SAMPLE), 2),
            action_items=tuple(action_items),
            evidence={"share_of_spend": format((share * _HUNDRED).quantize(_PERCENT), "f"), **evidence},
        )

    def _candidates(self) -> Iterable[Recommendation]:
        config, cur = self.config, self.config.currency
        total_repeats = _Tally()
        repeat_models: dict[str, int] = {}
        for state in self._models.values():
            name = f"{state.provider}/{state.model}"
            if state.downgrade.requests and state.downgrade_to is not None:
                alt = str(state.downgrade_to)
                yield self._make(
                    "model_downgrade", name, state.downgrade,
                    title=f"Route short {name} calls to {alt}",
                    description=(
                        f"{state.downgrade.requests} of {state.requests} calls to {name} had at most"
                        f" {config.short_input_tokens} input and {config.short_output_tokens} output tokens; they"
                        f" cost {_money(state.downgrade.cost)} {cur} and would have cost"
                        f" {_money(state.downgrade.alternative)} {cur} on {alt}."
                    ),
                    action_items=(
                        f"Send requests to {name} with short prompts and short answers to {alt} instead",
                        f"Test {alt} on a sample of these requests",
                        "Monitor quality metrics after the change",
                    ),
                    evidence={"provider": state.provider, "model": state.model, "alternative": alt},
                )  # fmt: skip
            best = max(
                ((ref, tally) for ref, tally in zip(state.switch_to, state.switch, strict=True) if tally.requests),
                key=lambda item: (item[1].savings, item[0]),
                default=None,
            )
            if best is not None:
                (other_provider, other_model), tally = best
                same = _bare(other_model) == _bare(state.info.model_id if state.info else state.model)
                yield self._make(
                    "provider_switch", name, tally,
                    title=f"Call {state.model} through {other_provider}",
                    description=(
                        f"{tally.requests} calls to {name} cost {_money(tally.cost)} {cur}; the"
                        f" {'same model' if same else 'same class of model'} at {other_provider}"
                        f" ({other_model}) would have cost {_money(tally.alternative)} {cur}."
                    ),
                    action_items=(
                        f"Set up {other_provider} as an upstream and route {state.model} to {other_model}",
                        "Compare latency and rate limits of the two providers",
                    ),
                    evidence={"provider": state.provider, "model": state.model, "to_provider": other_provider,
                              "to_model": other_model, "same_model": same},
                )  # fmt: skip
            if state.batch.requests:
                types = sorted(state.batch_types)
                yield self._make(
                    "batch_api", name, state.batch,
                    title=f"Use the batch API for non-urgent {name} calls",
                    description=(
                        f"{state.batch.requests} calls to {name} of non-urgent request types ({', '.join(types)})"
                        f" cost {_money(state.batch.cost)} {cur}; at the batch price they would have cost"
                        f" {_money(state.batch.alternative)} {cur}."
                    ),
                    action_items=(
                        f"Submit {', '.join(types)} requests through {state.provider}'s batch API",
                        "Accept results within the batch window (up to 24 hours)",
                    ),
                    evidence={"provider": state.provider, "model": state.model, "request_types": types},
                )  # fmt: skip
            if state.prompt_cache.requests:
                yield self._make(
                    "prompt_caching", name, state.prompt_cache,
                    title=f"Enable prompt caching for long repeated {name} prompts",
                    description=(
                        f"{state.prompt_cache.requests} calls to {name} repeated a prompt of at least"
                        f" {config.prompt_cache_min_tokens} tokens without reading it from the provider's cache;"
                        f" they cost {_money(state.prompt_cache.cost)} {cur}, and with their input billed as cache"
                        f" reads (plus the first calls' cache writes) {_money(state.prompt_cache.alternative)} {cur}."
                    ),
                    action_items=(
                        "Mark the long shared prefix (system prompt, documents) cacheable (cache_control)",
                        "Keep the cacheable prefix first and byte-identical across calls",
                        "Check cache_read_tokens in the ledger after the change",
                    ),
                    evidence={"provider": state.provider, "model": state.model},
                )  # fmt: skip
            if state.context.requests:
                share = int(config.context_trim_fraction * 100)
                yield self._make(
                    "context_trimming", name, state.context,
                    title=f"Trim the context of long {name} prompts",
                    description=(
                        f"{state.context.requests} calls to {name} sent at least {config.context_ratio} times more"
                        f" input than they got output (and {config.context_min_input_tokens}+ input tokens);"
                        f" they cost {_money(state.context.cost)} {cur}, and with {share}% less uncached input"
                        f" {_money(state.context.alternative)} {cur}."
                    ),
                    action_items=(
                        "Send only the relevant documents or history (retrieval, summarised history)",
                        "Drop unused tool definitions and boilerplate from the prompt",
                        "Compare answer quality on a sample before and after",
                    ),
                    evidence={"provider": state.provider, "model": state.model, "trim_fraction":
                              format(config.context_trim_fraction, "f")},
                )  # fmt: skip
            if state.off_peak.requests:
                yield self._make(
                    "off_peak", name, state.off_peak,
                    title=f"Schedule non-urgent {name} calls off-peak",
                    description=(
                        f"{state.off_peak.requests} non-urgent calls to {name} ran at a time-of-day price; at the"
                        f" cheapest time within {config.off_peak_max_delay.total_seconds() / 3600:g} hours they would"
                        f" have cost {_money(state.off_peak.alternative)} {cur} instead of"
                        f" {_money(state.off_peak.cost)} {cur}."
                    ),
                    action_items=(
                        "Queue non-urgent requests and run them in the cheapest price window",
                        "Check the time-of-day rules in the price file",
                    ),
                    evidence={"provider": state.provider, "model": state.model},
                )  # fmt: skip
            if state.repeats.requests:
                total_repeats.requests += state.repeats.requests
                total_repeats.cost += state.repeats.cost
                repeat_models[name] = state.repeats.requests
        if total_repeats.requests:
            total_repeats = _Tally(total_repeats.requests, total_repeats.cost, _ZERO)
            top = sorted(repeat_models.items(), key=lambda item: (-item[1], item[0]))[:5]
            yield self._make(
                "caching", "all", total_repeats,
                title="Cache responses to repeated prompts",
                description=(
                    f"{total_repeats.requests} calls repeated a prompt already sent to the same model in the period;"
                    f" a response cache would have answered them, saving their {_money(total_repeats.cost)} {cur}."
                ),
                action_items=(
                    "Enable spendgate's response cache for deterministic requests (temperature 0)",
                    "Set a cache lifetime that fits how fast the answers go stale",
                ),
                evidence={"repeated_calls_by_model": dict(top)},
            )  # fmt: skip


def recommend(
    store: UsageStore,
    prices: PriceBook,
    *,
    since: datetime,
    until: datetime,
    user_id: str | None = None,
    team_id: str | None = None,
    api_key_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    config: RecommendationConfig | None = None,
    chains: DowngradeChains | None = None,
) -> RecommendationReport:
    """Recommendations for the events in ``[since, until)`` matching the filters, in one streamed pass."""
    flt = EventFilter(since=since, until=until, user_id=user_id, team_id=team_id, api_key_id=api_key_id,
                      provider=provider, model=model)  # fmt: skip
    pinned = [f"{name}:{value}" for name, value in (("user", user_id), ("team", team_id), ("key", api_key_id),
              ("provider", provider), ("model", model)) if value is not None]  # fmt: skip
    recommender = Recommender(
        prices, since=since, until=until, config=config, chains=chains, subject="/".join(pinned) or "all"
    )
    for event in store.iter_events(flt, batch_size=2000):
        recommender.add(event)
    return recommender.report()
