"""The Meter's budget methods: limits, grants, breakers and rate limits; authorize, settle, release; status."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import compress
from operator import is_not
from typing import TYPE_CHECKING, Any

from spendgate.budgets import (
    BreakerSource,
    CircuitBreaker,
    Grant,
    Limit,
    Metric,
    RateLimit,
    RequestContext,
    Scope,
    Window,
)
from spendgate.counters import CounterUnavailable
from spendgate.errors import InvalidUsageError
from spendgate.ledger import Crossing, UsageEvent
from spendgate.meter._authorization import Authorization, from_units, to_units
from spendgate.meter._core import Recorded, price_usage
from spendgate.meter._policy import RULE_PREFIX
from spendgate.usage import Usage

if TYPE_CHECKING:
    from spendgate.clock import Clock
    from spendgate.ledger import Journal, UsageStore
    from spendgate.meter._governor import Governor
    from spendgate.pricing import CostBreakdown, PriceBook
    from spendgate.settings import Settings
    from spendgate.tokens import TokenCounter

log = logging.getLogger("spendgate.budgets")

__all__ = ["MAX_COST_LIMIT", "BudgetMethods", "BudgetStatus", "Drift"]

#: The largest cost limit per window: leaves room under the counters' 64-bit range (~$9.22M in 1e-12 USD)
#: for the largest tier factor (105 %) and overage allowance.
MAX_COST_LIMIT = Decimal(8_000_000)


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One limit's figures in its current window."""

    limit: Limit
    spent: Decimal
    reserved: Decimal
    amount: Decimal
    """The limit's amount with active grants."""
    remaining: Decimal
    utilization: Decimal
    window_start: datetime | None
    resets_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": self.limit.to_dict(),
            "spent": format(self.spent, "f"),
            "reserved": format(self.reserved, "f"),
            "amount": format(self.amount, "f"),
            "remaining": format(self.remaining, "f"),
            "utilization": format(self.utilization, "f"),
            "window_start": None if self.window_start is None else self.window_start.isoformat(),
            "resets_at": None if self.resets_at is None else self.resets_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Drift:
    """A live counter that disagreed with the ledger, and whether reconciliation corrected it."""

    key: str
    limit_id: str
    counter: Decimal
    ledger: Decimal
    corrected: bool


#: Event fields a settle or release may pass that the general parsing (``parse_call``) passes on unchanged
#: and the Meter does not set itself: with only these, the event is built directly (see ``_call_event``).
_PASSED_FIELDS = frozenset(
    {
        "latency_ms", "success", "error_kind", "tokens_estimated", "request_type", "metadata", "cached",
        "cache_savings", "prompt_hash", "client_ip", "user_agent", "service", "endpoint", "status_code",
        "request_bytes", "response_bytes",
    }
)  # fmt: skip


#: The arguments of :meth:`BudgetMethods.authorize` kept on its Authorization (``args``), in its order.
_AUTHORIZE_ARGS = ("provider", "model", "user_id", "team_id", "api_key_id", "session_id", "tier", "tags", "messages",
                   "text", "tools", "system", "max_tokens", "input_tokens", "cache_available")  # fmt: skip
_NONES = (None,) * len(_AUTHORIZE_ARGS)


def _scope(scope: str | Scope, scope_id: str | None) -> Scope:
    return scope if isinstance(scope, Scope) else Scope.of(scope, scope_id)


class BudgetMethods:
    """Mixed into :class:`Meter`; expects its attributes below."""

    governor: Governor
    store: UsageStore
    clock: Clock
    prices: PriceBook
    settings: Settings
    tokens: TokenCounter

    journal: Journal | None

    #: Called with every newly recorded event (settled, released or recorded; not duplicates), e.g. by the
    #: service's Prometheus counters. It runs on the recording thread: keep it cheap and never raise.
    on_event: Callable[[UsageEvent], None] | None = None
    #: Called with every authorization decision, refusals included (same rules as ``on_event``).
    on_decision: Callable[[Authorization], None] | None = None

    def record(self, **kwargs: Any) -> Recorded:  # provided by Meter
        raise NotImplementedError

    def _prepare(self, kwargs: Mapping[str, Any], where: str = "") -> tuple[UsageEvent, CostBreakdown | None]:
        raise NotImplementedError  # provided by Meter

    def flush(self) -> int:
        raise NotImplementedError  # provided by Meter

    def monthly_volume(self, provider: str, model: str, at: datetime | None = None) -> int:
        raise NotImplementedError  # provided by Meter

    # -- configuration (stored in the ledger database: every process sharing it applies it) ----------

    def set_limit(
        self,
        *,
        scope: str | Scope,
        scope_id: str | None = None,
        metric: str = "cost",
        period: str = "day",
        amount: Decimal | int | str,
        level: str = "hard",
        thresholds: Sequence[float] | None = None,
        timezone: str = "UTC",
        rolling_seconds: int | None = None,
        tier: str | None = None,
        id: str = "",
        actor: str = "system",
    ) -> Limit:
        """Create or replace a limit (by id; the default id is derived from scope, metric, period and zone)."""
        extra: dict[str, Any] = {} if thresholds is None else {"thresholds": tuple(thresholds)}
        limit = Limit(
            scope=_scope(scope, scope_id),
            metric=metric,  # type: ignore[arg-type]  # Limit converts and validates strings
            period=period,  # type: ignore[arg-type]
            amount=Decimal(str(amount)) if not isinstance(amount, Decimal) else amount,
            level=level,  # type: ignore[arg-type]
            timezone=timezone,
            rolling_seconds=rolling_seconds,
            tier=tier,
            created_at=self.clock.now(),
            id=id,
            **extra,
        )
        if limit.metric is Metric.COST and limit.amount > MAX_COST_LIMIT:
            raise InvalidUsageError(
                "amount",
                f"a cost limit can be at most ${MAX_COST_LIMIT:,} per window: live counters hold 64-bit counts of "
                "1e-12 USD (split a larger budget by team, or use a shorter period)",
            )
        self.store.control.put("limit", limit.id, limit.to_dict(), actor=actor)
        self.governor.policy.invalidate()
        return limit

    def remove_limit(self, limit_id: str, *, actor: str = "system") -> bool:
        removed = self.store.control.delete("limit", limit_id, actor=actor)
        self.governor.policy.invalidate()
        return removed

    def limits(self) -> list[Limit]:
        """Every stored limit (tier defaults are not stored: see the tier table; breaker rules neither)."""
        return [limit for limit in self.governor.policy.get().limits if not limit.id.startswith(RULE_PREFIX)]

    def set_breaker_rule(
        self,
        scope: str | Scope = "global",
        scope_id: str | None = None,
        *,
        metric: str = "cost",
        period: str = "hour",
        amount: Decimal | int | str,
        cooldown: timedelta = timedelta(minutes=15),
        rolling_seconds: int | None = None,
        actor: str = "system",
    ) -> Limit:
        """Trip an emergency stop for ``scope`` automatically when its usage passes ``amount`` per ``period``.

        For a runaway loop that no budget anticipated: e.g. ``set_breaker_rule("global", amount="50",
        period="rolling", rolling_seconds=600)`` stops everything for the cooldown once $50 go out in ten
        minutes. Returns the (soft, tracking-only) limit that watches the usage.
        """
        base = Limit(
            scope=_scope(scope, scope_id),
            metric=metric,  # type: ignore[arg-type]
            period=period,  # type: ignore[arg-type]
            amount=Decimal(str(amount)) if not isinstance(amount, Decimal) else amount,
            level="soft",  # type: ignore[arg-type]
            rolling_seconds=rolling_seconds,
            thresholds=(),
        )
        limit = Limit.from_dict({**base.to_dict(), "id": RULE_PREFIX + base.id})
        body = {"limit": limit.to_dict(), "cooldown_s": int(cooldown.total_seconds())}
        self.store.control.put("breaker_rule", limit.id, body, actor=actor)
        self.governor.policy.invalidate()
        return limit

    def add_grant(
        self,
        limit_id: str,
        amount: Decimal | int | str,
        *,
        expires_at: datetime | None = None,
        starts_at: datetime | None = None,
        recurring: str = "none",
        reason: str = "",
        created_by: str = "system",
        id: str | None = None,
    ) -> Grant:
        """Top up a limit, e.g. ``meter.add_grant(limit.id, "20", expires_at=month_end, reason="launch week")``."""
        if self.store.control.get("limit", limit_id) is None:
            raise InvalidUsageError("limit_id", f"no stored limit {limit_id!r}")
        now = self.clock.now()
        grant = Grant(
            id=id or f"grant_{int(now.timestamp() * 1e6)}_{limit_id}"[:200],
            limit_id=limit_id,
            amount=Decimal(str(amount)) if not isinstance(amount, Decimal) else amount,
            starts_at=starts_at or now,
            expires_at=expires_at,
            recurring=recurring,  # type: ignore[arg-type]
            reason=reason,
            created_by=created_by,
        )
        self.store.control.put("grant", grant.id, grant.to_dict(), actor=created_by, create_only=True)
        self.governor.policy.invalidate()
        return grant

    def emergency_stop(
        self,
        scope: str | Scope = "global",
        scope_id: str | None = None,
        *,
        reason: str,
        cooldown: timedelta | None = None,
        actor: str = "admin",
        set_by: str = "admin",
    ) -> CircuitBreaker:
        """Stop every request in ``scope`` (global by default) now, until ``cooldown`` passes or it is cleared."""
        now = self.clock.now()
        breaker = CircuitBreaker(
            scope=_scope(scope, scope_id),
            reason=reason,
            set_by=BreakerSource(set_by),
            since=now,
            cooldown_until=None if cooldown is None else now + cooldown,
        )
        self.store.control.put("breaker", str(breaker.scope) or "global", breaker.to_dict(), actor=actor)
        self.governor.policy.invalidate()
        return breaker

    def clear_emergency_stop(
        self, scope: str | Scope = "global", scope_id: str | None = None, *, actor: str = "admin"
    ) -> bool:
        cleared = self.store.control.delete("breaker", str(_scope(scope, scope_id)) or "global", actor=actor)
        self.governor.policy.invalidate()
        return cleared

    def set_rate_limit(
        self,
        scope: str | Scope,
        scope_id: str | None = None,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        concurrent: int | None = None,
        actor: str = "system",
    ) -> RateLimit:
        """Requests per minute, tokens per minute and concurrent calls for a key, user, team or model."""
        rate = RateLimit(scope=_scope(scope, scope_id), rpm=rpm, tpm=tpm, concurrent=concurrent)
        self.store.control.put("rate_limit", rate.id, rate.to_dict(), actor=actor)
        self.governor.policy.invalidate()
        return rate

    def rate_limits(self) -> list[RateLimit]:
        """Every stored rate limit, oldest first."""
        return [RateLimit.from_dict(body) for body in self.store.control.list_objects("rate_limit")]

    def remove_rate_limit(self, rate_id: str, *, actor: str = "system") -> bool:
        """Remove a rate limit by id (e.g. ``"rate|user:alice"``); False when there was none."""
        removed = self.store.control.delete("rate_limit", rate_id, actor=actor)
        self.governor.policy.invalidate()
        return removed

    def grants(self, limit_id: str | None = None) -> list[Grant]:
        """Every grant (of ``limit_id`` only, when given), oldest first, expired ones included."""
        found = [Grant.from_dict(body) for body in self.store.control.list_objects("grant")]
        return found if limit_id is None else [grant for grant in found if grant.limit_id == limit_id]

    def remove_grant(self, grant_id: str, *, actor: str = "system") -> bool:
        """Remove a grant by id (recorded in the audit trail); False when there was none."""
        removed = self.store.control.delete("grant", grant_id, actor=actor)
        self.governor.policy.invalidate()
        return removed

    def emergency_stops(self) -> list[CircuitBreaker]:
        """Every emergency stop in force or cooling down, set by hand or tripped by a breaker rule."""
        return [CircuitBreaker.from_dict(body) for body in self.store.control.list_objects("breaker")]

    # -- the request path ---------------------------------------------------------------------------

    def authorize(
        self,
        *,
        provider: str,
        model: str,
        user_id: str | None = None,
        team_id: str | None = None,
        api_key_id: str | None = None,
        session_id: str | None = None,
        tier: str | None = None,
        tags: Mapping[str, str] | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        text: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        system: str | Sequence[Mapping[str, Any]] | None = None,
        max_tokens: int | None = None,
        input_tokens: int | None = None,
        reservation_id: str | None = None,
        cache_available: bool = False,
    ) -> Authorization:
        """Decide on a call before it is made and reserve its worst-case cost against every limit at once.

        The worst case is the counted input plus ``max_tokens`` of output (else the model's maximum, else
        ``Settings.output_token_cap``). Settle the result with :meth:`settle`, or :meth:`release` it.
        ``cache_available`` says a cached response exists: an exhausted tier budget then answers CACHE_ONLY.
        """
        given = (provider, model, user_id, team_id, api_key_id, session_id, tier, tags, messages, text, tools,
                 system, max_tokens, input_tokens, cache_available)  # fmt: skip
        # The arguments not None, in C (zip's strict= is a keyword call, slow: both have every argument)
        args = dict(compress(zip(_AUTHORIZE_ARGS, given), map(is_not, given, _NONES)))  # noqa: B905
        ctx = self.governor.context(
            provider, model, user_id, team_id, api_key_id, session_id, tier or self.settings.default_tier, tags
        )
        if input_tokens is None:
            if messages is None and text is None and tools is None and system is None:
                input_tokens = 0
            else:
                counted = self.tokens.count(provider, model, messages=messages, text=text, tools=tools, system=system)
                input_tokens = counted.total
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0
        ):
            raise InvalidUsageError("max_tokens", f"must be a non-negative integer, got {max_tokens!r}")
        decision = self.governor.authorize(ctx, input_tokens, max_tokens, reservation_id, cache_available, args=args)
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def _event_fields(self, auth: Authorization) -> dict[str, Any]:
        ctx = auth.ctx
        fields: dict[str, Any] = {
            "event_id": auth.reservation_id,
            "provider": auth.provider,
            "model": auth.requested_model,
            "user_id": ctx.user_id,
            "team_id": ctx.team_id,
            "api_key_id": ctx.api_key_id,
            "session_id": ctx.session_id,
            "tags": dict(ctx.tags),
            "action": auth.action.value,
        }
        if auth.model != auth.requested_model or auth.provider != auth.requested_provider:
            fields["model_used"] = auth.model
        return fields

    def _call_event(
        self, auth: Authorization, usage: Usage, fields: Mapping[str, Any]
    ) -> tuple[UsageEvent, CostBreakdown | None]:
        """What :meth:`_prepare` makes of ``{**self._event_fields(auth), "usage": usage, **fields}``.

        Only for ``fields`` within :data:`_PASSED_FIELDS` (the usual ``latency_ms`` and the like), which
        the general parsing passes on as they are: the event is built directly, checked by UsageEvent
        as always, and priced the same way.
        """
        provider, model, used = auth.provider, auth.requested_model, auth.model
        if type(provider) is not str or type(model) is not str or not provider.strip() or not model.strip():
            for name, value in (("provider", provider), ("model", model)):
                if not isinstance(value, str) or not value.strip():  # as parse_call() says it
                    raise InvalidUsageError(name, "must be a non-empty string")
        model_used = used if used != model or provider != auth.requested_provider else None
        timestamp = self.clock.now()
        price = self.prices.static_price(provider, model) if model_used is None else None
        if price is not None:  # what price_usage() finds for a price fixed in time and volume, found directly
            cost: CostBreakdown | None = price.evaluate(usage, model)
        else:
            cost = price_usage(
                self.prices,
                self.settings,
                provider=provider,
                model=model_used or model,
                usage=usage,
                at=timestamp,
                service_tier=None,
                batch=False,
                monthly_volume=self.monthly_volume(provider, model, timestamp),
            )
        ctx = auth.ctx
        event = UsageEvent(
            event_id=auth.reservation_id,
            timestamp=timestamp,
            provider=provider,
            model=model,
            usage=usage,
            cost=None if cost is None else cost.total,
            currency="USD" if cost is None else cost.currency,
            price_version=None if cost is None else cost.price_version,
            cost_estimated=False if cost is None else cost.estimated,
            user_id=ctx.user_id,
            team_id=ctx.team_id,
            api_key_id=ctx.api_key_id,
            session_id=ctx.session_id,
            tags=ctx.tags or {},
            action=auth.action._value_,  # (.value is a slow property)
            model_used=model_used,
            **fields,
        )
        return event, cost

    def _conclude(self, auth: Authorization, call: Mapping[str, Any], *, release: bool) -> Recorded:
        """Validate and price the event first, then commit the counters, then write the event."""
        event, cost = self._prepare(call)
        return self._write(auth, event, cost, release=release)

    def _write(self, auth: Authorization, event: UsageEvent, cost: CostBreakdown | None, *, release: bool) -> Recorded:
        """Commit the counters for a validated, priced event, then write the event.

        Nothing changes for an event that cannot be right, and each call is priced once. A settle goes
        through the journal when there is one (acknowledged on append); a release always commits to
        the ledger before it returns. A counter store that is down does not stop the event being written.
        """
        try:
            already = self.governor.commit(auth, event.usage, None if cost is None else cost.total, release=release)
        except CounterUnavailable as exc:
            # The ledger is the record: the call happened, so its event is written whatever the counters say.
            # Its hold stays until it lapses (the safe side), and the counters catch up from the ledger
            # (initialized from it when the store comes back empty; reconciliation otherwise).
            log.warning("counter store unavailable when settling %s; recorded all the same: %s", event.event_id, exc)
            already = False
        if self.journal is not None and not release:
            self.journal.append(event)  # appended even when settled before: a crash may have come in between
            duplicate = already
        else:
            duplicate = self.store.record(event).duplicate
        if self.on_event is not None and not duplicate:
            self.on_event(event)
        return Recorded(event.event_id, duplicate, cost)  # (positional: a request-path call)

    def settle(self, authorization: Authorization, usage: Usage, **fields: Any) -> Recorded:
        """Replace the call's hold with what it really used, and record the event (idempotent).

        ``fields`` are event fields such as ``latency_ms``, ``success``, ``request_type``, ``metadata``.
        With ``Settings.journal_dir`` the event is acknowledged once appended to the journal and reaches
        the ledger with the next batch; otherwise it is committed to the ledger before this returns.
        """
        auth = authorization
        if not auth.allowed or not auth.reservation_id:
            raise InvalidUsageError(
                "authorization", f"was {auth.action.value}, not allowed: there is nothing to settle"
            )
        if not isinstance(usage, Usage):
            raise InvalidUsageError("usage", f"must be a spendgate.Usage, got {type(usage).__name__}")
        if _PASSED_FIELDS.issuperset(fields):
            event, cost = self._call_event(auth, usage, fields)
            return self._write(auth, event, cost, release=False)
        return self._conclude(auth, {**self._event_fields(auth), "usage": usage, **fields}, release=False)

    def release(
        self,
        authorization: Authorization,
        *,
        partial_usage: Usage | None = None,
        error_kind: str = "error",
        **fields: Any,
    ) -> Recorded | None:
        """Drop the hold of a call that failed, charging ``partial_usage`` if some was consumed, and record
        the failure (idempotent; a call that was never allowed has nothing to release: returns None)."""
        auth = authorization
        if not auth.allowed or not auth.reservation_id:
            return None
        failed = {**fields, "success": False, "error_kind": error_kind}  # a released call failed
        if _PASSED_FIELDS.issuperset(fields) and (partial_usage is None or type(partial_usage) is Usage):
            event, cost = self._call_event(auth, partial_usage or Usage(), failed)
            return self._write(auth, event, cost, release=True)
        return self._conclude(
            auth, {**self._event_fields(auth), "usage": partial_usage or Usage(), **failed}, release=True
        )

    # -- status -------------------------------------------------------------------------------------

    def budget_status(
        self,
        *,
        user_id: str | None = None,
        team_id: str | None = None,
        api_key_id: str | None = None,
        session_id: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        tier: str | None = None,
    ) -> list[BudgetStatus]:
        """Every limit that applies to the given ids (and only needs those), with its current figures."""
        given = {"user": user_id, "team": team_id, "key": api_key_id, "session": session_id,
                 "provider": provider, "model": model}  # fmt: skip
        policy = self.governor.policy.get()
        chosen = [
            limit
            for limit in policy.limits
            if limit.enabled and all(given.get(dim) == value for dim, value in limit.scope.items())
        ]
        tier = tier or self.settings.default_tier
        if user_id is not None and tier is not None:
            ctx = RequestContext(provider=provider or "*", model=model or "*", user_id=user_id, team_id=team_id,
                                 api_key_id=api_key_id, session_id=session_id, tier=tier)  # fmt: skip
            chosen += policy.tiers.limits_for(ctx, chosen)
        now = self.clock.now()
        ctx_any = RequestContext(provider=provider or "*", model=model or "*", user_id=user_id, tier=tier)
        out: list[BudgetStatus] = []
        for state in self.governor.states(policy, chosen, ctx_any, now):
            amount = state.effective_amount if state.effective_amount is not None else state.limit.amount
            used = state.spent + state.reserved
            out.append(
                BudgetStatus(
                    limit=state.limit,
                    spent=state.spent,
                    reserved=state.reserved,
                    amount=amount,
                    remaining=max(Decimal(0), amount - used),
                    utilization=(used / amount) if amount else Decimal(0),
                    window_start=None if state.window is None else state.window.start,
                    resets_at=None if state.window is None else state.window.end,
                )
            )
        return out

    def reconcile(self, *, grace_s: float = 0.0) -> list[Drift]:
        """Compare every stored limit's live counter in its current window with the ledger, and correct drift.

        A counter is only corrected if it did not change while the ledger was read (compare-and-set), so
        a reconciliation racing live traffic never loses a settle; it reports what it found either way.

        ``grace_s``: with several processes sharing counters (the service's workers on Redis), a counter
        ahead of the ledger may only be ahead by other processes' settles still in their journals (a
        settle commits its counter first). Such a counter is looked at again after ``grace_s`` and lowered
        only if it stayed the same and the ledger still disagrees; a counter behind the ledger is raised
        at once (that is never in flight).
        """
        now = self.clock.now()
        self.flush()
        policy = self.governor.policy.get()
        drifts: list[Drift] = []
        ahead: list[tuple[str, Limit, Window, int]] = []
        for limit in policy.limits:
            window = limit.window_at(now)
            if window is None or limit.rolling_seconds is not None:
                continue
            key = self.governor.key(limit, window)
            before = self.governor.counters.read([key], now=now.timestamp())[key]
            if not before.initialized:
                continue
            ledger = to_units(limit.metric, self.governor.ledger_used(limit, window))
            if ledger < before.spent and grace_s > 0:
                ahead.append((key, limit, window, before.spent))
            elif ledger != before.spent:
                drifts.append(self._correct(key, limit, before.spent, ledger))
        if ahead:
            time.sleep(grace_s)
            self.flush()
            for key, limit, window, spent in ahead:
                ledger = to_units(limit.metric, self.governor.ledger_used(limit, window))
                if ledger != spent:  # the counter may have moved meanwhile: then compare-and-set leaves it
                    drifts.append(self._correct(key, limit, spent, ledger))
        return drifts

    def _correct(self, key: str, limit: Limit, counter: int, ledger: int) -> Drift:
        corrected = self.governor.counters.compare_and_set(key, counter, ledger)
        return Drift(key, limit.id, from_units(limit.metric, counter), from_units(limit.metric, ledger), corrected)

    def threshold_crossings(self, *, since: datetime | None = None, limit_id: str | None = None) -> list[Crossing]:
        """Budget thresholds crossed (and limits first exceeded), for alerting."""
        return self.store.control.crossings(since=since, limit_id=limit_id)
