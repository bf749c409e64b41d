"""Circuit breakers: an emergency stop for a scope (or everything), set by an admin or an alert rule.

A breaker is active from ``since`` until ``cooldown_until`` (exclusive); without ``cooldown_until`` it
stays active until it is removed. While any active breaker's scope matches a request, the decision is
EMERGENCY_STOP, whatever the budgets say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from spendgate.budgets._check import BudgetConfigError, check_aware, check_enum, check_keys, check_text, iso
from spendgate.budgets._scope import RequestContext, Scope, as_scope

__all__ = ["BreakerSource", "CircuitBreaker", "EmergencyState", "active_breakers"]

_FIELDS = ("scope", "reason", "set_by", "since", "cooldown_until")


class BreakerSource(StrEnum):
    """Who tripped a breaker: a person (``admin``) or an automatic rule (``rule``)."""

    ADMIN = "admin"
    RULE = "rule"


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBreaker:
    """Stop every request matching ``scope`` (global: all of them) from ``since`` until ``cooldown_until``."""

    scope: Scope
    reason: str
    set_by: BreakerSource
    since: datetime
    cooldown_until: datetime | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        object.__setattr__(self, "scope", as_scope(self.scope))
        check_text("reason", self.reason, max_length=1000)
        put(self, "set_by", check_enum("set_by", BreakerSource, self.set_by))
        put(self, "since", check_aware("since", self.since))
        if self.cooldown_until is not None:
            put(self, "cooldown_until", check_aware("cooldown_until", self.cooldown_until))
            if self.cooldown_until <= self.since:
                raise BudgetConfigError("cooldown_until", "must be after since")

    def active_at(self, now: datetime) -> bool:
        """True from ``since`` until ``cooldown_until`` (open-ended without one)."""
        return self.since <= now and (self.cooldown_until is None or now < self.cooldown_until)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict that :meth:`from_dict` reads back."""
        return {
            "scope": str(self.scope),
            "reason": self.reason,
            "set_by": self.set_by.value,
            "since": iso(self.since),
            "cooldown_until": iso(self.cooldown_until) if self.cooldown_until else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CircuitBreaker:
        """Build from :meth:`to_dict` output; unknown keys are refused naming the key."""
        data = check_keys("circuit breaker", data, _FIELDS)
        for required in ("scope", "reason", "set_by", "since"):
            if data.get(required) is None:
                raise BudgetConfigError(required, "is required")
        return cls(**{k: v for k, v in data.items() if v is not None})


def active_breakers(breakers: Iterable[CircuitBreaker], ctx: RequestContext, now: datetime) -> list[CircuitBreaker]:
    """The breakers active at ``now`` whose scope matches ``ctx``, global ones first."""
    now = check_aware("now", now)
    hits = [b for b in breakers if b.active_at(now) and b.scope.matches(ctx)]
    return sorted(hits, key=lambda b: (len(b.scope), b.since))


@dataclass(frozen=True, slots=True)
class EmergencyState:
    """The circuit breakers currently configured (active or cooling down)."""

    breakers: tuple[CircuitBreaker, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "breakers", tuple(self.breakers))

    def active(self, ctx: RequestContext, now: datetime) -> list[CircuitBreaker]:
        """See :func:`active_breakers`."""
        return active_breakers(self.breakers, ctx, now)

    def to_dict(self) -> dict[str, Any]:
        """``{"breakers": [...]}``."""
        return {"breakers": [b.to_dict() for b in self.breakers]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmergencyState:
        """Build from :meth:`to_dict` output."""
        data = check_keys("emergency state", data, ("breakers",))
        return cls(tuple(CircuitBreaker.from_dict(item) for item in data.get("breakers", ())))
