"""Queries that sum only the cube measures they read answer exactly as if they summed them all.

Heatmaps, time series, breakdowns and the efficiency table pass a measure list to
:func:`~spendgate.ledger._analytics_cubes.aggregate`; the reference runs the same calls with every
measure summed (the measure list dropped). Hypothesis picks the events, how many are refreshed and
re-rated, the period and the filters, on both backends.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterator
from datetime import timedelta
from functools import partial
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger_fixtures import T0
from spendgate.analytics._analytics import BREAKDOWNS, GRANULARITIES, Granularity
from spendgate.analytics._results import METRICS
from spendgate.ledger import UsageStore
from spendgate.ledger._analytics_cubes import aggregate
from spendgate.ledger._analytics_queue import engine_of
from spendgate.ledger._analytics_schema import MAIN, MEASURE_COLUMNS
from test_analytics_queries import LOADS, _load, loaded

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_real_aggregate = aggregate
_SPEC: dict[str, Any] = {
    "offset": 0, "provider": "openai", "model": "m1", "tokens": (10, 5), "cost": 10**9, "user_id": "ann",
    "team_id": "ml", "api_key_id": "k1", "session_id": "s1", "request_type": "chat", "tags": {"env": "prod"},
    "latency_ms": 120, "success": True,
}  # fmt: skip
#: Refreshed events in hour rows, with every measure set: each query kind reads cube rows.
_CUBED: list[dict[str, Any]] = [
    {**_SPEC, "offset": offset, "latency_ms": 100 + offset % 7} for offset in (-7200, 60, 3600)
]


class _Recorder:
    """Stands in for ``aggregate`` in the executor: records the measure lists, optionally sums them all."""

    def __init__(self, full: bool) -> None:
        self.full = full
        self.measures: list[Collection[str] | None] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
        call = inspect.signature(_real_aggregate).bind(*args, **kwargs)
        measures = call.arguments.get("measures")
        self.measures.append(measures)
        call.arguments["measures"] = None if self.full else measures
        return _real_aggregate(*call.args, **call.kwargs)


def _run(call: Callable[[], object], full: bool) -> tuple[object, _Recorder]:
    recorder = _Recorder(full)
    with patch("spendgate.analytics._execute.aggregate", recorder):
        return call(), recorder


@SETTINGS
@given(
    **LOADS,
    granularity=st.sampled_from(GRANULARITIES),
)
@example(specs=_CUBED, refreshed=3, rerated=0, period=(-86400, 2 * 86400), flt={}, granularity="hour")
def test_queries_summing_only_their_measures_equal_the_full_sums(
    ledger_store: UsageStore, specs: list[dict[str, Any]], refreshed: int, rerated: int,
    period: tuple[int, int], flt: dict[str, str], granularity: Granularity,
) -> None:  # fmt: skip
    since, until, analytics, filters = loaded(ledger_store, specs, refreshed, rerated, period, flt)
    calls: list[Callable[[], object]] = [
        partial(analytics.heatmap, since, until, filters),
        partial(analytics.efficiency, since, until, filters),
        partial(analytics.top_models, since, until, filters, n=3),
        *(partial(analytics.timeseries, granularity, metric, since, until, filters) for metric in METRICS),
        *(partial(analytics.breakdown, by, since, until, filters) for by in BREAKDOWNS),
    ]
    for call in calls:
        got, used = _run(call, full=False)
        want, _ = _run(call, full=True)
        assert got == want
        # Every cube read asked for a strict subset of the measures.
        assert all(m is not None and set(m) < set(MEASURE_COLUMNS) for m in used.measures), used.measures


def test_aggregate_sums_the_chosen_measures_and_leaves_the_others_unset(ledger_store: UsageStore) -> None:
    _load(ledger_store, [{**_SPEC, "offset": offset} for offset in (-7200, -3600, 60, 3600)], 4, 0)
    window = [("hour", T0 - timedelta(days=1), T0 + timedelta(days=1))]
    index = {name: i for i, name in enumerate(MEASURE_COLUMNS)}
    chosen = ("latency_max", "cost", "tokens_sq")
    with engine_of(ledger_store).transaction("test measures in") as conn:
        full = dict(aggregate(conn, MAIN, window, {}, ["team_id"]))
        some = dict(aggregate(conn, MAIN, window, {}, ["team_id"], chosen))
        empty = list(aggregate(conn, MAIN, [("hour", T0 + timedelta(days=5), T0 + timedelta(days=6))], {}, [], chosen))
        with pytest.raises(ValueError, match="unknown measures: bogus"):
            list(aggregate(conn, MAIN, window, {}, [], ["cost", "bogus"]))
    assert set(some) == set(full) == {("ml",)}
    values, expected = some[("ml",)], full[("ml",)]
    assert values[index["requests"]] == expected[index["requests"]] == 4  # always read
    for name in chosen:
        assert values[index[name]] == expected[index[name]]
    assert values[index["latency_max"]] == 120 and values[index["cost"]] == 4 * 10**9
    assert values[index["input_tokens"]] == 0 and values[index["latency_sq"]] == 0.0
    assert values[index["latency_min"]] is None and expected[index["latency_min"]] == 120
    assert empty == []
