"""Human explanations of limit checks: ``"user:alice cost/day limit $1.00: spent $0.98 + ... ; resets ..."``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from spendgate.budgets._check import iso
from spendgate.budgets._downgrade import ModelRef
from spendgate.budgets._enums import Action, Metric, Verdict
from spendgate.budgets._estimate import LimitState
from spendgate.budgets._tiers import TierPolicy

__all__ = ["explain", "fmt_amount", "fmt_pct"]

_CENT = Decimal("0.01")


def fmt_amount(metric: Metric, value: Decimal) -> str:
    """``$1.00``, ``$0.000125``, ``12,000 tokens``, ``3 requests``."""
    if metric is Metric.COST:
        if value == value.quantize(_CENT):
            return f"${value:,.2f}"
        return f"${value.normalize():,f}"
    unit = "requests" if metric is Metric.REQUESTS else "tokens"
    return f"{int(value):,} {unit}"


def fmt_pct(fraction: Decimal) -> str:
    """``0.925`` → ``"92.5%"``; an infinite fraction (a zero limit) → ``"∞%"``."""
    if not fraction.is_finite():
        return "∞%"
    pct = (fraction * 100).quantize(Decimal("0.1"))
    return f"{pct.normalize():f}%" if pct == pct.to_integral_value() else f"{pct:f}%"


def explain(
    state: LimitState,
    request: Decimal,
    verdict: Verdict,
    action: Action,
    policy: TierPolicy,
    now: datetime,
    alternative: ModelRef | None,
) -> str:
    """One sentence on what ``state``'s limit made of a request of worst case ``request``."""
    limit = state.limit
    metric = limit.metric
    amount = state.amount
    text = f"{limit.describe()} limit {fmt_amount(metric, amount)}"
    if amount != limit.amount:
        text += f" (with grants of {fmt_amount(metric, amount - limit.amount)})"
    if limit.per_request:
        text += f": this request ≤ {fmt_amount(metric, request)}"
        projected = request
    else:
        text += (
            f": spent {fmt_amount(metric, state.spent)} + reserved {fmt_amount(metric, state.reserved)}"
            f" + this request ≤ {fmt_amount(metric, request)}"
        )
        projected = state.used + request
    text += " " + _outcome(state, projected, verdict, policy, now)
    text += _consequence(action, verdict, alternative)
    window = state.window
    if window is not None:
        text += f"; resets {iso(window.resets_at(now))}"
    return text


def _outcome(state: LimitState, projected: Decimal, verdict: Verdict, policy: TierPolicy, now: datetime) -> str:
    amount = state.amount
    pct = fmt_pct(projected / amount) if amount > 0 else ("0%" if projected <= 0 else "∞%")
    tier = policy.name
    if verdict is Verdict.FITS:
        return f"fits ({pct} of it)"
    if verdict is Verdict.OVER:
        return "would exceed it"
    if verdict is Verdict.SOFT_OVER:
        return "would exceed it (a soft limit: allowed with a warning)"
    if verdict in (Verdict.WARNING, Verdict.THROTTLE, Verdict.DOWNGRADE):
        band: Decimal = getattr(policy, verdict.value)
        return f"would use {pct} of it, past the {tier} tier's {verdict.value} level of {fmt_pct(band)}"
    over = "would exceed it" if policy.hard_limit == 1 else f"would exceed its {fmt_pct(policy.hard_limit)} hard limit"
    overage = fmt_amount(state.limit.metric, policy.max_overage)
    if verdict is Verdict.GRACE:
        start = state.first_exceeded_at or now
        return (
            f"{over}; allowed in the {tier} tier's grace period (until {iso(start + policy.grace_period)})"
            f" up to an overage of {overage}"
        )
    if policy.grace_period.total_seconds() <= 0:
        return f"{over} and the {tier} tier has no grace period"
    if projected > policy.hard_limit * amount + policy.max_overage:
        return f"{over} by more than the {tier} tier's overage allowance of {overage}"
    start = state.first_exceeded_at or now
    return f"{over} and the {tier} tier's grace period ended at {iso(start + policy.grace_period)}"


def _consequence(action: Action, verdict: Verdict, alternative: ModelRef | None) -> str:
    if action is Action.DOWNGRADE and alternative is not None:
        return f"; downgrading to {alternative}"
    if action is Action.THROTTLE and verdict is Verdict.DOWNGRADE:
        return "; no cheaper model fits, so slowing down instead"
    if action is Action.QUEUE:
        return "; queued for later"
    if action is Action.CACHE_ONLY:
        return "; answering from cache only"
    return ""
