"""Rate limits: requests and tokens per minute (sliding windows) and concurrent calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from spendgate.budgets import (
    Action,
    Decision,
    RequestContext,
    RequestEstimate,
)
from spendgate.meter._authorization import Authorization, RateHold
from spendgate.meter._gov_reserve import Reservations
from spendgate.meter._policy import (
    Policy,
)

__all__ = ["RateLimiting"]


class RateLimiting(Reservations):
    """Requests and tokens per minute, concurrent calls."""

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
