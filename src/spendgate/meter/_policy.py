"""The budget policy a Meter enforces: limits, grants, breakers and rate limits from the ledger database.

Objects are stored by the ledger's control store (so every process sharing the database sees them)
and cached here as one immutable snapshot, re-read every ``Settings.policy_refresh_s`` seconds and at
once after a change made through this Meter.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from spendgate.budgets import (
    CircuitBreaker,
    DowngradeChains,
    EmergencyState,
    Grant,
    Limit,
    RateLimit,
    RequestContext,
    Scope,
    TierTable,
    Window,
)
from spendgate.clock import Clock
from spendgate.ledger import ControlStore, EventFilter
from spendgate.settings import Settings

__all__ = ["KINDS", "RULE_PREFIX", "Policy", "PolicyCache", "scope_filter"]

KINDS = ("limit", "grant", "breaker", "rate_limit", "breaker_rule")
RULE_PREFIX = "rule:"

_CTX_DIMENSIONS = (
    ("team", "team_id"),
    ("user", "user_id"),
    ("key", "api_key_id"),
    ("session", "session_id"),
    ("provider", "provider"),
    ("model", "model"),
)


def _index(items: Iterable[Limit | RateLimit]) -> dict[tuple[str, str], list[Limit | RateLimit]]:
    """Items by one (dimension, id) of their scope, so matching a request never scans them all."""
    index: dict[tuple[str, str], list[Limit | RateLimit]] = defaultdict(list)
    for item in items:
        scope = item.scope
        if scope.is_global:
            index[("", "")].append(item)
            continue
        dim = next(iter(scope))
        value = scope[dim]
        index[(dim, "*" if value.endswith("*") else value)].append(item)
    return dict(index)


def _candidates(index: dict[tuple[str, str], list[Limit | RateLimit]], ctx: RequestContext) -> list[Limit | RateLimit]:
    found = list(index.get(("", ""), ()))
    for dim, attr in _CTX_DIMENSIONS:
        value = getattr(ctx, attr)
        if value is not None:
            found.extend(index.get((dim, value), ()))
            found.extend(index.get((dim, "*"), ()))
    seen: set[int] = set()
    out = []
    for item in found:
        if id(item) not in seen and item.enabled and item.scope.matches(ctx):
            seen.add(id(item))
            out.append(item)
    return out


@dataclass(frozen=True)
class Policy:
    """One consistent snapshot of everything the Meter enforces."""

    limits: tuple[Limit, ...]
    grants: dict[str, tuple[Grant, ...]]
    breakers: tuple[CircuitBreaker, ...]
    rate_limits: tuple[RateLimit, ...]
    tiers: TierTable
    chains: DowngradeChains
    rules: dict[str, int] = field(default_factory=dict)
    """Breaker rules: the id of the (soft) limit that tracks each rule -> the breaker's cooldown in seconds."""
    _limit_index: dict[tuple[str, str], list[Limit | RateLimit]] = field(repr=False, default_factory=dict)
    _rate_index: dict[tuple[str, str], list[Limit | RateLimit]] = field(repr=False, default_factory=dict)

    @classmethod
    def build(
        cls,
        limits: Sequence[Limit],
        grants: Sequence[Grant],
        breakers: Sequence[CircuitBreaker],
        rate_limits: Sequence[RateLimit],
        tiers: TierTable,
        chains: DowngradeChains,
        rules: dict[str, int] | None = None,
    ) -> Policy:
        by_limit: dict[str, list[Grant]] = defaultdict(list)
        for grant in grants:
            by_limit[grant.limit_id].append(grant)
        return cls(
            limits=tuple(limits),
            grants={k: tuple(v) for k, v in by_limit.items()},
            breakers=tuple(breakers),
            rate_limits=tuple(rate_limits),
            tiers=tiers,
            chains=chains,
            rules=dict(rules or {}),
            _limit_index=_index(limits),
            _rate_index=_index(rate_limits),
        )

    def limits_for(self, ctx: RequestContext) -> list[Limit]:
        """Explicit limits matching ``ctx`` plus its tier's defaults that no explicit limit replaces."""
        explicit = [item for item in _candidates(self._limit_index, ctx) if isinstance(item, Limit)]
        if ctx.tier is None:
            return explicit  # tier defaults apply to requesters with a tier (or Settings.default_tier)
        budgets = [limit for limit in explicit if limit.id not in self.rules]
        return explicit + self.tiers.limits_for(ctx, budgets)

    def rate_limits_for(self, ctx: RequestContext) -> list[RateLimit]:
        return [item for item in _candidates(self._rate_index, ctx) if isinstance(item, RateLimit)]

    def emergency(self) -> EmergencyState | None:
        return EmergencyState(self.breakers) if self.breakers else None


def _tiers(settings: Settings) -> TierTable:
    return TierTable.defaults() if settings.tier_table is None else TierTable.from_dict(settings.tier_table)


def _chains(settings: Settings) -> DowngradeChains:
    if settings.downgrade_chains is None:
        return DowngradeChains.defaults()
    chains = DowngradeChains({})
    for model, alternatives in settings.downgrade_chains.items():
        chains = chains.with_chain(model, alternatives)
    return chains


class PolicyCache:
    """The current :class:`Policy`, re-read from the control store when it is older than the refresh interval."""

    def __init__(self, control: ControlStore, settings: Settings, clock: Clock) -> None:
        self._control = control
        self._clock = clock
        self._refresh = timedelta(seconds=settings.policy_refresh_s)
        self._tiers = _tiers(settings)
        self._chains = _chains(settings)
        self._lock = threading.Lock()
        self._policy: Policy | None = None
        self._loaded_at: datetime | None = None
        self._windows: dict[str, Window] = {}

    def get(self) -> Policy:
        now = self._clock.now()
        policy, loaded_at = self._policy, self._loaded_at
        if policy is not None and loaded_at is not None and now - loaded_at < self._refresh:
            return policy
        with self._lock:
            if self._policy is None or self._loaded_at is None or now - self._loaded_at >= self._refresh:
                self._policy = self._load()
                self._loaded_at = now
            return self._policy

    def invalidate(self) -> None:
        with self._lock:
            self._policy = None

    def window(self, limit: Limit, now: datetime) -> Window | None:
        """``limit``'s window at ``now`` (None per request), cached until it ends: it only changes there."""
        cached = self._windows.get(limit.id)
        if cached is not None and cached.start <= now < cached.end and limit.rolling_seconds is None:
            return cached
        fresh = limit.window_at(now)
        if fresh is None:
            return None
        if len(self._windows) > 100_000:
            self._windows.clear()
        self._windows[limit.id] = fresh
        return fresh

    def _load(self) -> Policy:
        c = self._control
        rules = c.list_objects("breaker_rule")
        rule_limits = [Limit.from_dict(body["limit"]) for body in rules]
        return Policy.build(
            limits=[Limit.from_dict(body) for body in c.list_objects("limit")] + rule_limits,
            grants=[Grant.from_dict(body) for body in c.list_objects("grant")],
            breakers=[CircuitBreaker.from_dict(body) for body in c.list_objects("breaker")],
            rate_limits=[RateLimit.from_dict(body) for body in c.list_objects("rate_limit")],
            tiers=self._tiers,
            chains=self._chains,
            rules={limit.id: int(body["cooldown_s"]) for limit, body in zip(rule_limits, rules, strict=True)},
        )


_FILTER_FIELDS = {"team": "team_id", "user": "user_id", "key": "api_key_id", "session": "session_id"}


def scope_filter(scope: Scope, since: datetime) -> tuple[EventFilter, str | None]:
    """The ledger filter selecting a scope's events since ``since``, and a model prefix to apply by hand.

    A model id ending in ``*`` matches by prefix, which an EventFilter cannot express: it is left out of
    the filter and returned instead.
    """
    fields = {_FILTER_FIELDS.get(dim, dim): value for dim, value in scope.items()}
    prefix = None
    if fields.get("model", "").endswith("*"):
        prefix = fields.pop("model")[:-1]
    return EventFilter(since=since, **fields), prefix  # type: ignore[arg-type]  # keys are EventFilter's str fields
