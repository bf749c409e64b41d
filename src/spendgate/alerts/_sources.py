"""Where observations come from: one reader per alert type (the I/O side of evaluation).

* Event sources read what other parts recorded since the rule's cursor (re-reading ``event_overlap_s``
  behind it and skipping keys already seen): budget thresholds, budgets and quotas exceeded (the
  ``threshold_crossings`` the meter writes; a limit on cost is a budget, on tokens or requests a
  quota) and anomalies (``kind="anomaly"`` control objects from ``spendgate.analytics``).
* Window sources measure ``[now - window_s, now)`` in the ledger, per ``rule.group_by``: error rate
  and average latency (``totals_by``/``summary``), provider failures (failed events whose
  ``error_kind`` is a provider-side kind, per provider).
* System health calls a probe passed in: ``{component: error message or None}``.
* Security threats: the number of distinct client addresses each API key was used from in the window
  (``distinct_addresses``: a key suddenly used from many places), and refused API keys (``failed_auth``,
  per client address or in all) from the counts :class:`~spendgate.alerts.AuthFailures` flushed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from spendgate.alerts._auth_log import failures_by_address
from spendgate.alerts._config import AlertingConfig
from spendgate.alerts._evaluate import Observation, RuleState
from spendgate.alerts._model import Rule
from spendgate.alerts._store import engine_of
from spendgate.analytics._anomaly import list_anomalies
from spendgate.ledger import EventFilter, UsageStore, UsageSummary
from spendgate.ledger._schema import usage_events

__all__ = ["EVENT_TYPES", "HealthProbe", "Reading", "observe"]

#: Returns each component's problem (None when healthy), e.g. ``{"ledger": None, "counters": "timeout"}``.
HealthProbe = Callable[[], Mapping[str, str | None]]
_LABELS = {"provider": "provider", "model": "model", "team_id": "team", "user_id": "user", "api_key_id": "key"}
_ANOMALY_TYPES = ("cost_anomaly", "usage_spike", "token_spike")
_CROSSING_TYPES = ("budget_threshold", "budget_exceeded", "quota_exceeded")
#: The types whose source reads events after a cursor (the others measure a window at each round).
EVENT_TYPES = _CROSSING_TYPES + _ANOMALY_TYPES
_RATE = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Reading:
    """A source's observations, and for event sources the new cursor and the keys seen near it."""

    observations: list[Observation]
    cursor: datetime | None = None
    seen: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Context:
    rule: Rule
    store: UsageStore
    config: AlertingConfig
    now: datetime
    state: RuleState

    @property
    def since(self) -> datetime:
        """Where an event source starts reading."""
        overlap = timedelta(seconds=self.config.event_overlap_s)
        start = self.state.cursor or self.now - timedelta(seconds=self.rule.window_s)
        return start - overlap

    def reading(self, events: list[tuple[str, datetime, Observation]]) -> Reading:
        """Drop events already seen; remember the keys a next read could return again."""
        seen = set(self.state.seen)
        horizon = self.now - timedelta(seconds=self.config.event_overlap_s)
        fresh = [obs for key, _, obs in events if key not in seen]
        keep = sorted({key for key, at, _ in events if at >= horizon})
        return Reading(fresh, cursor=self.now, seen=keep)


def _pct(fraction: Decimal) -> str:
    return format((fraction * 100).normalize(), "f")


def _limit_metric(ctx: _Context, limit_id: str, body: Mapping[str, Any]) -> str:
    if isinstance(body.get("metric"), str):
        return str(body["metric"])
    stored = ctx.store.control.get("limit", limit_id)
    if stored is not None and isinstance(stored.get("metric"), str):
        return str(stored["metric"])
    parts = limit_id.split("|")
    return parts[1] if len(parts) > 1 else "cost"


def _crossings(ctx: _Context) -> Reading:
    events: list[tuple[str, datetime, Observation]] = []
    for c in ctx.store.control.crossings(since=ctx.since):
        if c.crossed_at > ctx.now:
            continue
        key = f"{c.limit_id}@{c.window_key}#{c.threshold}"
        scope_label = str(c.body.get("scope", c.limit_id))
        details = {"limit_id": c.limit_id, "window": c.window_key, **c.body}
        if c.threshold != "exceeded":
            if ctx.rule.type != "budget_threshold":
                continue
            fraction = Decimal(c.threshold)
            title = f"{scope_label} reached {_pct(fraction)}% of limit {c.limit_id} ({c.window_key})"
            events.append((key, c.crossed_at, Observation(key, fraction, title, details)))
            continue
        metric = _limit_metric(ctx, c.limit_id, c.body)
        wanted = "budget_exceeded" if metric == "cost" else "quota_exceeded"
        if ctx.rule.type == wanted:
            scope = f"{c.limit_id}@{c.window_key}"
            title = f"{scope_label} exceeded limit {c.limit_id} ({c.window_key})"
            events.append((key, c.crossed_at, Observation(scope, Decimal(1), title, {**details, "metric": metric})))
    return ctx.reading(events)


def _anomalies(ctx: _Context) -> Reading:
    events: list[tuple[str, datetime, Observation]] = []
    for anomaly in list_anomalies(ctx.store.control, detected_since=ctx.since):
        if anomaly.type != ctx.rule.type or anomaly.detected_at > ctx.now:
            continue
        value = Decimal("Infinity") if anomaly.ratio is None else Decimal(str(anomaly.ratio))
        ratio = "no baseline" if anomaly.ratio is None else f"{anomaly.ratio:.1f}x its baseline"
        title = f"{anomaly.metric} of {anomaly.scope} at {anomaly.hour:%Y-%m-%d %H:00} UTC was {ratio}"
        details = {"anomaly_id": anomaly.id, "hour": anomaly.hour.isoformat(), "value": str(anomaly.value),
                   "baseline": str(anomaly.baseline), "method": anomaly.method}  # fmt: skip
        events.append((anomaly.id, anomaly.detected_at, Observation(anomaly.scope, value, title, details)))
    return ctx.reading(events)


def _groups(ctx: _Context) -> list[tuple[str, UsageSummary]]:
    window = EventFilter(since=ctx.now - timedelta(seconds=ctx.rule.window_s), until=ctx.now)
    dimension = ctx.rule.group_by
    if dimension == "global" or dimension == "client_ip":  # noqa: PLR1714 (narrows the type); client_ip: failed_auth
        return [("global", ctx.store.summary(window))]
    return [(f"{_LABELS[dimension]}:{value}", s) for value, s in ctx.store.totals_by(dimension, window) if value]


def _window_label(ctx: _Context) -> str:
    seconds = ctx.rule.window_s
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _error_rate(ctx: _Context) -> Reading:
    out = []
    for scope, s in _groups(ctx):
        if s.requests < ctx.config.min_requests:
            continue
        rate = (Decimal(s.failures) / Decimal(s.requests)).quantize(_RATE)
        title = f"error rate of {scope} was {_pct(rate)}% over {_window_label(ctx)}"
        out.append(Observation(scope, rate, title, {"requests": s.requests, "failures": s.failures}))
    return Reading(out)


def _latency(ctx: _Context) -> Reading:
    out = []
    for scope, s in _groups(ctx):
        if s.requests < ctx.config.min_requests or s.avg_latency_ms is None:
            continue
        value = Decimal(str(round(s.avg_latency_ms, 1)))
        title = f"average latency of {scope} was {value} ms over {_window_label(ctx)}"
        out.append(Observation(scope, value, title, {"requests": s.requests}))
    return Reading(out)


def _provider_failures(ctx: _Context) -> Reading:
    kinds = set(ctx.config.provider_failure_kinds)
    window = EventFilter(since=ctx.now - timedelta(seconds=ctx.rule.window_s), until=ctx.now, success=False)
    dimension = None if ctx.rule.group_by == "global" else ctx.rule.group_by
    by_scope: dict[str, Counter[str]] = {}
    for event in ctx.store.iter_events(window):
        if event.error_kind not in kinds:
            continue
        value = "global" if dimension is None else getattr(event, dimension)
        if value:
            scope = value if dimension is None else f"{_LABELS[dimension]}:{value}"
            by_scope.setdefault(scope, Counter())[event.error_kind] += 1
    out = []
    for scope, s in _groups(ctx):
        kinds_seen = by_scope.get(scope, Counter())
        failures = sum(kinds_seen.values())
        details = {"requests": s.requests, "failures": failures, "by_error_kind": dict(sorted(kinds_seen.items()))}
        if ctx.rule.metric == "failures":
            value = Decimal(failures)
            title = f"{scope}: {failures} upstream failures over {_window_label(ctx)}"
        else:
            if s.requests < ctx.config.min_requests:
                continue
            value = (Decimal(failures) / Decimal(s.requests)).quantize(_RATE)
            title = f"{scope}: {_pct(value)}% of calls failed upstream over {_window_label(ctx)}"
        out.append(Observation(scope, value, title, details))
    return Reading(out)


def _addresses(ctx: _Context) -> Reading:
    t = usage_events
    query = (
        sa.select(t.c.api_key_id, sa.func.count(sa.distinct(t.c.client_ip)), sa.func.count())
        .where(t.c.timestamp >= ctx.now - timedelta(seconds=ctx.rule.window_s), t.c.timestamp < ctx.now)
        .where(t.c.api_key_id.is_not(None), t.c.client_ip.is_not(None))
        .group_by(t.c.api_key_id)
    )
    with engine_of(ctx.store).transaction("count client addresses in") as conn:
        rows = conn.execute(query).all()
    out = []
    for key, addresses, requests in rows:
        title = f"API key {key} was used from {addresses} addresses over {_window_label(ctx)}"
        out.append(Observation(f"key:{key}", Decimal(addresses), title, {"requests": requests}))
    return Reading(out)


def _failed_auth(ctx: _Context) -> Reading:
    rows = failures_by_address(ctx.store, ctx.now - timedelta(seconds=ctx.rule.window_s), ctx.now)
    window = _window_label(ctx)
    if ctx.rule.group_by == "global":
        total = sum(n for _, n in rows)
        top = [ip or "unknown" for ip, _ in rows[:5]]
        title = f"{total} API keys refused over {window}"
        return Reading([Observation("global", Decimal(total), title, {"addresses": len(rows), "top": top})])
    out = []
    for address, failures in rows:
        label = address or "unknown"
        title = f"{failures} API keys refused from {label} over {window}"
        out.append(Observation(f"address:{label}", Decimal(failures), title, {"failures": failures}))
    return Reading(out)


def _health(ctx: _Context, probe: HealthProbe | None) -> Reading:
    if probe is None:
        return Reading([])
    try:
        results = dict(probe())
    except Exception as error:  # a probe that fails is itself a health problem
        results = {"health-probe": f"{type(error).__name__}: {error}"}
    out = []
    for component, problem in sorted(results.items()):
        scope = f"component:{component}"
        if problem is None:
            out.append(Observation(scope, Decimal(1), f"{component} is healthy"))
        else:
            out.append(Observation(scope, Decimal(0), f"{component} is unhealthy: {problem}", {"error": problem}))
    return Reading(out)


def observe(
    rule: Rule, store: UsageStore, config: AlertingConfig, now: datetime, state: RuleState,
    health: HealthProbe | None = None,
) -> Reading:  # fmt: skip
    """What ``rule``'s source sees at ``now``."""
    ctx = _Context(rule, store, config, now, state)
    if rule.type in _CROSSING_TYPES:
        return _crossings(ctx)
    if rule.type in _ANOMALY_TYPES:
        return _anomalies(ctx)
    if rule.type == "error_rate":
        return _error_rate(ctx)
    if rule.type == "latency_spike":
        return _latency(ctx)
    if rule.type == "provider_failure":
        return _provider_failures(ctx)
    if rule.type == "system_health":
        return _health(ctx, health)
    if rule.metric == "failed_auth":
        return _failed_auth(ctx)
    return _addresses(ctx)  # security_threat, distinct_addresses
