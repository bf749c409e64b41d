"""`Limit`: one budget (scope, metric, period, amount) and the threshold arithmetic on it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from spendgate.budgets._check import (
    BudgetConfigError,
    check_aware,
    check_bool,
    check_decimal,
    check_enum,
    check_int,
    check_keys,
    check_text,
    check_zone,
    iso,
)
from spendgate.budgets._enums import Level, Metric, Period
from spendgate.budgets._scope import Scope, as_scope
from spendgate.budgets._windows import Window, window

__all__ = ["DEFAULT_THRESHOLDS", "Limit", "crossed_thresholds", "utilization"]

#: Alert thresholds of a limit unless set: 50 %, 80 % and 95 % of its amount.
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.8, 0.95)

_FIELDS = (
    "id",
    "scope",
    "metric",
    "period",
    "amount",
    "level",
    "thresholds",
    "timezone",
    "rolling_seconds",
    "tier",
    "enabled",
    "created_at",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """A budget: at most ``amount`` of ``metric`` per ``period`` for requests matching ``scope``.

    ``amount`` is Decimal USD for ``cost`` and a whole number for tokens and requests. ``level`` says
    what happens when it runs out (``hard`` blocks, ``soft`` warns, ``adaptive`` follows the tier
    policy). ``thresholds`` are alert fractions. ``timezone`` places calendar periods; ``rolling_seconds``
    sizes a rolling window. ``tier`` is set on a tier's default limits. ``id`` defaults to a stable
    text built from scope, metric, period, time zone and tier, e.g. ``"user:alice|cost|day|UTC"``.

    Invalid values raise :class:`BudgetConfigError` naming the field.
    """

    scope: Scope
    metric: Metric
    period: Period
    amount: Decimal
    level: Level = Level.HARD
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    timezone: str = "UTC"
    rolling_seconds: int | None = None
    tier: str | None = None
    enabled: bool = True
    created_at: datetime | None = None
    id: str = field(default="")

    def __post_init__(self) -> None:
        put = object.__setattr__
        object.__setattr__(self, "scope", as_scope(self.scope))
        put(self, "metric", check_enum("metric", Metric, self.metric))
        put(self, "period", check_enum("period", Period, self.period))
        put(self, "level", check_enum("level", Level, self.level))
        put(self, "amount", check_decimal("amount", self.amount, integral=self.metric.integral))
        put(self, "thresholds", _check_thresholds(self.thresholds))
        check_zone(self.timezone)
        if self.period is Period.ROLLING:
            check_int("rolling_seconds", self.rolling_seconds, low=1, high=366 * 86400)
        elif self.rolling_seconds is not None:
            raise BudgetConfigError("rolling_seconds", f"only applies to rolling limits, not to {self.period.value}")
        if self.tier is not None:
            check_text("tier", self.tier, max_length=64)
        check_bool("enabled", self.enabled)
        if self.created_at is not None:
            put(self, "created_at", check_aware("created_at", self.created_at))
        put(self, "id", check_text("id", self.id, max_length=512) if self.id else self.default_id())

    def default_id(self) -> str:
        """The id this limit gets when none is given: same scope, metric, period, zone and tier → same id."""
        period = f"rolling:{self.rolling_seconds}s" if self.period is Period.ROLLING else self.period.value
        text = f"{self.scope}|{self.metric.value}|{period}|{self.timezone}"
        return f"{text}|tier:{self.tier}" if self.tier else text

    @property
    def per_request(self) -> bool:
        """True for a per-request cap (no window: the worst case of one request must fit)."""
        return self.period is Period.REQUEST

    def window_at(self, now: datetime) -> Window | None:
        """The window this limit counts in at ``now``; ``None`` for a per-request limit."""
        if self.per_request:
            return None
        return window(self.period, now, self.timezone, self.rolling_seconds)

    def describe(self) -> str:
        """Short human label: ``"user:alice cost/day"``, ``"global requests/rolling 60s"``."""
        period = f"rolling {self.rolling_seconds}s" if self.period is Period.ROLLING else self.period.value
        return f"{self.scope} {self.metric.value}/{period}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (amount as a string, times as ISO 8601 ``Z``) that :meth:`from_dict` reads back."""
        return {
            "id": self.id,
            "scope": str(self.scope),
            "metric": self.metric.value,
            "period": self.period.value,
            "amount": str(self.amount),
            "level": self.level.value,
            "thresholds": list(self.thresholds),
            "timezone": self.timezone,
            "rolling_seconds": self.rolling_seconds,
            "tier": self.tier,
            "enabled": self.enabled,
            "created_at": iso(self.created_at) if self.created_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limit:
        """Build from :meth:`to_dict` output (missing keys take their defaults; unknown keys are refused)."""
        data = check_keys("limit", data, _FIELDS)
        for required in ("scope", "metric", "period", "amount"):
            if data.get(required) is None:
                raise BudgetConfigError(required, "is required")
        values = {k: v for k, v in data.items() if v is not None}
        return cls(scope=as_scope(values.pop("scope")), **values)


def _check_thresholds(value: object) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise BudgetConfigError("thresholds", f"must be a list of fractions, got {value!r}")
    out: list[float] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float, Decimal, str)):
            raise BudgetConfigError("thresholds", f"must hold numbers, got {item!r}")
        try:
            number = float(item)
        except ValueError:
            raise BudgetConfigError("thresholds", f"is not a number: {item!r}") from None
        if not 0 < number <= 10:
            raise BudgetConfigError("thresholds", f"each must be above 0 and at most 10 (1 = 100%), got {item!r}")
        out.append(number)
    if len(set(out)) != len(out):
        raise BudgetConfigError("thresholds", f"must not repeat a value, got {out}")
    return tuple(sorted(out))


def utilization(used: Decimal, amount: Decimal) -> Decimal:
    """``used / amount`` as a Decimal fraction; with a zero amount, 0 for no use and ``Infinity`` for any use."""
    if amount > 0:
        return used / amount
    return Decimal(0) if used <= 0 else Decimal("Infinity")


def crossed_thresholds(limit: Limit, before: Decimal, after: Decimal, *, amount: Decimal | None = None) -> list[float]:
    """The thresholds of ``limit`` that a change of usage from ``before`` to ``after`` crossed upwards.

    A threshold ``t`` is crossed when ``before < t * amount <= after``. ``amount`` defaults to the
    limit's own; pass the effective amount (with grants) to alert on that instead. Falling usage
    (a release or a refund) crosses nothing.
    """
    if after <= before:
        return []
    base = limit.amount if amount is None else amount
    low, high = utilization(before, base), utilization(after, base)
    return [t for t in limit.thresholds if low < _fraction(t) <= high]


@lru_cache(maxsize=1024)
def _fraction(threshold: float) -> Decimal:
    return Decimal(str(threshold))
