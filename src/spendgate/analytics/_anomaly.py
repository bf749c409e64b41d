"""Anomaly detection on hourly rollups against a seasonal baseline, and the anomaly events it stores.

For each complete UTC hour evaluated, each scope (global, team, user, key, provider, model) and each
metric (cost, tokens, requests, error rate, latency), the hour's value is compared with a baseline:
the median of the same metric at the same hour of the week over the previous ``baseline_weeks`` weeks
(``"hour_of_week"``), or, with fewer than ``min_week_samples`` such weeks of history, at the same hour
of the day over the previous ``baseline_days`` days (``"hour_of_day"``). Hours before the scope's
first day in the ledger are missing, not zero (the first day is looked for in the daily rollups of the
baseline span and the week before it); with too few samples nothing is judged.

A spike is ``value > ratio * baseline`` (the seeds: > 200 % of baseline for cost, > 300 % for volume,
i.e. requests and tokens). Minimum-volume guards keep a quiet night from alarming: the hour needs
``min_requests`` requests (volume, error rate, latency) or ``min_cost`` of spend (cost). Error rate and
latency also need an absolute level (the seeds' warnings: 10 % errors, 5 s) before a ratio counts.

Anomalies are stored in the control store as ``kind="anomaly"`` objects, one per (metric, scope, hour):
detecting the same hour twice stores nothing new. The alerting side reads them with :func:`list_anomalies`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from statistics import median
from typing import Any, Literal, get_args

from spendgate.errors import InvalidUsageError
from spendgate.ledger import ControlStore, RollupRow, UsageStore

__all__ = [
    "ALERT_TYPES",
    "KIND",
    "METRICS",
    "SCOPE_KINDS",
    "Anomaly",
    "Metric",
    "ScopeKind",
    "AnomalyConfig",
    "HourTotals",
    "detect_anomalies",
    "evaluate",
    "anomaly_id",
    "list_anomalies",
    "prune_anomalies",
    "record_anomalies",
    "target_hours",
]

Metric = Literal["cost", "tokens", "requests", "error_rate", "latency"]
METRICS: tuple[Metric, ...] = get_args(Metric)
ScopeKind = Literal["global", "team", "user", "key", "provider", "model"]
SCOPE_KINDS: tuple[ScopeKind, ...] = get_args(ScopeKind)

#: The control-store kind anomalies are kept under.
KIND = "anomaly"
#: The alert type each metric's anomaly is, in the seeds' names.
ALERT_TYPES: Mapping[Metric, str] = {
    "cost": "cost_anomaly",
    "tokens": "token_spike",
    "requests": "usage_spike",
    "error_rate": "error_rate",
    "latency": "latency_spike",
}
_DIMENSION: Mapping[ScopeKind, str | None] = {
    "global": None, "team": "team_id", "user": "user_id", "key": "api_key_id", "provider": "provider", "model": "model",
}  # fmt: skip
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_ZERO = Decimal(0)
_ID_LIMIT = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalyConfig:
    """Thresholds and guards; defaults from the seeds (cost > 200 % of baseline, volume > 300 %)."""

    cost_ratio: Decimal = Decimal(2)
    """A cost spike is cost > ``cost_ratio`` x baseline."""
    volume_ratio: float = 3.0
    """A request or token spike is volume > ``volume_ratio`` x baseline."""
    error_rate_ratio: float = 2.0
    error_rate_min: float = 0.10
    """An error-rate anomaly also needs at least this error rate (the seeds' warning level)."""
    error_rate_critical: float = 0.25
    latency_ratio: float = 2.0
    latency_min_ms: float = 5000.0
    """A latency anomaly also needs at least this average latency (the seeds' warning level)."""
    latency_critical_ms: float = 10000.0
    min_requests: int = 20
    """Guard: volume, error-rate and latency anomalies need this many requests in the hour."""
    min_cost: Decimal = Decimal("1.00")
    """Guard: cost anomalies need this much spend in the hour."""
    baseline_weeks: int = 4
    min_week_samples: int = 2
    baseline_days: int = 7
    min_day_samples: int = 3
    scopes: tuple[ScopeKind, ...] = ("global", "team", "user", "provider", "model")
    metrics: tuple[Metric, ...] = METRICS
    currency: str = "USD"
    """Cost is compared in this currency (rollups in other currencies count for volume only)."""
    max_hours: int = 168
    """The most hours one detection run may evaluate."""

    def __post_init__(self) -> None:
        for name in ("cost_ratio", "volume_ratio", "error_rate_ratio", "latency_ratio"):
            if not getattr(self, name) > 1:
                raise InvalidUsageError(name, f"must be above 1, got {getattr(self, name)!r}")
        for name in ("min_requests", "baseline_weeks", "min_week_samples", "baseline_days", "min_day_samples"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InvalidUsageError(name, f"must be a positive integer, got {getattr(self, name)!r}")
        if self.min_week_samples > self.baseline_weeks or self.min_day_samples > self.baseline_days:
            raise InvalidUsageError("min_week_samples", "cannot exceed the samples there are (baseline_weeks/days)")
        if not 1 <= self.max_hours <= 24 * 31:
            raise InvalidUsageError("max_hours", f"must be from 1 to 744, got {self.max_hours!r}")
        for name, allowed in (("scopes", SCOPE_KINDS), ("metrics", METRICS)):
            bad = [item for item in getattr(self, name) if item not in allowed]
            if bad or not getattr(self, name):
                raise InvalidUsageError(name, f"must be a non-empty choice of {', '.join(allowed)}, got {bad}")


@dataclass(slots=True)
class HourTotals:
    """Sums of one scope's rollup rows in one hour."""

    requests: int = 0
    failures: int = 0
    tokens: int = 0
    cost: Decimal = _ZERO
    latency_ms_sum: int = 0
    latency_requests: int = 0

    def add(self, row: RollupRow, currency: str) -> None:
        self.requests += row.requests
        self.failures += row.failures
        self.tokens += row.input_tokens + row.output_tokens
        self.latency_ms_sum += row.latency_ms_sum
        self.latency_requests += row.latency_requests
        if row.currency == currency:
            self.cost += row.cost

    def value(self, metric: Metric) -> Decimal | float | None:
        """The metric's value (None where it is undefined: an error rate or latency of no requests)."""
        if metric == "cost":
            return self.cost
        if metric == "tokens":
            return float(self.tokens)
        if metric == "requests":
            return float(self.requests)
        if metric == "error_rate":
            return self.failures / self.requests if self.requests else None
        return self.latency_ms_sum / self.latency_requests if self.latency_requests else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomaly:
    """One metric of one scope that spiked in one UTC hour."""

    id: str
    metric: Metric
    type: str
    """The alert type, in the seeds' names: cost_anomaly, token_spike, usage_spike, error_rate, latency_spike."""
    scope: str
    """``"global"``, ``"team:ml"``, ``"user:ann"``, ``"key:<id>"``, ``"provider:openai"``, ``"model:gpt-4o"``."""
    hour: datetime
    value: Decimal | float
    baseline: Decimal | float
    ratio: float | None
    """value / baseline (None when the baseline is zero)."""
    threshold: float
    severity: Literal["warning", "critical"]
    method: Literal["hour_of_week", "hour_of_day"]
    samples: int
    requests: int
    detected_at: datetime
    currency: str | None = None
    """For cost anomalies: the currency of value and baseline."""
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The stored body: cost amounts as exact decimal strings, times in ISO 8601."""

        def number(value: Decimal | float) -> str | float:
            return format(value, "f") if isinstance(value, Decimal) else round(value, 6)

        return {
            "id": self.id,
            "metric": self.metric,
            "type": self.type,
            "scope": self.scope,
            "hour": self.hour.isoformat(),
            "value": number(self.value),
            "baseline": number(self.baseline),
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "threshold": self.threshold,
            "severity": self.severity,
            "method": self.method,
            "samples": self.samples,
            "requests": self.requests,
            "detected_at": self.detected_at.isoformat(),
            "currency": self.currency,
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Anomaly:
        """Read a stored body back."""
        metric = body["metric"]

        def number(value: Any) -> Decimal | float:
            return Decimal(value) if metric == "cost" else float(value)

        return cls(
            id=body["id"],
            metric=metric,
            type=body["type"],
            scope=body["scope"],
            hour=datetime.fromisoformat(body["hour"]),
            value=number(body["value"]),
            baseline=number(body["baseline"]),
            ratio=body["ratio"],
            threshold=body["threshold"],
            severity=body["severity"],
            method=body["method"],
            samples=body["samples"],
            requests=body["requests"],
            detected_at=datetime.fromisoformat(body["detected_at"]),
            currency=body.get("currency"),
            details=body.get("details") or {},
        )


def anomaly_id(metric: str, scope: str, hour: datetime) -> str:
    """The dedup key of (metric, scope, hour): readable when it fits the store's 200 characters, else hashed."""
    text = f"{hour.astimezone(UTC):%Y-%m-%dT%H}|{metric}|{scope}"
    return text if len(text) <= _ID_LIMIT else "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# -- evaluation (pure) --------------------------------------------------------------------------------


def _floor_hour(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _baseline(
    series: Mapping[datetime, HourTotals], hour: datetime, metric: Metric, first_day: date, config: AnomalyConfig
) -> tuple[Decimal | float, Literal["hour_of_week", "hour_of_day"], int] | None:
    empty = HourTotals()
    for method, step, count, needed in (
        ("hour_of_week", _WEEK, config.baseline_weeks, config.min_week_samples),
        ("hour_of_day", _DAY, config.baseline_days, config.min_day_samples),
    ):
        samples: list[Any] = []
        for k in range(1, count + 1):
            at = hour - step * k
            if at.date() < first_day:
                break
            value = series.get(at, empty).value(metric)
            if value is not None:
                samples.append(value)
        if len(samples) >= needed:
            return median(samples), method, len(samples)  # type: ignore[return-value]  # Decimal or float
    return None


def _judge(
    metric: Metric, value: Decimal | float, baseline: Decimal | float, totals: HourTotals, config: AnomalyConfig
) -> tuple[float, Literal["warning", "critical"]] | None:
    """(threshold, severity) when ``value`` is an anomaly against ``baseline``, else None."""
    if metric == "cost":
        if totals.cost < config.min_cost or not value > config.cost_ratio * Decimal(baseline):
            return None
        critical = value >= 2 * config.cost_ratio * Decimal(baseline)
        return float(config.cost_ratio), "critical" if critical else "warning"
    if totals.requests < config.min_requests:
        return None
    number, base = float(value), float(baseline)
    if metric in ("tokens", "requests"):
        if not number > config.volume_ratio * base:
            return None
        return config.volume_ratio, "critical" if number >= 2 * config.volume_ratio * base else "warning"
    if metric == "error_rate":
        if number < config.error_rate_min or not number > config.error_rate_ratio * base:
            return None
        return config.error_rate_ratio, "critical" if number >= config.error_rate_critical else "warning"
    if totals.latency_requests < config.min_requests:
        return None
    if number < config.latency_min_ms or not number > config.latency_ratio * base:
        return None
    return config.latency_ratio, "critical" if number >= config.latency_critical_ms else "warning"


def evaluate(
    scope: str,
    series: Mapping[datetime, HourTotals],
    hours: Iterable[datetime],
    *,
    first_day: date,
    now: datetime,
    config: AnomalyConfig | None = None,
) -> list[Anomaly]:
    """The anomalies of one scope's hourly ``series`` in ``hours`` (hour starts, UTC); ``first_day`` is the
    scope's first day in the ledger. Pure: no I/O.
    """
    config = config or AnomalyConfig()
    found: list[Anomaly] = []
    for hour in hours:
        totals = series.get(hour)
        if totals is None:
            continue
        for metric in config.metrics:
            value = totals.value(metric)
            if value is None:
                continue
            base = _baseline(series, hour, metric, first_day, config)
            if base is None:
                continue
            baseline, method, samples = base
            verdict = _judge(metric, value, baseline, totals, config)
            if verdict is None:
                continue
            threshold, severity = verdict
            ratio = float(value) / float(baseline) if baseline else None
            found.append(
                Anomaly(
                    id=anomaly_id(metric, scope, hour),
                    metric=metric,
                    type=ALERT_TYPES[metric],
                    scope=scope,
                    hour=hour,
                    value=value,
                    baseline=baseline,
                    ratio=ratio,
                    threshold=threshold,
                    severity=severity,
                    method=method,
                    samples=samples,
                    requests=totals.requests,
                    detected_at=now,
                    currency=config.currency if metric == "cost" else None,
                )
            )
    return found


# -- reading the ledger -------------------------------------------------------------------------------


def target_hours(
    now: datetime, since: datetime | None, until: datetime | None, config: AnomalyConfig
) -> list[datetime]:
    """The complete UTC hours to evaluate: those starting in ``[since, until)`` and ending by ``now``
    (default: the last complete hour). Raises InvalidUsageError naming ``since``/``until``.
    """
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidUsageError(name, "must include a time zone, e.g. 2026-03-01T00:00:00Z")
    last = _floor_hour(now)  # hours before this one are complete
    try:
        end = last if until is None else min(last, _ceil_hour(until))
        start = end - _HOUR if since is None else _ceil_hour(since)
    except OverflowError:
        raise InvalidUsageError("until" if since is None else "since", "is out of range") from None
    if start >= end:
        raise InvalidUsageError("since", f"no complete hour between since and until (now is {now.isoformat()})")
    count = (end - start) // _HOUR
    if count > config.max_hours:
        raise InvalidUsageError("since", f"at most {config.max_hours} hours per run, asked for {count}")
    return [start + _HOUR * i for i in range(count)]


def _ceil_hour(when: datetime) -> datetime:
    floor = _floor_hour(when)
    return floor if floor == when else floor + _HOUR


def _ranges(hours: Iterable[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """Contiguous ``[start, end)`` runs covering ``hours``."""
    start = end = None
    for hour in sorted(set(hours)):
        if end is not None and hour == end:
            end = hour + _HOUR
            continue
        if start is not None and end is not None:
            yield start, end
        start, end = hour, hour + _HOUR
    if start is not None and end is not None:
        yield start, end


def _scope_keys(row: RollupRow, kinds: Sequence[ScopeKind]) -> Iterator[str]:
    for kind in kinds:
        dimension = _DIMENSION[kind]
        if dimension is None:
            yield "global"
            continue
        value = getattr(row, dimension)
        if value:
            yield f"{kind}:{value}"


def detect_anomalies(
    store: UsageStore,
    now: datetime,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    config: AnomalyConfig | None = None,
) -> list[Anomaly]:
    """Anomalies in the complete hours of ``[since, until)`` (default: the last complete hour), from the rollups.

    Reads only the hours evaluated and their baseline hours (hourly rollups), and the daily rollups of the
    baseline span (to know when each scope first appears). Stores nothing: see :func:`record_anomalies`.
    """
    config = config or AnomalyConfig()
    hours = target_hours(now, since, until, config)
    needed = set(hours)
    for hour in hours:
        needed.update(hour - _WEEK * k for k in range(1, config.baseline_weeks + 1))
        needed.update(hour - _DAY * k for k in range(1, config.baseline_days + 1))
    series: dict[str, dict[datetime, HourTotals]] = {}
    for start, end in _ranges(needed):
        for row in store.rollups("hour", since=start, until=end):
            for key in _scope_keys(row, config.scopes):
                per_hour = series.setdefault(key, {})
                totals = per_hour.get(row.bucket_start)
                if totals is None:
                    totals = per_hour[row.bucket_start] = HourTotals()
                totals.add(row, config.currency)
    first_needed = min(needed)
    first_day: dict[str, date] = {}
    day_since = first_needed.replace(hour=0) - _WEEK  # a week's look-back: quiet at first is not "new"
    for row in store.rollups("day", since=day_since, until=hours[-1] + _HOUR):
        day = row.bucket_start.date()
        for key in _scope_keys(row, config.scopes):
            if key not in first_day or day < first_day[key]:
                first_day[key] = day
    found: list[Anomaly] = []
    targets = set(hours)
    for key in sorted(series):
        per_hour = series[key]
        judged = sorted(hour for hour in per_hour if hour in targets)
        if judged:
            found += evaluate(key, per_hour, judged, first_day=first_day.get(key, judged[0].date()), now=now,
                              config=config)  # fmt: skip
    return found


# -- the control store ----------------------------------------------------------------------------------


def record_anomalies(control: ControlStore, anomalies: Iterable[Anomaly], *, actor: str = "analytics") -> list[Anomaly]:
    """Store each anomaly once per (metric, scope, hour); returns the ones that were new."""
    new: list[Anomaly] = []
    for anomaly in anomalies:
        if control.get(KIND, anomaly.id) is not None:
            continue
        try:
            control.put(KIND, anomaly.id, anomaly.to_dict(), actor=actor, create_only=True)
        except InvalidUsageError:
            continue  # another process stored it between the read and the write
        new.append(anomaly)
    return new


def list_anomalies(
    control: ControlStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    scope: str | None = None,
    metric: str | None = None,
    scopes: Iterable[str] | None = None,
    detected_since: datetime | None = None,
) -> list[Anomaly]:
    """Stored anomalies, oldest hour first: those of hours in ``[since, until)``, of one ``scope`` or of any of
    ``scopes``, of one ``metric``, detected at or after ``detected_since`` (a consumer's cursor).
    """
    for name, value in (("since", since), ("until", until), ("detected_since", detected_since)):
        if value is not None and value.tzinfo is None:
            raise InvalidUsageError(name, "must include a time zone, e.g. 2026-03-01T00:00:00Z")
    allowed = None if scopes is None else set(scopes)
    out: list[Anomaly] = []
    for body in control.list_objects(KIND):
        anomaly = Anomaly.from_dict(body)
        if since is not None and anomaly.hour < since:
            continue
        if until is not None and anomaly.hour >= until:
            continue
        if (scope is not None and anomaly.scope != scope) or (allowed is not None and anomaly.scope not in allowed):
            continue
        if metric is not None and anomaly.metric != metric:
            continue
        if detected_since is not None and anomaly.detected_at < detected_since:
            continue
        out.append(anomaly)
    out.sort(key=lambda a: (a.hour, a.metric, a.scope))
    return out


def prune_anomalies(control: ControlStore, before: datetime, *, actor: str = "analytics") -> int:
    """Delete the stored anomalies of hours before ``before`` (for retention); returns how many."""
    if before.tzinfo is None:
        raise InvalidUsageError("before", "must include a time zone, e.g. 2026-03-01T00:00:00Z")
    removed = 0
    for body in control.list_objects(KIND):
        if datetime.fromisoformat(body["hour"]) < before:
            removed += control.delete(KIND, body["id"], actor=actor)
    return removed
