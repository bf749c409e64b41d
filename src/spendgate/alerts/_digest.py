"""Daily and weekly digests: spend, top users, top models, budget events and alerts of the last period.

A digest covers the last complete UTC day (``daily``) or Monday-to-Monday UTC week (``weekly``) and
is sent once per period and channel, on the first round after the period ends. Which channels got
it is kept in a control object (``kind="alerting"``, id ``digest:<period>:<start date>``); a channel
that failed is retried on later rounds with the delivery backoff, up to ``max_attempts``. Digests
go by email, generic webhook or the log.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from spendgate.alerts._channels import DIGEST_SENDERS, DeliveryError, Sender
from spendgate.alerts._config import AlertingConfig
from spendgate.alerts._evaluate import retry_delay
from spendgate.alerts._store import AlertStore
from spendgate.ledger import EventFilter, UsageStore

__all__ = ["Digest", "Ranked", "build_digest", "digest_period", "send_digests"]

log = logging.getLogger("spendgate.alerts")
Period = Literal["daily", "weekly"]


@dataclass(frozen=True, slots=True)
class Ranked:
    """One user or model in a digest's top list."""

    name: str
    cost: Decimal
    requests: int


@dataclass(frozen=True, slots=True)
class Digest:
    """One period's summary; a :class:`~spendgate.alerts._message.Notification`."""

    period: Period
    since: datetime
    until: datetime
    sent_at: datetime
    requests: int
    failures: int
    cost: Decimal
    currency: str
    top_users: list[Ranked] = field(default_factory=list)
    top_models: list[Ranked] = field(default_factory=list)
    budget_events: list[dict[str, str]] = field(default_factory=list)
    alerts_fired: int = 0
    alerts_open: int = 0

    @property
    def id(self) -> str:
        """``digest-daily-20260309``."""
        return f"digest-{self.period}-{self.since:%Y%m%d}"

    @property
    def event(self) -> str:
        """Always ``digest``."""
        return "digest"

    @property
    def subject(self) -> str:
        """One line: period, dates and total spend."""
        span = f"{self.since:%Y-%m-%d}" if self.period == "daily" else f"{self.since:%Y-%m-%d} to {self.until:%Y-%m-%d}"
        return f"[spendgate] {self.period.capitalize()} digest {span}: {self.cost} {self.currency}"

    def _sections(self) -> list[tuple[str, list[str]]]:
        def ranked(items: list[Ranked]) -> list[str]:
            return [f"{r.name}: {r.cost} {self.currency} ({r.requests} requests)" for r in items] or ["none"]

        totals = [f"Spend: {self.cost} {self.currency}", f"Requests: {self.requests}", f"Failures: {self.failures}",
                  f"Alerts fired: {self.alerts_fired}", f"Alerts open now: {self.alerts_open}"]  # fmt: skip
        events = [f"{e['limit_id']} {e['threshold']} ({e['window']})" for e in self.budget_events] or ["none"]
        return [("Totals", totals), ("Top users", ranked(self.top_users)), ("Top models", ranked(self.top_models)),
                ("Budget thresholds crossed", events)]  # fmt: skip

    def text(self) -> str:
        """Plain text, one section per heading."""
        lines = [self.subject]
        for heading, items in self._sections():
            lines += ["", f"{heading}:"] + [f"  {item}" for item in items]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """HTML, every value escaped."""
        body = "".join(
            f"<h3>{html.escape(heading)}</h3><ul>{''.join(f'<li>{html.escape(i)}</li>' for i in items)}</ul>"
            for heading, items in self._sections()
        )
        return f"<html><body><h2>{html.escape(self.subject)}</h2>{body}</body></html>"

    def payload(self) -> dict[str, Any]:
        """The webhook body (money as exact decimal strings)."""

        def ranked(items: list[Ranked]) -> list[dict[str, Any]]:
            return [{"name": r.name, "cost": format(r.cost, "f"), "requests": r.requests} for r in items]

        return {
            "event": "digest", "period": self.period, "since": self.since.isoformat(), "until": self.until.isoformat(),
            "sent_at": self.sent_at.isoformat(), "summary": self.subject, "requests": self.requests,
            "failures": self.failures, "cost": format(self.cost, "f"), "currency": self.currency,
            "top_users": ranked(self.top_users), "top_models": ranked(self.top_models),
            "budget_events": self.budget_events, "alerts_fired": self.alerts_fired, "alerts_open": self.alerts_open,
        }  # fmt: skip


def digest_period(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The last complete UTC day, or Monday-to-Monday UTC week, before ``now``."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return today - timedelta(days=1), today
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(days=7), monday


def build_digest(store: UsageStore, alerts: AlertStore, period: Period, now: datetime, *, top: int = 5) -> Digest:
    """Gather one period's digest from the ledger, the threshold crossings and the alerts."""
    since, until = digest_period(period, now)
    window = EventFilter(since=since, until=until)
    total = store.summary(window)

    def ranked(dimension: Literal["user_id", "model"]) -> list[Ranked]:
        rows = [Ranked(name or "(none)", s.cost, s.requests) for name, s in store.totals_by(dimension, window)]
        return sorted(rows, key=lambda r: (-r.cost, -r.requests, r.name))[:top]

    events = [
        {
            "limit_id": c.limit_id,
            "threshold": c.threshold,
            "window": c.window_key,
            "crossed_at": c.crossed_at.isoformat(),
        }
        for c in store.control.crossings(since=since)
        if c.crossed_at < until
    ]
    fired = [a for a in alerts.list_alerts(since=since, limit=100_000) if a.fired_at < until]
    still_open = alerts.list_alerts(status=("firing", "acknowledged"), limit=100_000)
    return Digest(period=period, since=since, until=until, sent_at=now, requests=total.requests,
                  failures=total.failures, cost=total.cost, currency=total.currency or "USD",
                  top_users=ranked("user_id"), top_models=ranked("model"), budget_events=events,
                  alerts_fired=len(fired), alerts_open=len(still_open))  # fmt: skip


def _due(record: Mapping[str, Any], now: datetime) -> bool:
    if record.get("status") in ("sent", "failed"):
        return False
    due = record.get("next_attempt_at")
    return due is None or datetime.fromisoformat(due) <= now


def _send_one(sender: Sender | None, digest: Digest, record: dict[str, Any], config: AlertingConfig) -> None:
    attempts = int(record.get("attempts", 0)) + 1
    record["attempts"] = attempts
    if not isinstance(sender, DIGEST_SENDERS):
        record.update(status="failed", last_error="not a configured email, webhook or log channel")
        return
    try:
        sender.send(digest)
    except Exception as error:  # recorded per channel, never raised
        record["last_error"] = str(error) if isinstance(error, DeliveryError) else f"{type(error).__name__}: {error}"
        record["status"] = "pending" if attempts < config.max_attempts else "failed"
        at = digest.sent_at + retry_delay(attempts, config.backoff_s, config.backoff_max_s)
        record["next_attempt_at"] = at.isoformat()
        log.warning("digest %s to a channel failed (attempt %s): %s", digest.id, attempts, record["last_error"])
        return
    record.update(status="sent", sent_at=digest.sent_at.isoformat(), last_error=None)


def send_digests(
    store: UsageStore, alerts: AlertStore, config: AlertingConfig, senders: Mapping[str, Sender], now: datetime
) -> dict[str, dict[str, Any]]:
    """Send each configured digest whose period ended, to the channels that have not had it. Returns the
    per-channel records of the digests touched (``{digest id: {channel: {status, attempts, ...}}}``)."""
    touched: dict[str, dict[str, Any]] = {}
    for spec in config.digests:
        since, _ = digest_period(spec.period, now)
        key = f"digest:{spec.period}:{since:%Y-%m-%d}"
        stored = store.control.get("alerting", key) or {"channels": {}}
        records: dict[str, dict[str, Any]] = stored["channels"]
        due = [name for name in spec.channels if _due(records.setdefault(name, {}), now)]
        if not due:
            continue
        digest = build_digest(store, alerts, spec.period, now, top=spec.top)
        for name in due:
            _send_one(senders.get(name), digest, records[name], config)
        store.control.put("alerting", key, {"channels": records}, actor="alerting")
        touched[digest.id] = records
    return touched
