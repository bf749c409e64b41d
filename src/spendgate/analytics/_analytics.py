"""The dashboard queries: summary, breakdowns, top N, time series, hour-of-week heatmap, efficiency.

Every query takes a UTC period ``[since, until)`` and :class:`Filters`, and is answered from the
analytics cubes plus the not-yet-refreshed queue (exact and current), falling back to raw events where
no cube covers the filters or grouping; each result names its ``source``. See ``docs/analytics.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from spendgate.analytics._execute import Groups, Tail, count_keys, execute
from spendgate.analytics._measures import COST, LATENCY, TOKENS, Agg
from spendgate.analytics._plan import Group, Query, plan
from spendgate.analytics._refresh import pending
from spendgate.analytics._results import (
    METRIC_MEASURES,
    METRICS,
    TOTALS_MEASURES,
    Metric,
    Stats,
    Totals,
    stats_of,
    totals_of,
)
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageStore
from spendgate.ledger._analytics_queue import engine_of

__all__ = [
    "BREAKDOWNS",
    "Analytics",
    "Breakdown",
    "BreakdownBy",
    "BreakdownRow",
    "Efficiency",
    "EfficiencyRow",
    "Filters",
    "Heatmap",
    "Summary",
    "TimeSeries",
    "TimePoint",
]

#: What a breakdown can group by.
BreakdownBy = Literal["user", "team", "key", "provider", "model", "request_type", "tag", "session"]
BREAKDOWNS: tuple[BreakdownBy, ...] = get_args(BreakdownBy)
_BY: dict[str, Group] = {
    "user": Group(entity="user"), "team": Group(columns=("team_id",)), "key": Group(entity="api_key"),
    "provider": Group(columns=("provider",)), "model": Group(columns=("model",)),
    "request_type": Group(columns=("request_type",)), "tag": Group(entity="tag"), "session": Group(entity="session"),
}  # fmt: skip
Order = Literal["cost", "requests", "tokens"]
Granularity = Literal["minute", "hour", "day", "week", "month"]
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
_THOUSAND = Decimal(1000)
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
_MONEY = Decimal(1).scaleb(-12)
#: The measures the heatmap and the efficiency table read (see ``Query.measures``).
_HEATMAP = ("requests", "cost")
_EFFICIENCY = ("requests", "input_tokens", "output_tokens", "cost")


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Equality filters; every field set narrows the events (AND). ``tag`` is ``"key=value"``."""

    team_id: str | None = None
    provider: str | None = None
    model: str | None = None
    request_type: str | None = None
    user_id: str | None = None
    api_key_id: str | None = None
    tag: str | None = None
    currency: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (not isinstance(value, str) or not value or len(value) > 2000):
                raise InvalidUsageError(f.name, f"must be a non-empty string of at most 2000 characters, got {value!r}")
        if self.tag is not None and "=" not in self.tag:
            raise InvalidUsageError("tag", f"must be 'key=value', got {self.tag!r}")

    def as_dict(self) -> dict[str, str]:
        """The filters that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Totals, cost/latency/token statistics and distinct counts over a period (``sessions``: distinct ids).

    Percentiles are computed for latency; ``cost`` and ``tokens`` carry count, sum, avg, stddev (and
    exact token min/max). Per-bucket cost and token percentiles are in :meth:`Analytics.timeseries`.
    """

    since: datetime
    until: datetime
    currency: str | None
    totals: Totals
    cost: Stats
    latency: Stats
    tokens: Stats
    unique_users: int
    sessions: int
    providers: int
    models: int
    source: str
    queued: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakdownRow:
    """One group of a breakdown."""

    key: str | None
    totals: Totals


@dataclass(frozen=True, slots=True, kw_only=True)
class Breakdown:
    """Groups by one dimension, largest first (by ``order``); events lacking a user/key/tag/session are not listed."""

    by: str
    order: str
    currency: str | None
    rows: list[BreakdownRow]
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TimePoint:
    """One (UTC) bucket of a time series."""

    bucket_start: datetime
    stats: Stats


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeSeries:
    """A metric per bucket (only buckets with events), oldest first."""

    granularity: str
    metric: str
    currency: str | None
    points: list[TimePoint]
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Heatmap:
    """Activity per hour of the week (UTC): ``cells[weekday][hour]`` (Monday = 0) -> (requests, cost)."""

    currency: str | None
    requests: list[list[int]]
    cost: list[list[Decimal]]
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EfficiencyRow:
    """Cost per 1,000 tokens (input + output) of one model."""

    provider: str
    model: str
    requests: int
    tokens: int
    cost: Decimal
    cost_per_1k_tokens: Decimal | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Efficiency:
    """Models by cost per 1,000 tokens, most expensive first."""

    currency: str | None
    rows: list[EfficiencyRow]
    source: str


def _period(since: datetime, until: datetime) -> None:
    for name, value in (("since", since), ("until", until)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise InvalidUsageError(name, f"must be a timezone-aware datetime, got {value!r}")
        if not _EARLIEST <= value <= _LATEST:
            raise InvalidUsageError(
                name, f"must be between {_EARLIEST.year} and {_LATEST.year}, got {value.isoformat()}"
            )
    if until <= since:
        raise InvalidUsageError("until", f"must be after since ({since.isoformat()}), got {until.isoformat()}")


class Analytics:
    """Dashboard queries over one SQL usage store (see the module docstring)."""

    def __init__(self, store: UsageStore) -> None:
        self.store = store
        self._engine = engine_of(store)

    def _run(
        self, queries: list[Query], counts: Sequence[Query] = ()
    ) -> tuple[list[Groups], list[str], int, list[list[int]]]:
        """Answer ``queries`` (groups) and ``counts`` (distinct keys) in one snapshot."""
        with self._engine.transaction("query analytics in", repeatable=True) as conn:
            tail = Tail(conn)
            results, sources = [], []
            for query in queries:
                chosen = plan(query)
                results.append(execute(conn, query, chosen, tail))
                sources.append(chosen.source)
            distinct = [count_keys(conn, query, plan(query), tail) for query in counts]
            tail.load()
            return results, sources, tail.items, distinct

    @staticmethod
    def _query(
        since: datetime,
        until: datetime,
        filters: Filters | None,
        group: Group,
        sketches: bool,
        measures: tuple[str, ...] | None = None,
    ) -> Query:
        """The query; ``measures``: the ones the caller reads (the only ones summed from cubes; ``None``: all)."""
        _period(since, until)
        return Query(since, until, (filters or Filters()).as_dict(), group, sketches, measures=measures)

    @staticmethod
    def _one_currency(groups: Groups, filters: Filters | None) -> str | None:
        """The single currency of groups keyed ``(currency, ...)``; several without a filter: an error."""
        currencies = sorted({key[0] for key in groups})
        if len(currencies) > 1:
            raise InvalidUsageError(
                "currency", f"the events span several currencies ({', '.join(currencies)}): filter by currency"
            )
        return currencies[0] if currencies else (filters.currency if filters else None)

    def summary(self, since: datetime, until: datetime, filters: Filters | None = None) -> Summary:
        """Totals, cost/latency/token statistics (p50/p95/p99...), distinct users, sessions, providers, models."""
        q = replace(self._query(since, until, filters, Group(columns=("currency",)), True), slots=(LATENCY,))
        counts = [Group(entity="user"), Group(entity="session"), Group(columns=("provider", "model"))]
        results, sources, queued, distinct = self._run([q], [Query(q.since, q.until, q.filters, g) for g in counts])
        currency = self._one_currency(results[0], filters)
        agg = next(iter(results[0].values()), None) or Agg(True, (LATENCY,))
        (users,), (sessions,), (providers, models) = distinct
        return Summary(
            since=since,
            until=until,
            currency=currency,
            totals=totals_of(agg.values),
            cost=stats_of(agg, "cost"),
            latency=stats_of(agg, "latency"),
            tokens=stats_of(agg, "tokens"),
            unique_users=users,
            sessions=sessions,
            providers=providers,
            models=models,
            source=sources[0],
            queued=queued,
        )

    def breakdown(
        self,
        by: BreakdownBy,
        since: datetime,
        until: datetime,
        filters: Filters | None = None,
        *,
        top: int | None = None,
        order: Order = "cost",
    ) -> Breakdown:
        """Totals per value of ``by``, largest ``order`` first (ties by key), the first ``top`` groups."""
        if by not in _BY:
            raise InvalidUsageError("by", f"must be one of {', '.join(BREAKDOWNS)}, got {by!r}")
        if order not in get_args(Order):
            raise InvalidUsageError("order", f"must be one of {', '.join(get_args(Order))}, got {order!r}")
        if top is not None and (not isinstance(top, int) or top < 1):
            raise InvalidUsageError("top", f"must be a positive integer, got {top!r}")
        base = _BY[by]
        group = Group(columns=("currency", *base.columns), entity=base.entity)
        results, sources, _, _ = self._run([self._query(since, until, filters, group, False, TOTALS_MEASURES)])
        currency = self._one_currency(results[0], filters)
        rows = [BreakdownRow(key=key[1], totals=totals_of(agg.values)) for key, agg in results[0].items()]

        def rank(row: BreakdownRow) -> tuple[Any, ...]:
            t = row.totals
            value = t.cost if order == "cost" else Decimal(t.requests if order == "requests" else t.tokens)
            return (-value, -row.totals.requests, row.key is None, row.key or "")

        rows.sort(key=rank)
        return Breakdown(by=by, order=order, currency=currency, rows=rows[:top] if top else rows, source=sources[0])

    def top_users(self, since: datetime, until: datetime, filters: Filters | None = None, *, n: int = 10) -> Breakdown:
        """The ``n`` users who spent the most."""
        return self.breakdown("user", since, until, filters, top=n)

    def top_models(self, since: datetime, until: datetime, filters: Filters | None = None, *, n: int = 10) -> Breakdown:
        """The ``n`` most used models (by requests)."""
        return self.breakdown("model", since, until, filters, top=n, order="requests")

    def timeseries(
        self,
        granularity: Granularity,
        metric: Metric,
        since: datetime,
        until: datetime,
        filters: Filters | None = None,
    ) -> TimeSeries:
        """``metric`` per UTC bucket: count, sum, avg, min, max, stddev, p50, p95, p99 (weeks start Monday)."""
        if granularity not in GRANULARITIES:
            raise InvalidUsageError("granularity", f"must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")
        if metric not in METRICS:
            raise InvalidUsageError("metric", f"must be one of {', '.join(METRICS)}, got {metric!r}")
        columns = ("currency",) if metric == "cost" else ()
        group = Group(columns=columns, time=granularity)
        query = self._query(since, until, filters, group, metric != "requests", METRIC_MEASURES[metric])
        slot = {"cost": COST, "latency": LATENCY}.get(metric, TOKENS)
        results, sources, _, _ = self._run([replace(query, slots=(slot,))])
        currency = self._one_currency(results[0], filters) if metric == "cost" else None
        points = [TimePoint(bucket_start=key[-1], stats=stats_of(agg, metric)) for key, agg in results[0].items()]
        points.sort(key=lambda p: p.bucket_start)
        return TimeSeries(granularity=granularity, metric=metric, currency=currency, points=points, source=sources[0])

    def heatmap(self, since: datetime, until: datetime, filters: Filters | None = None) -> Heatmap:
        """Requests and cost per (weekday, hour) in UTC: the activity heatmap."""
        group = Group(columns=("currency",), time="how")
        results, sources, _, _ = self._run([self._query(since, until, filters, group, False, _HEATMAP)])
        currency = self._one_currency(results[0], filters)
        requests = [[0] * 24 for _ in range(7)]
        cost = [[Decimal(0)] * 24 for _ in range(7)]
        for key, agg in results[0].items():
            weekday, hour = key[-1]
            totals = totals_of(agg.values)
            requests[weekday][hour] = totals.requests
            cost[weekday][hour] = totals.cost
        return Heatmap(currency=currency, requests=requests, cost=cost, source=sources[0])

    def efficiency(self, since: datetime, until: datetime, filters: Filters | None = None) -> Efficiency:
        """Cost per 1,000 tokens (input + output) per model, most expensive first."""
        group = Group(columns=("currency", "provider", "model"))
        results, sources, _, _ = self._run([self._query(since, until, filters, group, False, _EFFICIENCY)])
        currency = self._one_currency(results[0], filters)
        rows = []
        for key, agg in results[0].items():
            t = totals_of(agg.values)
            per_1k = (t.cost * _THOUSAND / t.tokens).quantize(_MONEY) if t.tokens else None
            rows.append(EfficiencyRow(provider=key[1], model=key[2], requests=t.requests, tokens=t.tokens,
                                      cost=t.cost, cost_per_1k_tokens=per_1k))  # fmt: skip
        rows.sort(key=lambda r: (r.cost_per_1k_tokens is None, -(r.cost_per_1k_tokens or 0), r.provider, r.model))
        return Efficiency(currency=currency, rows=rows, source=sources[0])

    def backlog(self) -> int:
        """Events and re-ratings waiting for the worker (queries include them anyway)."""
        return pending(self.store).items
