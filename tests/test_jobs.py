"""The service's background jobs: the scheduler under a fake clock, its thread, retention and anomaly jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ledger_fixtures import make_event
from spendgate import Meter, Settings, Usage
from spendgate.alerts import AlertStore
from spendgate.analytics import Analytics, list_anomalies, pending
from spendgate.server._jobs import (
    ALERTING,
    ANALYTICS_REFRESH,
    ANOMALIES,
    RECONCILE,
    RETENTION,
    Scheduler,
    health_probe,
    standard_jobs,
    start_jobs,
)
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_jobs_run_when_due_and_report_their_status() -> None:
    clock = FakeClock(T0)
    scheduler = Scheduler(clock)
    ran: list[datetime] = []
    assert scheduler.add("tick", 60, ran.append)
    assert not scheduler.add("off", 0, ran.append)  # 0 disables
    assert scheduler.run_pending(T0) == []
    assert scheduler.run_pending(T0 + timedelta(seconds=60)) == ["tick"]  # first run: min(interval, 5 min) after
    assert scheduler.run_pending(T0 + timedelta(seconds=90)) == []
    assert scheduler.run_pending(T0 + timedelta(seconds=120)) == ["tick"]
    [status] = scheduler.status()
    assert (status.runs, status.failures, status.last_success, status.healthy) == (
        2,
        0,
        T0 + timedelta(seconds=120),
        True,
    )
    assert status.next_run == T0 + timedelta(seconds=180)
    assert ran == [T0 + timedelta(seconds=60), T0 + timedelta(seconds=120)]
    daily = Scheduler(clock)
    daily.add("daily", 86_400, ran.append)
    assert daily.status()[0].next_run == T0 + timedelta(minutes=5)  # a restart does not wait a whole day


def test_a_failing_job_never_stops_the_others() -> None:
    scheduler = Scheduler(FakeClock(T0))
    ran: list[str] = []

    def broken(now: datetime) -> None:
        raise RuntimeError("ledger unreachable")

    scheduler.add("a-broken", 10, broken, first_run=T0)
    scheduler.add("b-fine", 10, lambda now: ran.append("b"), first_run=T0)
    assert scheduler.run_pending(T0) == ["a-broken", "b-fine"]
    broken_status, fine = scheduler.status()
    assert (broken_status.failures, broken_status.last_error, broken_status.healthy) == (
        1, "RuntimeError: ledger unreachable", False
    )  # fmt: skip
    assert broken_status.last_success is None and broken_status.next_run == T0 + timedelta(seconds=10)
    assert (fine.runs, fine.healthy, ran) == (1, True, ["b"])
    assert broken_status.to_dict()["last_error"] == "RuntimeError: ledger unreachable"


def test_bad_registrations_are_refused() -> None:
    scheduler = Scheduler(FakeClock(T0))
    scheduler.add("x", 1, lambda now: None)
    with pytest.raises(ValueError, match="already registered"):
        scheduler.add("x", 1, lambda now: None)
    with pytest.raises(ValueError, match="disabled"):
        scheduler.add("y", -1, lambda now: None)
    with pytest.raises(ValueError, match="tick_s"):
        Scheduler(FakeClock(T0), tick_s=0)


def test_the_worker_thread_runs_jobs_off_the_caller() -> None:
    clock = FakeClock(T0)
    scheduler = Scheduler(clock, tick_s=0.01)
    done = threading.Event()
    threads: list[str] = []

    def job(now: datetime) -> None:
        threads.append(threading.current_thread().name)
        done.set()

    scheduler.add("job", 60, job, first_run=T0)
    scheduler.start()
    scheduler.start()  # idempotent
    try:
        assert done.wait(10)
    finally:
        scheduler.stop()
    assert threads[0] == "spendgate-jobs"
    assert scheduler.status()[0].runs >= 1


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[Meter]:
    clock = FakeClock(T0)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'jobs.db'}", environment="development",
                        retention_archive_dir=tmp_path / "archive", anomaly_config={"scopes": ["global"]})  # fmt: skip
    with Meter(settings=settings, clock=clock) as m:
        yield m


def _calls(meter: Meter, at: datetime, count: int) -> None:
    meter.record_many(
        {"timestamp": at + timedelta(seconds=i), "provider": "openai", "model": "gpt-4o",
         "usage": {"input_tokens": 2000, "output_tokens": 100}}
        for i in range(count)
    )  # fmt: skip


def test_retention_job_archives_and_deletes(meter: Meter, tmp_path: Path) -> None:
    _calls(meter, T0 - timedelta(days=10), 3)  # older than development's 7 days
    _calls(meter, T0 - timedelta(days=1), 2)
    scheduler = Scheduler(meter.clock)
    standard_jobs(scheduler, meter.settings, meter)
    assert [s.name for s in scheduler.status()] == [ALERTING, ANALYTICS_REFRESH, ANOMALIES, RECONCILE, RETENTION]
    scheduler = Scheduler(meter.clock)  # without the periodic refresh: retention must drain the queue itself
    standard_jobs(scheduler, meter.settings.model_copy(update={"analytics_refresh_s": 0}), meter)
    assert scheduler.run_pending(T0 + timedelta(minutes=5)) == [ALERTING, ANOMALIES, RECONCILE, RETENTION]
    assert all(s.healthy for s in scheduler.status())
    assert meter.store.count() == 2
    assert len(list((tmp_path / "archive").glob("usage-*.jsonl.gz"))) == 1
    # The analytics queue was drained before the raw events went: the cubes still count all 5 calls.
    assert pending(meter.store).items == 0
    assert Analytics(meter.store).summary(T0 - timedelta(days=30), T0).totals.requests == 5


def test_anomaly_job_detects_the_hours_since_its_last_run(meter: Meter) -> None:
    spike = T0 - HOUR  # the last complete hour at T0 + 5 min
    for days in range(1, 8):
        _calls(meter, spike - timedelta(days=days), 30)
    _calls(meter, spike, 200)
    off = {"retention_interval_s": 0, "analytics_refresh_s": 0, "alerting": {"enabled": False},
           "reconcile_interval_s": 0}  # fmt: skip
    settings = meter.settings.model_copy(update=off)
    scheduler = Scheduler(meter.clock)
    standard_jobs(scheduler, settings, meter)
    assert [s.name for s in scheduler.status()] == [ANOMALIES]  # retention, the cubes' refresh and alerting disabled
    scheduler.run_pending(T0 + timedelta(minutes=5))
    found = list_anomalies(meter.store.control)
    assert {(a.metric, a.scope, a.hour) for a in found} >= {("requests", "global", spike)}
    scheduler.run_pending(T0 + HOUR + timedelta(minutes=5))  # evaluates only the next hour: nothing new
    assert len(list_anomalies(meter.store.control)) == len(found)
    assert scheduler.status()[0].runs == 2


def test_start_jobs_registers_and_stops(meter: Meter) -> None:
    scheduler = start_jobs(meter.settings, meter, tick_s=60)
    try:
        assert [s.name for s in scheduler.status()] == [ALERTING, ANALYTICS_REFRESH, ANOMALIES, RECONCILE, RETENTION]
    finally:
        scheduler.stop()


def test_alerting_settings_are_checked_and_disable_the_job(meter: Meter) -> None:
    with pytest.raises(ValueError, match=r"alerting: interval_s"):
        Settings(alerting={"interval_s": -1})
    with pytest.raises(ValueError, match=r"alerting: .*nope"):
        Settings(alerting={"nope": 1})
    scheduler = Scheduler(meter.clock)
    standard_jobs(scheduler, meter.settings.model_copy(update={"alerting": {"interval_s": 0}}), meter)
    assert ALERTING not in [s.name for s in scheduler.status()]


def test_reconcile_job_corrects_a_counter_that_drifted_from_the_ledger(meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="ann", metric="requests", period="day", amount=Decimal(100))
    decision = meter.authorize(user_id="ann", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=10)
    meter.settle(decision, Usage(input_tokens=10, output_tokens=10))
    meter.store.record(make_event(user_id="ann", timestamp=T0))  # written around the counters: drift of 1
    only = {"retention_interval_s": 0, "analytics_refresh_s": 0, "anomaly_interval_s": 0,
            "alerting": {"enabled": False}}  # fmt: skip
    scheduler = Scheduler(meter.clock)
    standard_jobs(scheduler, meter.settings.model_copy(update=only), meter)
    assert [s.name for s in scheduler.status()] == [RECONCILE]
    assert scheduler.run_pending(T0 + timedelta(minutes=5)) == [RECONCILE]
    [status] = meter.budget_status(user_id="ann")
    assert status.spent == 2  # the counter now agrees with the ledger


def test_the_health_probe_names_each_unhealthy_component(meter: Meter, monkeypatch: pytest.MonkeyPatch) -> None:
    assert health_probe(meter)() == {"ledger": None, "counters": None, "analytics-queue": None}
    _calls(meter, T0 - timedelta(hours=1), 3)  # queued for the analytics refresh, not refreshed yet
    assert health_probe(meter, backlog=2)()["analytics-queue"] == "3 events wait for the analytics refresh (over 2)"

    def refused() -> bool:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(meter.counters, "ping", refused)
    assert health_probe(meter)()["counters"] == "ConnectionError: connection refused"


def test_the_service_alerts_on_an_unhealthy_component(meter: Meter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meter.counters, "ping", lambda: False)
    only = {"retention_interval_s": 0, "analytics_refresh_s": 0, "anomaly_interval_s": 0, "reconcile_interval_s": 0}
    scheduler = Scheduler(meter.clock)
    standard_jobs(scheduler, meter.settings.model_copy(update=only), meter)
    scheduler.run_pending(T0 + timedelta(minutes=5))
    scheduler.run_pending(T0 + timedelta(minutes=6))  # the default rule wants two rounds in a row
    fired = AlertStore.of(meter.store).list_alerts(status=("firing",))
    assert [(a.rule, a.scope) for a in fired] == [("system-health", "component:counters")]
