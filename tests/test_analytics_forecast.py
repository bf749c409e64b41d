"""Month-end forecasts: the fitted model, the band against the truth on synthetic data, scopes and limit run-outs."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate import Meter, Settings
from spendgate.analytics._forecast import (
    ForecastConfig,
    fit_daily,
    forecast_month,
    limit_run_outs,
    month_bounds,
    project,
    run_out_at,
)
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageEvent, UsageStore
from spendgate.testing import FakeClock
from spendgate.usage import Usage

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)  # a Sunday, half way through the day
START = date(2026, 2, 1)


def _weekdays(first: date, n: int) -> list[int]:
    return [(first + timedelta(days=t)).weekday() for t in range(n)]


def test_a_straight_line_is_fitted_exactly() -> None:
    values = [Decimal(10) + Decimal("0.5") * t for t in range(10)]
    fit = fit_daily(values, _weekdays(START, 10))
    assert fit.method == "linear"
    assert (fit.intercept, fit.slope) == (Decimal(10), Decimal("0.5"))
    assert fit.sigma is not None and fit.sigma < Decimal("1e-20")
    assert fit.predict(12, 0) == Decimal(16)


def test_weekday_effects_are_recovered() -> None:
    pattern = [Decimal(v) for v in ("3", "3", "3", "3", "3", "-6", "-9")]  # quiet weekends, sum zero
    first = date(2026, 1, 5)  # a Monday: 8 whole weeks
    values = [Decimal(50) + Decimal("0.25") * t + pattern[w] for t, w in enumerate(_weekdays(first, 56))]
    fit = fit_daily(values, _weekdays(first, 56))
    assert fit.method == "linear+weekday"
    assert abs(fit.slope - Decimal("0.25")) < Decimal("1e-20")
    assert all(abs(a - b) < Decimal("1e-20") for a, b in zip(fit.weekday_effects, pattern, strict=True))
    assert fit.sigma is not None and fit.sigma < Decimal("1e-20")


def test_few_days_fall_back_to_the_mean_without_a_band() -> None:
    fit = fit_daily([Decimal(4), Decimal(6)], [0, 1])
    assert (fit.method, fit.intercept, fit.slope, fit.sigma) == ("mean", Decimal(5), Decimal(0), None)
    forecast = project(now=NOW, history=[Decimal(4), Decimal(6)], history_start=date(2026, 3, 13),
                       month_to_date=Decimal(13), today_so_far=Decimal(3))  # fmt: skip
    # 13 spent + 5 * (half of today + 16 remaining days)
    assert forecast.projected == Decimal("95.5")
    assert forecast.lower is None and forecast.upper is None


def test_no_complete_day_extrapolates_today() -> None:
    forecast = project(now=NOW, history=[], history_start=NOW.date(), month_to_date=Decimal(2),
                       today_so_far=Decimal(2))  # fmt: skip
    assert forecast.method == "run_rate"
    assert forecast.daily_rate == Decimal(4)
    assert forecast.projected == Decimal(2) + Decimal(4) * Decimal("16.5")
    empty = project(now=NOW, history=[], history_start=NOW.date(), month_to_date=Decimal(0), today_so_far=Decimal(0))
    assert (empty.method, empty.projected) == ("none", Decimal(0))


def _synthetic(seed: int, *, weekly: bool) -> tuple[list[Decimal], Decimal, Decimal, Decimal]:
    """Daily spend 20 + 0.5 t (+ weekly pattern) + N(0, 2), Feb 1 to Mar 31: history, month to date, today, truth."""
    rng = random.Random(seed)
    pattern = [2, 2, 2, 2, 2, -4, -6] if weekly else [0] * 7
    days = [START + timedelta(days=t) for t in range(59)]
    spend = [
        Decimal(str(round(max(0.0, 20 + 0.5 * t + pattern[d.weekday()] + rng.gauss(0, 2)), 6)))
        for t, d in enumerate(days)
    ]
    today = (NOW.date() - START).days
    history = spend[:today]
    today_so_far = (spend[today] / 2).quantize(Decimal("0.000001"))
    march = today - 28
    month_to_date = sum(spend[28:today], Decimal(0)) + today_so_far
    truth = sum(spend[28:], Decimal(0))
    assert march == 14
    return history, month_to_date, today_so_far, truth


@pytest.mark.parametrize("weekly", [False, True])
def test_the_band_contains_the_truth_on_synthetic_data(weekly: bool) -> None:
    inside = 0
    for seed in range(100):
        history, mtd, today, truth = _synthetic(seed, weekly=weekly)
        forecast = project(now=NOW, history=history, history_start=START, month_to_date=mtd, today_so_far=today)
        assert forecast.method == "linear+weekday"
        assert forecast.lower is not None and forecast.upper is not None
        assert forecast.lower <= forecast.projected <= forecast.upper
        assert forecast.upper - forecast.lower < forecast.projected * Decimal("0.2")  # a band, not a shrug
        inside += forecast.lower <= truth <= forecast.upper
    assert inside >= 88  # a 95 % band: 95 expected, binomial sd ~2.2


def test_the_band_narrows_with_a_pure_line() -> None:
    history = [Decimal(20) + Decimal("0.5") * t for t in range(42)]
    forecast = project(now=NOW, history=history, history_start=START, month_to_date=Decimal(100),
                       today_so_far=Decimal(10))  # fmt: skip
    assert forecast.upper == forecast.lower == forecast.projected


def _record_days(store: UsageStore, daily: dict[date, Decimal], user_id: str, team_id: str | None = None) -> None:
    events = []
    for day, cost in daily.items():
        for h in range(2):  # two events a day: 03:00 and 09:00 (before NOW on the last day)
            at = datetime(day.year, day.month, day.day, 3 + 6 * h, tzinfo=UTC)
            events.append(UsageEvent(event_id=f"{user_id}{day}{h}", timestamp=at, provider="openai", model=user_id,
                                     usage=Usage(input_tokens=10), cost=cost / 2, user_id=user_id,
                                     team_id=team_id))  # fmt: skip
    store.record_many(events)


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[Meter]:
    with Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / 'f.db'}"), clock=FakeClock(NOW)) as running:
        yield running


def test_forecast_from_the_ledger_matches_the_model(meter: Meter) -> None:
    history, _, _, truth = _synthetic(7, weekly=True)
    daily = {START + timedelta(days=t): cost for t, cost in enumerate(history)}
    daily[NOW.date()] = Decimal("15.25")  # so far today
    _record_days(meter.store, daily, user_id="ann", team_id="ml")
    _record_days(meter.store, {NOW.date() - timedelta(days=3): Decimal(1000)}, user_id="bob")
    forecast = forecast_month(meter.store, NOW, scope={"team_id": "ml"})
    expected = project(now=NOW, history=history, history_start=START, month_to_date=sum(history[28:], Decimal(0))
                       + Decimal("15.25"), today_so_far=Decimal("15.25"), scope={"team_id": "ml"})  # fmt: skip
    assert forecast == expected
    assert forecast.month_to_date == meter.summary(team_id="ml", since=datetime(2026, 3, 1, tzinfo=UTC)).cost
    everyone = forecast_month(meter.store, NOW)
    assert everyone.month_to_date == forecast.month_to_date + 1000
    body = forecast.to_dict()
    assert body["scope"] == {"team_id": "ml"} and body["method"] == "linear+weekday"
    assert Decimal(body["lower"]) <= Decimal(body["projected_cost"]) <= Decimal(body["upper"])
    assert isinstance(body["projected_cost"], str) and body["weekday_effects"]["Sat"] is not None
    assert truth > 0


def test_history_starts_at_the_scopes_first_day(meter: Meter) -> None:
    first = NOW.date() - timedelta(days=5)
    _record_days(meter.store, {first + timedelta(days=t): Decimal(10) for t in range(5)}, user_id="x")
    forecast = forecast_month(meter.store, NOW, scope={"model": "x"})
    assert forecast.history_days == 5 and forecast.method == "linear"
    assert forecast.projected == forecast.month_to_date + Decimal(10) * Decimal("16.5")


def test_bad_scope_and_config_name_the_field(meter: Meter) -> None:
    with pytest.raises(InvalidUsageError) as caught:
        forecast_month(meter.store, NOW, scope={"colour": "red"})
    assert caught.value.field == "colour"
    with pytest.raises(InvalidUsageError) as caught:
        forecast_month(meter.store, NOW.replace(tzinfo=None))
    assert caught.value.field == "now"
    for name, value in (("history_days", 0), ("weekly_min_days", 5), ("confidence", Decimal("0.2"))):
        with pytest.raises(InvalidUsageError) as caught:
            ForecastConfig(**{name: value})  # type: ignore[arg-type]
        assert caught.value.field == name


def test_month_bounds_cross_the_year() -> None:
    assert month_bounds(datetime(2026, 12, 31, 23, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert ForecastConfig().z == Decimal("1.959964")


def test_run_out_at() -> None:
    end = datetime(2026, 4, 1, tzinfo=UTC)
    assert run_out_at(used=Decimal(40), amount=Decimal(100), now=NOW, window_end=end, rate_per_day=Decimal(10)) == (
        NOW + timedelta(days=6)
    )
    assert run_out_at(used=Decimal(40), amount=Decimal(100), now=NOW, window_end=end, rate_per_day=Decimal(1)) is None
    assert run_out_at(used=Decimal(40), amount=Decimal(100), now=NOW, window_end=None, rate_per_day=Decimal(0)) is None
    assert run_out_at(used=Decimal(100), amount=Decimal(100), now=NOW, window_end=end, rate_per_day=Decimal(0)) == NOW
    assert (
        run_out_at(used=Decimal(0), amount=Decimal(10**9), now=NOW, window_end=None, rate_per_day=Decimal("1e-9"))
        is None
    )


def test_limit_run_outs_at_the_current_rate(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 3, 11, tzinfo=UTC))
    with Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / 'l.db'}"), clock=clock) as meter:
        meter.set_limit(scope="user", scope_id="ann", metric="cost", period="month", amount=Decimal(100))
        meter.set_limit(scope="user", scope_id="ann", metric="cost", period="request", amount=Decimal(5))
        meter.store.record_many(
            UsageEvent(event_id=f"e{i}", timestamp=datetime(2026, 3, 1 + i, tzinfo=UTC), provider="openai",
                       model="gpt-4o", usage=Usage(input_tokens=1), cost=Decimal(4), user_id="ann")
            for i in range(10)
        )  # fmt: skip
        [outlook] = limit_run_outs(meter.budget_status(user_id="ann"), clock.now())
    assert (outlook.used, outlook.amount, outlook.rate_per_day) == (Decimal(40), Decimal(100), Decimal(4))
    assert outlook.runs_out_at == datetime(2026, 3, 26, tzinfo=UTC)
    body = outlook.to_dict()
    assert body["runs_out_at"] == "2026-03-26T00:00:00+00:00" and body["runs_out_before_reset"] is True
    assert body["limit"]["id"] == "user:ann|cost|month|UTC" and body["rate_per_day"] == "4"
