"""Calendar and rolling windows, computed from an explicit ``now`` in an IANA time zone.

A calendar window is the span between two *boundaries*. The boundary of a local wall-clock label
(``2026-03-01 00:00`` for March) is the **first instant at which the local clock reads that label or
later**. That one rule covers every odd day:

* a spring-forward day is 23 h and a fall-back day 25 h long (America/New_York, Europe/Berlin);
* a midnight that does not exist (America/Havana jumps 00:00 → 01:00) starts the day at the jump;
* a repeated midnight (clocks going back over 00:00) starts the day at its first occurrence;
* Australia/Lord_Howe's 30-minute shift gives a 23.5 h or 24.5 h day;
* a skipped date (Pacific/Apia had no 2011-12-30) is an empty window that ``now`` never falls in.

Consecutive windows share their boundary, so they never overlap and leave no gap: live counters keyed
by :attr:`Window.key` roll over exactly at the boundary with no reset job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from zoneinfo import ZoneInfo

from spendgate.budgets._check import BudgetConfigError, check_aware, check_enum, check_int, check_zone
from spendgate.budgets._enums import Period

__all__ = ["Window", "window"]

#: A rolling window is summed from this many buckets (``bucket_seconds = rolling_seconds // 60``, at least 1 s).
ROLLING_BUCKETS = 60
_MAX_ROLLING = 366 * 86400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
#: The last calendar window computed per (period, zone): windows partition time, so one that contains
#: ``now`` is the answer for ``now`` (the hot path asks for the same few windows again and again).
_LAST: dict[tuple[object, str], Window] = {}
_LAST_MAX = 1024


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end)`` in UTC, with a ``key`` naming it for counters.

    Keys look like ``"day:2026-03-29@America/New_York"``, ``"week:2026-W01@UTC"``,
    ``"month:2026-03@Europe/Berlin"``; a rolling window's key is ``"rolling:3600s"`` and it carries
    ``bucket_seconds``: counters add spend into buckets of that size (see :meth:`bucket_range`).
    """

    start: datetime
    end: datetime
    key: str
    bucket_seconds: int | None = None

    @property
    def rolling(self) -> bool:
        """True for a sliding window (it ends at ``now`` and never "resets" at once)."""
        return self.bucket_seconds is not None

    @property
    def duration(self) -> timedelta:
        """The window's length (23 h, 24 h or 25 h for a local day around DST changes)."""
        return self.end - self.start

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end

    def resets_at(self, now: datetime) -> datetime:
        """When spend starts to free up: the end of a calendar window, the next bucket edge of a rolling one."""
        if self.bucket_seconds is None:
            return self.end
        edge = (_unix(now) // self.bucket_seconds + 1) * self.bucket_seconds
        return _EPOCH + timedelta(seconds=edge)

    def seconds_until_reset(self, now: datetime) -> int:
        """Whole seconds (rounded up, at least 1) until :meth:`resets_at`."""
        return max(1, ceil((self.resets_at(now) - now).total_seconds()))

    def bucket_range(self) -> range:
        """For a rolling window: the bucket numbers (``unix seconds // bucket_seconds``) it sums; else empty.

        The bucket holding ``end`` is the last; the one holding ``start`` is left out, so the sum covers
        the window to within one bucket (1/60 of it).
        """
        if self.bucket_seconds is None:
            return range(0)
        size = self.bucket_seconds
        return range(_unix(self.start) // size + 1, _unix(self.end) // size + 1)


def window(period: Period | str, now: datetime, tz: str = "UTC", rolling_seconds: int | None = None) -> Window:
    """The window of ``period`` that contains ``now`` (calendar periods) or ends at ``now`` (rolling).

    ``tz`` is an IANA zone name; calendar periods follow its local midnight (weeks start on Monday,
    ISO numbering). ``Period.REQUEST`` has no window and is refused.
    """
    if rolling_seconds is None and isinstance(now, datetime) and now.tzinfo is not None:
        last = _LAST.get((period, tz))
        if last is not None and last.start <= now < last.end:
            return last
    period = check_enum("period", Period, period)
    now = check_aware("now", now)
    if period is Period.ROLLING:
        seconds = check_int("rolling_seconds", rolling_seconds, low=1, high=_MAX_ROLLING)
        return Window(
            start=now - timedelta(seconds=seconds),
            end=now,
            key=f"rolling:{seconds}s",
            bucket_seconds=max(1, seconds // ROLLING_BUCKETS),
        )
    if period is Period.REQUEST:
        raise BudgetConfigError("period", "a per-request limit has no window")
    if rolling_seconds is not None:
        raise BudgetConfigError("rolling_seconds", f"only applies to rolling windows, not to {period.value}")
    if not 2 <= now.year <= 9998:
        raise BudgetConfigError("now", f"must be between years 2 and 9998, got {now.isoformat()}")
    zone = check_zone(tz)
    label = _floor(now.astimezone(zone).replace(tzinfo=None), period)
    start = _boundary(label, zone)
    while start > now:  # pragma: no cover - defensive: needs a jump forward over a boundary, then back
        label = _step(label, period, -1)
        start = _boundary(label, zone)
    following = _step(label, period, 1)
    end = _boundary(following, zone)
    while end <= now:  # the clock went back below the next label after reaching it (St John's 00:01 → 23:01)
        label, start = following, end
        following = _step(label, period, 1)
        end = _boundary(following, zone)
    found = Window(start=start, end=end, key=f"{period.value}:{_label_text(label, period)}@{tz}")
    if len(_LAST) >= _LAST_MAX:
        _LAST.clear()
    _LAST[(period, tz)] = found
    return found


def _floor(local: datetime, period: Period) -> datetime:
    if period is Period.HOUR:
        return local.replace(minute=0, second=0, microsecond=0)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return midnight
    if period is Period.WEEK:
        return midnight - timedelta(days=midnight.weekday())
    if period is Period.MONTH:
        return midnight.replace(day=1)
    return midnight.replace(month=1, day=1)


def _step(label: datetime, period: Period, n: int) -> datetime:
    if period is Period.HOUR:
        return label + timedelta(hours=n)
    if period is Period.DAY:
        return label + timedelta(days=n)
    if period is Period.WEEK:
        return label + timedelta(weeks=n)
    if period is Period.MONTH:
        months = label.year * 12 + label.month - 1 + n
        return label.replace(year=months // 12, month=months % 12 + 1)
    return label.replace(year=label.year + n)


def _label_text(label: datetime, period: Period) -> str:
    if period is Period.HOUR:
        return label.strftime("%Y-%m-%dT%H")
    if period is Period.DAY:
        return label.date().isoformat()
    if period is Period.WEEK:
        year, week, _ = label.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if period is Period.MONTH:
        return f"{label.year:04d}-{label.month:02d}"
    return f"{label.year:04d}"


def _wall(timestamp: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(timestamp, zone).replace(tzinfo=None)


def _boundary(label: datetime, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the local clock in ``zone`` reads ``label`` or later."""
    first = label.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == label:
        return first  # the label exists; fold=0 is its first occurrence
    # The label falls in a gap: reading it with the offset after the jump gives an instant before the
    # jump, with the offset before it one after. The jump itself, the first valid instant, lies between.
    low = _unix(label.replace(tzinfo=zone, fold=1))
    high = _unix(first)
    while high - low > 1:
        mid = (low + high) // 2
        if _wall(mid, zone) >= label:
            high = mid
        else:
            low = mid
    return _EPOCH + timedelta(seconds=high)


def _unix(moment: datetime) -> int:
    """Whole seconds since the Unix epoch, rounded down (also before 1970)."""
    return (moment - _EPOCH) // _SECOND
