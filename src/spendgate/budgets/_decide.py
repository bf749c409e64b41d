"""`decide`: the pure budget decision for one request (inputs → :class:`Decision`, no I/O, no clock).

Rules, per applicable limit (enabled, scope matching the request, tier matching the user's):

* **hard**: ALLOW if spent + reserved + worst case ≤ amount (with grants), else DENY. Never downgrades.
* **soft**: ALLOW if it fits, else WARN.
* **adaptive** (a tier's default limits, or any limit set to ``adaptive``): with utilization ``u`` =
  (spent + reserved + worst case) / amount and the governing tier's percentages, ``u ≥ warning`` → WARN,
  ``u ≥ throttle`` → THROTTLE, ``u ≥ downgrade`` → DOWNGRADE to the first model of the chain whose
  worst case fits every limit (if none fits: THROTTLE, as the request still fits the limit). Over the
  hard limit (``u > hard_limit``): DOWNGRADE if an alternative fits, else WARN while the grace period
  is open and the overage stays within ``max_overage``, else the exhausted fallback (QUEUE if enabled,
  CACHE_ONLY if a cache is available, else DENY).
* **per-request** limits look at the worst case alone: it fits or it does not (adaptive ones try a
  cheaper model before the fallback).

The most severe action wins: EMERGENCY_STOP > DENY > QUEUE > CACHE_ONLY > THROTTLE > DOWNGRADE > WARN
> ALLOW; an active circuit breaker short-cuts everything. A tier default is ignored when an explicit
limit (no tier) has the same scope, metric and period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from math import ceil

from spendgate.budgets._check import check_aware, check_int, iso
from spendgate.budgets._decision import Decision, DecisionOptions, LimitCheck
from spendgate.budgets._downgrade import DowngradeChains, ModelRef
from spendgate.budgets._emergency import CircuitBreaker, EmergencyState
from spendgate.budgets._enums import Action, Level, Verdict
from spendgate.budgets._estimate import LimitState, RequestEstimate
from spendgate.budgets._limit import Limit, utilization
from spendgate.budgets._quiet import applies, governing
from spendgate.budgets._scope import RequestContext
from spendgate.budgets._tiers import TierPolicy, TierTable

__all__ = ["decide"]

_Candidate = tuple[ModelRef, RequestEstimate]


def decide(
    *,
    ctx: RequestContext,
    request: RequestEstimate,
    states: Sequence[LimitState],
    policy: TierTable,
    chains: DowngradeChains,
    alternatives: Mapping[str, RequestEstimate],
    emergency: EmergencyState | None,
    throttle_attempt: int,
    now: datetime,
    options: DecisionOptions,
) -> Decision:
    """Decide what to do with ``request`` from ``ctx`` given the live ``states`` of limits (see the module doc).

    ``states`` may hold more limits than apply (they are filtered here), which lets the caller pass
    the limits of downgrade candidates too. ``alternatives`` maps a candidate's model name (or
    ``"provider/model"``) to its worst-case estimate; candidates without one are skipped.
    """
    now = check_aware("now", now)
    check_int("throttle_attempt", throttle_attempt, high=10**6)
    if emergency is not None:
        active = emergency.active(ctx, now)
        if active:
            return _stopped(request, active[0], now)
    judge = _Judge(table=policy, tier=policy.policy_for(ctx.tier), states=states, now=now)
    finder = _AltFinder(judge=judge, ctx=ctx, request=request, chains=chains, alternatives=alternatives)
    applicable = judge.applicable(ctx)
    checks = tuple(judge.check(state, request, finder, options) for state in applicable)
    if not checks:
        return Decision(action=Action.ALLOW, provider=request.provider, model=request.model, note="no limit applies")
    binding = max(checks, key=lambda c: (c.action.severity, c.utilization))
    action = binding.action
    found = _alternative_for(action, finder)
    provider, model = request.provider, request.model
    first_exceeded: tuple[str, ...] = ()
    if action is Action.DOWNGRADE and found is not None:
        ref, estimate = found
        provider, model = ref.provider, ref.model
        first_exceeded = judge.first_exceeded(judge.applicable(ctx.with_model(provider, model)), estimate)
    elif action.allowed:
        first_exceeded = judge.first_exceeded(applicable, request)
    return Decision(
        action=action,
        provider=provider,
        model=model,
        binding=binding,
        retry_after_s=_retry_after(action, binding, throttle_attempt, options, now),
        alternative=found[0] if found else None,
        first_exceeded=first_exceeded,
        checks=checks,
    )


def _alternative_for(action: Action, finder: _AltFinder) -> _Candidate | None:
    """The model DOWNGRADE switches to; for a blocked request, a suggestion that would keep every limit."""
    if action is Action.DOWNGRADE:
        return finder.best()
    return None if action.allowed else finder.get(lenient=False)


def _stopped(request: RequestEstimate, breaker: CircuitBreaker, now: datetime) -> Decision:
    until = breaker.cooldown_until
    reason = f"emergency stop on {breaker.scope} set by {breaker.set_by.value}: {breaker.reason}"
    reason += f"; cooldown until {iso(until)}" if until else "; until cleared"
    return Decision(
        action=Action.EMERGENCY_STOP,
        provider=request.provider,
        model=request.model,
        note=reason,
        retry_after_s=max(1, ceil((until - now).total_seconds())) if until else None,
        breaker=breaker,
    )


def _retry_after(
    action: Action, binding: LimitCheck, attempt: int, options: DecisionOptions, now: datetime
) -> int | None:
    if action is Action.THROTTLE:
        return options.backoff(attempt)
    if action in (Action.DENY, Action.QUEUE, Action.CACHE_ONLY) and binding.resets_at is not None:
        return max(1, ceil((binding.resets_at - now).total_seconds()))
    return None


@dataclass(frozen=True, slots=True)
class _Judge:
    """Evaluates limits for one decision, for the requested model and for each candidate."""

    table: TierTable
    tier: TierPolicy
    states: Sequence[LimitState]
    now: datetime

    def applicable(self, ctx: RequestContext) -> list[LimitState]:
        """Enabled limits matching ``ctx`` and its tier, tier defaults shadowed by explicit limits dropped."""
        mask = applies([s.limit for s in self.states], ctx, self.tier.name)
        return [s for s, hit in zip(self.states, mask, strict=True) if hit]

    def governing(self, limit: Limit) -> TierPolicy:
        """The tier policy of an adaptive limit: its own tier's, else the user's."""
        return governing(self.table, self.tier, limit)

    def grace_open(self, state: LimitState, policy: TierPolicy) -> bool:
        """True while going over the hard limit is still allowed by the grace period."""
        if policy.grace_period.total_seconds() <= 0:
            return False
        first = state.first_exceeded_at
        return first is None or self.now < first + policy.grace_period

    def fits(self, state: LimitState, estimate: RequestEstimate, *, lenient: bool) -> bool:
        """True if ``estimate`` fits this limit: within its amount, or its tier's hard limit if adaptive.

        ``lenient`` also accepts going over an adaptive limit within the overage allowance while the
        grace period is open.
        """
        limit = state.limit
        if limit.level is Level.SOFT:
            return True
        projected = state.used + estimate.amount(limit.metric)
        if limit.per_request or limit.level is Level.HARD:
            return projected <= state.amount
        policy = self.governing(limit)
        ceiling = policy.hard_limit * state.amount
        if projected <= ceiling:
            return True
        return lenient and projected <= ceiling + policy.max_overage and self.grace_open(state, policy)

    def check(
        self, state: LimitState, request: RequestEstimate, finder: _AltFinder, options: DecisionOptions
    ) -> LimitCheck:
        """Judge one limit for the requested model."""
        limit = state.limit
        worst = request.amount(limit.metric)
        projected = state.used + worst
        ratio = utilization(projected, state.amount)
        policy = self.governing(limit)
        verdict, action = self._verdict(state, projected, ratio, policy, finder, options)
        found = finder.best() if action is Action.DOWNGRADE else None
        return LimitCheck(
            state=state,
            action=action,
            verdict=verdict,
            request=worst,
            utilization=ratio,
            policy=policy,
            now=self.now,
            alternative=found[0] if found else None,
        )

    def _verdict(
        self,
        state: LimitState,
        projected: Decimal,
        ratio: Decimal,
        policy: TierPolicy,
        finder: _AltFinder,
        options: DecisionOptions,
    ) -> tuple[Verdict, Action]:
        limit = state.limit
        fits_amount = projected <= state.amount
        if limit.level is Level.HARD:
            return (Verdict.FITS, Action.ALLOW) if fits_amount else (Verdict.OVER, Action.DENY)
        if limit.level is Level.SOFT:
            return (Verdict.FITS, Action.ALLOW) if fits_amount else (Verdict.SOFT_OVER, Action.WARN)
        if limit.per_request:
            if fits_amount:
                return Verdict.FITS, Action.ALLOW
            if finder.best() is not None:
                return Verdict.OVER, Action.DOWNGRADE
            return Verdict.EXHAUSTED, options.on_exhausted
        ceiling = policy.hard_limit * state.amount
        if projected > ceiling:
            if finder.best() is not None:
                return Verdict.OVER, Action.DOWNGRADE
            if projected <= ceiling + policy.max_overage and self.grace_open(state, policy):
                return Verdict.GRACE, Action.WARN
            return Verdict.EXHAUSTED, options.on_exhausted
        if ratio >= policy.downgrade:
            # Still within the hard limit: only a model that keeps it so is worth switching to.
            return Verdict.DOWNGRADE, Action.DOWNGRADE if finder.get(lenient=False) is not None else Action.THROTTLE
        if ratio >= policy.throttle:
            return Verdict.THROTTLE, Action.THROTTLE
        if ratio >= policy.warning:
            return Verdict.WARNING, Action.WARN
        return Verdict.FITS, Action.ALLOW

    def first_exceeded(self, states: Sequence[LimitState], estimate: RequestEstimate) -> tuple[str, ...]:
        """Ids of the adaptive limits among ``states`` that ``estimate`` takes over their hard limit first."""
        out: list[str] = []
        for state in states:
            limit = state.limit
            if limit.level is not Level.ADAPTIVE or limit.per_request or state.first_exceeded_at is not None:
                continue
            if state.used + estimate.amount(limit.metric) > self.governing(limit).hard_limit * state.amount:
                out.append(limit.id)
        return tuple(out)


@dataclass(slots=True, kw_only=True)
class _AltFinder:
    """Finds (once each, on demand) the first downgrade candidate whose worst case fits every limit.

    The strict search wants every limit kept; the lenient one also accepts an adaptive limit going
    into its overage allowance while the grace period is open.
    """

    judge: _Judge
    ctx: RequestContext
    request: RequestEstimate
    chains: DowngradeChains
    alternatives: Mapping[str, RequestEstimate]
    _found: dict[bool, _Candidate | None] = field(default_factory=dict, init=False)

    def get(self, *, lenient: bool) -> _Candidate | None:
        if lenient not in self._found:
            self._found[lenient] = self._search(lenient)
        return self._found[lenient]

    def best(self) -> _Candidate | None:
        """A candidate that keeps every limit, else one that fits with overage in grace."""
        return self.get(lenient=False) or self.get(lenient=True)

    def _search(self, lenient: bool) -> _Candidate | None:
        for ref in self.chains.alternatives(self.request.provider, self.request.model):
            estimate = self.alternatives.get(str(ref)) or self.alternatives.get(ref.model)
            if estimate is None:
                continue
            alt_ctx = self.ctx.with_model(ref.provider, ref.model)
            if all(self.judge.fits(state, estimate, lenient=lenient) for state in self.judge.applicable(alt_ctx)):
                return ref, estimate
        return None
