"""Month-end spend forecasts with a confidence band, and the date each limit runs out at the current rate.

The method (see docs/insights.md), per scope, on the UTC calendar month:

1. Daily cost per UTC day from the daily rollups, over the ``history_days`` complete days before today,
   but not before the first day the scope has any rollup (days before it are missing, not zero).
2. Model ``y(t) = a + b*t + s(weekday)``: a linear trend plus additive day-of-week effects ``s``
   (centred to sum to zero) once there are ``weekly_min_days`` days; the trend alone from
   ``trend_min_days``; the mean below that. Ordinary least squares, solved exactly (normal equations).
3. Projection: month to date (today's spend so far included) + ``yhat(today) * (1 - elapsed part of
   today)`` + ``yhat`` of each remaining day, every ``yhat`` clipped at zero.
4. Band: ``projected ± z * sigma * sqrt(h + c' (X'X)^-1 c)``, the least-squares prediction interval of a
   sum of ``h`` future days (``sigma^2`` = residual sum of squares / (n - parameters), ``c`` = the sum of
   the future days' design rows, weighted by the part of each day still to come). Independent normal
   daily errors are assumed; predictions clipped at zero are not accounted for in the band. The lower
   bound is never below the month to date.

All arithmetic is Decimal (40 significant digits while fitting, results at 28): money never passes
through a float. Only ``z``, the normal quantile of the confidence level, comes from a float
(``statistics.NormalDist``), converted once through its decimal string.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, localcontext
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from spendgate.errors import InvalidUsageError
from spendgate.ledger import RollupRow, UsageStore

if TYPE_CHECKING:
    from spendgate.meter import BudgetStatus

__all__ = [
    "SCOPE_FIELDS",
    "DailyFit",
    "Forecast",
    "ForecastConfig",
    "LimitRunOut",
    "daily_costs",
    "fit_daily",
    "forecast_month",
    "limit_run_outs",
    "month_bounds",
    "project",
    "run_out_at",
]

#: The rollup fields a forecast scope can pin (global: none of them).
SCOPE_FIELDS = ("user_id", "team_id", "api_key_id", "provider", "model")

_DAY = timedelta(days=1)
_ZERO = Decimal(0)
_ONE = Decimal(1)
_MONEY = Decimal("0.000001")
_MAX_RUN_OUT_DAYS = Decimal(3_650_000)  # beyond this a limit does not run out in any window that exists


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastConfig:
    """Knobs of :func:`forecast_month` (defaults: eight weeks of history, a 95 % band)."""

    history_days: int = 56
    """Complete days before today that the model is fitted on."""
    trend_min_days: int = 3
    """Fewest days of history for a linear trend (below: the mean daily spend, and no band)."""
    weekly_min_days: int = 14
    """Fewest days of history for day-of-week effects (two of each weekday)."""
    confidence: Decimal = Decimal("0.95")
    """Probability the band is meant to cover (two-sided)."""

    def __post_init__(self) -> None:
        if not 1 <= self.history_days <= 3660:
            raise InvalidUsageError("history_days", f"must be from 1 to 3660, got {self.history_days!r}")
        if not 2 <= self.trend_min_days <= self.weekly_min_days:
            raise InvalidUsageError("trend_min_days", "must be at least 2 and at most weekly_min_days")
        if self.weekly_min_days < 9:
            raise InvalidUsageError("weekly_min_days", "must be at least 9 (8 parameters and one degree of freedom)")
        if not Decimal("0.5") <= Decimal(self.confidence) < 1:
            raise InvalidUsageError("confidence", f"must be from 0.5 to below 1, got {self.confidence!r}")

    @property
    def z(self) -> Decimal:
        """The two-sided normal quantile of :attr:`confidence` (1.959964 for 0.95)."""
        quantile = NormalDist().inv_cdf(0.5 + float(self.confidence) / 2)
        return Decimal(f"{quantile:.6f}")


Matrix = list[list[Decimal]]


def _design(t: int, weekday: int, weekly: bool) -> list[Decimal]:
    """One row of the design matrix: 1, t and (weekly) dummies for Tuesday..Sunday (Monday is the reference)."""
    row = [_ONE, Decimal(t)]
    if weekly:
        row += [_ONE if weekday == w else _ZERO for w in range(1, 7)]
    return row


def _inverse(matrix: Matrix) -> Matrix:
    """Gauss-Jordan inverse with partial pivoting (the matrix is small and positive definite)."""
    size = len(matrix)
    work = [[*row, *(_ONE if i == j else _ZERO for j in range(size))] for i, row in enumerate(matrix)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(work[r][col]))
        if not work[pivot][col]:
            raise InvalidUsageError("values", "the days do not determine the model (a weekday without data)")
        work[col], work[pivot] = work[pivot], work[col]
        lead = work[col][col]
        work[col] = [value / lead for value in work[col]]
        for r in range(size):
            if r != col and work[r][col]:
                factor = work[r][col]
                work[r] = [a - factor * b for a, b in zip(work[r], work[col], strict=True)]
    return [row[size:] for row in work]


@dataclass(frozen=True, slots=True)
class DailyFit:
    """A fitted daily-spend model: ``yhat(t) = intercept + slope * t + weekday_effects[weekday(t)]``."""

    method: str
    """``"mean"``, ``"linear"`` or ``"linear+weekday"``."""
    days: int
    intercept: Decimal
    slope: Decimal
    weekday_effects: tuple[Decimal, ...]
    """Monday first, centred to sum to zero; all zero without the weekly pattern."""
    sigma: Decimal | None
    """Residual standard deviation (None when there are too few days to estimate it)."""
    unscaled_covariance: tuple[tuple[Decimal, ...], ...] = ()
    """``(X'X)^-1`` of the least-squares fit (empty for the mean)."""

    def predict(self, t: int, weekday: int) -> Decimal:
        """The expected spend of day ``t`` (0 = the first day of history), never below zero."""
        value = self.intercept + self.slope * t + self.weekday_effects[weekday]
        return max(value, _ZERO)

    def sum_variance(self, points: Sequence[tuple[int, int, Decimal]]) -> Decimal | None:
        """Variance of the error of ``sum(w * y(t))`` over future ``(t, weekday, w)``: noise plus fit uncertainty."""
        if self.sigma is None:
            return None
        weekly = self.method == "linear+weekday"
        c = [_ZERO] * len(self.unscaled_covariance)
        for t, weekday, w in points:
            c = [acc + w * x for acc, x in zip(c, _design(t, weekday, weekly), strict=True)]
        spread = sum(
            (ci * cell * cj for ci, row in zip(c, self.unscaled_covariance, strict=True)
             for cell, cj in zip(row, c, strict=True)),
            _ZERO,
        )  # fmt: skip
        h = sum((w for _, _, w in points), _ZERO)
        return self.sigma * self.sigma * (h + spread)


def fit_daily(values: Sequence[Decimal], weekdays: Sequence[int], config: ForecastConfig | None = None) -> DailyFit:
    """Fit the daily model to ``values`` (day 0 first) whose weekdays (Monday = 0) are ``weekdays``.

    Ordinary least squares, solved exactly in Decimal through the normal equations.
    """
    config = config or ForecastConfig()
    n = len(values)
    if n == 0 or len(weekdays) != n:
        raise InvalidUsageError("values", "need at least one day, and one weekday per day")
    with localcontext() as ctx:
        ctx.prec = 40
        if n < config.trend_min_days:
            mean = sum(values, _ZERO) / n
            return DailyFit("mean", n, +mean, _ZERO, (_ZERO,) * 7, None)
        weekly = n >= config.weekly_min_days
        rows = [_design(t, w, weekly) for t, w in enumerate(weekdays)]
        size = len(rows[0])
        xtx = [[sum((row[i] * row[j] for row in rows), _ZERO) for j in range(size)] for i in range(size)]
        xty = [sum((row[i] * y for row, y in zip(rows, values, strict=True)), _ZERO) for i in range(size)]
        inverse = _inverse(xtx)
        beta = [sum((a * b for a, b in zip(line, xty, strict=True)), _ZERO) for line in inverse]
        residuals = [
            y - sum((b * x for b, x in zip(beta, row, strict=True)), _ZERO) for row, y in zip(rows, values, strict=True)
        ]
        sigma = (sum((r * r for r in residuals), _ZERO) / max(n - size, 1)).sqrt()
        raw = [_ZERO, *beta[2:]] if weekly else [_ZERO] * 7
        centre = sum(raw, _ZERO) / 7
        ctx.prec = 28
        effects = tuple(+(value - centre) for value in raw)
        covariance = tuple(tuple(+cell for cell in line) for line in inverse)
        return DailyFit(
            "linear+weekday" if weekly else "linear", n, +(beta[0] + centre), +beta[1], effects, +sigma, covariance
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    """A month-end projection for one scope; amounts in ``currency``, rounded to 1e-6."""

    scope: Mapping[str, str]
    """The pinned rollup fields (``{}`` = global)."""
    as_of: datetime
    month_start: datetime
    month_end: datetime
    method: str
    """``"none"`` (no spend at all), ``"run_rate"`` (no complete day yet), or the fit's method."""
    history_days: int
    month_to_date: Decimal
    projected: Decimal
    lower: Decimal | None
    upper: Decimal | None
    confidence: Decimal
    daily_rate: Decimal
    """The expected spend of today (the model's value, or today's run rate)."""
    trend_per_day: Decimal
    weekday_effects: tuple[Decimal, ...] = field(default=(_ZERO,) * 7)
    currency: str = "USD"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: amounts as exact decimal strings, times in ISO 8601."""

        def text(value: Decimal | None) -> str | None:
            return None if value is None else format(value.quantize(_MONEY).normalize(), "f")

        return {
            "scope": dict(self.scope),
            "as_of": self.as_of.isoformat(),
            "month_start": self.month_start.isoformat(),
            "month_end": self.month_end.isoformat(),
            "method": self.method,
            "history_days": self.history_days,
            "month_to_date_cost": text(self.month_to_date),
            "projected_cost": text(self.projected),
            "lower": text(self.lower),
            "upper": text(self.upper),
            "confidence": format(self.confidence, "f"),
            "daily_rate": text(self.daily_rate),
            "trend_per_day": text(self.trend_per_day),
            "weekday_effects": dict(zip(calendar.day_abbr, (text(v) for v in self.weekday_effects), strict=True)),
            "currency": self.currency,
        }


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start of the UTC month containing ``now`` and start of the next one."""
    now = now.astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def project(
    *,
    now: datetime,
    history: Sequence[Decimal],
    history_start: date,
    month_to_date: Decimal,
    today_so_far: Decimal,
    config: ForecastConfig | None = None,
    scope: Mapping[str, str] | None = None,
    currency: str = "USD",
) -> Forecast:
    """The month-end forecast from complete-day ``history`` (first day ``history_start``, last day yesterday).

    ``month_to_date`` includes ``today_so_far`` (today's spend up to ``now``). Pure: no I/O.
    """
    config = config or ForecastConfig()
    now = now.astimezone(UTC)
    month_start, month_end = month_bounds(now)
    today = now.date()
    day_start = datetime(today.year, today.month, today.day, tzinfo=UTC)
    elapsed = Decimal((now - day_start) // timedelta(microseconds=1)) / Decimal(86_400_000_000)
    remaining_days = (month_end.date() - today).days - 1  # whole days after today
    base: dict[str, Any] = {"scope": dict(scope or {}), "as_of": now, "month_start": month_start,
                            "month_end": month_end, "confidence": Decimal(config.confidence), "currency": currency,
                            "month_to_date": month_to_date}  # fmt: skip
    if not history:
        rate = today_so_far / elapsed if elapsed else _ZERO
        rest = rate * (1 - elapsed) + rate * remaining_days
        method = "run_rate" if today_so_far else "none"
        return Forecast(**base, method=method, history_days=0, projected=month_to_date + rest, lower=None,
                        upper=None, daily_rate=rate, trend_per_day=_ZERO)  # fmt: skip
    weekdays = [(history_start + timedelta(days=t)).weekday() for t in range(len(history))]
    fit = fit_daily(history, weekdays, config)
    n = len(history)
    future = [(n, 1 - elapsed), *((n + j, _ONE) for j in range(1, remaining_days + 1))]
    points = [(t, (history_start + timedelta(days=t)).weekday(), w) for t, w in future]
    with localcontext() as ctx:
        ctx.prec = 28
        rest = sum((w * fit.predict(t, weekday) for t, weekday, w in points), _ZERO)
        projected = month_to_date + rest
        variance = fit.sum_variance(points)
        lower = upper = None
        if variance is not None:
            half = config.z * variance.sqrt()
            lower, upper = max(projected - half, month_to_date), projected + half
    return Forecast(
        **base,
        method=fit.method,
        history_days=n,
        projected=projected,
        lower=lower,
        upper=upper,
        daily_rate=fit.predict(n, today.weekday()),
        trend_per_day=fit.slope,
        weekday_effects=fit.weekday_effects,
    )


def _check_scope(scope: Mapping[str, str | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.items():
        if name not in SCOPE_FIELDS:
            raise InvalidUsageError(name, f"is not a forecast scope; use {', '.join(SCOPE_FIELDS)}")
        if value is not None:
            out[name] = value
    return out


def daily_costs(rows: Iterable[RollupRow], scope: Mapping[str, str], currency: str = "USD") -> dict[date, Decimal]:
    """Cost per UTC day of the daily rollup ``rows`` matching ``scope`` (days with a rollup row only)."""
    out: dict[date, Decimal] = {}
    for row in rows:
        if row.currency != currency or any(getattr(row, name) != value for name, value in scope.items()):
            continue
        day = row.bucket_start.date()
        out[day] = out.get(day, _ZERO) + row.cost
    return out


def forecast_month(
    store: UsageStore,
    now: datetime,
    *,
    scope: Mapping[str, str | None] | None = None,
    currency: str = "USD",
    config: ForecastConfig | None = None,
) -> Forecast:
    """The month-end forecast of ``scope``'s spend (``{"team_id": "ml"}``; ``None`` = global) from the daily rollups.

    ``scope`` keys are :data:`SCOPE_FIELDS`; combinations narrow further. Raises InvalidUsageError naming a bad key.
    """
    config = config or ForecastConfig()
    pinned = _check_scope(scope or {})
    if now.tzinfo is None:
        raise InvalidUsageError("now", "must include a time zone")
    now = now.astimezone(UTC)
    month_start, _ = month_bounds(now)
    today = now.date()
    first = min(today - timedelta(days=config.history_days), month_start.date())
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    until = datetime(today.year, today.month, today.day, tzinfo=UTC) + _DAY
    days = daily_costs(store.rollups("day", since=since, until=until), pinned, currency)
    window_start = today - timedelta(days=config.history_days)
    seen = [day for day in days if window_start <= day < today]
    history: list[Decimal] = []
    start = today
    if seen:
        start = min(seen)
        history = [days.get(start + timedelta(days=t), _ZERO) for t in range((today - start).days)]
    month_to_date = sum((cost for day, cost in days.items() if month_start.date() <= day <= today), _ZERO)
    return project(
        now=now,
        history=history,
        history_start=start,
        month_to_date=month_to_date,
        today_so_far=days.get(today, _ZERO),
        config=config,
        scope=pinned,
        currency=currency,
    )


# -- limits -----------------------------------------------------------------------------------------


def run_out_at(
    *, used: Decimal, amount: Decimal, now: datetime, window_end: datetime | None, rate_per_day: Decimal
) -> datetime | None:
    """When a limit with ``used`` of ``amount`` runs out at ``rate_per_day``: ``now`` if it already has,
    ``None`` if it does not before ``window_end`` (its reset) or the rate is not positive.
    """
    if used >= amount:
        return now
    if rate_per_day <= 0:
        return None
    days = (amount - used) / rate_per_day
    if days > _MAX_RUN_OUT_DAYS:
        return None
    when = now + timedelta(microseconds=int(days * 86_400_000_000))
    if window_end is not None and when >= window_end:
        return None
    return when


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitRunOut:
    """One limit's current-rate outlook in its window."""

    limit: Mapping[str, Any]
    used: Decimal
    """Spent plus reserved (in-flight holds)."""
    amount: Decimal
    rate_per_day: Decimal
    """Spent so far in the window divided by the days elapsed in it."""
    window_start: datetime | None
    resets_at: datetime | None
    runs_out_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit": dict(self.limit),
            "used": format(self.used, "f"),
            "amount": format(self.amount, "f"),
            "rate_per_day": format(self.rate_per_day.quantize(_MONEY).normalize(), "f"),
            "window_start": None if self.window_start is None else self.window_start.isoformat(),
            "resets_at": None if self.resets_at is None else self.resets_at.isoformat(),
            "runs_out_at": None if self.runs_out_at is None else self.runs_out_at.isoformat(),
            "runs_out_before_reset": self.runs_out_at is not None,
        }


def limit_run_outs(statuses: Iterable[BudgetStatus], now: datetime) -> list[LimitRunOut]:
    """For each budget status (``Meter.budget_status(...)``) with a window: its rate and run-out date."""
    out: list[LimitRunOut] = []
    for status in statuses:
        if status.window_start is None:
            continue  # a per-request cap never runs out over time
        elapsed_us = (now - status.window_start) // timedelta(microseconds=1)
        rate = status.spent * 86_400_000_000 / elapsed_us if elapsed_us > 0 else _ZERO
        used = status.spent + status.reserved
        out.append(
            LimitRunOut(
                limit=status.limit.to_dict(),
                used=used,
                amount=status.amount,
                rate_per_day=rate,
                window_start=status.window_start,
                resets_at=status.resets_at,
                runs_out_at=run_out_at(
                    used=used, amount=status.amount, now=now, window_end=status.resets_at, rate_per_day=rate
                ),
            )
        )
    return out
