"""Settle and release: holds replaced by what calls used; thresholds crossed; breaker rules tripped."""

from __future__ import annotations

import logging
import math
from bisect import bisect_left
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from spendgate.budgets import (
    BreakerSource,
    CircuitBreaker,
    Limit,
    Metric,
    Window,
    crossed_thresholds,
)
from spendgate.counters import (
    INT64_MAX,
    MAX_RATE_AMOUNT,
    CommitResult,
    with_init,
)
from spendgate.counters._abstract import checks_only
from spendgate.meter._authorization import Authorization, Hold, actual_amount, from_units, to_units
from spendgate.meter._gov_rates import RateLimiting
from spendgate.usage import Usage

__all__ = ["Settlement"]


log = logging.getLogger("spendgate.budgets")
_COST = Metric.COST  # an enum class's attribute lookup is slow (~0.3 µs) on the request path
_REQUESTS = Metric.REQUESTS
_COST_HOLDS_MAX = 4_096  # hold tuples whose keys are remembered (forgotten all at once beyond it)
_WINDOW_ENDS_MAX = 65_536  # counter keys whose window ends are remembered (forgotten all at once beyond it)


class Settlement(RateLimiting):
    """Settling and releasing calls; threshold crossings and breaker rules."""

    # -- settle and release -------------------------------------------------------------------------

    def commit(self, auth: Authorization, usage: Usage, cost: Decimal | None, *, release: bool) -> bool:
        """Replace the holds with what the call used (all of it: settle; partial usage: release).

        Idempotent: the counter store remembers the reservation id, so a second settle or release of the
        same call changes nothing (rolling windows and rate limits included). Returns whether it was
        settled before.
        """
        now = self.clock.now()
        ts = now.timestamp()
        # A released call that used nothing costs nothing and used no tokens, but it was a request (its event
        # is in the ledger, which counters are rebuilt and reconciled from).
        consumed = not (release and usage == Usage())
        cost_units = None if cost is None or not consumed else to_units(_COST, cost)
        keys = None if cost_units is None else self._cost_keys(auth.holds)
        used: dict[str, int]
        actual: dict[str, int]
        if keys is not None and cost_units is not None:  # the usual case: the cost, converted once, on every counter
            used = actual = dict.fromkeys(keys, cost_units)
        else:
            used, actual = {}, {}
            for hold in auth.holds:
                metric = hold.limit.metric
                if cost_units is not None and metric is _COST:
                    amount = cost_units
                else:
                    amount = actual_amount(metric, usage, cost, hold.amount) if consumed or metric is _REQUESTS else 0
                used[hold.key] = amount
                if hold.rolling_seconds is None:
                    actual[hold.key] = amount
        late = self._late_holds(auth, ts)
        if late:  # the call outlived the window it was held in: its use counts where its event falls
            actual = dict(actual)
            moved = {hold: actual[hold.key] for hold in late}
            actual.update(dict.fromkeys((hold.key for hold in late), 0))
        op = self._committer(auth, release, keys is not None and cost_units is not None and cost_units <= INT64_MAX)
        result = op(auth.reservation_id, actual, now=ts)
        if result.needs_init:
            result = self._reloaded(auth, op, actual, result, now)
        if result.already:
            return True
        if late:
            self._count_late(auth, moved, now)
        if keys is not None and not auth.rate_holds:  # no rolling window, no rate limit: only counters to look at
            self._crossings(auth, used, result.spent, now)
            return False
        after: dict[str, int] = {}
        for hold in auth.holds:
            if hold.rolling_seconds is not None:
                seconds = float(hold.rolling_seconds)
                self.counters.rate_adjust(
                    hold.key, used[hold.key] - hold.amount, seconds, now=ts, entry_id=hold.entry_id
                )
                after[hold.key] = self.counters.rate_acquire(hold.key, 0, MAX_RATE_AMOUNT, seconds, now=ts).used
        if auth.rate_holds:
            self._free_rates(auth.rate_holds, now, used_tokens=usage.total_tokens)
        after.update(result.spent)  # the keys this call added to (nothing added crosses nothing)
        self._crossings(auth, used, after, now)
        return False

    def _reloaded(
        self,
        auth: Authorization,
        op: Callable[..., CommitResult],
        actual: dict[str, int],
        result: CommitResult,
        now: datetime,
    ) -> CommitResult:
        """A commit retried after a counter expired (or Redis lost it) since the hold: reloaded from the ledger."""
        ts = now.timestamp()
        pairs: dict[str, tuple[Limit, Window]] = {}
        for hold in auth.holds:
            if hold.rolling_seconds is None:
                window = hold.limit.window_at(auth.authorized_at or now)
                assert window is not None
                pairs[hold.key] = (hold.limit, window)
        expiries = self._expiries(pairs)
        lapsed = {key for key in result.needs_init if expiries.get(key, math.inf) <= ts}
        if lapsed:  # windows that ended before this settle: no live counter is left to correct
            actual = {key: amount for key, amount in actual.items() if key not in lapsed}
            result = op(auth.reservation_id, actual, now=ts)
        if result.needs_init:
            result = with_init(
                self.counters,
                lambda: op(auth.reservation_id, actual, now=ts),
                self._loader(pairs),
                expire_at=expiries,
                first=result,
            )
        return result

    def _late_holds(self, auth: Authorization, ts: float) -> list[Hold]:
        """The calendar-window holds of ``auth`` whose window ended before ``ts`` (usually none: one dict
        lookup per hold, the windows' ends remembered by counter key)."""
        ends = self._window_ends
        late: list[Hold] = []
        for hold in auth.holds:
            end = ends.get(hold.key)
            if end is None:
                window = None
                if hold.rolling_seconds is None and auth.authorized_at is not None:
                    window = hold.limit.window_at(auth.authorized_at)
                end = math.inf if window is None else window.end.timestamp()
                if len(ends) >= _WINDOW_ENDS_MAX:
                    ends.clear()
                ends[hold.key] = end
            if end <= ts:
                late.append(hold)
        return late

    def _count_late(self, auth: Authorization, moved: Mapping[Hold, int], now: datetime) -> None:
        """Add what late holds' calls used to the windows they were settled in (where the ledger has them).

        A commit of its own (``<reservation id>/late``, idempotent) on the current windows' counters, which
        start from the ledger when cold: the event is written after this, so it is not counted twice.
        """
        pairs: dict[str, tuple[Limit, Window]] = {}
        amounts: dict[str, int] = {}
        for hold, amount in moved.items():
            window = hold.limit.window_at(now)
            if window is None or not amount:
                continue
            key = self.key(hold.limit, window)
            pairs[key] = (hold.limit, window)
            amounts[key] = amounts.get(key, 0) + amount
        if not amounts:
            return
        ts = now.timestamp()
        reservation_id = f"{auth.reservation_id}/late"

        def add() -> CommitResult:
            return self.counters.commit(reservation_id, amounts, now=ts)

        result = add()
        if result.needs_init:
            with_init(self.counters, add, self._loader(pairs), expire_at=self._expiries(pairs), first=result)

    def _committer(self, auth: Authorization, release: bool, plain: bool) -> Callable[..., CommitResult]:
        """The counters' ``release`` or ``commit``; their primitive when the amounts are ``plain`` (ints in range).

        The keys are the holds' and the amounts ints: what the checks would let through, so they are skipped.
        """
        name = "release" if release else "commit"
        direct = checks_only(self.counters, name) if plain and type(auth.reservation_id) is str else None
        if direct is not None and auth.reservation_id:
            return direct._settle
        return self.counters.release if release else self.counters.commit

    def _cost_keys(self, holds: tuple[Hold, ...]) -> tuple[str, ...] | None:
        """The counter keys of ``holds`` when each is a windowed cost limit's (the usual case), else None.

        Remembered by the tuple itself: the quiet path shares one tuple between the calls of one shape.
        """
        known = self._cost_holds.get(id(holds))
        if known is not None and known[0] is holds:
            return known[1]
        windowed_cost = all(hold.limit.metric is _COST and hold.rolling_seconds is None for hold in holds)
        keys = tuple(hold.key for hold in holds) if holds and windowed_cost else None
        self._remember_cost_keys(holds, keys)
        return keys

    def _remember_cost_keys(self, holds: tuple[Hold, ...], keys: tuple[str, ...] | None) -> None:
        if len(self._cost_holds) >= _COST_HOLDS_MAX:
            self._cost_holds = {}
        self._cost_holds[id(holds)] = (holds, keys)

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
        rules = self.policy.get(now).rules
        for hold in auth.holds:
            units = after.get(hold.key)
            if units is None:
                continue
            bounds = hold.bounds
            if bounds is not None and not (rules and hold.limit.id in rules):
                lows, highs = bounds  # may_cross(bounds, before, after), inline: it runs for every hold
                i = bisect_left(highs, units - used[hold.key])
                if i >= len(lows) or lows[i] > units:
                    continue  # surely no threshold between the figures before and after: skip the exact test
            metric = hold.limit.metric
            after_value = from_units(metric, after[hold.key])
            before = after_value - from_units(metric, used[hold.key])
            cooldown = rules.get(hold.limit.id)
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
