"""The quiet ALLOW: the cheap test that :func:`~spendgate.budgets.decide` would let a request through plainly.

Most requests are nowhere near a limit. For them :func:`decide` builds a :class:`LimitCheck` per limit
only to answer ALLOW; the request path asks :class:`QuietTest` first and, when it says yes, answers
with a :meth:`Decision.deferred` that runs the full decision only if someone reads its figures.

A limit is *quiet* when its check would be FITS / ALLOW: the request's worst case fits its amount
(hard, soft and per-request limits), and for an adaptive windowed limit it also stays within the
tier's hard limit and below its warning fraction, hence below throttle and downgrade too. The request
is quiet when at least one limit applies and every applicable one is quiet; the same filter as
:func:`decide` picks the applicable limits (here, and there through :func:`applies`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from spendgate.budgets._enums import Level, Metric
from spendgate.budgets._estimate import RequestEstimate
from spendgate.budgets._limit import Limit, utilization
from spendgate.budgets._scope import RequestContext
from spendgate.budgets._tiers import TierPolicy, TierTable

__all__ = ["QuietTest", "allows_quietly", "applies", "governing"]


def _shape(limit: Limit) -> tuple[object, ...]:
    return (limit.scope, limit.metric, limit.period, limit.rolling_seconds)


def applies(limits: Sequence[Limit], ctx: RequestContext, tier: str) -> list[bool]:
    """Which of ``limits`` apply to ``ctx`` from tier ``tier``: enabled, matching, tier defaults not shadowed."""
    hits = [limit.enabled and limit.tier in (None, tier) and limit.scope.matches(ctx) for limit in limits]
    if not any(hit and limit.tier is not None for limit, hit in zip(limits, hits, strict=True)):
        return hits  # no tier default among them: nothing to shadow
    explicit = {_shape(limit) for limit, hit in zip(limits, hits, strict=True) if hit and limit.tier is None}
    return [
        hit and (limit.tier is None or _shape(limit) not in explicit) for limit, hit in zip(limits, hits, strict=True)
    ]


def governing(table: TierTable, tier: TierPolicy, limit: Limit) -> TierPolicy:
    """The tier policy of an adaptive limit: its own tier's, else the requester's (``tier``)."""
    if limit.tier is not None and limit.tier in table.tiers:
        return table.tiers[limit.tier]
    return tier


_COST = Metric.COST  # an enum class's attribute lookup is slow (~0.3 µs) on the request path
_Test = tuple[int, Metric, Decimal, TierPolicy | None, Decimal]


@dataclass(frozen=True, slots=True)
class QuietTest:
    """The quiet test for one request context and its limits, prepared once (see the module doc).

    ``tests`` holds, per applicable limit, its index in the prepared ``limits``, its metric, its
    amount (with grants), and for an adaptive windowed limit its tier policy and ceiling (the tier's
    hard limit times the amount).
    """

    tests: tuple[_Test, ...]

    @classmethod
    def prepare(
        cls, ctx: RequestContext, limits: Sequence[Limit], amounts: Sequence[Decimal], table: TierTable
    ) -> QuietTest:
        """The test for requests from ``ctx`` under ``limits``, whose amounts (with grants) are ``amounts``."""
        tier = table.policy_for(ctx.tier)
        tests: list[_Test] = []
        for i, (limit, amount, hit) in enumerate(zip(limits, amounts, applies(limits, ctx, tier.name), strict=True)):
            if hit:
                if limit.level is Level.ADAPTIVE and not limit.per_request:
                    policy = governing(table, tier, limit)
                    tests.append((i, limit.metric, amount, policy, policy.hard_limit * amount))
                else:
                    tests.append((i, limit.metric, amount, None, amount))
        return cls(tuple(tests))

    def allows(self, request: RequestEstimate, used: Sequence[Decimal]) -> bool:
        """True when :func:`decide` would answer a plain ALLOW for ``request``.

        ``used[i]`` is what :attr:`LimitState.used` reports for the i-th limit: spent + reserved, 0 for
        a per-request limit.
        """
        if not self.tests:
            return False  # no limit applies: decide() answers ALLOW with a note saying so
        for i, metric, amount, policy, ceiling in self.tests:
            projected = used[i] + (request.cost if metric is _COST else request.amount(metric))
            if projected > ceiling:
                return False
            if policy is not None and utilization(projected, amount) >= policy.warning:
                return False
        return True


def allows_quietly(
    *,
    ctx: RequestContext,
    request: RequestEstimate,
    limits: Sequence[Limit],
    used: Sequence[Decimal],
    amounts: Sequence[Decimal],
    policy: TierTable,
) -> bool:
    """True when :func:`decide` would answer a plain ALLOW: limits apply, and each fits with room to spare.

    ``limits[i]`` has ``used[i]`` (spent + reserved, what :attr:`LimitState.used` reports) and
    ``amounts[i]`` (with grants). Circuit breakers are not looked at: ask only when none is configured.
    To ask many times for one context, prepare a :class:`QuietTest` once instead.
    """
    return QuietTest.prepare(ctx, limits, amounts, policy).allows(request, used)
