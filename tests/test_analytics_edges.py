"""The raw edges and the queued tail summed by the database equal the same events summed one by one in Python.

``sum_events`` groups and sums in SQL what a query answered from a cube reads raw; the reference reads
the same events' rows and adds :func:`event_delta` per event under the keys ``_event_keys`` gives them
(what the worker and a no-cube scan do). Hypothesis picks the events, which are refreshed, the period,
the filters and the grouping (plain columns, one entity dimension, a time bucket), on both backends.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_fixtures import T0
from spendgate.analytics._edges import EdgeGroups, event_keys, sum_events
from spendgate.analytics._execute import _event_keys
from spendgate.analytics._measures import NUMERIC, Cell, event_delta
from spendgate.analytics._plan import ENTITY_FILTERS, Group, Query, plan
from spendgate.analytics._sketch import bin_of
from spendgate.ledger import UsageStore
from spendgate.ledger._analytics_queue import EVENT_COLUMNS, engine_of, queued
from spendgate.ledger._schema import usage_events
from test_analytics_queries import _event, _load, event_st

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_FLOATS = range(NUMERIC - 3, NUMERIC)  # the sums of squares: equal up to rounding

group_st = st.builds(
    Group,
    columns=st.sampled_from([(), ("currency",), ("team_id",), ("provider", "model"), ("request_type",)]),
    entity=st.sampled_from([None, "user", "api_key", "session", "tag"]),
    time=st.sampled_from([None, "minute", "hour", "day", "week", "month", "how"]),
)
# Plain filters and at most one entity filter.
plain_st = st.fixed_dictionaries(
    {}, optional={"team_id": st.sampled_from(["ml", "ops"]), "model": st.just("m1"), "request_type": st.just("chat")}
)
entity_filter_st = st.sampled_from(
    [{}, {"user_id": "ann"}, {"api_key_id": "k1"}, {"tag": "env=prod"}, {"tag": "app=x"}]
)


def _reference(rows: list[Any], query: Query, tail: bool) -> dict[tuple[Any, ...], Cell]:
    keys = _event_keys(query)
    cells: dict[tuple[Any, ...], Cell] = {}
    for row in rows:
        for key in keys(row):
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = Cell(query.sketches)
            cell.add(event_delta(row, row.original_cost if tail else row.cost))
    return cells


def _assert_equal(got: EdgeGroups, want: dict[tuple[Any, ...], Cell]) -> None:
    assert set(got) == set(want)
    for key, cell in want.items():
        values, sketches = got[key]
        expected = cell.values
        exact = [i for i in range(len(expected)) if i not in _FLOATS]
        assert [values[i] for i in exact] == [expected[i] for i in exact], key
        for i in _FLOATS:
            assert values[i] == pytest.approx(expected[i], rel=1e-9, abs=1e-12)
        if cell.sketches is None:
            assert sketches is None
        else:
            assert sketches is not None
            assert [s.encode() for s in sketches] == [s.encode() for s in cell.sketches]


@SETTINGS
@given(
    specs=st.lists(event_st, min_size=1, max_size=40),
    refreshed=st.integers(0, 40),
    rerated=st.integers(1, 10),
    period=st.one_of(
        st.just((-4 * 86400, 8 * 86400)), st.tuples(st.integers(-4 * 86400, 2 * 86400), st.integers(1, 4 * 86400))
    ),
    group=group_st,
    plain=plain_st,
    entity_filter=entity_filter_st,
    sketches=st.booleans(),
)
def test_sql_sums_of_edges_and_tail_equal_event_by_event_sums(
    ledger_store: UsageStore, specs: list[dict[str, Any]], refreshed: int, rerated: int, period: tuple[int, int],
    group: Group, plain: dict[str, str], entity_filter: dict[str, str], sketches: bool,
) -> None:  # fmt: skip
    # Some events stay queued, and the last (queued) ones are re-rated: their current cost is not the original.
    _load(ledger_store, specs, refreshed % len(specs), rerated)
    since = T0 + timedelta(seconds=period[0], microseconds=period[0] % 999_983)
    until = since + timedelta(seconds=period[1])
    if group.entity is not None:  # one entity dimension at most, and a tag filter does not narrow a tag grouping
        entity_filter = {k: v for k, v in entity_filter.items() if ENTITY_FILTERS[k] == group.entity != "tag"}
    sketches = sketches and group.entity is None and not entity_filter  # entity cubes keep no sketches
    query = Query(since, until, {**plain, **entity_filter}, group, sketches)
    if plan(query).cube is None:  # e.g. request type with an entity: no cube has both
        query = replace(query, filters=plain, group=replace(group, entity=None))
    assert plan(query).cube is not None  # a query a cube answers (its edges and tail are what sum_events reads)
    with engine_of(ledger_store).transaction("test edges in") as conn:
        statement = sa.select(*EVENT_COLUMNS).where(usage_events.c.timestamp >= since, usage_events.c.timestamp < until)
        rows = list(conn.execute(statement))
        listed = {i for row in queued(conn) if row.kind == "events" for i in row.ids}
        for tail in (False, True):
            got: EdgeGroups = {}
            sum_events(conn, query, [(since, until)], tail=tail, into=got)
            chosen = [row for row in rows if row.event_id in listed] if tail else rows
            _assert_equal(got, _reference(chosen, query, tail))
            assert event_keys(conn, query, [(since, until)], tail=tail) == set(got)


def test_several_periods_add_up_and_empty_periods_add_nothing(ledger_store: UsageStore) -> None:
    specs = [{**_SPEC, "offset": offset} for offset in (-7200, -60, 0, 59, 3600)]
    ledger_store.record_many([_event(spec, "p", i) for i, spec in enumerate(specs)])
    query = Query(T0 - timedelta(hours=3), T0 + timedelta(hours=2), {}, Group(columns=("currency",)), True)
    with engine_of(ledger_store).transaction("test edges in") as conn:
        got: EdgeGroups = {}
        sum_events(conn, query, [(T0 - timedelta(hours=3), T0 - timedelta(minutes=1)), (T0, T0 + timedelta(hours=2))],
                   tail=False, into=got)  # fmt: skip
        sum_events(conn, query, [], tail=False, into=got)
        sum_events(conn, query, [(T0 + timedelta(days=9), T0 + timedelta(days=10))], tail=False, into=got)
    (values, sketches), *rest = got.values()
    assert rest == []
    assert values[0] == 4  # -7200, 0, 59, 3600: -60 falls between the two periods
    assert sketches is not None
    assert sketches[0].bins == {bin_of(120): 4}  # latency: every event took 120 ms


_SPEC: dict[str, Any] = {
    "offset": 0, "provider": "openai", "model": "m1", "tokens": (10, 5), "cost": 10**9, "user_id": "ann",
    "team_id": "ml", "api_key_id": "k1", "session_id": "s1", "request_type": "chat", "tags": {"env": "prod"},
    "latency_ms": 120, "success": True,
}  # fmt: skip
