"""Calendar and rolling windows: month ends, leap days, DST, midnight gaps, time zones, ISO weeks, keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate.budgets import BudgetConfigError, Period, Window, window

NY = "America/New_York"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def local(zone: str, year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=ZoneInfo(zone))


def test_day_in_utc_is_24_hours_and_keyed_by_date() -> None:
    w = window(Period.DAY, utc(2026, 3, 10, 15, 30))
    assert (w.start, w.end) == (utc(2026, 3, 10), utc(2026, 3, 11))
    assert w.key == "day:2026-03-10@UTC"
    assert not w.rolling
    assert w.bucket_seconds is None
    assert w.bucket_range() == range(0)


def test_month_end_rolls_from_january_31_to_february() -> None:
    jan = window("month", utc(2026, 1, 31, 23, 59, 59))
    feb = window("month", utc(2026, 2, 1))
    assert (jan.start, jan.end, jan.key) == (utc(2026, 1, 1), utc(2026, 2, 1), "month:2026-01@UTC")
    assert (feb.start, feb.end, feb.key) == (utc(2026, 2, 1), utc(2026, 3, 1), "month:2026-02@UTC")
    assert feb.duration == timedelta(days=28)


def test_leap_year_february_and_leap_day() -> None:
    feb = window("month", utc(2028, 2, 29, 12))
    assert (feb.start, feb.end) == (utc(2028, 2, 1), utc(2028, 3, 1))
    assert feb.duration == timedelta(days=29)
    leap_day = window("day", utc(2028, 2, 29, 23, 59))
    assert leap_day.key == "day:2028-02-29@UTC"
    assert leap_day.end == utc(2028, 3, 1)
    year = window("year", utc(2028, 2, 29))
    assert (year.start, year.end, year.key) == (utc(2028, 1, 1), utc(2029, 1, 1), "year:2028@UTC")
    assert year.duration == timedelta(days=366)
    assert window("year", utc(2027, 6, 1)).duration == timedelta(days=365)


def test_year_end_boundary() -> None:
    last = window("day", utc(2026, 12, 31, 23, 59, 59, 999999))
    first = window("day", utc(2027, 1, 1))
    assert last.end == first.start == utc(2027, 1, 1)
    assert window("year", utc(2026, 12, 31, 23)).end == utc(2027, 1, 1)
    assert window("month", utc(2026, 12, 15)).end == utc(2027, 1, 1)


def test_new_york_spring_forward_day_is_23_hours() -> None:
    w = window("day", local(NY, 2026, 3, 8, 12), NY)
    assert w.duration == timedelta(hours=23)
    assert w.start == local(NY, 2026, 3, 8)  # 05:00Z (EST)
    assert w.end == local(NY, 2026, 3, 9)  # 04:00Z (EDT)
    assert (w.start, w.end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert w.key == "day:2026-03-08@America/New_York"


def test_new_york_fall_back_day_is_25_hours() -> None:
    w = window("day", utc(2026, 11, 1, 12), NY)
    assert (w.start, w.end) == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert w.duration == timedelta(hours=25)
    # The repeated 01:00-02:00 local hour is one two-hour window (first pass and second pass).
    first_pass = window("hour", utc(2026, 11, 1, 5, 30), NY)
    second_pass = window("hour", utc(2026, 11, 1, 6, 30), NY)
    assert first_pass == second_pass
    assert first_pass.duration == timedelta(hours=2)
    assert first_pass.key == "hour:2026-11-01T01@America/New_York"


def test_new_york_spring_forward_skips_the_2am_hour() -> None:
    before = window("hour", utc(2026, 3, 8, 6, 59), NY)  # 01:59 EST
    after = window("hour", utc(2026, 3, 8, 7, 0), NY)  # 03:00 EDT
    assert before.key == "hour:2026-03-08T01@America/New_York"
    assert after.key == "hour:2026-03-08T03@America/New_York"
    assert before.end == after.start == utc(2026, 3, 8, 7)


def test_berlin_dst_days() -> None:
    spring = window("day", utc(2026, 3, 29, 12), "Europe/Berlin")
    autumn = window("day", utc(2026, 10, 25, 12), "Europe/Berlin")
    assert (spring.start, spring.end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert spring.duration == timedelta(hours=23)
    assert (autumn.start, autumn.end) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert autumn.duration == timedelta(hours=25)
    march = window("month", utc(2026, 3, 15), "Europe/Berlin")
    assert march.key == "month:2026-03@Europe/Berlin"
    assert (march.start, march.end) == (utc(2026, 2, 28, 23), utc(2026, 3, 31, 22))


def test_lord_howe_half_hour_shift() -> None:
    zone = "Australia/Lord_Howe"
    spring = window("day", utc(2026, 10, 4, 1), zone)
    autumn = window("day", utc(2026, 4, 5, 1), zone)
    assert spring.duration == timedelta(hours=23, minutes=30)
    assert autumn.duration == timedelta(hours=24, minutes=30)
    assert spring.key == "day:2026-10-04@Australia/Lord_Howe"
    # Local midnight at +10:30 before the shift, the next at +11:00 after it.
    assert (spring.start, spring.end) == (utc(2026, 10, 3, 13, 30), utc(2026, 10, 4, 13))


def test_hour_starting_inside_a_dst_gap_starts_at_the_jump() -> None:
    # Chatham (+12:45) jumps from 02:45 to 03:45: local 03:00 never exists, so the "03" hour runs from
    # the jump (14:00Z) to 04:00 local, 15 minutes; the "02" hour is cut to 45 minutes.
    zone = "Pacific/Chatham"
    two = window("hour", utc(2026, 9, 26, 13, 30), zone)
    three = window("hour", utc(2026, 9, 26, 14, 6), zone)
    assert (two.key, two.duration) == ("hour:2026-09-27T02@Pacific/Chatham", timedelta(minutes=45))
    assert (three.key, three.start, three.duration) == (
        "hour:2026-09-27T03@Pacific/Chatham",
        utc(2026, 9, 26, 14),
        timedelta(minutes=15),
    )
    assert two.end == three.start


@pytest.mark.parametrize(
    ("zone", "day", "expected_start"),
    [
        # Havana jumps from 00:00 CST straight to 01:00 CDT: the day starts at the jump, 05:00Z.
        ("America/Havana", (2026, 3, 8), utc(2026, 3, 8, 5)),
        # Beirut jumps from 00:00 EET to 01:00 EEST: the day starts at 22:00Z the evening before.
        ("Asia/Beirut", (2026, 3, 29), utc(2026, 3, 28, 22)),
    ],
)
def test_day_starting_at_a_nonexistent_midnight(zone: str, day: tuple[int, int, int], expected_start: datetime) -> None:
    tz = ZoneInfo(zone)
    midnight = datetime(*day, tzinfo=tz)
    # zoneinfo confirms local midnight does not exist that day: it does not survive a round trip.
    assert midnight.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != midnight.replace(tzinfo=None)
    w = window("day", expected_start + timedelta(hours=12), zone)
    assert w.start == expected_start
    assert w.duration == timedelta(hours=23)
    assert w.start.astimezone(tz).hour == 1  # the first valid instant reads 01:00 local
    previous = window("day", w.start - timedelta(microseconds=1), zone)
    assert previous.end == w.start
    assert previous.duration == timedelta(hours=24)


def test_skipped_date_is_never_a_window() -> None:
    # Samoa skipped 2011-12-30 entirely; the day before ends where 2011-12-31 begins.
    zone = "Pacific/Apia"
    before = window("day", utc(2011, 12, 30, 9), zone)
    after = window("day", utc(2011, 12, 30, 11), zone)
    assert before.key == "day:2011-12-29@Pacific/Apia"
    assert after.key == "day:2011-12-31@Pacific/Apia"
    assert before.end == after.start == utc(2011, 12, 30, 10)


def test_clock_going_back_over_midnight_keeps_the_new_day() -> None:
    # St. John's fell back at 00:01 NDT to 23:01 NST in 2006: after the new day began at 02:30Z the
    # local date reads 28 October again for an hour, but the window stays 29 October (no overlap).
    zone = "America/St_Johns"
    again = utc(2006, 10, 29, 3, 1)
    assert again.astimezone(ZoneInfo(zone)).day == 28
    w = window("day", again, zone)
    assert w.key == "day:2006-10-29@America/St_Johns"
    assert (w.start, w.end) == (utc(2006, 10, 29, 2, 30), utc(2006, 10, 30, 3, 30))
    assert window("day", w.start - timedelta(seconds=1), zone).key == "day:2006-10-28@America/St_Johns"


def test_tokyo_monthly_budget_resets_at_15z() -> None:
    zone = "Asia/Tokyo"
    march = window("month", utc(2026, 3, 31, 14, 59, 59), zone)
    april = window("month", utc(2026, 3, 31, 15), zone)
    assert march.key == "month:2026-03@Asia/Tokyo"
    assert april.key == "month:2026-04@Asia/Tokyo"
    assert march.end == april.start == utc(2026, 3, 31, 15)


def test_west_of_utc_day_lags_utc() -> None:
    zone = "America/Los_Angeles"
    w = window("day", utc(2026, 7, 1, 3), zone)  # still 30 June in California
    assert w.key == "day:2026-06-30@America/Los_Angeles"
    assert (w.start, w.end) == (utc(2026, 6, 30, 7), utc(2026, 7, 1, 7))


def test_iso_weeks_cross_the_year_boundary() -> None:
    w = window("week", utc(2026, 1, 1, 12))  # a Thursday
    assert w.key == "week:2026-W01@UTC"
    assert (w.start, w.end) == (utc(2025, 12, 29), utc(2026, 1, 5))
    w53 = window("week", utc(2027, 1, 3))  # Sunday: still ISO week 53 of 2026
    assert w53.key == "week:2026-W53@UTC"
    assert (w53.start, w53.end) == (utc(2026, 12, 28), utc(2027, 1, 4))
    assert window("week", utc(2027, 1, 4)).key == "week:2027-W01@UTC"
    assert w.start.weekday() == 0


def test_week_in_a_zone_starts_at_local_monday_midnight() -> None:
    w = window("week", utc(2026, 3, 8, 12), NY)  # Sunday: the week began Monday 2 March
    assert w.start == local(NY, 2026, 3, 2)
    assert w.end == local(NY, 2026, 3, 9)
    assert w.duration == timedelta(days=7, hours=-1)  # it contains the spring-forward hour


def test_keys_are_unique_and_stable() -> None:
    now = utc(2026, 3, 10, 15)
    keys = {window(p, now, NY).key for p in ("hour", "day", "week", "month", "year")}
    assert keys == {
        "hour:2026-03-10T11@America/New_York",
        "day:2026-03-10@America/New_York",
        "week:2026-W11@America/New_York",
        "month:2026-03@America/New_York",
        "year:2026@America/New_York",
    }
    assert window("day", now, NY) == window("day", now + timedelta(hours=5), NY)
    assert window("day", now, NY).key != window("day", now, "UTC").key
    hours = [window("hour", now + timedelta(hours=i)).key for i in range(48)]
    assert len(set(hours)) == 48


def test_rolling_window_ends_now_with_buckets() -> None:
    now = utc(2026, 3, 10, 15, 0, 30)
    w = window(Period.ROLLING, now, rolling_seconds=3600)
    assert (w.start, w.end) == (now - timedelta(hours=1), now)
    assert w.key == "rolling:3600s"
    assert w.rolling
    assert w.bucket_seconds == 60
    assert len(w.bucket_range()) == 60
    assert w.bucket_range()[-1] == int(now.timestamp()) // 60
    assert w.resets_at(now) == utc(2026, 3, 10, 15, 1)
    assert w.seconds_until_reset(now) == 30
    tiny = window("rolling", now, rolling_seconds=30)
    assert tiny.bucket_seconds == 1


def test_window_contains_and_reset() -> None:
    now = utc(2026, 3, 10, 15)
    w = window("day", now)
    assert now in w
    assert w.end not in w
    assert "2026-03-10" not in w
    assert w.resets_at(now) == w.end
    assert w.seconds_until_reset(now) == 9 * 3600


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"period": "request", "now": utc(2026, 1, 1)}, "period"),
        ({"period": "fortnight", "now": utc(2026, 1, 1)}, "period"),
        ({"period": "day", "now": datetime(2026, 1, 1)}, "now"),
        ({"period": "day", "now": utc(2026, 1, 1), "tz": "Mars/Olympus"}, "timezone"),
        ({"period": "day", "now": utc(2026, 1, 1), "rolling_seconds": 60}, "rolling_seconds"),
        ({"period": "rolling", "now": utc(2026, 1, 1)}, "rolling_seconds"),
        ({"period": "rolling", "now": utc(2026, 1, 1), "rolling_seconds": 0}, "rolling_seconds"),
        ({"period": "day", "now": utc(9999, 1, 1)}, "now"),
    ],
)
def test_invalid_window_requests_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(BudgetConfigError) as info:
        window(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


ZONES = sorted(
    {"UTC", NY, "Europe/Berlin", "Asia/Tokyo", "Australia/Lord_Howe", "America/Havana", "Asia/Beirut"}
    | {"Pacific/Apia", "America/St_Johns", "America/Goose_Bay", "Asia/Kolkata", "Pacific/Chatham"}
    | set(sorted(available_timezones())[::25])
)
CALENDAR = [Period.HOUR, Period.DAY, Period.WEEK, Period.MONTH, Period.YEAR]
instants = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2100, 12, 30), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(now=instants, zone=st.sampled_from(ZONES), period=st.sampled_from(CALENDAR))
def test_windows_tile_time(now: datetime, zone: str, period: Period) -> None:
    w = window(period, now, zone)
    assert w.start <= now < w.end
    nxt = window(period, w.end, zone)
    assert nxt.start == w.end  # the next window starts exactly where this one ends
    assert nxt.key != w.key
    prev = window(period, w.start - timedelta(microseconds=1), zone)
    assert prev.end == w.start  # consecutive windows never overlap and leave no gap
    assert prev.key != w.key
    assert window(period, w.start, zone) == w  # the start belongs to the window, and keys are stable


@settings(max_examples=100, deadline=None)
@given(now=instants, seconds=st.integers(min_value=1, max_value=86400 * 31))
def test_rolling_windows_end_now(now: datetime, seconds: int) -> None:
    w = window("rolling", now, rolling_seconds=seconds)
    assert w.end == now
    assert w.duration == timedelta(seconds=seconds)
    assert isinstance(w, Window)
    assert w.bucket_seconds == max(1, seconds // 60)
    assert now < w.resets_at(now) <= now + timedelta(seconds=w.bucket_seconds)
