"""The closed vocabularies of budgets: what is measured, over which period, how strictly, and what to do."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Action", "Level", "Metric", "Period", "Verdict"]


class Metric(StrEnum):
    """What a limit counts. ``cost`` is Decimal USD; the others are whole numbers."""

    COST = "cost"
    INPUT_TOKENS = "input_tokens"
    OUTPUT_TOKENS = "output_tokens"
    TOTAL_TOKENS = "total_tokens"
    REQUESTS = "requests"

    @property
    def integral(self) -> bool:
        """True for counts (tokens, requests), which must be whole numbers."""
        return self is not _COST


class Period(StrEnum):
    """The window a limit is counted over.

    ``request`` caps a single request (its worst case must fit); ``hour`` … ``year`` are calendar
    windows in the limit's time zone (weeks are ISO weeks starting on Monday); ``rolling`` is a sliding
    window of ``rolling_seconds`` ending now.
    """

    REQUEST = "request"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"
    ROLLING = "rolling"


class Level(StrEnum):
    """How a limit is enforced: ``hard`` blocks, ``soft`` warns, ``adaptive`` follows the user's tier policy."""

    HARD = "hard"
    SOFT = "soft"
    ADAPTIVE = "adaptive"


class Action(StrEnum):
    """What the decision tells the caller to do, from mildest to most severe."""

    ALLOW = "allow"
    WARN = "warn"
    DOWNGRADE = "downgrade"
    THROTTLE = "throttle"
    CACHE_ONLY = "cache_only"
    QUEUE = "queue"
    DENY = "deny"
    EMERGENCY_STOP = "emergency_stop"

    @property
    def severity(self) -> int:
        """Rank used to combine limits: the most severe action wins (ALLOW = 0 … EMERGENCY_STOP = 7)."""
        return _SEVERITY[self]

    @property
    def allowed(self) -> bool:
        """True if the call may go ahead now: ALLOW, WARN and DOWNGRADE (with the new model)."""
        return self in _ALLOWED


# Members as module constants: an enum class's attribute lookup is slow (~0.3 µs) on the request path.
_COST = Metric.COST
_ALLOWED = (Action.ALLOW, Action.WARN, Action.DOWNGRADE)  # a tuple: found by identity, no Enum.__hash__
_SEVERITY = {action: rank for rank, action in enumerate(Action)}


class Verdict(StrEnum):
    """Why a limit chose its action: the request ``fits``; it goes ``over`` a hard limit (or over a
    tier's hard limit, to be downgraded); ``soft_over`` a soft one; it reaches a tier's ``warning``,
    ``throttle`` or ``downgrade`` level; it goes over within the ``grace`` period and overage allowance;
    or the limit is ``exhausted`` (grace over, overage used up, or a per-request cap nothing fits).
    """

    FITS = "fits"
    OVER = "over"
    SOFT_OVER = "soft_over"
    WARNING = "warning"
    THROTTLE = "throttle"
    DOWNGRADE = "downgrade"
    GRACE = "grace"
    EXHAUSTED = "exhausted"
