"""Analytics queries: every answer from cubes (+ raw edges + the queued tail) equals a direct computation.

The reference below works on ``store.iter_events()`` (current costs) with plain Python. Hypothesis picks
the events, how many of them the worker has refreshed, which were re-rated, the period (ragged edges)
and the filters; sums must be equal, percentiles within the sketch's 1 %.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_fixtures import T0, make_event
from spendgate.analytics import RELATIVE_ERROR, Analytics, Filters, Stats, Totals, refresh
from spendgate.analytics._plan import Group, Query, plan
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageEvent, UsageStore
from spendgate.ledger import _analytics_cubes as analytics_cubes
from spendgate.usage import Usage
from test_analytics_cubes import change

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BY_FIELD = {"user": "user_id", "key": "api_key_id", "session": "session_id", "team": "team_id",
            "provider": "provider", "model": "model", "request_type": "request_type"}  # fmt: skip

event_st = st.fixed_dictionaries(
    {
        "offset": st.integers(-3 * 86400, 3 * 86400),
        "provider": st.sampled_from(["openai", "anthropic"]),
        "model": st.sampled_from(["m1", "m2"]),
        "tokens": st.tuples(st.integers(0, 3000), st.integers(0, 500)),
        "cost": st.one_of(st.none(), st.integers(0, 10**9)),
        "user_id": st.sampled_from([None, "ann", "bob"]),
        "team_id": st.sampled_from([None, "ml", "ops"]),
        "api_key_id": st.sampled_from([None, "k1", "k2"]),
        "session_id": st.sampled_from([None, "s1", "s2"]),
        "request_type": st.sampled_from([None, "chat", "embed"]),
        "tags": st.sampled_from([{}, {"env": "prod"}, {"env": "dev", "app": "x"}]),
        "latency_ms": st.one_of(st.none(), st.integers(0, 30_000)),
        "success": st.booleans(),
    }
)
filters_st = st.fixed_dictionaries(
    {},
    optional={
        "team_id": st.sampled_from(["ml", "ops"]),
        "model": st.sampled_from(["m1", "m2"]),
        "provider": st.just("openai"),
        "request_type": st.just("chat"),
        "user_id": st.sampled_from(["ann", "bob"]),
        "api_key_id": st.just("k1"),
        "tag": st.sampled_from(["env=prod", "app=x"]),
    },
)
period_st = st.tuples(st.integers(-4 * 86400, 2 * 86400), st.integers(1, 4 * 86400))


def _event(spec: dict[str, Any], prefix: str, i: int) -> UsageEvent:
    return make_event(
        event_id=f"{prefix}-{i}",
        timestamp=T0 + timedelta(seconds=spec["offset"], microseconds=i),
        provider=spec["provider"],
        model=spec["model"],
        usage=Usage(input_tokens=spec["tokens"][0], output_tokens=spec["tokens"][1]),
        cost=None if spec["cost"] is None else Decimal(spec["cost"]).scaleb(-12),
        **{k: spec[k] for k in ("user_id", "team_id", "api_key_id", "session_id", "request_type", "tags")},
        latency_ms=spec["latency_ms"],
        success=spec["success"],
    )


def _load(store: UsageStore, specs: list[dict[str, Any]], refreshed: int, rerated: int) -> None:
    """Record the events; refresh the first ``refreshed``; re-rate the first and last ``rerated`` (some twice)."""
    prefix = uuid.uuid4().hex[:8]
    events = [_event(spec, prefix, i) for i, spec in enumerate(specs)]
    store.record_many(events[:refreshed])
    while refresh(store, max_events=50):
        pass
    store.record_many(events[refreshed:])
    for round_ in range(2):
        changes = []
        chosen = {e.event_id: e for e in events[: rerated // (round_ + 1)] + events[len(events) - rerated :]}
        for event in chosen.values():
            current = store.get(event.event_id)
            assert current is not None
            new = None if current.cost is None else current.cost * 2 + Decimal("0.000001")
            changes.append(change(event.event_id, current.cost, new, current.price_version, f"r{round_}"))
        if changes:
            store.apply_adjustments(changes)


def loaded(
    store: UsageStore, specs: list[dict[str, Any]], refreshed: int, rerated: int,
    period: tuple[int, int], flt: dict[str, str],
) -> tuple[datetime, datetime, Analytics, Filters]:  # fmt: skip
    """``_load`` the events, then the query's period (from ``period_st``), analytics and filters."""
    _load(store, specs, refreshed, rerated)
    since = T0 + timedelta(seconds=period[0], microseconds=period[0] % 999_983)
    return since, since + timedelta(seconds=period[1]), Analytics(store), Filters(**flt)


# -- the reference: plain Python over the raw events ------------------------------------------------


def _matching(store: UsageStore, since: datetime, until: datetime, f: dict[str, str]) -> list[UsageEvent]:
    out = []
    for e in store.iter_events():
        if not since <= e.timestamp < until:
            continue
        if any(getattr(e, k) != v for k, v in f.items() if k != "tag"):
            continue
        if "tag" in f and f["tag"] not in {f"{k}={v}" for k, v in e.tags.items()}:
            continue
        out.append(e)
    return out


def _check_totals(got: Totals, events: list[UsageEvent]) -> None:
    assert got.requests == len(events)
    assert got.successes == sum(e.success for e in events)
    assert got.input_tokens == sum(e.usage.input_tokens for e in events)
    assert got.output_tokens == sum(e.usage.output_tokens for e in events)
    assert got.cost == sum((e.cost for e in events if e.cost is not None), Decimal(0))
    assert got.unpriced_requests == sum(e.cost is None for e in events)
    latencies = [e.latency_ms for e in events if e.latency_ms is not None]
    assert got.latency_requests == len(latencies)
    assert got.avg_latency_ms == (sum(latencies) / len(latencies) if latencies else None)


def _close(got: Any, want: float, relative: float, absolute: float) -> bool:
    return got is not None and abs(float(got) - want) <= relative * abs(want) + absolute


def _check_stats(got: Stats, values: list[float], exact_sum: Any, sketched: bool = True) -> None:
    """Count and sum exact; stddev close; percentiles, min and max within the sketch's relative error.

    Latency and token percentiles are rounded to 0.001, cost statistics to 6 significant digits.
    """
    assert got.count == len(values)
    assert got.sum == exact_sum
    if not values:
        assert (got.p50, got.stddev, got.avg) == (None, None, None)
        return
    ordered = sorted(values)
    mean = sum(values) / len(values)
    stddev = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    assert _close(got.stddev, stddev, 1e-5, 1e-6 * ordered[-1] + 1e-9)
    if not sketched:
        assert (got.p50, got.p95, got.p99) == (None, None, None)
        return
    for q, value in ((0.5, got.p50), (0.95, got.p95), (0.99, got.p99)):
        assert _close(value, ordered[int(q * (len(values) - 1))], RELATIVE_ERROR + 1e-5, 5e-4)
    assert _close(got.min, ordered[0], RELATIVE_ERROR + 1e-5, 5e-4)
    assert _close(got.max, ordered[-1], RELATIVE_ERROR + 1e-5, 5e-4)


def _grouped(events: Iterable[UsageEvent], keys: Callable[[UsageEvent], list[Any]]) -> dict[Any, list[UsageEvent]]:
    out: dict[Any, list[UsageEvent]] = defaultdict(list)
    for e in events:
        for key in keys(e):
            out[key].append(e)
    return dict(out)


def _breakdown_keys(by: str) -> Callable[[UsageEvent], list[Any]]:
    if by == "tag":
        return lambda e: [f"{k}={v}" for k, v in e.tags.items()]
    field = BY_FIELD[by]
    if by in ("user", "key", "session"):
        return lambda e: [getattr(e, field)] if getattr(e, field) else []
    return lambda e: [getattr(e, field)]


def _bucket(moment: datetime, granularity: str) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "minute": moment.replace(second=0, microsecond=0),
        "hour": moment.replace(minute=0, second=0, microsecond=0),
        "day": day,
        "week": day - timedelta(days=day.weekday()),
        "month": day.replace(day=1),
    }[granularity]


#: What ``loaded`` takes from hypothesis: events, how many are refreshed and re-rated, period, filters.
LOADS: dict[str, st.SearchStrategy[Any]] = {
    "specs": st.lists(event_st, min_size=1, max_size=40),
    "refreshed": st.integers(0, 40),
    "rerated": st.integers(0, 10),
    "period": period_st,
    "flt": filters_st,
}


# -- the properties -------------------------------------------------------------------------------


@SETTINGS
@given(
    **LOADS,
    by=st.sampled_from(["user", "team", "key", "provider", "model", "request_type", "tag", "session"]),
)
def test_summary_and_breakdown_equal_the_raw_events(
    ledger_store: UsageStore, specs: list[dict[str, Any]], refreshed: int, rerated: int,
    period: tuple[int, int], flt: dict[str, str], by: str,
) -> None:  # fmt: skip
    since, until, analytics, filters = loaded(ledger_store, specs, refreshed, rerated, period, flt)
    events = _matching(ledger_store, since, until, flt)

    summary = analytics.summary(since, until, filters)
    _check_totals(summary.totals, events)
    latencies = [float(e.latency_ms) for e in events if e.latency_ms is not None]
    _check_stats(summary.latency, latencies, sum(int(v) for v in latencies))
    costs = [e.cost for e in events if e.cost is not None]
    _check_stats(summary.cost, [float(c) for c in costs], sum(costs, Decimal(0)), sketched=False)
    tokens = [float(e.usage.input_tokens + e.usage.output_tokens) for e in events]
    _check_stats(summary.tokens, tokens, sum(int(t) for t in tokens), sketched=False)
    assert summary.tokens.min == (min(tokens) if tokens else None)
    assert summary.unique_users == len({e.user_id for e in events if e.user_id})
    assert summary.sessions == len({e.session_id for e in events if e.session_id})
    assert summary.providers == len({e.provider for e in events})
    assert summary.models == len({e.model for e in events})
    with patch.object(analytics_cubes, "_IN_LIMIT", 0):  # values seen outside the cube checked in chunks
        again = analytics.summary(since, until, filters)
    counts = (summary.unique_users, summary.sessions, summary.providers, summary.models)
    assert (again.unique_users, again.sessions, again.providers, again.models) == counts

    breakdown = analytics.breakdown(by, since, until, filters)  # type: ignore[arg-type]
    groups = _grouped(events, _breakdown_keys(by))
    assert {row.key for row in breakdown.rows} == set(groups)
    for row in breakdown.rows:
        _check_totals(row.totals, groups[row.key])
    costs_desc = [row.totals.cost for row in breakdown.rows]
    assert costs_desc == sorted(costs_desc, reverse=True)


@SETTINGS
@given(
    **LOADS,
    granularity=st.sampled_from(["minute", "hour", "day", "week", "month"]),
    metric=st.sampled_from(["requests", "cost", "tokens", "latency"]),
)
def test_timeseries_heatmap_and_efficiency_equal_the_raw_events(
    ledger_store: UsageStore, specs: list[dict[str, Any]], refreshed: int, rerated: int,
    period: tuple[int, int], flt: dict[str, str], granularity: str, metric: str,
) -> None:  # fmt: skip
    since, until, analytics, filters = loaded(ledger_store, specs, refreshed, rerated, period, flt)
    events = _matching(ledger_store, since, until, flt)

    series = analytics.timeseries(granularity, metric, since, until, filters)  # type: ignore[arg-type]
    buckets = _grouped(events, lambda e: [_bucket(e.timestamp, granularity)])
    assert [p.bucket_start for p in series.points] == sorted(buckets)
    for point in series.points:
        chunk = buckets[point.bucket_start]
        if metric == "requests":
            assert (point.stats.count, point.stats.sum) == (len(chunk), len(chunk))
        elif metric == "latency":
            values = [e.latency_ms for e in chunk if e.latency_ms is not None]
            _check_stats(point.stats, [float(v) for v in values], sum(values))
        elif metric == "tokens":
            values = [e.usage.input_tokens + e.usage.output_tokens for e in chunk]
            _check_stats(point.stats, [float(v) for v in values], sum(values))
        else:
            costs = [e.cost for e in chunk if e.cost is not None]
            _check_stats(point.stats, [float(c) for c in costs], sum(costs, Decimal(0)))

    heat = analytics.heatmap(since, until, filters)
    cells = _grouped(events, lambda e: [(e.timestamp.weekday(), e.timestamp.hour)])
    for weekday in range(7):
        for hour in range(24):
            chunk = cells.get((weekday, hour), [])
            assert heat.requests[weekday][hour] == len(chunk)
            assert heat.cost[weekday][hour] == sum((e.cost for e in chunk if e.cost is not None), Decimal(0))

    efficiency = analytics.efficiency(since, until, filters)
    models = _grouped(events, lambda e: [(e.provider, e.model)])
    assert {(r.provider, r.model) for r in efficiency.rows} == set(models)
    for row in efficiency.rows:
        chunk = models[(row.provider, row.model)]
        cost = sum((e.cost for e in chunk if e.cost is not None), Decimal(0))
        tokens = sum(e.usage.input_tokens + e.usage.output_tokens for e in chunk)
        assert (row.requests, row.tokens, row.cost) == (len(chunk), tokens, cost)
        assert row.cost_per_1k_tokens == (None if not tokens else (cost * 1000 / tokens).quantize(Decimal("1e-12")))


def test_the_planner_reads_the_coarsest_rows_and_says_so() -> None:
    since, until = T0 - timedelta(days=3, minutes=30, seconds=5), T0 + timedelta(hours=2, minutes=3, seconds=1)
    chosen = plan(Query(since, until, {}, Group(columns=("currency",)), True))
    assert chosen.source == "analytics_series: day, hour, minute + raw"
    grains = [s.granularity for s in chosen.segments]
    assert grains == [None, "minute", "hour", "day", "hour", "minute", None]
    assert plan(Query(since, until, {"team_id": "ml"}, Group(), True)).source == "analytics_main: day, hour + raw"
    assert plan(Query(since, until, {"user_id": "a"}, Group(), False)).source == "analytics_entities: day, hour + raw"
    assert plan(Query(since, until, {"model": "m", "tag": "a=b"}, Group(), False)).source.startswith(
        "analytics_entity_models: day"
    )
    assert plan(Query(since, until, {"user_id": "a", "tag": "a=b"}, Group(), False)).source == "raw"
    assert plan(Query(since, until, {"user_id": "a"}, Group(), True)).source == "raw"  # no sketches per user
    assert plan(Query(since, until, {"tag": "a=b"}, Group(entity="tag"), False)).source == "raw"  # co-tags
    assert plan(Query(since, until, {}, Group(time="hour"), False)).source == "analytics_series: hour, minute + raw"
    assert plan(Query(since, until, {"model": "m"}, Group(time="how"), False)).source == "analytics_main: hour + raw"
    midnight = T0.replace(hour=0)
    assert plan(Query(midnight, midnight + timedelta(days=2), {}, Group(), False)).source == "analytics_series: day"
    assert plan(Query(T0, T0 + timedelta(seconds=59), {}, Group(), False)).source == "raw"


def test_several_currencies_need_a_currency_filter(ledger_store: UsageStore) -> None:
    ledger_store.record_many([make_event(currency="USD"), make_event(currency="EUR", cost=Decimal("2"))])
    analytics = Analytics(ledger_store)
    with pytest.raises(InvalidUsageError, match="several currencies") as caught:
        analytics.summary(T0, T0 + timedelta(hours=1))
    assert caught.value.field == "currency"
    summary = analytics.summary(T0, T0 + timedelta(hours=1), Filters(currency="EUR"))
    assert (summary.currency, summary.totals.cost) == ("EUR", Decimal(2))
    assert analytics.timeseries("hour", "requests", T0, T0 + timedelta(hours=1)).points[0].stats.sum == 2


def test_empty_periods_and_bad_input(ledger_store: UsageStore) -> None:
    analytics = Analytics(ledger_store)
    summary = analytics.summary(T0, T0 + timedelta(days=1))
    assert (summary.totals.requests, summary.currency, summary.latency.p50, summary.unique_users) == (0, None, None, 0)
    assert analytics.top_users(T0, T0 + timedelta(days=1)).rows == []
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: analytics.summary(T0, T0), "until"),
        (lambda: analytics.summary(T0.replace(tzinfo=None), T0 + timedelta(1)), "since"),
        (lambda: analytics.breakdown("colour", T0, T0 + timedelta(1)), "by"),  # type: ignore[arg-type]
        (lambda: analytics.breakdown("user", T0, T0 + timedelta(1), top=0), "top"),
        (lambda: analytics.breakdown("user", T0, T0 + timedelta(1), order="x"), "order"),  # type: ignore[arg-type]
        (lambda: analytics.timeseries("year", "cost", T0, T0 + timedelta(1)), "granularity"),  # type: ignore[arg-type]
        (lambda: analytics.timeseries("day", "joy", T0, T0 + timedelta(1)), "metric"),  # type: ignore[arg-type]
        (lambda: Filters(tag="novalue"), "tag"),
        (lambda: Filters(team_id=""), "team_id"),
    ]
    for call, field in cases:
        with pytest.raises(InvalidUsageError) as caught:
            call()
        assert caught.value.field == field


def test_queued_rerated_events_count_once_with_their_current_cost(ledger_store: UsageStore) -> None:
    ledger_store.record(make_event(event_id="q", cost=Decimal("1")))
    ledger_store.apply_adjustments([change("q", Decimal(1), Decimal(3), None, "v2")])
    analytics = Analytics(ledger_store)
    since = T0.replace(hour=0) - timedelta(days=1)
    before = analytics.summary(since, since + timedelta(days=3))
    assert (before.totals.cost, before.queued, before.source) == (Decimal(3), 2, "analytics_series: day")
    assert refresh(ledger_store) == 2
    after = analytics.summary(since, since + timedelta(days=3))
    assert (after.totals.cost, after.queued) == (Decimal(3), 0)
    assert after.cost == before.cost


@pytest.mark.parametrize("in_limit", [5000, 0])  # values seen outside the cube checked inline, or in chunks
def test_distinct_counts_merge_cube_raw_edges_and_queued_events(ledger_store: UsageStore, in_limit: int) -> None:
    day = T0.replace(hour=0, minute=0, second=0, microsecond=0)
    ledger_store.record_many(
        [make_event(user_id="ann", session_id="s1", model="m1", timestamp=day + timedelta(hours=2))]
    )
    assert refresh(ledger_store) == 1  # ann, s1, m1 are in the cubes
    ledger_store.record_many([  # queued: ann and s1 again (already counted), bob and s2 new
        make_event(user_id="ann", session_id="s1", model="m1", timestamp=day + timedelta(hours=3)),
        make_event(user_id="bob", session_id="s2", model="m2", timestamp=day + timedelta(hours=4)),
    ])  # fmt: skip
    ledger_store.record(
        make_event(user_id="ann", session_id="s3", model="m1", timestamp=day + timedelta(hours=5, minutes=1))
    )
    with patch.object(analytics_cubes, "_IN_LIMIT", in_limit):
        summary = Analytics(ledger_store).summary(day, day + timedelta(hours=5, minutes=30))  # a ragged end: raw
    assert (summary.unique_users, summary.sessions, summary.models) == (2, 3, 2)


def test_a_breakdown_by_tag_filtered_by_tag_lists_the_other_tags_of_the_events(ledger_store: UsageStore) -> None:
    ledger_store.record_many([make_event(event_id="a", tags={"env": "prod", "app": "x"}), make_event(event_id="b")])
    assert refresh(ledger_store) == 2  # in the cubes, where each row holds one tag
    rows = Analytics(ledger_store).breakdown("tag", T0, T0 + timedelta(hours=1), Filters(tag="app=x")).rows
    assert sorted((row.key, row.totals.requests) for row in rows) == [("app=x", 1), ("env=prod", 1)]


def test_top_n_and_most_used_models(ledger_store: UsageStore) -> None:
    ledger_store.record_many(
        [make_event(user_id=f"u{i}", cost=Decimal(i), model="big" if i < 3 else "small") for i in range(6)]
    )
    analytics = Analytics(ledger_store)
    top = analytics.top_users(T0, T0 + timedelta(hours=1), n=2)
    assert [(r.key, r.totals.cost) for r in top.rows] == [("u5", Decimal(5)), ("u4", Decimal(4))]
    models = analytics.top_models(T0, T0 + timedelta(hours=1), n=1)
    assert [(r.key, r.totals.requests) for r in models.rows] == [("big", 3)]  # ties: by key
    assert analytics.backlog() == 6
    while refresh(ledger_store):
        pass
    assert analytics.backlog() == 0
    assert analytics.top_users(T0, T0 + timedelta(hours=1), n=2) == top
