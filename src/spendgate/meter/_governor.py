"""The request path of budgets: authorize (estimate, decide, reserve), settle and release.

Order of a settle: the counters are committed first, then the ledger event is written. That way a
counter that is being initialized from the ledger at the same moment can never count the event twice
(see "Cold start" in docs/counters.md); a crash between the two steps over-counts, the safe side,
until the periodic reconciliation corrects it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.budgets import (
    Action,
    BreakerSource,
    CircuitBreaker,
    Decision,
    DecisionOptions,
    Level,
    Limit,
    LimitState,
    Metric,
    RequestContext,
    RequestEstimate,
    Window,
    crossed_thresholds,
    decide,
    effective_amount,
    worst_case_output_tokens,
)
from spendgate.clock import Clock
from spendgate.counters import MAX_RATE_AMOUNT, CounterStore, CounterUnavailable, ReserveItem, with_init
from spendgate.errors import PricingError
from spendgate.ledger import UsageStore
from spendgate.meter._authorization import Authorization, Hold, RateHold, actual_amount, from_units, to_units
from spendgate.meter._policy import Policy, PolicyCache, scope_filter
from spendgate.pricing import PriceBook
from spendgate.settings import Settings
from spendgate.tokens import max_output_tokens
from spendgate.usage import Usage

__all__ = ["Governor"]

log = logging.getLogger("spendgate.budgets")

_KEY_MARGIN_S = 86_400.0  # keep a window's counter a day past its end (late settles, status reads)
_RESERVE_ATTEMPTS = 4  # one pass may be spent adding the downgrade alternatives


def _summary_amount(metric: Metric, summary: Any) -> Decimal:
    if metric is Metric.COST:
        return Decimal(summary.cost)
    if metric is Metric.INPUT_TOKENS:
        return Decimal(summary.input_tokens)
    if metric is Metric.OUTPUT_TOKENS:
        return Decimal(summary.output_tokens)
    if metric is Metric.TOTAL_TOKENS:
        return Decimal(summary.input_tokens + summary.output_tokens)
    return Decimal(summary.requests)


class Governor:
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
        self.before_read: Callable[[], object] = lambda: None
        """Called before reading the ledger (the Meter flushes its journal there)."""

    # -- estimates ---------------------------------------------------------------------------------

    def estimate(self, provider: str, model: str, input_tokens: int, max_tokens: int | None) -> RequestEstimate | None:
        """The worst case of a call, or None when the model has no price (cost limits can't be bounded)."""
        model_max = self._max_output.get((provider, model), 0)
        if model_max == 0:
            model_max = max_output_tokens(model, self.settings.max_output_tokens)
            self._max_output[(provider, model)] = model_max
        output = worst_case_output_tokens(max_tokens, model_max, self.settings.output_token_cap)
        try:
            cost = self.prices.cost(provider, model, Usage(input_tokens=input_tokens, output_tokens=output)).total
        except PricingError:
            return None
        return RequestEstimate(
            provider=provider, model=model, cost=cost, input_tokens=input_tokens, output_tokens=output
        )

    # -- live state --------------------------------------------------------------------------------

    def key(self, limit: Limit, window: Window) -> str:
        return f"b|{limit.id}|{window.key}"

    def ledger_used(self, limit: Limit, window: Window) -> Decimal:
        """What the ledger holds for ``limit`` in ``window`` (the source of truth for counters)."""
        self.before_read()
        events, prefix = scope_filter(limit.scope, window.start)
        if prefix is not None:
            rows = self.store.totals_by("model", events)
            return sum(
                (_summary_amount(limit.metric, s) for m, s in rows if m is not None and m.startswith(prefix)),
                Decimal(0),
            )
        return _summary_amount(limit.metric, self.store.summary(events))

    def _loader(self, pairs: Mapping[str, tuple[Limit, Window]]) -> Any:
        def load(key: str) -> int:
            limit, window = pairs[key]
            return to_units(limit.metric, self.ledger_used(limit, window))

        return load

    def _expiries(self, pairs: Mapping[str, tuple[Limit, Window]]) -> dict[str, float]:
        return {key: window.end.timestamp() + _KEY_MARGIN_S for key, (_, window) in pairs.items()}

    def states(self, policy: Policy, limits: Sequence[Limit], ctx: RequestContext, now: datetime) -> list[LimitState]:
        """Live figures of each limit in its current window, initializing cold counters from the ledger."""
        if policy is not self._exceeded_policy:
            with self._lock:
                self._exceeded.clear()
                self._exceeded_policy = policy
        pairs: dict[str, tuple[Limit, Window]] = {}
        windows: dict[str, Window | None] = {}
        for limit in limits:
            window = self.policy.window(limit, now)
            windows[limit.id] = window
            if window is None:
                continue
            if limit.rolling_seconds is None:
                pairs[self.key(limit, window)] = (limit, window)
        read = self.counters.read(list(pairs), now=now.timestamp()) if pairs else {}
        cold = [key for key, state in read.items() if not state.initialized]
        if cold:
            load = self._loader(pairs)
            expiries = self._expiries(pairs)
            for key in cold:
                self.counters.init(key, load(key), expire_at=expiries[key])
            read = {**read, **self.counters.read(cold, now=now.timestamp())}
        out: list[LimitState] = []
        for limit in limits:
            window = windows[limit.id]
            spent = reserved = Decimal(0)
            if window is not None and limit.rolling_seconds is None:
                counter = read[self.key(limit, window)]
                spent, reserved = from_units(limit.metric, counter.spent), from_units(limit.metric, counter.reserved)
            elif window is not None:
                probe = self.counters.rate_acquire(
                    f"r|{limit.id}", 0, MAX_RATE_AMOUNT, float(limit.rolling_seconds or 1), now=now.timestamp()
                )
                spent = from_units(limit.metric, probe.used)
            out.append(
                LimitState(
                    limit=limit,
                    window=window,
                    spent=spent,
                    reserved=reserved,
                    effective_amount=effective_amount(limit, policy.grants.get(limit.id, ()), now),
                    first_exceeded_at=self._first_exceeded(limit, window),
                )
            )
        return out

    def _first_exceeded(self, limit: Limit, window: Window | None) -> datetime | None:
        if window is None or (limit.level is not Level.ADAPTIVE and limit.tier is None):
            return None
        key = (limit.id, window.key)
        if key not in self._exceeded:
            found = self.store.control.crossings(limit_id=limit.id, window_key=window.key)
            self._exceeded[key] = next((c.crossed_at for c in found if c.threshold == "exceeded"), None)
        return self._exceeded[key]

    def _mark_exceeded(self, decision: Decision, states: Sequence[LimitState], now: datetime) -> None:
        for state in states:
            if state.limit.id in decision.first_exceeded and state.window is not None:
                self.store.control.record_crossing(
                    state.limit.id, state.window.key, "exceeded", now, {"scope": str(state.limit.scope)}
                )
                self._exceeded[(state.limit.id, state.window.key)] = now

    # -- authorize ---------------------------------------------------------------------------------

    def authorize(
        self,
        ctx: RequestContext,
        input_tokens: int,
        max_tokens: int | None,
        reservation_id: str | None = None,
        cache_available: bool = False,
    ) -> Authorization:
        now = self.clock.now()
        options = replace(self.options, cache_available=True) if cache_available else self.options
        hold_id = reservation_id or f"rsv_{uuid.uuid4().hex}"
        policy = self.policy.get()
        estimate = self.estimate(ctx.provider, ctx.model, input_tokens, max_tokens)
        limits = policy.limits_for(ctx)
        base = Authorization(
            decision=Decision(action=Action.ALLOW, provider=ctx.provider, model=ctx.model, note="no limit applies"),
            reservation_id=hold_id,
            ctx=ctx,
            requested_model=ctx.model,
            requested_provider=ctx.provider,
            estimate=estimate,
            authorized_at=now,
        )
        if estimate is None:
            if any(limit.metric is Metric.COST for limit in limits):
                note = f"no price known for {ctx.provider}/{ctx.model}: its cost limits cannot be enforced"
                return replace(
                    base, decision=Decision(action=Action.DENY, provider=ctx.provider, model=ctx.model, note=note)
                )
            estimate = RequestEstimate(
                provider=ctx.provider, model=ctx.model, cost=Decimal(0), input_tokens=input_tokens,
                output_tokens=worst_case_output_tokens(max_tokens, None, self.settings.output_token_cap),
            )  # fmt: skip
            base = replace(base, estimate=estimate)
        try:
            return self._authorize(base, policy, estimate, limits, hold_id, now, options)
        except CounterUnavailable as exc:
            return self._counters_down(base, limits, exc)

    def _counters_down(self, base: Authorization, limits: Sequence[Limit], exc: CounterUnavailable) -> Authorization:
        closed = [limit for limit in limits if limit.level.value not in self.settings.fail_open_levels]
        ctx = base.ctx
        if closed:
            note = f"counter store unreachable ({exc}); failing closed for {closed[0].id}"
            log.error(note)
            return replace(
                base, decision=Decision(action=Action.DENY, provider=ctx.provider, model=ctx.model, note=note)
            )
        note = f"counter store unreachable ({exc}); failing open"
        log.warning(note)
        return replace(base, decision=Decision(action=Action.WARN, provider=ctx.provider, model=ctx.model, note=note))

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

    def _authorize(
        self,
        base: Authorization,
        policy: Policy,
        estimate: RequestEstimate,
        limits: list[Limit],
        hold_id: str,
        now: datetime,
        options: DecisionOptions,
    ) -> Authorization:
        ctx = base.ctx
        # Cheaper alternatives only matter once a limit pinches: decide without them first (the common
        # ALLOW needs none), and again with them when the answer is anything but ALLOW.
        alternatives: dict[str, RequestEstimate] = {}
        every = limits
        with_alternatives = False
        throttle_key = (str(ctx.user_id or ctx.api_key_id or ctx.team_id or ""), ctx.model)
        decision = base.decision
        for _attempt in range(_RESERVE_ATTEMPTS):
            states = self.states(policy, every, ctx, now)
            decision = decide(
                ctx=ctx,
                request=estimate,
                states=states,
                policy=policy.tiers,
                chains=policy.chains,
                alternatives=alternatives,
                emergency=policy.emergency(),
                throttle_attempt=self._throttles.get(throttle_key, 0),
                now=now,
                options=options,
            )
            if decision.action is not Action.ALLOW and not with_alternatives and limits:
                with_alternatives = True
                alternatives, extra = self._alternatives(policy, ctx, estimate)
                every = list({limit.id: limit for limit in [*limits, *extra]}.values())
                continue
            if not decision.allowed:
                if decision.action is Action.THROTTLE:
                    with self._lock:
                        self._throttles[throttle_key] = self._throttles.get(throttle_key, 0) + 1
                return replace(base, decision=decision)
            run_ctx = ctx.with_model(decision.provider, decision.model) if decision.downgraded else ctx
            run_estimate = alternatives.get(f"{decision.provider}/{decision.model}", estimate)
            run_states = [s for s in states if s.limit.scope.matches(run_ctx) and s.window is not None]
            rate = self._acquire_rates(policy, run_ctx, run_estimate, hold_id, now)
            if isinstance(rate, Authorization):
                return replace(rate, reservation_id=hold_id, estimate=estimate, authorized_at=now, ctx=ctx,
                               requested_model=ctx.model, requested_provider=ctx.provider)  # fmt: skip
            holds = self._reserve(policy, run_states, run_ctx, run_estimate, hold_id, now)
            if holds is not None:
                self._mark_exceeded(decision, states, now)
                with self._lock:
                    self._throttles.pop(throttle_key, None)
                return replace(
                    base, decision=decision, ctx=run_ctx, holds=holds, rate_holds=rate, estimate=run_estimate
                )
            self._free_rates(rate, now)  # a concurrent request took the budget: look again
        note = "concurrent requests used the remaining budget"
        final = Decision(action=Action.DENY, provider=ctx.provider, model=ctx.model, note=note)
        return replace(base, decision=decision if not decision.allowed else final)

    def _cap(self, state: LimitState, ctx: RequestContext, tiers: Any) -> int | None:
        limit = state.limit
        amount = state.effective_amount if state.effective_amount is not None else limit.amount
        if limit.level is Level.SOFT:
            return None
        if limit.level is Level.ADAPTIVE:
            policy = tiers.policy_for(limit.tier or ctx.tier)
            overage = policy.max_overage if limit.metric is Metric.COST else Decimal(0)
            amount = amount * policy.hard_limit + overage
        return to_units(limit.metric, amount, "down")

    def _reserve(
        self,
        policy: Policy,
        states: Sequence[LimitState],
        ctx: RequestContext,
        estimate: RequestEstimate,
        hold_id: str,
        now: datetime,
    ) -> tuple[Hold, ...] | None:
        """Hold the worst case on every windowed limit at once; None when a cap refused it."""
        holds: list[Hold] = []
        items: list[ReserveItem] = []
        pairs: dict[str, tuple[Limit, Window]] = {}
        for state in states:
            limit, window = state.limit, state.window
            assert window is not None
            amount = to_units(limit.metric, estimate.amount(limit.metric), "up")
            effective = state.effective_amount if state.effective_amount is not None else limit.amount
            cap = self._cap(state, ctx, policy.tiers)
            if limit.rolling_seconds is not None:
                key = f"r|{limit.id}"
                ceiling = cap if cap is not None else MAX_RATE_AMOUNT
                got = self.counters.rate_acquire(key, amount, ceiling, limit.rolling_seconds, now=now.timestamp())
                if not got.allowed:
                    self._undo(holds, now)
                    return None
                holds.append(Hold(key, limit, window.key, amount, effective, limit.rolling_seconds, got.entry_id))
                continue
            key = self.key(limit, window)
            pairs[key] = (limit, window)
            items.append(ReserveItem(key, amount, cap, window.end.timestamp() + _KEY_MARGIN_S))
            holds.append(Hold(key, limit, window.key, amount, effective))
        if items:
            result = with_init(
                self.counters,
                lambda: self.counters.reserve(hold_id, items, ttl_s=self.settings.hold_ttl_s, now=now.timestamp()),
                self._loader(pairs),
                expire_at=self._expiries(pairs),
            )
            if not result.ok:
                self._undo(holds, now)
                return None
        return tuple(holds)

    def _undo(self, holds: Sequence[Hold], now: datetime) -> None:
        for hold in holds:
            if hold.rolling_seconds is not None:
                self.counters.rate_adjust(
                    hold.key, -hold.amount, float(hold.rolling_seconds), now=now.timestamp(), entry_id=hold.entry_id
                )

    # -- rate limits -------------------------------------------------------------------------------

    def _acquire_rates(
        self, policy: Policy, ctx: RequestContext, estimate: RequestEstimate, hold_id: str, now: datetime
    ) -> tuple[RateHold, ...] | Authorization:
        taken: list[RateHold] = []
        ts = now.timestamp()
        for rate in policy.rate_limits_for(ctx):
            base = f"rl|{rate.id}"
            checks: list[tuple[str, int, int | None]] = [("rpm", 1, rate.rpm), ("tpm", estimate.total_tokens, rate.tpm)]
            for kind, amount, cap in checks:
                if cap is None:
                    continue
                got = self.counters.rate_acquire(f"{base}|{kind}", amount, cap, 60.0, now=ts)
                if not got.allowed:
                    self._free_rates(tuple(taken), now)
                    return self._throttled(ctx, f"{rate.id}: {kind} limit {cap} reached", got.retry_after)
                taken.append(RateHold(f"{base}|{kind}", kind, amount, got.entry_id))
            if rate.concurrent is not None:
                key = f"{base}|concurrent"
                if not self.counters.concurrency_acquire(
                    key, hold_id, rate.concurrent, ttl_s=self.settings.hold_ttl_s, now=ts
                ):
                    self._free_rates(tuple(taken), now)
                    return self._throttled(ctx, f"{rate.id}: {rate.concurrent} concurrent requests in flight", 1.0)
                taken.append(RateHold(key, "concurrent", 0, hold_id))
        return tuple(taken)

    def _throttled(self, ctx: RequestContext, note: str, retry_after: float | None) -> Authorization:
        retry = max(1, round(retry_after)) if retry_after is not None else 60
        decision = Decision(
            action=Action.THROTTLE, provider=ctx.provider, model=ctx.model, retry_after_s=retry, note=note
        )
        return Authorization(decision=decision, reservation_id="", ctx=ctx, requested_model=ctx.model,
                             requested_provider=ctx.provider, estimate=None)  # fmt: skip

    def _free_rates(self, holds: Sequence[RateHold], now: datetime, used_tokens: int | None = None) -> None:
        for hold in holds:
            if hold.kind == "concurrent":
                self.counters.concurrency_release(hold.key, hold.entry_id or "")
            elif hold.kind == "tpm" and used_tokens is not None:
                self.counters.rate_adjust(
                    hold.key, used_tokens - hold.amount, 60.0, now=now.timestamp(), entry_id=hold.entry_id
                )
            elif used_tokens is None:
                self.counters.rate_adjust(hold.key, -hold.amount, 60.0, now=now.timestamp(), entry_id=hold.entry_id)

    # -- settle and release -------------------------------------------------------------------------

    def commit(self, auth: Authorization, usage: Usage, cost: Decimal | None, *, release: bool) -> bool:
        """Replace the holds with what the call used (all of it: settle; partial usage: release).

        Idempotent: the counter store remembers the reservation id, so a second settle or release of the
        same call changes nothing (rolling windows and rate limits included). Returns whether it was
        settled before.
        """
        now = self.clock.now()
        consumed = not (release and usage == Usage())  # a released call that used nothing counts for nothing
        used = {h.key: actual_amount(h.limit.metric, usage, cost, h.amount) if consumed else 0 for h in auth.holds}
        actual: dict[str, int] = {}
        pairs: dict[str, tuple[Limit, Window]] = {}
        for hold in auth.holds:
            if hold.rolling_seconds is None:
                actual[hold.key] = used[hold.key]
                window = hold.limit.window_at(auth.authorized_at or now)
                assert window is not None
                pairs[hold.key] = (hold.limit, window)
        op = self.counters.release if release else self.counters.commit
        result = with_init(
            self.counters,
            lambda: op(auth.reservation_id, actual, now=now.timestamp()),
            self._loader(pairs),
            expire_at=self._expiries(pairs),
        )
        if result.already:
            return True
        ts = now.timestamp()
        after: dict[str, int] = {}
        for hold in auth.holds:
            if hold.rolling_seconds is not None:
                seconds = float(hold.rolling_seconds)
                self.counters.rate_adjust(
                    hold.key, used[hold.key] - hold.amount, seconds, now=ts, entry_id=hold.entry_id
                )
                after[hold.key] = self.counters.rate_acquire(hold.key, 0, MAX_RATE_AMOUNT, seconds, now=ts).used
        self._free_rates(auth.rate_holds, now, used_tokens=usage.total_tokens)
        if actual:
            after.update({key: state.spent for key, state in self.counters.read(list(actual), now=ts).items()})
        self._crossings(auth, used, after, now)
        return False

    def _trip(self, hold: Hold, used: Decimal, cooldown_s: int, now: datetime) -> None:
        """A breaker rule's amount was passed: stop its scope for the cooldown (an emergency stop by rule)."""
        limit = hold.limit
        breaker = CircuitBreaker(
            scope=limit.scope,
            reason=f"breaker rule {limit.id}: {limit.metric.value} {used} over {hold.effective_amount} per "
            f"{limit.period.value}",
            set_by=BreakerSource.RULE,
            since=now,
            cooldown_until=now + timedelta(seconds=cooldown_s),
        )
        self.store.control.put("breaker", str(limit.scope) or "global", breaker.to_dict(), actor="rule")
        self.policy.invalidate()
        log.warning("emergency stop: %s", breaker.reason)

    def _crossings(self, auth: Authorization, used: Mapping[str, int], after: Mapping[str, int], now: datetime) -> None:
        """Record thresholds the call took its limits across, and trip breaker rules it took over."""
        for hold in auth.holds:
            if hold.key not in after:
                continue
            metric = hold.limit.metric
            after_value = from_units(metric, after[hold.key])
            before = after_value - from_units(metric, used[hold.key])
            cooldown = self.policy.get().rules.get(hold.limit.id)
            if cooldown is not None:
                if after_value > hold.effective_amount >= before:
                    self._trip(hold, after_value, cooldown, now)
                continue
            for threshold in crossed_thresholds(hold.limit, before, after_value, amount=hold.effective_amount):
                self.store.control.record_crossing(
                    hold.limit.id,
                    hold.window_key,
                    str(threshold),
                    now,
                    {
                        "scope": str(hold.limit.scope),
                        "metric": metric.value,
                        "used": format(after_value, "f"),
                        "amount": format(hold.effective_amount, "f"),
                        "event_id": auth.reservation_id,
                    },
                )
