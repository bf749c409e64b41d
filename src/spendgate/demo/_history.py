"""The demo's recorded history: usage events with a daily and weekly rhythm, growth, failures and caching.

:func:`generate` is pure: the same random seed, ``now`` and span give the same events (their ids
included). It returns event mappings for :meth:`~spendgate.Meter.record_many`; nothing is written here.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.demo._cast import FEATURES, MODELS, PERSONAS, Feature, ModelProfile, Persona
from spendgate.usage import Usage

__all__ = ["BASE_RATE", "ERROR_KINDS", "Spike", "generate", "hour_share", "pick"]

#: Calls per working day of a persona of weight 1 (at the middle of the history's growth).
BASE_RATE = 36.0
#: Share of calls that fail, and how they fail.
FAILURE_RATE = 0.015
ERROR_KINDS: tuple[tuple[str, float], ...] = (
    ("rate_limited", 0.45), ("upstream_5xx", 0.3), ("timeout", 0.15), ("connection", 0.05), ("upstream_4xx", 0.05),
)  # fmt: skip
#: Relative activity per local hour of an office day (normalized by `hour_share`).
_OFFICE = (0.10, 0.06, 0.05, 0.05, 0.05, 0.08, 0.15, 0.35, 0.70, 1.00, 1.10, 1.10,
           0.85, 1.00, 1.10, 1.05, 0.95, 0.75, 0.50, 0.35, 0.30, 0.25, 0.20, 0.15)  # fmt: skip
_OFFICE_SUM = sum(_OFFICE)
_NIGHT_HOURS = range(1, 5)  # UTC hours a service account runs its jobs
_WEEKEND = 0.15
_HOUR = timedelta(hours=1)

Price = Callable[[str, str, Usage], Decimal]


@dataclass(frozen=True, slots=True)
class Spike:
    """A runaway job: ``calls_per_hour`` extra calls of one user, one model and feature, for ``hours`` from
    ``start``, each resending a long context (``input_tokens``) without prompt caching."""

    user_id: str
    model: str
    feature: str
    start: datetime
    hours: int
    calls_per_hour: int
    input_tokens: tuple[int, int] = (30_000, 60_000)


def hour_share(persona: Persona, when: datetime) -> float:
    """The fraction of a working day's calls ``persona`` makes in the hour starting at ``when`` (UTC)."""
    if persona.service:
        return 1.0 / len(_NIGHT_HOURS) if when.hour in _NIGHT_HOURS else 0.0
    local = when + timedelta(hours=persona.utc_offset)
    share = _OFFICE[local.hour] / _OFFICE_SUM
    return share * (_WEEKEND if local.weekday() >= 5 else 1.0)


def _calls(rng: random.Random, expected: float) -> int:
    """``expected`` rounded up or down at random (keeping the mean): hourly volumes vary little, so the
    anomaly detector finds the history's one runaway job rather than the noise of a random count."""
    whole = math.floor(expected)
    return whole + (rng.random() < expected - whole)


def pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    """One name of ``weighted`` with probability proportional to its weight."""
    x = rng.random() * sum(w for _, w in weighted)
    for name, weight in weighted:
        x -= weight
        if x < 0:
            return name
    return weighted[-1][0]


def _log_uniform(rng: random.Random, bounds: tuple[int, int]) -> int:
    lo, hi = bounds
    return round(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class _Deck:
    """A persona's (model, feature) mix dealt from a shuffled deck, reshuffled when empty: every few hours
    hold the exact mix, so no hour piles up one expensive combination by chance."""

    SIZE = 20

    def __init__(self, rng: random.Random, persona: Persona) -> None:
        self.rng = rng
        self.cards: list[tuple[str, str]] = []
        for model, mw in persona.models:
            for feature, fw in persona.features:
                self.cards += [(model, feature)] * max(1, round(mw * fw * self.SIZE))
        self.pile: list[tuple[str, str]] = []

    def deal(self) -> tuple[ModelProfile, Feature]:
        if not self.pile:
            self.pile = list(self.cards)
            self.rng.shuffle(self.pile)
        model, feature = self.pile.pop()
        return MODELS[model], FEATURES[feature]


class _Builder:
    """Turns (persona, time, model, feature) into one event mapping."""

    def __init__(self, rng: random.Random, seed: int, keys: Mapping[str, str], price: Price) -> None:
        self.rng = rng
        self.seed = seed
        self.keys = keys
        self.price = price
        self.count = 0
        self.next_failure = rng.randint(1, round(1 / FAILURE_RATE))

    def _fails(self) -> bool:
        """About one call in ``1 / FAILURE_RATE`` fails, spread out (failures come alone, not in bursts)."""
        self.next_failure -= 1
        if self.next_failure > 0:
            return False
        gap = round(1 / FAILURE_RATE)
        self.next_failure = self.rng.randint(gap // 2, gap + gap // 2)
        return True

    def event(
        self, p: Persona, at: datetime, model: ModelProfile, feature: Feature, session: str | None
    ) -> dict[str, Any]:
        rng = self.rng
        self.count += 1
        event_id = f"demo-{self.seed}-{self.count:07d}"
        if feature.prompt_pool:
            k = rng.randrange(feature.prompt_pool)
            lo, hi = feature.input_tokens
            input_tokens = lo + (k * 7919) % (hi - lo + 1)  # a repeated prompt has the same length every time
            prompt_hash = _digest(f"{feature.name}:{k}")
        else:
            input_tokens = _log_uniform(rng, feature.input_tokens)
            prompt_hash = _digest(event_id)
        output_tokens = _log_uniform(rng, feature.output_tokens)
        cache_reads = int(input_tokens * feature.cache_reads) if model.provider == "anthropic" else 0
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_reads)
        fields: dict[str, Any] = {
            "event_id": event_id,
            "timestamp": at,
            "provider": model.provider,
            "model": model.model,
            "user_id": p.user_id,
            "team_id": p.team_id,
            "api_key_id": self.keys.get(p.user_id),
            "session_id": session,
            "request_type": feature.request_type or ("messages" if model.provider == "anthropic" else "chat"),
            "tags": {"feature": feature.name},
            "prompt_hash": prompt_hash,
            "endpoint": "/v1/messages" if model.provider == "anthropic" else "/v1/chat/completions",
        }
        latency = (model.base_ms + model.per_token_ms * output_tokens) * math.exp(rng.gauss(0, 0.25))
        if feature.prompt_pool and rng.random() < feature.cache_hits:
            fields.update(usage=Usage(), cached=True, cache_savings=self.price(model.provider, model.model, usage),
                          latency_ms=rng.randint(4, 25))  # fmt: skip
        elif self._fails():
            kind = pick(rng, ERROR_KINDS)
            ms = {"timeout": 30_000, "rate_limited": rng.randint(40, 160), "connection": rng.randint(5, 60)}
            fields.update(usage=Usage(), success=False, error_kind=kind, latency_ms=ms.get(kind, round(latency / 3)))
        else:
            fields.update(usage=usage, latency_ms=round(latency))
        return fields


def _hours(since: datetime, until: datetime) -> Iterator[datetime]:
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour < until:
        yield hour
        hour += _HOUR


def generate(
    *,
    now: datetime,
    days: int,
    seed: int,
    keys: Mapping[str, str],
    price: Price,
    spike: Spike | None = None,
    rate: float = BASE_RATE,
) -> list[dict[str, Any]]:
    """The events of ``[now - days, now)``, oldest first; ``keys`` maps user ids to their API key ids and
    ``price`` prices the calls a cache hit saved. Traffic grows by a third over the span."""
    rng = random.Random(seed)
    build = _Builder(rng, seed, keys, price)
    since = now - timedelta(days=days)
    span = (now - since).total_seconds()
    decks = {p.user_id: _Deck(rng, p) for p in PERSONAS}
    out: list[dict[str, Any]] = []
    for hour in _hours(since, now):
        start, end = max(hour, since), min(hour + _HOUR, now)
        fraction = (end - start) / _HOUR
        growth = 0.85 + 0.3 * (start - since).total_seconds() / span
        for p in PERSONAS:
            calls = _calls(rng, rate * p.weight * hour_share(p, hour) * growth * fraction)
            session = None if p.service else f"{p.user_id}-{hour:%m%d}-{hour.hour // 4}"
            for _ in range(calls):
                at = start + (end - start) * rng.random()
                model, feature = decks[p.user_id].deal()
                out.append(build.event(p, at, model, feature, session))
        if spike is not None and spike.start <= hour < spike.start + _HOUR * spike.hours and end - start == _HOUR:
            p = next(x for x in PERSONAS if x.user_id == spike.user_id)
            loop = replace(FEATURES[spike.feature], input_tokens=spike.input_tokens, cache_reads=0.0)
            for _ in range(spike.calls_per_hour):
                at = hour + _HOUR * rng.random()
                out.append(build.event(p, at, MODELS[spike.model], loop, f"{p.user_id}-runaway"))
    out.sort(key=lambda e: (e["timestamp"], e["event_id"]))
    return out
