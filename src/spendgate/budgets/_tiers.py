"""User tiers: the percentages, grace and overage that govern adaptive limits, and each tier's default limits.

Defaults (all configurable; add tiers with :meth:`TierTable.with_tier` or :meth:`TierTable.from_dict`):

========== ======= ======== ========= ========== ===== ======= ===================================
tier       warning throttle downgrade hard limit grace overage default limits per user (cost, USD)
========== ======= ======== ========= ========== ===== ======= ===================================
free       70 %    80 %     90 %      100 %      6 h   $2      $0.50/request, $1/day, $10/month
premium    80 %    90 %     95 %      100 %      12 h  $25     $2/request, $10/day, $150/month
enterprise 90 %    95 %     98 %      105 %      24 h  $100    $10/request, $100/day, $2,000/month
========== ======= ======== ========= ========== ===== ======= ===================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from spendgate.budgets._check import (
    BudgetConfigError,
    check_decimal,
    check_enum,
    check_fraction,
    check_int,
    check_keys,
    check_text,
    check_zone,
    fmt_duration,
    parse_duration,
)
from spendgate.budgets._enums import Level, Metric, Period
from spendgate.budgets._limit import Limit
from spendgate.budgets._scope import DIMENSIONS, RequestContext, Scope

__all__ = ["TierLimit", "TierPolicy", "TierTable"]

_LIMIT_FIELDS = ("metric", "period", "amount", "per", "timezone", "rolling_seconds", "level")
_POLICY_FIELDS = ("name", "warning", "throttle", "downgrade", "hard_limit", "grace_period", "max_overage", "limits")


@dataclass(frozen=True, slots=True, kw_only=True)
class TierLimit:
    """A default limit each member of a tier gets: one per ``per`` id (per user unless said otherwise)."""

    metric: Metric
    period: Period
    amount: Decimal
    per: str = "user"
    timezone: str = "UTC"
    rolling_seconds: int | None = None
    level: Level = Level.ADAPTIVE

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "metric", check_enum("metric", Metric, self.metric))
        put(self, "period", check_enum("period", Period, self.period))
        put(self, "level", check_enum("level", Level, self.level))
        put(self, "amount", check_decimal("amount", self.amount, integral=self.metric.integral))
        per = {"api_key": "key"}.get(self.per, self.per)
        if per not in DIMENSIONS:
            raise BudgetConfigError("per", f"must be one of {', '.join(DIMENSIONS)}, got {self.per!r}")
        put(self, "per", per)
        check_zone(self.timezone)
        if self.rolling_seconds is not None:
            check_int("rolling_seconds", self.rolling_seconds, low=1, high=366 * 86400)

    def for_context(self, ctx: RequestContext, tier: str) -> Limit | None:
        """This default as a concrete :class:`Limit` for the requester in ``ctx`` (None without a ``per`` id)."""
        owner = ctx.dimension(self.per)
        if owner is None:
            return None
        return Limit(
            scope=Scope({self.per: owner}),
            metric=self.metric,
            period=self.period,
            amount=self.amount,
            level=self.level,
            timezone=self.timezone,
            rolling_seconds=self.rolling_seconds,
            tier=tier,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict; :meth:`from_dict` reads it back."""
        out: dict[str, Any] = {"metric": self.metric.value, "period": self.period.value, "amount": str(self.amount)}
        if self.per != "user":
            out["per"] = self.per
        if self.timezone != "UTC":
            out["timezone"] = self.timezone
        if self.rolling_seconds is not None:
            out["rolling_seconds"] = self.rolling_seconds
        if self.level is not Level.ADAPTIVE:
            out["level"] = self.level.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TierLimit:
        """Build from a mapping with ``metric``, ``period``, ``amount`` and optional ``per``, ``timezone``, ..."""
        data = check_keys("tier limit", data, _LIMIT_FIELDS)
        for required in ("metric", "period", "amount"):
            if data.get(required) is None:
                raise BudgetConfigError(required, "is required")
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class TierPolicy:
    """How a tier's adaptive limits behave as they fill up; fractions of the (effective) limit amount.

    At or above ``warning`` a request gets WARN, ``throttle`` THROTTLE, ``downgrade`` DOWNGRADE; above
    ``hard_limit`` it is over the limit: allowed (WARN) only inside the grace period and the overage
    allowance, see docs/budgets.md. ``max_overage`` is in the limit's own unit (USD for cost limits).
    """

    name: str
    warning: Decimal
    throttle: Decimal
    downgrade: Decimal
    hard_limit: Decimal = Decimal(1)
    grace_period: timedelta = timedelta(0)
    max_overage: Decimal = Decimal(0)
    limits: tuple[TierLimit, ...] = ()

    def __post_init__(self) -> None:
        put = object.__setattr__
        check_text("name", self.name, max_length=64)
        for name in ("warning", "throttle", "downgrade", "hard_limit"):
            put(self, name, check_fraction(name, getattr(self, name)))
        if not self.warning <= self.throttle <= self.downgrade <= self.hard_limit:
            raise BudgetConfigError(
                "throttle", "tier percentages must rise: warning <= throttle <= downgrade <= hard_limit"
            )
        put(self, "grace_period", parse_duration("grace_period", self.grace_period))
        put(self, "max_overage", check_decimal("max_overage", self.max_overage))
        limits = tuple(self.limits)
        for item in limits:
            if not isinstance(item, TierLimit):
                raise BudgetConfigError("limits", f"must hold TierLimit values, got {type(item).__name__}")
        put(self, "limits", limits)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (fractions and money as strings, grace as ``"6h"``)."""
        return {
            "name": self.name,
            "warning": str(self.warning),
            "throttle": str(self.throttle),
            "downgrade": str(self.downgrade),
            "hard_limit": str(self.hard_limit),
            "grace_period": fmt_duration(self.grace_period),
            "max_overage": str(self.max_overage),
            "limits": [item.to_dict() for item in self.limits],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str | None = None) -> TierPolicy:
        """Build from a mapping; fractions may be written ``0.7`` or ``"70%"``, durations ``"6h"`` or seconds."""
        data = dict(check_keys("tier", data, _POLICY_FIELDS))
        if name is not None:
            data.setdefault("name", name)
        for required in ("name", "warning", "throttle", "downgrade"):
            if data.get(required) is None:
                raise BudgetConfigError(required, "is required")
        raw_limits = data.pop("limits", None) or []
        if not isinstance(raw_limits, Sequence) or isinstance(raw_limits, str):
            raise BudgetConfigError("limits", "must be a list of tier limits")
        return cls(limits=tuple(TierLimit.from_dict(item) for item in raw_limits), **data)


def _cost_limits(per_request: str, day: str, month: str) -> tuple[TierLimit, ...]:
    return (
        TierLimit(metric=Metric.COST, period=Period.REQUEST, amount=Decimal(per_request)),
        TierLimit(metric=Metric.COST, period=Period.DAY, amount=Decimal(day)),
        TierLimit(metric=Metric.COST, period=Period.MONTH, amount=Decimal(month)),
    )


@dataclass(frozen=True, slots=True)
class TierTable:
    """The tier policies by name, plus the tier of users who have none (``default_tier``)."""

    tiers: Mapping[str, TierPolicy] = field(hash=False)
    default_tier: str = "free"

    def __post_init__(self) -> None:
        tiers = dict(self.tiers)
        for key, policy in tiers.items():
            if not isinstance(policy, TierPolicy) or policy.name != key:
                raise BudgetConfigError("tiers", f"entry {key!r} must be a TierPolicy named {key!r}")
        if self.default_tier not in tiers:
            raise BudgetConfigError("default_tier", f"{self.default_tier!r} is not one of the tiers {sorted(tiers)}")
        object.__setattr__(self, "tiers", MappingProxyType(tiers))

    @classmethod
    def of(cls, policies: Iterable[TierPolicy], default_tier: str = "free") -> TierTable:
        """A table from policies (keyed by their names)."""
        return cls({p.name: p for p in policies}, default_tier)

    @classmethod
    def defaults(cls) -> TierTable:
        """The seed policy table (free, premium, enterprise) with the default limits in the module doc."""
        return cls.of(
            [
                TierPolicy(
                    name="free",
                    warning=Decimal("0.70"),
                    throttle=Decimal("0.80"),
                    downgrade=Decimal("0.90"),
                    hard_limit=Decimal("1.00"),
                    grace_period=timedelta(hours=6),
                    max_overage=Decimal("2.00"),
                    limits=_cost_limits("0.50", "1.00", "10.00"),
                ),
                TierPolicy(
                    name="premium",
                    warning=Decimal("0.80"),
                    throttle=Decimal("0.90"),
                    downgrade=Decimal("0.95"),
                    hard_limit=Decimal("1.00"),
                    grace_period=timedelta(hours=12),
                    max_overage=Decimal("25.00"),
                    limits=_cost_limits("2.00", "10.00", "150.00"),
                ),
                TierPolicy(
                    name="enterprise",
                    warning=Decimal("0.90"),
                    throttle=Decimal("0.95"),
                    downgrade=Decimal("0.98"),
                    hard_limit=Decimal("1.05"),
                    grace_period=timedelta(hours=24),
                    max_overage=Decimal("100.00"),
                    limits=_cost_limits("10.00", "100.00", "2000.00"),
                ),
            ]
        )

    def policy_for(self, tier: str | None) -> TierPolicy:
        """The policy of ``tier``; an unset or unknown tier gets the default tier's policy."""
        if tier is not None and tier in self.tiers:
            return self.tiers[tier]
        return self.tiers[self.default_tier]

    def with_tier(self, policy: TierPolicy) -> TierTable:
        """A copy with ``policy`` added (or replacing the tier of the same name)."""
        return TierTable({**self.tiers, policy.name: policy}, self.default_tier)

    def limits_for(self, ctx: RequestContext, explicit: Iterable[Limit] = ()) -> list[Limit]:
        """The tier's default limits as concrete limits for ``ctx``'s requester.

        A default is left out when an ``explicit`` limit (one without a tier) has the same scope,
        metric and period: a limit set for a user replaces the tier's default for that user.
        """
        policy = self.policy_for(ctx.tier)
        taken = {(lim.scope, lim.metric, lim.period, lim.rolling_seconds) for lim in explicit if lim.tier is None}
        out: list[Limit] = []
        for item in policy.limits:
            limit = item.for_context(ctx, policy.name)
            if limit is not None and (limit.scope, limit.metric, limit.period, limit.rolling_seconds) not in taken:
                out.append(limit)
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"default_tier": ..., "tiers": {name: policy dict}}``; :meth:`from_dict` reads it back."""
        return {"default_tier": self.default_tier, "tiers": {k: v.to_dict() for k, v in self.tiers.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TierTable:
        """Build from :meth:`to_dict` output; a tier's ``name`` may be left out (the key names it)."""
        data = check_keys("tier table", data, ("default_tier", "tiers"))
        tiers = data.get("tiers")
        if not isinstance(tiers, Mapping) or not tiers:
            raise BudgetConfigError("tiers", "must be a non-empty mapping of tier name to policy")
        policies = [TierPolicy.from_dict(body, name=str(key)) for key, body in tiers.items()]
        return cls.of(policies, data.get("default_tier", "free"))
