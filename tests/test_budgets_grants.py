"""Grants: one-off and recurring top-ups, and what each adds to the current window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.budgets import Grant, Limit, Metric, Period, Recurrence, Scope, effective_amount, grant_contribution


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def limit(period: Period, *, timezone: str = "UTC", rolling_seconds: int | None = None) -> Limit:
    return Limit(
        scope=Scope(user="alice"),
        metric=Metric.COST,
        period=period,
        amount=Decimal("10"),
        timezone=timezone,
        rolling_seconds=rolling_seconds,
    )


def grant(target: Limit, amount: str, starts: datetime, expires: datetime | None, recurring: str = "none") -> Grant:
    return Grant(
        id=f"g-{amount}-{starts:%m%d}",
        limit_id=target.id,
        amount=Decimal(amount),
        starts_at=starts,
        expires_at=expires,
        recurring=Recurrence(recurring),
    )


def test_one_off_grant_on_a_monthly_limit() -> None:
    monthly = limit(Period.MONTH)
    g = grant(monthly, "5", utc(2026, 3, 10), utc(2026, 3, 20))
    assert effective_amount(monthly, [g], utc(2026, 3, 9, 23)) == Decimal("10")  # not started yet
    assert effective_amount(monthly, [g], utc(2026, 3, 10)) == Decimal("15")
    assert effective_amount(monthly, [g], utc(2026, 3, 25)) == Decimal("15")  # expired, but it was this month's
    assert effective_amount(monthly, [g], utc(2026, 4, 1)) == Decimal("10")  # a window after expiry never sees it


def test_one_off_grant_on_a_daily_limit_raises_each_day_it_spans() -> None:
    daily = limit(Period.DAY)
    g = grant(daily, "2", utc(2026, 3, 10, 12), utc(2026, 3, 12, 12))
    assert effective_amount(daily, [g], utc(2026, 3, 10, 11)) == 10
    assert effective_amount(daily, [g], utc(2026, 3, 10, 13)) == 12
    assert effective_amount(daily, [g], utc(2026, 3, 11, 9)) == 12
    assert effective_amount(daily, [g], utc(2026, 3, 12, 20)) == 12  # active earlier that day
    assert effective_amount(daily, [g], utc(2026, 3, 13, 0)) == 10


def test_recurring_monthly_grant_adds_to_every_month_until_expiry() -> None:
    monthly = limit(Period.MONTH, timezone="Europe/Berlin")
    g = grant(monthly, "3", utc(2026, 1, 1), utc(2026, 4, 15), recurring="month")
    assert effective_amount(monthly, [g], utc(2026, 1, 20)) == 13
    assert effective_amount(monthly, [g], utc(2026, 2, 27)) == 13
    assert effective_amount(monthly, [g], utc(2026, 4, 30)) == 13
    assert effective_amount(monthly, [g], utc(2026, 5, 2)) == 10
    open_ended = grant(monthly, "1", utc(2026, 1, 1), None, recurring="month")
    assert effective_amount(monthly, [g, open_ended], utc(2026, 3, 3)) == 14
    assert effective_amount(monthly, [g, open_ended], utc(2030, 3, 3)) == 11


def test_recurring_daily_grant_accrues_on_a_monthly_limit() -> None:
    monthly = limit(Period.MONTH)
    g = grant(monthly, "1", utc(2026, 2, 20), None, recurring="day")
    assert grant_contribution(monthly, g, utc(2026, 3, 1, 0)) == 1  # first day of March
    assert grant_contribution(monthly, g, utc(2026, 3, 10, 15)) == 10  # 1..10 March
    assert grant_contribution(monthly, g, utc(2026, 2, 25, 8)) == 6  # 20..25 February
    ended = grant(monthly, "1", utc(2026, 3, 1), utc(2026, 3, 5), recurring="day")
    assert grant_contribution(monthly, ended, utc(2026, 3, 10)) == 4  # 1..4 March; expiry is exclusive
    assert grant_contribution(monthly, ended, utc(2026, 3, 4, 23)) == 4
    assert grant_contribution(monthly, ended, utc(2026, 3, 5)) == 4


def test_recurring_weekly_grant_on_a_daily_limit_adds_once_per_day() -> None:
    daily = limit(Period.DAY)
    g = grant(daily, "4", utc(2026, 3, 2), utc(2026, 3, 30), recurring="week")
    assert effective_amount(daily, [g], utc(2026, 3, 3, 10)) == 14
    assert effective_amount(daily, [g], utc(2026, 3, 29, 23)) == 14
    assert effective_amount(daily, [g], utc(2026, 3, 30, 1)) == 10


def test_grant_on_per_request_and_rolling_limits() -> None:
    per_request = limit(Period.REQUEST)
    g = grant(per_request, "0.5", utc(2026, 3, 1), utc(2026, 3, 2), recurring="day")
    assert effective_amount(per_request, [g], utc(2026, 3, 1, 12)) == Decimal("10.5")
    assert effective_amount(per_request, [g], utc(2026, 3, 2, 12)) == 10
    rolling = limit(Period.ROLLING, rolling_seconds=3600)
    r = grant(rolling, "1", utc(2026, 3, 1, 12), utc(2026, 3, 1, 13))
    assert effective_amount(rolling, [r], utc(2026, 3, 1, 13, 30)) == 11  # the last hour overlapped it
    assert effective_amount(rolling, [r], utc(2026, 3, 1, 14, 30)) == 10


def test_grants_of_other_limits_do_not_count() -> None:
    daily, monthly = limit(Period.DAY), limit(Period.MONTH)
    g = grant(monthly, "5", utc(2026, 3, 1), None)
    assert grant_contribution(daily, g, utc(2026, 3, 10)) == 0
    assert effective_amount(daily, [g], utc(2026, 3, 10)) == daily.amount
    assert effective_amount(daily, [], utc(2026, 3, 10)) == daily.amount
    assert effective_amount(monthly, [g, g], utc(2026, 3, 10)) == 20


def test_recurring_day_grant_follows_the_limit_time_zone() -> None:
    monthly = limit(Period.MONTH, timezone="Asia/Tokyo")
    g = grant(monthly, "1", utc(2026, 2, 28, 15), None, recurring="day")  # 1 March 00:00 in Tokyo
    # 2 March 01:00 Tokyo = 1 March 16:00Z: two Tokyo days so far.
    assert grant_contribution(monthly, g, utc(2026, 3, 1, 16)) == 2
    assert grant_contribution(monthly, g, utc(2026, 3, 1, 14)) == 1
    assert grant_contribution(monthly, g, utc(2026, 2, 28, 15) - timedelta(seconds=1)) == 0
