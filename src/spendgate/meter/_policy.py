"""The budget policy a Meter enforces: limits, grants, breakers and rate limits from the ledger database.

Objects are stored by the ledger's control store (so every process sharing the database sees them)
and cached here as one immutable snapshot, re-read every ``Settings.policy_refresh_s`` seconds and at
once after a change made through this Meter. What the snapshot means for one request context in the
current windows (its limits, their counters and caps: a :class:`Plan`) is worked out once too.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from spendgate.budgets import (
    CircuitBreaker,
    DowngradeChains,
    EmergencyState,
    Grant,
    Level,
    Limit,
    Metric,
    QuietTest,
    RateLimit,
    RequestContext,
    Scope,
    TierTable,
    Window,
)
from spendgate.clock import Clock
from spendgate.counters import INT64_MAX
from spendgate.errors import LedgerError
from spendgate.ledger import ControlStore, EventFilter
from spendgate.meter._authorization import to_units
from spendgate.settings import Settings

log = logging.getLogger("spendgate.budgets")

__all__ = [
    "KEY_MARGIN_S",
    "KINDS",
    "RULE_PREFIX",
    "Plan",
    "Policy",
    "PolicyCache",
    "Slot",
    "counter_key",
    "reserve_cap",
    "scope_filter",
]

KINDS = ("limit", "grant", "breaker", "rate_limit", "breaker_rule")
RULE_PREFIX = "rule:"
KEY_MARGIN_S = 86_400.0
"""How long a window's counter is kept past the window's end (late settles, status reads)."""

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


_CtxKey = tuple[str | None, ...]
_MEMO_SIZE = 10_000  # contexts remembered per policy snapshot (forgotten all at once beyond it)
_T = TypeVar("_T")


def _ctx_key(ctx: RequestContext) -> _CtxKey:
    """Everything of ``ctx`` that limits are matched on (not the tags)."""
    return (ctx.provider, ctx.model, ctx.user_id, ctx.team_id, ctx.api_key_id, ctx.session_id, ctx.tier)


_K = TypeVar("_K")


def _remember(memo: dict[_K, _T], key: _K, value: _T) -> _T:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


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
    # What matched each request context so far: the snapshot never changes, so neither do the answers.
    _limits_memo: dict[_CtxKey, tuple[Limit, ...]] = field(repr=False, compare=False, default_factory=dict)
    _rates_memo: dict[_CtxKey, tuple[RateLimit, ...]] = field(repr=False, compare=False, default_factory=dict)

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
        key = _ctx_key(ctx)
        found = self._limits_memo.get(key)
        if found is None:
            found = _remember(self._limits_memo, key, tuple(self._match_limits(ctx)))
        return list(found)

    def _match_limits(self, ctx: RequestContext) -> list[Limit]:
        explicit = [item for item in _candidates(self._limit_index, ctx) if isinstance(item, Limit)]
        if ctx.tier is None:
            return explicit  # tier defaults apply to requesters with a tier (or Settings.default_tier)
        budgets = [limit for limit in explicit if limit.id not in self.rules]
        return explicit + self.tiers.limits_for(ctx, budgets)

    def rate_limits_for(self, ctx: RequestContext) -> list[RateLimit]:
        key = _ctx_key(ctx)
        found = self._rates_memo.get(key)
        if found is None:
            rates = [item for item in _candidates(self._rate_index, ctx) if isinstance(item, RateLimit)]
            found = _remember(self._rates_memo, key, tuple(rates))
        return list(found)

    def emergency(self) -> EmergencyState | None:
        return EmergencyState(self.breakers) if self.breakers else None


def counter_key(limit: Limit, window: Window) -> str:
    """The live counter of ``limit`` in ``window``."""
    return f"b|{limit.id}|{window.key}"


def reserve_cap(limit: Limit, amount: Decimal, tiers: TierTable, tier: str | None) -> int | None:
    """The most a reservation may bring ``limit``'s counter to, in counter units (None: soft, never refused).

    ``amount`` is the limit's amount with grants; an adaptive limit goes up to its tier's hard limit
    plus, for cost, the overage allowance. ``tier`` is the requester's (for a limit without its own).
    """
    if limit.level is Level.SOFT:
        return None
    if limit.level is Level.ADAPTIVE:
        policy = tiers.policy_for(limit.tier or tier)
        overage = policy.max_overage if limit.metric is Metric.COST else Decimal(0)
        amount = amount * policy.hard_limit + overage
    # A counter holds at most INT64_MAX units (about $9.2M in pico-dollars): a larger cap (a grant on a
    # big limit) means the counter's own range is the bound, and passing it raises CounterOverflow.
    return min(to_units(limit.metric, amount, "down"), INT64_MAX)


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a calendar-window limit is counted in its current window."""

    limit: Limit
    window: Window
    key: str
    expire_at: float
    """Epoch seconds after which the counter may go: the window's end plus :data:`KEY_MARGIN_S`."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What authorizing a request from one context needs of its limits, for one policy snapshot and window.

    Only for the common case: no rolling limit, no limit topped up by a grant, no circuit breaker.
    ``slots`` has each limit's counter (None for a per-request limit, which has none) and ``keys`` the
    counters to read; ``amounts`` are the limits' amounts in force, ``caps`` their reservation caps,
    ``quiet`` the test for a plain ALLOW; ``tracked`` lists the limits whose first-exceeded time a
    :class:`LimitState` carries (windowed adaptive or tier limits). Valid while ``since <= now < until``.
    """

    policy: Policy
    limits: tuple[Limit, ...]
    slots: tuple[Slot | None, ...]
    keys: tuple[str, ...]
    expiries: dict[str, float]
    """Each counter's expiry (epoch seconds), by key."""
    amounts: tuple[Decimal, ...]
    caps: tuple[int | None, ...]
    quiet: QuietTest
    tracked: tuple[int, ...]
    rated: bool
    """Whether rate limits apply to the context."""
    since: datetime
    until: datetime


_ALWAYS = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
_ZERO = Decimal(0)


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
        self._stale_at: datetime | None = None  # when the snapshot is checked for changes
        self._version = -1  # the control store's version the snapshot was read at
        self._slots: dict[str, Slot] = {}
        self._plans: dict[_CtxKey, tuple[Policy, Plan | None, datetime, datetime]] = {}

    def get(self, now: datetime | None = None) -> Policy:
        """The current snapshot (``now``: the clock's time, if the caller has it at hand)."""
        now = self._clock.now() if now is None else now
        policy, stale_at = self._policy, self._stale_at
        if policy is not None and stale_at is not None and now < stale_at:
            return policy
        with self._lock:
            if self._policy is None or self._stale_at is None or now >= self._stale_at:
                # One cheap read says whether anything changed; the snapshot (and the plans cached for it)
                # is kept when nothing did.
                try:
                    version = self._control.version()
                    if self._policy is None or version != self._version:
                        self._policy, self._version = self._load(), version
                except LedgerError:
                    if self._policy is None:
                        raise
                    # The ledger is unreachable: enforce the last snapshot (the counters still hold every
                    # limit) and try again after the next interval, rather than fail every call meanwhile.
                    log.warning("limits could not be re-read from the ledger; the last ones read stay in force")
                self._stale_at = now + self._refresh
            return self._policy

    def invalidate(self) -> None:
        with self._lock:
            self._policy = None

    def slot(self, limit: Limit, now: datetime) -> Slot | None:
        """Where ``limit`` counts at ``now`` (cached until its window ends); None for per-request and rolling limits."""
        slot = self._slots.get(limit.id)
        if slot is not None and slot.limit is limit and slot.window.start <= now < slot.window.end:
            return slot
        window = limit.window_at(now) if limit.rolling_seconds is None else None
        if window is None:
            return None
        slot = Slot(limit, window, counter_key(limit, window), window.end.timestamp() + KEY_MARGIN_S)
        _remember(self._slots, limit.id, slot)
        return slot

    def plan(self, policy: Policy, ctx: RequestContext, now: datetime) -> Plan | None:
        """The :class:`Plan` of ``ctx`` under ``policy`` at ``now``; None when its limits need the general path."""
        key = _ctx_key(ctx)
        entry = self._plans.get(key)
        if entry is not None and entry[0] is policy and entry[2] <= now < entry[3]:
            return entry[1]
        plan = self._plan(policy, ctx, now)
        since, until = (plan.since, plan.until) if plan is not None else _ALWAYS
        _remember(self._plans, key, (policy, plan, since, until))
        return plan

    def _plan(self, policy: Policy, ctx: RequestContext, now: datetime) -> Plan | None:
        limits = tuple(policy.limits_for(ctx))
        if policy.breakers or not limits:
            return None
        slots: list[Slot | None] = []
        for limit in limits:
            if limit.rolling_seconds is not None or limit.id in policy.grants:
                return None  # a rolling window is read from its entries; grants change with time
            slots.append(self.slot(limit, now))  # None for a per-request limit
        windowed = [slot for slot in slots if slot is not None]
        keys = tuple(slot.key for slot in windowed)
        if len(set(keys)) != len(keys):
            return None
        amounts = tuple(limit.amount + _ZERO for limit in limits)  # as effective_amount() has it without grants
        return Plan(
            policy=policy,
            limits=limits,
            slots=tuple(slots),
            keys=keys,
            expiries={slot.key: slot.expire_at for slot in windowed},
            amounts=amounts,
            caps=tuple(
                reserve_cap(limit, amount, policy.tiers, ctx.tier)
                for limit, amount in zip(limits, amounts, strict=True)
            ),
            quiet=QuietTest.prepare(ctx, limits, amounts, policy.tiers),
            tracked=tuple(
                i
                for i, (limit, slot) in enumerate(zip(limits, slots, strict=True))
                if slot is not None and (limit.level is Level.ADAPTIVE or limit.tier is not None)
            ),
            rated=bool(policy.rate_limits_for(ctx)),
            since=max((slot.window.start for slot in windowed), default=_ALWAYS[0]),
            until=min((slot.window.end for slot in windowed), default=_ALWAYS[1]),
        )

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


def scope_filter(scope: Scope, since: datetime, until: datetime | None = None) -> tuple[EventFilter, str | None]:
    """The ledger filter selecting a scope's events in ``[since, until)``, and a model prefix to apply by hand.

    A model id ending in ``*`` matches by prefix, which an EventFilter cannot express: it is left out of
    the filter and returned instead.
    """
    fields = {_FILTER_FIELDS.get(dim, dim): value for dim, value in scope.items()}
    prefix = None
    if fields.get("model", "").endswith("*"):
        prefix = fields.pop("model")[:-1]
    return EventFilter(since=since, until=until, **fields), prefix  # type: ignore[arg-type]  # str fields
