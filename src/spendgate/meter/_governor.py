"""The request path of budgets: authorize (estimate, decide, reserve), settle and release.

Order of a settle: the counters are committed first, then the ledger event is written. That way a
counter that is being initialized from the ledger at the same moment can never count the event twice
(see "Cold start" in docs/counters.md); a crash between the two steps over-counts, the safe side,
until the periodic reconciliation corrects it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from spendgate.budgets import (
    MAX_AMOUNT,
    Action,
    Decision,
    DecisionOptions,
    Limit,
    Metric,
    RequestContext,
    RequestEstimate,
    allows_quietly,
    decide,
    worst_case_output_tokens,
)
from spendgate.clock import Clock
from spendgate.counters import (
    CounterState,
    CounterStore,
    CounterUnavailable,
)
from spendgate.counters._abstract import checks_only
from spendgate.ledger import UsageStore
from spendgate.meter._authorization import Authorization, from_units
from spendgate.meter._gov_estimate import Estimates
from spendgate.meter._gov_fast import Lanes, Shape, binding
from spendgate.meter._gov_settle import Settlement
from spendgate.meter._gov_state import _Figures, _window
from spendgate.meter._policy import (
    Plan,
    Policy,
    PolicyCache,
)
from spendgate.pricing import PriceBook
from spendgate.pricing._compiled import CompiledPrice
from spendgate.settings import Settings

__all__ = ["Governor"]


log = logging.getLogger("spendgate.budgets")

_RESERVE_ATTEMPTS = 4  # one pass may be spent adding the downgrade alternatives
_LANES_MAX = 10_000  # plans whose lanes are remembered (forgotten all at once beyond it)
_CONTEXTS_MAX = 10_000  # request contexts remembered (forgotten all at once beyond it)
_SHAPES_MAX = 4_096  # shapes remembered (forgotten all at once beyond it)
_ZERO = Decimal(0)
_COST, _ALLOW = Metric.COST, Action.ALLOW  # an enum class's attribute lookup is slow (~0.3 µs)


def _throttle_key(ctx: RequestContext) -> tuple[str, str]:
    """Whose THROTTLE backoff a request counts in: its user (else key, else team) on its model."""
    return (str(ctx.user_id or ctx.api_key_id or ctx.team_id or ""), ctx.model)


class Governor(Estimates, Settlement):
    """Enforces the budget policy for one Meter. Thread-safe."""

    def __init__(
        self,
        *,
        store: UsageStore,
        counters: CounterStore,
        prices: PriceBook,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.store = store
        self.counters = counters
        self.prices = prices
        self.settings = settings
        self.clock = clock
        self.policy = PolicyCache(store.control, settings, clock)
        self.options = DecisionOptions(queue_enabled=settings.queue_enabled)
        self._throttles: dict[tuple[str, str], int] = {}
        self._exceeded: dict[tuple[str, str], datetime | None] = {}
        self._exceeded_policy: Policy | None = None  # first-exceeded times are re-read with every policy refresh
        self._lock = threading.Lock()
        self._max_output: dict[tuple[str, str], int | None] = {}
        self._outputs: dict[tuple[str, str, int | None], int] = {}  # worst-case output by (provider, model, max)
        self._named: set[tuple[str, str]] = set()  # (provider, model) pairs a RequestEstimate accepted
        self._cache_options = replace(self.options, cache_available=True)
        self._lanes: dict[int, Lanes] = {}  # by id() of their plan, which they keep alive
        self._lanes_policy: Policy | None = None  # the snapshot whose plans _lanes holds
        self._shapes: dict[tuple[int, int], Shape] = {}  # by id() of their lanes and estimate, which they keep
        self._cost_holds = {}  # see Settlement._cost_keys
        self._window_ends = {}  # counter key -> its calendar window's end (see Settlement._late_holds)
        self._contexts: dict[tuple[str | None, ...], RequestContext] = {}
        # (provider, model, input tokens, max_tokens) -> (the static price it was worked out with, estimate)
        self._estimates: dict[tuple[str, str, int, int | None], tuple[CompiledPrice, RequestEstimate]] = {}
        self.before_read: Callable[[], object] = lambda: None
        """Called before reading the ledger (the Meter flushes its journal there)."""

    # -- contexts ----------------------------------------------------------------------------------

    def context(
        self,
        provider: str,
        model: str,
        user_id: str | None,
        team_id: str | None,
        api_key_id: str | None,
        session_id: str | None,
        tier: str | None,
        tags: Mapping[str, str] | None,
    ) -> RequestContext:
        """The :class:`RequestContext` of a request: without tags, one (immutable) object per combination."""
        if tags:
            return RequestContext(
                provider=provider, model=model, user_id=user_id, team_id=team_id, api_key_id=api_key_id,
                session_id=session_id, tier=tier, tags=tags,
            )  # fmt: skip
        key = (provider, model, user_id, team_id, api_key_id, session_id, tier)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = RequestContext(
                provider=provider, model=model, user_id=user_id, team_id=team_id, api_key_id=api_key_id,
                session_id=session_id, tier=tier,
            )  # fmt: skip
            if len(self._contexts) >= _CONTEXTS_MAX:
                self._contexts = {}
            self._contexts[key] = ctx
        return ctx

    # -- authorize ---------------------------------------------------------------------------------

    def authorize(
        self,
        ctx: RequestContext,
        input_tokens: int,
        max_tokens: int | None,
        reservation_id: str | None = None,
        cache_available: bool = False,
        args: dict[str, Any] | None = None,
    ) -> Authorization:
        """Decide on a call from ``ctx`` and reserve its worst case (see :meth:`Meter.authorize`).

        ``args`` are the arguments of that call, kept on the :class:`Authorization` (a deferred call is
        authorized again with them).
        """
        now = self.clock.now()
        options = self._cache_options if cache_available else self.options
        hold_id = reservation_id or "rsv_" + os.urandom(16).hex()
        policy = self.policy.get(now)
        estimate = self.estimate(ctx.provider, ctx.model, input_tokens, max_tokens)
        args = {} if args is None else args
        if estimate is None:
            if any(limit.metric is Metric.COST for limit in policy.limits_for(ctx)):
                note = f"no price known for {ctx.provider}/{ctx.model}: its cost limits cannot be enforced"
                decision = Decision(action=Action.DENY, provider=ctx.provider, model=ctx.model, note=note)
                return self._answer(ctx, None, hold_id, now, args)(decision=decision)
            estimate = RequestEstimate(
                provider=ctx.provider, model=ctx.model, cost=Decimal(0), input_tokens=input_tokens,
                output_tokens=worst_case_output_tokens(max_tokens, None, self.settings.output_token_cap),
            )  # fmt: skip
        try:
            # The common case first: one counter read shows every limit far from pinching (a quiet ALLOW).
            plan = self.policy.plan(policy, ctx, now)
            read, attempts = None, _RESERVE_ATTEMPTS
            if plan is not None:
                ts = now.timestamp()
                direct = checks_only(self.counters, "read") if plan.keys else None  # its keys pass read()'s checks
                read = direct._read(plan.keys, now=ts) if direct is not None else self.counters.read(plan.keys, now=ts)
                lanes = self._lanes.get(id(plan))
                if lanes is None or lanes.plan is not plan:
                    lanes = self._lanes_of(plan)
                shape = self._shapes.get((id(lanes), id(estimate)))
                if shape is None or shape.lanes is not lanes or shape.estimate is not estimate:
                    shape = self._shape_of(lanes, estimate)
                if self._quiet(lanes, read, estimate, shape):
                    auth = self._allow_quietly(lanes, read, ctx, estimate, hold_id, now, ts, options, args, shape)
                    if auth is not None:
                        return auth
                    read, attempts = None, attempts - 1  # a concurrent request took the room: look again
            answer = self._answer(ctx, estimate, hold_id, now, args)
            limits = policy.limits_for(ctx)
            return self._authorize(answer, ctx, policy, estimate, limits, hold_id, now, options, read, attempts)
        except CounterUnavailable as exc:
            answer = self._answer(ctx, estimate, hold_id, now, args)
            return self._counters_down(answer, ctx, policy.limits_for(ctx), exc)

    def _answer(
        self, ctx: RequestContext, estimate: RequestEstimate | None, hold_id: str, now: datetime, args: dict[str, Any]
    ) -> Callable[..., Authorization]:
        """The Authorization of a call from ``ctx``, made once its decision is known (as ``answer(decision=...)``)."""
        return partial(
            Authorization,
            reservation_id=hold_id,
            ctx=ctx,
            requested_model=ctx.model,
            requested_provider=ctx.provider,
            estimate=estimate,
            authorized_at=now,
            args=args,
        )

    def _counters_down(
        self,
        answer: Callable[..., Authorization],
        ctx: RequestContext,
        limits: Sequence[Limit],
        exc: CounterUnavailable,
    ) -> Authorization:
        closed = [limit for limit in limits if limit.level.value not in self.settings.fail_open_levels]
        if closed:
            note = f"counter store unreachable ({exc}); failing closed for {closed[0].id}"
            log.error(note)
            return answer(decision=Decision(action=Action.DENY, provider=ctx.provider, model=ctx.model, note=note))
        note = f"counter store unreachable ({exc}); failing open"
        log.warning(note)
        return answer(decision=Decision(action=Action.WARN, provider=ctx.provider, model=ctx.model, note=note))

    def _alternatives(
        self, policy: Policy, ctx: RequestContext, estimate: RequestEstimate
    ) -> tuple[dict[str, RequestEstimate], list[Limit]]:
        alternatives: dict[str, RequestEstimate] = {}
        extra: list[Limit] = []
        for ref in policy.chains.alternatives(ctx.provider, ctx.model):
            alt = self.estimate(ref.provider, ref.model, estimate.input_tokens, estimate.output_tokens)
            if alt is not None:
                alternatives[f"{ref.provider}/{ref.model}"] = alt
                extra.extend(policy.limits_for(ctx.with_model(ref.provider, ref.model)))
        return alternatives, extra

    # -- the quiet path: a plain ALLOW, explained on demand ---------------------------------------------

    def _quiet(self, lanes: Lanes, read: Mapping[str, CounterState], estimate: RequestEstimate, shape: Shape) -> bool:
        """True when the figures ``read`` show that decide() would answer a plain ALLOW.

        First in integers (see :func:`quiet_bounds`), which settles nearly every request; else exactly.
        """
        if lanes.quiet is not None:
            for key, bound, held in shape.checks:
                if key is None:
                    used = 0  # a per-request limit looks at the request alone
                else:
                    counter = read[key]
                    if not counter.initialized:
                        return False  # cold: the general path loads it
                    used = counter.spent + counter.reserved
                if used + held > bound:
                    break  # not surely quiet: ask exactly
            else:
                return True
        plan = lanes.plan
        figures: list[Decimal] = []
        for limit, slot in zip(plan.limits, plan.slots, strict=True):
            if slot is None:
                figures.append(_ZERO)  # a per-request limit looks at the request alone
                continue
            counter = read[slot.key]
            metric = limit.metric
            if not counter.initialized or (
                metric is not _COST and (counter.spent > MAX_AMOUNT or counter.reserved > MAX_AMOUNT)
            ):
                return False  # cold (the general path loads it), or figures a LimitState refuses
            figures.append(from_units(metric, counter.spent + counter.reserved))
        return plan.quiet.allows(estimate, figures)

    def _allow_quietly(
        self,
        lanes: Lanes,
        read: Mapping[str, CounterState],
        ctx: RequestContext,
        estimate: RequestEstimate,
        hold_id: str,
        now: datetime,
        ts: float,
        options: DecisionOptions,
        args: dict[str, Any],
        shape: Shape,
    ) -> Authorization | None:
        """Allow a quiet request: reserve its worst case; None if a concurrent request took the room first.

        The decision is the one the general path reaches, built only when someone reads its figures.
        """
        plan = lanes.plan
        policy = plan.policy
        firsts: dict[int, datetime | None] = {}
        if plan.tracked:
            self._sync_exceeded(policy)
            firsts = {i: self._first_exceeded(plan.limits[i], _window(plan.slots[i])) for i in plan.tracked}
        throttle_attempt = self._throttles.get(_throttle_key(ctx), 0) if self._throttles else 0

        def explain() -> Decision:
            figures = [
                _Figures(limit, None, None, 0, 0, amount, None)
                if slot is None
                else _Figures(
                    limit, slot.window, slot, read[slot.key].spent, read[slot.key].reserved, amount, firsts.get(i)
                )
                for i, (limit, slot, amount) in enumerate(zip(plan.limits, plan.slots, plan.amounts, strict=True))
            ]
            return self._decide_fully(policy, ctx, estimate, figures, {}, throttle_attempt, now, options)

        decision = Decision.deferred(action=_ALLOW, provider=ctx.provider, model=ctx.model, explain=explain)
        rate = self._acquire_rates(policy, ctx, estimate, hold_id, now) if plan.rated else ()
        if isinstance(rate, Authorization):
            return self._answer(ctx, estimate, hold_id, now, args)(decision=rate.decision)
        items = shape.items
        if items and not self._hold(hold_id, items, lanes.slots, now, plan.expiries, ts).ok:
            self._free_rates(rate, now)
            return None
        if self._throttles:
            self._forget_throttle(_throttle_key(ctx))
        quick = partial(binding, plan, read, estimate)
        return Authorization(
            decision, hold_id, ctx, ctx.model, ctx.provider, estimate, shape.holds, rate, now, "", args, quick
        )

    def _shape_of(self, lanes: Lanes, estimate: RequestEstimate) -> Shape:
        if len(self._shapes) >= _SHAPES_MAX:
            self._shapes = {}
        shape = self._shapes[(id(lanes), id(estimate))] = Shape.of(lanes, estimate)
        self._remember_cost_keys(shape.holds, lanes.cost_keys)  # what its settles look up
        return shape

    def _lanes_of(self, plan: Plan) -> Lanes:
        """Work out the lanes of a new plan; those of another policy snapshot are forgotten first."""
        if len(self._lanes) >= _LANES_MAX or plan.policy is not self._lanes_policy:
            self._lanes = {}
            self._lanes_policy = plan.policy
        lanes = self._lanes[id(plan)] = Lanes.of(plan)
        return lanes

    # -- the general path ------------------------------------------------------------------------------

    def _authorize(
        self,
        answer: Callable[..., Authorization],
        ctx: RequestContext,
        policy: Policy,
        estimate: RequestEstimate,
        limits: list[Limit],
        hold_id: str,
        now: datetime,
        options: DecisionOptions,
        read: Mapping[str, CounterState] | None = None,
        attempts: int = _RESERVE_ATTEMPTS,
    ) -> Authorization:
        # Cheaper alternatives only matter once a limit pinches: decide without them first (the common
        # ALLOW needs none), and again with them when the answer is anything but ALLOW.
        alternatives: dict[str, RequestEstimate] = {}
        every = limits
        with_alternatives = False
        throttle_key = _throttle_key(ctx)
        decision = None
        for _attempt in range(attempts):
            figures = self._read(policy, every, now, read)
            read = None  # the counters move on: read them again on the next pass
            decision = self._decide(policy, ctx, estimate, figures, alternatives, throttle_key, now, options)
            if decision.action is not Action.ALLOW and not with_alternatives and limits:
                with_alternatives = True
                alternatives, extra = self._alternatives(policy, ctx, estimate)
                every = list({limit.id: limit for limit in [*limits, *extra]}.values())
                continue
            if not decision.allowed:
                if decision.action is Action.THROTTLE:
                    with self._lock:
                        self._throttles[throttle_key] = self._throttles.get(throttle_key, 0) + 1
                return answer(decision=decision)
            run_ctx = ctx.with_model(decision.provider, decision.model) if decision.downgraded else ctx
            run_estimate = alternatives.get(f"{decision.provider}/{decision.model}", estimate)
            run = [f for f in figures if f.window is not None and f.limit.scope.matches(run_ctx)]
            rate = self._acquire_rates(policy, run_ctx, run_estimate, hold_id, now)
            if isinstance(rate, Authorization):
                return answer(decision=rate.decision)
            holds = self._reserve(policy, run, run_ctx, run_estimate, hold_id, now)
            if holds is not None:
                if decision.first_exceeded:
                    self._mark_exceeded(decision, figures, now)
                self._forget_throttle(throttle_key)
                return answer(decision=decision, ctx=run_ctx, holds=holds, rate_holds=rate, estimate=run_estimate)
            self._free_rates(rate, now)  # a concurrent request took the budget: look again
        note = "concurrent requests used the remaining budget"
        final = Decision(action=Action.DENY, provider=ctx.provider, model=ctx.model, note=note)
        return answer(decision=decision if decision is not None and not decision.allowed else final)

    def _forget_throttle(self, key: tuple[str, str]) -> None:
        """An allowed call starts its requester's THROTTLE backoff over."""
        if key in self._throttles:
            with self._lock:
                self._throttles.pop(key, None)

    def _decide(
        self,
        policy: Policy,
        ctx: RequestContext,
        estimate: RequestEstimate,
        figures: Sequence[_Figures],
        alternatives: Mapping[str, RequestEstimate],
        throttle_key: tuple[str, str],
        now: datetime,
        options: DecisionOptions,
    ) -> Decision:
        """``decide()`` on the live figures; a plain ALLOW is answered at once and explained on demand."""
        throttle_attempt = self._throttles.get(throttle_key, 0)
        if not policy.breakers:
            used = [f.used() for f in figures]
            if None not in used and allows_quietly(
                ctx=ctx,
                request=estimate,
                limits=[f.limit for f in figures],
                used=used,  # type: ignore[arg-type]  # None was ruled out
                amounts=[f.amount for f in figures],
                policy=policy.tiers,
            ):
                return Decision.deferred(
                    action=Action.ALLOW,
                    provider=ctx.provider,
                    model=ctx.model,
                    explain=partial(
                        self._decide_fully, policy, ctx, estimate, figures, alternatives, throttle_attempt, now, options
                    ),
                )
        return self._decide_fully(policy, ctx, estimate, figures, alternatives, throttle_attempt, now, options)

    def _decide_fully(
        self,
        policy: Policy,
        ctx: RequestContext,
        estimate: RequestEstimate,
        figures: Sequence[_Figures],
        alternatives: Mapping[str, RequestEstimate],
        throttle_attempt: int,
        now: datetime,
        options: DecisionOptions,
    ) -> Decision:
        return decide(
            ctx=ctx,
            request=estimate,
            states=[f.state() for f in figures],
            policy=policy.tiers,
            chains=policy.chains,
            alternatives=alternatives,
            emergency=policy.emergency(),
            throttle_attempt=throttle_attempt,
            now=now,
            options=options,
        )
