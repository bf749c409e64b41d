"""``GET /metrics``: Prometheus text exposition (format 0.0.4) of the service's own figures.

* ``spendgate_requests_total``, ``spendgate_tokens_total``, ``spendgate_cost_total``,
  ``spendgate_decisions_total``: counted in memory by :class:`RequestMetrics` since the process started
  (each worker counts its own; Prometheus sums them). They count what reaches
  :meth:`RequestMetrics.observe_event` / :meth:`~RequestMetrics.observe_decision`.
* ``spendgate_job_*``: the background jobs' runs, failures and last success (see :mod:`._jobs`).
* ``spendgate_journal_pending_events``: settles acknowledged by the journal, not yet in the ledger.
* ``spendgate_budget_*``: each stored limit's spend, amount and utilization in its current window,
  recomputed at most every :data:`BUDGET_CACHE_S` seconds.

Access: an admin or viewer key, or anyone with ``Settings.metrics_public``; 404 when
``Settings.metrics_enabled`` is false. Written by hand (no ``prometheus_client``): no process-global
registry, and exact decimals for money.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from spendgate.ledger import UsageEvent
from spendgate.meter import Authorization, Meter
from spendgate.server._deps import ServicesDep, caller
from spendgate.server._errors import ApiError
from spendgate.server._jobs import JobStatus, Scheduler

__all__ = [
    "BUDGET_CACHE_S",
    "CONTENT_TYPE",
    "BudgetGauges",
    "MetricsState",
    "RequestMetrics",
    "render_metrics",
    "router",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUDGET_CACHE_S = 5.0
_TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")
_KWARGS = {"team": "team_id", "user": "user_id", "key": "api_key_id", "session": "session_id",
           "provider": "provider", "model": "model"}  # fmt: skip

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Decimal | float | int) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Family:
    """One metric family: its HELP, TYPE and samples."""

    def __init__(self, name: str, kind: str, help: str) -> None:
        self.name, self.kind, self.help = name, kind, help
        self.samples: list[tuple[Labels, Decimal | float | int]] = []

    def add(self, value: Decimal | float | int, **labels: str) -> None:
        self.samples.append((tuple(labels.items()), value))

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        for labels, value in self.samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            yield f"{self.name}{{{text}}} {_number(value)}" if text else f"{self.name} {_number(value)}"


@dataclass
class RequestMetrics:
    """In-memory request counters of this process. Thread-safe; cheap enough for the settle path."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _requests: dict[Labels, int] = field(default_factory=lambda: defaultdict(int))
    _tokens: dict[Labels, int] = field(default_factory=lambda: defaultdict(int))
    _cost: dict[Labels, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    _decisions: dict[Labels, int] = field(default_factory=lambda: defaultdict(int))

    def observe_event(self, event: UsageEvent) -> None:
        """Count one recorded call: a request (by provider, model, action, outcome), its tokens and cost."""
        model = (("provider", event.provider), ("model", event.model))
        usage = event.usage
        tokens = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
                  usage.reasoning_tokens)  # fmt: skip
        with self._lock:
            outcome = "success" if event.success else "failure"
            self._requests[(*model, ("action", event.action or "allow"), ("outcome", outcome))] += 1
            for kind, count in zip(_TOKEN_KINDS, tokens, strict=True):
                if count:
                    self._tokens[(*model, ("kind", kind))] += count
            if event.cost is not None:
                self._cost[(*model, ("currency", event.currency))] += event.cost

    def observe_decision(self, action: str, provider: str, model: str) -> None:
        """Count one authorization decision (allow, warn, downgrade, deny...), including refused calls."""
        with self._lock:
            self._decisions[(("provider", provider), ("model", model), ("action", action))] += 1

    def families(self) -> list[_Family]:
        """The counters as metric families (a consistent snapshot)."""
        requests = _Family(
            "spendgate_requests_total", "counter", "Calls recorded, by provider, model, action, outcome."
        )
        tokens = _Family("spendgate_tokens_total", "counter", "Tokens of recorded calls, by provider, model, kind.")
        cost = _Family("spendgate_cost_total", "counter", "Cost of recorded calls, by provider, model, currency.")
        decisions = _Family("spendgate_decisions_total", "counter", "Authorization decisions, by action.")
        with self._lock:
            for family, counts in ((requests, self._requests), (tokens, self._tokens), (decisions, self._decisions)):
                for labels, count in sorted(counts.items()):
                    family.add(count, **dict(labels))
            for labels, money in sorted(self._cost.items()):
                cost.add(money, **dict(labels))
        return [requests, tokens, cost, decisions]


def _job_families(statuses: Iterable[JobStatus]) -> list[_Family]:
    runs = _Family("spendgate_job_runs_total", "counter", "Background job runs.")
    failures = _Family("spendgate_job_failures_total", "counter", "Background job runs that failed.")
    ok = _Family("spendgate_job_last_run_ok", "gauge", "1 when the job's last run succeeded (or it has not run).")
    success = _Family("spendgate_job_last_success_timestamp_seconds", "gauge", "When the job last succeeded.")
    duration = _Family("spendgate_job_last_duration_seconds", "gauge", "How long the job's last run took.")
    for s in statuses:
        runs.add(s.runs, job=s.name)
        failures.add(s.failures, job=s.name)
        ok.add(int(s.healthy), job=s.name)
        if s.last_success is not None:
            success.add(s.last_success.timestamp(), job=s.name)
        if s.last_duration_s is not None:
            duration.add(s.last_duration_s, job=s.name)
    return [runs, failures, ok, success, duration]


@dataclass
class BudgetGauges:
    """Budget families, recomputed at most every :data:`BUDGET_CACHE_S` seconds of the meter's clock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    at: datetime | None = None
    families: list[_Family] = field(default_factory=list)

    def get(self, meter: Meter) -> list[_Family]:
        now = meter.clock.now()
        with self.lock:
            if self.at is None or now - self.at >= timedelta(seconds=BUDGET_CACHE_S) or now < self.at:
                self.families, self.at = _budget_families(meter), now
            return self.families


def _budget_families(meter: Meter) -> list[_Family]:
    used = _Family("spendgate_budget_used", "gauge", "Spent plus reserved in the limit's current window.")
    amount = _Family("spendgate_budget_amount", "gauge", "The limit's amount (with active grants).")
    utilization = _Family("spendgate_budget_utilization", "gauge", "Used / amount (1 = exhausted).")
    scopes = {limit.scope: limit.scope for limit in meter.governor.policy.get().limits if limit.enabled}
    seen: set[str] = set()
    for scope in scopes:
        ids = {_KWARGS[dim]: value for dim, value in scope.items()}
        for status in meter.budget_status(**ids):
            limit = status.limit
            if limit.id in seen or dict(limit.scope) != dict(scope):
                continue
            seen.add(limit.id)
            labels = {"limit": limit.id, "scope": str(limit.scope), "metric": limit.metric.value}
            used.add(status.spent + status.reserved, **labels)
            amount.add(status.amount, **labels)
            utilization.add(status.utilization, **labels)
    return [used, amount, utilization]


@dataclass
class MetricsState:
    """What ``/metrics`` reads besides the meter: kept in ``app.state.metrics`` for the app's lifetime."""

    requests: RequestMetrics = field(default_factory=RequestMetrics)
    budgets: BudgetGauges = field(default_factory=BudgetGauges)

    def observe_decision(self, authorization: Authorization) -> None:
        """Count one authorization decision (the Meter's ``on_decision`` hook)."""
        auth = authorization
        self.requests.observe_decision(auth.action.value, auth.requested_provider, auth.requested_model)


def render_metrics(meter: Meter, state: MetricsState, jobs: Scheduler | None) -> str:
    """The exposition text: request counters, job status, journal backlog and budgets."""
    families = state.requests.families()
    if jobs is not None:
        families += _job_families(jobs.status())
    pending = _Family("spendgate_journal_pending_events", "gauge", "Settles in the journal, not yet in the ledger.")
    pending.add(0 if meter.journal is None else meter.journal.pending)
    families.append(pending)
    families += state.budgets.get(meter)
    return "\n".join(line for family in families for line in family.lines()) + "\n"


def _allowed(request: Request, svc: ServicesDep) -> None:
    if not svc.settings.metrics_enabled:
        raise ApiError(404, "not_found_error", "metrics are disabled (Settings.metrics_enabled)")
    if svc.settings.metrics_public:
        return
    principal = caller(request, svc)
    if not principal.can_read_all:
        raise ApiError(403, "permission_error", "metrics need an admin or viewer key (or metrics_public)")


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, 401: {}, 403: {}, 404: {}},
)
def metrics(request: Request, svc: ServicesDep, _: Annotated[None, Depends(_allowed)]) -> PlainTextResponse:
    """The service's metrics in Prometheus text format (see docs/metrics.md)."""
    state = request.app.state
    found: MetricsState | None = getattr(state, "metrics", None)
    if found is None:  # an app whose lifespan keeps no metrics state: budgets and the journal only
        found = state.metrics = MetricsState()
    text = render_metrics(svc.meter, found, getattr(state, "jobs", None))
    return PlainTextResponse(text, media_type=CONTENT_TYPE)
