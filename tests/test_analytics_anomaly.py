"""Anomaly detection: seasonal baselines, the seeds' thresholds, minimum-volume guards, storage and dedup."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate import Meter, Settings
from spendgate.analytics._anomaly import (
    Anomaly,
    AnomalyConfig,
    HourTotals,
    anomaly_id,
    detect_anomalies,
    evaluate,
    list_anomalies,
    prune_anomalies,
    record_anomalies,
    target_hours,
)
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageEvent, UsageStore
from spendgate.testing import FakeClock
from spendgate.usage import Usage

HOUR = datetime(2026, 3, 10, 3, tzinfo=UTC)  # a Tuesday, 03:00: the hour judged
NOW = HOUR + timedelta(hours=1, minutes=5)
_ids = itertools.count()


def traffic(
    store: UsageStore,
    hour: datetime,
    requests: int,
    *,
    cost: str = "0.10",
    failures: int = 0,
    latency_ms: int = 1000,
    tokens: int = 100,
    team: str = "ml",
    model: str = "gpt-4o",
) -> None:
    """``requests`` calls in ``hour``, each costing ``cost``, with ``tokens`` input tokens; ``failures`` fail."""
    store.record_many(
        UsageEvent(event_id=f"e{next(_ids)}", timestamp=hour + timedelta(seconds=i), provider="openai", model=model,
                   usage=Usage(input_tokens=tokens), cost=Decimal(cost), user_id="ann", team_id=team,
                   success=i >= failures, latency_ms=latency_ms)
        for i in range(requests)
    )  # fmt: skip


def baseline(store: UsageStore, requests: int = 30, *, weeks: int = 4, days: int = 7, **kwargs: object) -> None:
    """The same traffic at the judged hour's baseline hours: the previous ``weeks`` weeks and ``days`` days."""
    hours = {HOUR - timedelta(weeks=k) for k in range(1, weeks + 1)} | {
        HOUR - timedelta(days=k) for k in range(1, days + 1)
    }
    for hour in sorted(hours):
        traffic(store, hour, requests, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[Meter]:
    with Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}"), clock=FakeClock(NOW)) as running:
        yield running


def found(store: UsageStore, config: AnomalyConfig | None = None) -> dict[tuple[str, str], Anomaly]:
    return {(a.metric, a.scope): a for a in detect_anomalies(store, NOW, config=config)}


def test_steady_traffic_raises_nothing(meter: Meter) -> None:
    baseline(meter.store)
    traffic(meter.store, HOUR, 30)
    assert found(meter.store) == {}


def test_cost_spike_over_200_percent_of_baseline(meter: Meter) -> None:
    baseline(meter.store)  # $3.00 an hour
    traffic(meter.store, HOUR, 30, cost="0.25")  # $7.50: 250 %
    spikes = found(meter.store)
    assert set(spikes) == {("cost", scope) for scope in ("global", "team:ml", "user:ann", "provider:openai",
                                                           "model:gpt-4o")}  # fmt: skip
    spike = spikes[("cost", "global")]
    assert (spike.value, spike.baseline, spike.ratio) == (Decimal("7.50"), Decimal("3.00"), 2.5)
    assert (spike.type, spike.severity, spike.method, spike.samples) == ("cost_anomaly", "warning", "hour_of_week", 4)
    assert (spike.hour, spike.requests, spike.currency, spike.threshold) == (HOUR, 30, "USD", 2.0)
    assert spike.id == "2026-03-10T03|cost|global"


def test_cost_at_exactly_twice_the_baseline_is_not_a_spike(meter: Meter) -> None:
    baseline(meter.store)
    traffic(meter.store, HOUR, 30, cost="0.20")  # $6.00: 200 %, not over
    assert found(meter.store) == {}
    spikes = found(meter.store, AnomalyConfig(cost_ratio=Decimal("1.5")))
    assert spikes[("cost", "global")].threshold == 1.5


def test_volume_spike_over_300_percent(meter: Meter) -> None:
    baseline(meter.store)
    traffic(meter.store, HOUR, 100, cost="0.01")  # 100 requests vs 30 (333 %), cost only $1.00
    spikes = found(meter.store)
    assert {metric for metric, scope in spikes if scope == "global"} == {"requests", "tokens"}
    assert spikes[("requests", "global")].type == "usage_spike"
    assert spikes[("tokens", "global")].type == "token_spike"
    assert spikes[("requests", "global")].severity == "warning"
    traffic(meter.store, HOUR, 90, cost="0")  # 190 requests: over 6x the baseline
    assert found(meter.store)[("requests", "global")].severity == "critical"


def test_volume_at_300_percent_is_not_a_spike(meter: Meter) -> None:
    baseline(meter.store)
    traffic(meter.store, HOUR, 90, cost="0.01")
    assert found(meter.store) == {}


def test_a_quiet_night_does_not_alarm(meter: Meter) -> None:
    baseline(meter.store, 1, cost="0.01")  # one call an hour at night
    traffic(meter.store, HOUR, 10, cost="0.05")  # 10x the calls, 50x the cost: still tiny
    assert found(meter.store) == {}
    loose = AnomalyConfig(min_requests=5, min_cost=Decimal("0.10"))
    assert {metric for metric, scope in found(meter.store, loose) if scope == "global"} == {
        "cost",
        "requests",
        "tokens",
    }


@pytest.mark.parametrize(
    ("failures", "expected"), [(2, None), (6, "warning"), (9, "critical")]
)  # 6.7 % (under the 10 % floor), 20 %, 30 % (over 25 %)
def test_error_rate(meter: Meter, failures: int, expected: str | None) -> None:
    baseline(meter.store, failures=1)  # 3.3 %
    traffic(meter.store, HOUR, 30, failures=failures)
    spike = found(meter.store).get(("error_rate", "global"))
    assert (spike and spike.severity) == expected
    if spike is not None:
        assert spike.type == "error_rate" and spike.value == failures / 30


@pytest.mark.parametrize(("latency", "expected"), [(3000, None), (6000, "warning"), (12000, "critical")])
def test_latency(meter: Meter, latency: int, expected: str | None) -> None:
    baseline(meter.store)  # 1 s
    traffic(meter.store, HOUR, 30, latency_ms=latency)
    spike = found(meter.store).get(("latency", "global"))
    assert (spike and spike.severity) == expected
    if spike is not None:
        assert (spike.type, spike.value, spike.baseline) == ("latency_spike", float(latency), 1000.0)


def test_with_one_week_of_history_the_baseline_is_the_hour_of_day(meter: Meter) -> None:
    baseline(meter.store, weeks=1)
    traffic(meter.store, HOUR, 30, cost="0.25")
    spike = found(meter.store)[("cost", "global")]
    assert (spike.method, spike.samples) == ("hour_of_day", 7)


def test_weeks_of_quiet_hours_are_a_zero_baseline(meter: Meter) -> None:
    traffic(meter.store, HOUR - timedelta(weeks=4, hours=5), 1)  # history began four weeks ago
    traffic(meter.store, HOUR, 30, cost="0.05")
    spikes = found(meter.store)
    spike = spikes[("requests", "global")]
    assert (spike.baseline, spike.ratio, spike.method, spike.samples) == (0.0, None, "hour_of_week", 4)
    assert ("cost", "global") in spikes


def test_a_new_scope_has_no_baseline(meter: Meter) -> None:
    baseline(meter.store)
    traffic(meter.store, HOUR, 300, cost="0.25", model="brand-new")
    spikes = found(meter.store)
    assert not any(scope == "model:brand-new" for _, scope in spikes)
    assert ("requests", "global") in spikes


def test_a_spike_in_one_team_shows_in_its_scope_only(meter: Meter) -> None:
    baseline(meter.store)
    baseline(meter.store, 300, team="big")
    traffic(meter.store, HOUR, 300, team="big")
    traffic(meter.store, HOUR, 30, cost="0.30", team="ml")
    spikes = found(meter.store, AnomalyConfig(scopes=("global", "team")))
    assert set(spikes) == {("cost", "team:ml")}


def test_stored_once_per_metric_scope_and_hour(meter: Meter) -> None:
    baseline(meter.store)
    traffic(meter.store, HOUR, 30, cost="0.25")
    first = detect_anomalies(meter.store, NOW)
    control = meter.store.control
    assert record_anomalies(control, first) == first and len(first) == 5
    assert record_anomalies(control, detect_anomalies(meter.store, NOW + timedelta(minutes=30))) == []
    stored = list_anomalies(control)
    assert stored == first  # read back equal, detected_at kept from the first run
    assert [a.scope for a in list_anomalies(control, scope="team:ml")] == ["team:ml"]
    assert len(list_anomalies(control, scopes=["global", "user:ann"], metric="cost")) == 2
    assert list_anomalies(control, since=HOUR + timedelta(hours=1)) == []
    assert list_anomalies(control, until=HOUR) == []
    assert len(list_anomalies(control, detected_since=NOW)) == 5
    assert list_anomalies(control, detected_since=NOW + timedelta(seconds=1)) == []
    assert control.audit_entries()[-1].actor == "analytics"
    with pytest.raises(InvalidUsageError) as caught:
        list_anomalies(control, since=datetime(2026, 1, 1))
    assert caught.value.field == "since"
    assert prune_anomalies(control, HOUR) == 0
    assert prune_anomalies(control, HOUR + timedelta(hours=1)) == 5 and list_anomalies(control) == []
    with pytest.raises(InvalidUsageError) as caught:
        prune_anomalies(control, datetime(2026, 1, 1))
    assert caught.value.field == "before"


def test_a_week_of_hours_in_one_run(meter: Meter) -> None:
    for day in range(1, 29):
        traffic(meter.store, HOUR - timedelta(days=day), 30)
    traffic(meter.store, HOUR - timedelta(hours=5), 30, cost="0.50")
    traffic(meter.store, HOUR, 30, cost="0.50")
    spikes = detect_anomalies(
        meter.store, NOW, since=HOUR - timedelta(hours=23), config=AnomalyConfig(scopes=("global",))
    )
    # 22:00 the day before has a zero baseline (history, but no traffic at that hour): everything spikes there
    spiked = HOUR - timedelta(hours=5)
    assert {(a.hour, a.metric) for a in spikes} == {(spiked, "cost"), (spiked, "tokens"), (spiked, "requests"),
                                                   (HOUR, "cost")}  # fmt: skip


def test_target_hours() -> None:
    config = AnomalyConfig()
    assert target_hours(NOW, None, None, config) == [HOUR]
    assert target_hours(NOW, HOUR - timedelta(minutes=90), NOW + timedelta(days=1), config) == [
        HOUR - timedelta(hours=1),
        HOUR,
    ]
    for since, until, field in (
        (datetime(2026, 3, 1), None, "since"),
        (None, datetime(2026, 3, 1), "until"),
        (HOUR, HOUR, "since"),
        (HOUR - timedelta(days=8), None, "since"),
    ):
        with pytest.raises(InvalidUsageError) as caught:
            target_hours(NOW, since, until, config)
        assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cost_ratio": Decimal(1)}, "cost_ratio"),
        ({"volume_ratio": 0.5}, "volume_ratio"),
        ({"min_requests": 0}, "min_requests"),
        ({"min_week_samples": 5}, "min_week_samples"),
        ({"max_hours": 0}, "max_hours"),
        ({"scopes": ("planet",)}, "scopes"),
        ({"metrics": ()}, "metrics"),
    ],
)
def test_config_errors_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidUsageError) as caught:
        AnomalyConfig(**changes)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_evaluate_is_pure_and_round_trips() -> None:
    series = {HOUR - timedelta(weeks=k): HourTotals(requests=40, tokens=4000, cost=Decimal(2)) for k in (1, 2, 3)}
    series[HOUR] = HourTotals(requests=40, failures=20, tokens=4000, cost=Decimal(2), latency_ms_sum=400_000,
                              latency_requests=40)  # fmt: skip
    [spike] = evaluate("provider:x", series, [HOUR], first_day=(HOUR - timedelta(weeks=3)).date(), now=NOW)
    assert (spike.metric, spike.baseline, spike.severity, spike.samples) == ("error_rate", 0.0, "critical", 3)
    assert Anomaly.from_dict(spike.to_dict()) == spike
    assert evaluate("x", series, [HOUR - timedelta(hours=1)], first_day=HOUR.date(), now=NOW) == []
    long_scope = "user:" + "u" * 200
    assert anomaly_id("cost", long_scope, HOUR).startswith("sha256:") and len(anomaly_id("cost", long_scope, HOUR)) < 80
    assert replace(spike, scope="global").to_dict()["value"] == 0.5


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_detect_and_store_on_each_backend(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    with Meter(settings=Settings(database_url=url), clock=FakeClock(NOW)) as meter:
        baseline(meter.store)
        traffic(meter.store, HOUR, 30, cost="0.25")
        new = record_anomalies(meter.store.control, detect_anomalies(meter.store, NOW))
        assert len(new) == 5 and list_anomalies(meter.store.control) == sorted(
            new, key=lambda a: (a.hour, a.metric, a.scope)
        )
