"""Grants: top-ups that raise one limit for a while, once or on every day/week/month.

How a grant counts, precisely. Its *active span* is ``[starts_at, expires_at)`` (no ``expires_at``:
open-ended). The *elapsed part* of the limit's current window is ``[window.start, now]`` (for a rolling
window ``[now - rolling_seconds, now]``, for a per-request limit just ``now``).

* ``recurring="none"`` (one-off): adds ``amount`` to every window whose elapsed part overlaps the active
  span. A one-off $5 grant from 10 to 20 March raises a monthly limit by $5 for March (from the 10th
  on, and for the rest of March even after it expires); on a daily limit it adds $5 to each day from
  the 10th to the 19th. A window that starts after it expires never sees it.
* ``recurring="day" | "week" | "month"``: adds ``amount`` once for every calendar day/week/month (in the
  limit's time zone) that overlaps both the active span and the elapsed part of the window. So a monthly
  grant on a monthly limit adds its amount to every month until it expires; a daily $1 grant on a
  monthly limit accrues $1 per day of the month so far; a monthly grant on a daily limit adds its
  amount to each day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from spendgate.budgets._check import (
    BudgetConfigError,
    check_aware,
    check_decimal,
    check_enum,
    check_keys,
    check_text,
    iso,
)
from spendgate.budgets._enums import Period
from spendgate.budgets._limit import Limit
from spendgate.budgets._windows import window

__all__ = ["Grant", "Recurrence", "effective_amount", "grant_contribution"]

_FIELDS = ("id", "limit_id", "amount", "starts_at", "expires_at", "recurring", "reason", "created_by")


class Recurrence(StrEnum):
    """How often a grant refreshes: never (``none``), or every calendar day, week or month."""

    NONE = "none"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """A top-up of ``amount`` (in the limit's metric) on the limit ``limit_id``; see the module doc."""

    id: str
    limit_id: str
    amount: Decimal
    starts_at: datetime
    expires_at: datetime | None = None
    recurring: Recurrence = Recurrence.NONE
    reason: str = ""
    created_by: str = ""

    def __post_init__(self) -> None:
        put = object.__setattr__
        check_text("id", self.id, max_length=128)
        check_text("limit_id", self.limit_id, max_length=512)
        put(self, "amount", check_decimal("amount", self.amount))
        put(self, "starts_at", check_aware("starts_at", self.starts_at))
        if self.expires_at is not None:
            put(self, "expires_at", check_aware("expires_at", self.expires_at))
            if self.expires_at <= self.starts_at:
                raise BudgetConfigError("expires_at", "must be after starts_at")
        put(self, "recurring", check_enum("recurring", Recurrence, self.recurring))
        for name in ("reason", "created_by"):
            if not isinstance(getattr(self, name), str):
                raise BudgetConfigError(name, "must be a string")

    def active_at(self, moment: datetime) -> bool:
        """True while ``starts_at <= moment < expires_at``."""
        return self.starts_at <= moment and (self.expires_at is None or moment < self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict that :meth:`from_dict` reads back."""
        return {
            "id": self.id,
            "limit_id": self.limit_id,
            "amount": str(self.amount),
            "starts_at": iso(self.starts_at),
            "expires_at": iso(self.expires_at) if self.expires_at else None,
            "recurring": self.recurring.value,
            "reason": self.reason,
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grant:
        """Build from :meth:`to_dict` output; unknown keys are refused naming the key."""
        data = check_keys("grant", data, _FIELDS)
        for required in ("id", "limit_id", "amount", "starts_at"):
            if data.get(required) is None:
                raise BudgetConfigError(required, "is required")
        return cls(**{k: v for k, v in data.items() if v is not None})


def grant_contribution(limit: Limit, grant: Grant, now: datetime) -> Decimal:
    """How much ``grant`` adds to ``limit`` in the window containing ``now`` (0 for another limit's grant)."""
    if grant.limit_id != limit.id:
        return Decimal(0)
    now = check_aware("now", now)
    current = limit.window_at(now)
    elapsed_start = current.start if current is not None else now
    low = max(elapsed_start, grant.starts_at)
    if grant.expires_at is not None and grant.expires_at <= low:
        return Decimal(0)
    if low > now:
        return Decimal(0)
    if grant.recurring is Recurrence.NONE:
        return grant.amount
    # Count the grant's calendar periods overlapping [low, high]: high is `now` (inclusive) while the
    # grant is still active, else its expiry (exclusive).
    expires = grant.expires_at
    inclusive = expires is None or expires > now
    high = now if expires is None or expires > now else expires
    period = Period(grant.recurring.value)
    count = 1
    cursor = window(period, low, limit.timezone)
    while cursor.end < high or (inclusive and cursor.end == high):
        count += 1
        cursor = window(period, cursor.end, limit.timezone)
    return grant.amount * count


def effective_amount(limit: Limit, grants: Iterable[Grant], now: datetime) -> Decimal:
    """``limit.amount`` plus what every grant adds to the window containing ``now`` (see the module doc)."""
    return limit.amount + sum((grant_contribution(limit, g, now) for g in grants), Decimal(0))
