"""Value types for reading the ledger: filters, summaries and rollup rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, get_args

from spendgate.errors import InvalidUsageError
from spendgate.ledger._event import TEXT_LIMITS
from spendgate.ledger._validate import check_aware, check_bool, check_optional_text

__all__ = ["DIMENSIONS", "TEXT_FILTERS", "Dimension", "EventFilter", "Granularity", "RollupRow", "UsageSummary"]

#: A column :meth:`UsageStore.totals_by` can group by.
Dimension = Literal["user_id", "team_id", "api_key_id", "provider", "model", "request_type", "session_id"]
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)

#: Rollup bucket sizes (UTC hours and UTC days).
Granularity = Literal["hour", "day"]

#: The string fields of :class:`EventFilter`, each matched by equality.
TEXT_FILTERS = ("user_id", "team_id", "api_key_id", "session_id", "provider", "model", "request_type", "currency")


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """Which events a query covers; every field set narrows it (they combine with AND).

    The time window is half-open: ``since <= timestamp < until``. ``model`` is the requested model.
    ``priced`` selects events with (True) or without (False) a cost.
    """

    since: datetime | None = None
    until: datetime | None = None
    user_id: str | None = None
    team_id: str | None = None
    api_key_id: str | None = None
    session_id: str | None = None
    provider: str | None = None
    model: str | None = None
    request_type: str | None = None
    currency: str | None = None
    success: bool | None = None
    priced: bool | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_aware(name, getattr(self, name)))
        for name in TEXT_FILTERS:
            check_optional_text(name, getattr(self, name), TEXT_LIMITS.get(name, 3))
        for name in ("success", "priced"):
            if getattr(self, name) is not None:
                check_bool(name, getattr(self, name))
        if self.since is not None and self.until is not None and self.until < self.since:
            raise InvalidUsageError("until", f"must not be before since ({self.since}), got {self.until}")


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageSummary:
    """Totals over a set of events.

    ``cost`` sums priced events only; ``unpriced_requests`` counts the others. ``currency`` is the
    currency of the priced events (``None`` when there are none). ``estimated_requests`` counts
    events whose cost or tokens were estimated. ``avg_latency_ms`` averages the events that
    reported a latency.
    """

    requests: int = 0
    successes: int = 0
    failures: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = Decimal(0)
    currency: str | None = None
    unpriced_requests: int = 0
    estimated_requests: int = 0
    cached_requests: int = 0
    avg_latency_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RollupRow:
    """One pre-aggregated bucket: the sums of the events of one UTC hour or day and one key.

    Unset dimensions (no user, team or key) are ``""`` in rollups.
    """

    granularity: Granularity
    bucket_start: datetime
    user_id: str
    team_id: str
    api_key_id: str
    provider: str
    model: str
    currency: str
    requests: int
    successes: int
    failures: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: Decimal
    unpriced_requests: int
    estimated_requests: int
    latency_ms_sum: int
    latency_requests: int
    cached_requests: int
