"""The service's background jobs: retention, anomaly detection, and any job a caller registers.

A :class:`Scheduler` holds periodic jobs and runs the due ones with :meth:`Scheduler.run_pending`;
:meth:`Scheduler.start` calls it from one worker thread (never the event loop) every ``tick_s`` real
seconds, with the time from the injected clock. A job that raises is logged and recorded in its
:class:`JobStatus`; it runs again at its next interval and never stops the others or the service.
Tests drive a scheduler with ``run_pending(now)`` and a fake clock, without a thread.

Each job first runs ``min(interval, 5 minutes)`` after the scheduler starts (a restart does not skip a
daily retention run for a whole day; a short-lived process runs nothing), then every ``interval``.
With several workers or replicas every process runs its own jobs: retention and anomaly detection
are safe to run concurrently (archive writes are serialized by a lock file in the archive directory,
anomalies are stored once per hour and scope).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from spendgate.alerts import AuthFailures, alerting_config_of, alerting_job, prune_alerting
from spendgate.analytics import RefreshJob, detect_anomalies, pending, record_anomalies, retention_hooks
from spendgate.clock import Clock
from spendgate.ledger import RetentionPolicy, apply_retention
from spendgate.meter import Drift, Meter
from spendgate.settings import Settings

__all__ = [
    "ALERTING",
    "ANALYTICS_REFRESH",
    "ANOMALIES",
    "RECONCILE",
    "RETENTION",
    "JobStatus",
    "Scheduler",
    "health_probe",
    "reconcile_now",
    "start_jobs",
    "standard_jobs",
]

log = logging.getLogger("spendgate.jobs")

RETENTION = "retention"
ANOMALIES = "anomalies"
#: The name to register the analytics cubes' refresh under.
ANALYTICS_REFRESH = "analytics-refresh"
ALERTING = "alerting"
RECONCILE = "reconcile"
_FIRST_RUN_CAP = timedelta(minutes=5)
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One job's schedule and its last outcome (times from the scheduler's clock)."""

    name: str
    interval_s: float
    next_run: datetime
    runs: int = 0
    failures: int = 0
    last_started: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    """The error of the last run, ``None`` when it succeeded."""
    last_duration_s: float | None = None

    @property
    def healthy(self) -> bool:
        """False when the last run failed."""
        return self.last_error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        iso = {k: None if v is None else v.isoformat() for k, v in (("next_run", self.next_run),
               ("last_started", self.last_started), ("last_success", self.last_success))}  # fmt: skip
        return {"name": self.name, "interval_s": self.interval_s, "runs": self.runs, "failures": self.failures,
                "last_error": self.last_error, "last_duration_s": self.last_duration_s, **iso}  # fmt: skip


@dataclass(slots=True)
class _Job:
    func: Callable[[datetime], object]
    status: JobStatus


class Scheduler:
    """Periodic jobs run one after another in one worker thread. Thread-safe."""

    def __init__(self, clock: Clock, *, tick_s: float = 30.0) -> None:
        if tick_s <= 0:
            raise ValueError(f"tick_s must be positive, got {tick_s!r}")
        self.clock = clock
        self.tick_s = tick_s
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()  # guards the statuses
        self._run_lock = threading.Lock()  # one run_pending at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(
        self, name: str, interval_s: float, func: Callable[[datetime], object], *, first_run: datetime | None = None
    ) -> bool:
        """Run ``func(now)`` every ``interval_s`` seconds; ``interval_s == 0`` disables the job (returns False).

        ``first_run`` defaults to ``min(interval, 5 minutes)`` from now. A name already registered is refused.
        """
        if interval_s < 0:
            raise ValueError(f"{name}: interval_s must be 0 (disabled) or positive, got {interval_s!r}")
        if interval_s == 0:
            return False
        with self._lock:
            if name in self._jobs:
                raise ValueError(f"a job named {name!r} is already registered")
            interval = timedelta(seconds=interval_s)
            due = first_run or self.clock.now() + min(interval, _FIRST_RUN_CAP)
            self._jobs[name] = _Job(func, JobStatus(name=name, interval_s=interval_s, next_run=due))
        return True

    def status(self) -> list[JobStatus]:
        """Every job's status, by name."""
        with self._lock:
            return [self._jobs[name].status for name in sorted(self._jobs)]

    def run_pending(self, now: datetime) -> list[str]:
        """Run every job due at ``now`` (in this thread); returns the names of those run."""
        ran: list[str] = []
        with self._run_lock:
            with self._lock:
                due = [name for name, job in sorted(self._jobs.items()) if job.status.next_run <= now]
            for name in due:
                self._run(name, now)
                ran.append(name)
        return ran

    def _run(self, name: str, now: datetime) -> None:
        job = self._jobs[name]
        started = time.perf_counter()
        error: str | None = None
        try:
            job.func(now)
        except Exception as exc:  # a failing job is recorded and retried at its next interval
            error = f"{type(exc).__name__}: {exc}"
            log.exception("background job %s failed", name)
        duration = time.perf_counter() - started
        with self._lock:
            s = job.status
            job.status = replace(
                s, runs=s.runs + 1, failures=s.failures + (error is not None), last_started=now, last_error=error,
                last_success=now if error is None else s.last_success, last_duration_s=duration,
                next_run=now + timedelta(seconds=s.interval_s),
            )  # fmt: skip

    # -- the worker thread ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (once); it calls :meth:`run_pending` every ``tick_s`` seconds."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="spendgate-jobs", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.run_pending(self.clock.now())
            except Exception:  # the clock failing must not end the thread
                log.exception("the job scheduler could not run")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker thread, waiting up to ``timeout`` seconds for a job in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


# -- the standard jobs ------------------------------------------------------------------------------------


def _retention_job(
    settings: Settings,
    meter: Meter,
    before_delete: Callable[[], None] | None,
    prune_aggregates: tuple[Callable[[datetime], int], ...],
) -> Callable[[datetime], object]:
    policy = RetentionPolicy.from_settings(settings)
    drain_analytics, prune_analytics = retention_hooks(meter.store)

    def before() -> None:
        drain_analytics()  # every queued event is in the cubes before raw events go
        if before_delete is not None:
            before_delete()

    def prune(cutoff: datetime) -> int:
        pruned = prune_analytics(cutoff) + prune_alerting(meter.store, cutoff)
        return pruned + sum(hook(cutoff) for hook in prune_aggregates)

    def run(now: datetime) -> object:
        meter.flush()  # journaled settles reach the ledger (and its rollups) before anything is deleted
        return apply_retention(meter.store, policy, now, before_delete=before, prune_aggregates=prune)

    return run


def _anomaly_job(settings: Settings, meter: Meter) -> Callable[[datetime], object]:
    config = settings.anomaly()
    done: list[datetime] = []  # the end of the hours already evaluated by this process

    def run(now: datetime) -> object:
        until = now.replace(minute=0, second=0, microsecond=0)
        since = done[-1] if done else until - _HOUR
        since = max(since, until - _HOUR * config.max_hours)
        if since >= until:
            return []
        found = detect_anomalies(meter.store, now, since=since, until=until, config=config)
        new = record_anomalies(meter.store.control, found, actor="detector")
        done.append(until)
        del done[:-1]
        return new

    return run


#: Events waiting for the analytics refresh beyond which the system-health rule reports a backlog.
ANALYTICS_BACKLOG = 100_000


def _problem(check: Callable[[], str | None]) -> str | None:
    try:
        return check()
    except Exception as error:  # a check that fails is the problem it reports
        return f"{type(error).__name__}: {error}"


def health_probe(meter: Meter, *, backlog: int = ANALYTICS_BACKLOG) -> Callable[[], dict[str, str | None]]:
    """The probe of the ``system_health`` alert rules: each component's problem, or None when healthy.
    Checks the ledger (one key lookup), the counter store (a ping) and the analytics queue's backlog."""

    def ledger() -> None:
        meter.store.get("health-probe")

    def counters() -> str | None:
        return None if meter.counters.ping() else "the counter store did not answer"

    def analytics() -> str | None:
        waiting = pending(meter.store).items
        return None if waiting <= backlog else f"{waiting} events wait for the analytics refresh (over {backlog})"

    def probe() -> dict[str, str | None]:
        return {"ledger": _problem(ledger), "counters": _problem(counters), "analytics-queue": _problem(analytics)}

    return probe


def reconcile_now(meter: Meter) -> list[Drift]:
    """Compare the live budget counters with the ledger once, correct drift and log it. The service runs
    it at start-up too: a process killed between a settle's counter commit and its ledger write left its
    counters ahead of the ledger (shared counters, such as Redis, outlive it)."""
    drifts = meter.reconcile(grace_s=meter.settings.reconcile_grace_s)
    for drift in drifts:
        log.warning("budget counter drift on %s: counter %s, ledger %s (%s)", drift.limit_id, drift.counter,
                    drift.ledger, "corrected" if drift.corrected else "changed meanwhile, left")  # fmt: skip
    return drifts


def _reconcile_job(meter: Meter) -> Callable[[datetime], object]:
    return lambda now: reconcile_now(meter)


def standard_jobs(
    scheduler: Scheduler,
    settings: Settings,
    meter: Meter,
    *,
    before_delete: Callable[[], None] | None = None,
    prune_aggregates: tuple[Callable[[datetime], int], ...] = (),
    auth_failures: AuthFailures | None = None,
) -> None:
    """Register retention (``retention_interval_s``), anomaly detection (``anomaly_interval_s``), budget
    reconciliation (``reconcile_interval_s``: live counters against the ledger, drift corrected and logged),
    the analytics cubes' refresh (``analytics_refresh_s``) and alerting.

    Retention prunes anomalies, cube rows, resolved alerts and failed-authentication counts with the
    aggregates, then each of ``prune_aggregates``; ``before_delete`` runs before raw events are deleted.
    Each alerting round first flushes the meter and ``auth_failures`` (the refused keys it counted); its
    ``system_health`` rules read :func:`health_probe`.
    Anomaly detection evaluates the complete hours since its last run
    (the last hour on its first run, at most ``AnomalyConfig.max_hours``) and stores new anomalies.
    """
    scheduler.add(RETENTION, settings.retention_interval_s,
                  _retention_job(settings, meter, before_delete, prune_aggregates))  # fmt: skip
    scheduler.add(ANOMALIES, settings.anomaly_interval_s, _anomaly_job(settings, meter))
    scheduler.add(RECONCILE, settings.reconcile_interval_s, _reconcile_job(meter))
    refresh = RefreshJob(meter.store)
    scheduler.add(ANALYTICS_REFRESH, settings.analytics_refresh_s, lambda now: refresh())
    alerting = alerting_config_of(settings)

    def before_round() -> None:
        meter.flush()
        if auth_failures is not None:
            auth_failures.flush(meter.store)

    scheduler.add(ALERTING, alerting.interval_s if alerting.enabled else 0,
                  alerting_job(meter.store, alerting, before=before_round, health=health_probe(meter)))  # fmt: skip


def start_jobs(
    settings: Settings,
    meter: Meter,
    *,
    tick_s: float = 30.0,
    before_delete: Callable[[], None] | None = None,
    prune_aggregates: tuple[Callable[[datetime], int], ...] = (),
    auth_failures: AuthFailures | None = None,
) -> Scheduler:
    """A scheduler on the meter's clock with the standard jobs, started (call ``stop()`` on shutdown).

    More jobs (such as :data:`ANALYTICS_REFRESH`) can be added to the running scheduler with ``add``.
    """
    scheduler = Scheduler(meter.clock, tick_s=tick_s)
    standard_jobs(scheduler, settings, meter, before_delete=before_delete, prune_aggregates=prune_aggregates,
                  auth_failures=auth_failures)  # fmt: skip
    scheduler.start()
    return scheduler
