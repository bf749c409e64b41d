"""One alerting round: evaluate every enabled rule, escalate unacknowledged alerts, deliver what is due,
send the digests whose period ended.

:class:`Alerting` holds what rounds share (the stores, the configuration, the senders, the health
probe); the service's scheduler calls :meth:`Alerting.run` periodically with the injected clock's
time, and :func:`run_alerting` does one round in one call. Nothing here runs on a request's path.

A rule whose evaluation fails is logged and reported; the other rules, escalation and delivery
still run. With several processes running rounds at once, the unique open key keeps one open alert
per (rule, scope), and deliveries are claimed by one worker each. A round writes its rule's state only
if nobody wrote it since the round read it (else the round is dropped), and a windowed rule evaluated
by any process less than ``AlertingConfig.round_gap()`` ago is skipped: N replicas count a breach once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from spendgate.alerts._channels import Sender, build_senders
from spendgate.alerts._config import AlertingConfig
from spendgate.alerts._defaults import DEFAULT_RULES
from spendgate.alerts._digest import send_digests
from spendgate.alerts._evaluate import escalations_due, evaluate
from spendgate.alerts._model import Alert, Rule
from spendgate.alerts._sources import EVENT_TYPES, HealthProbe, observe
from spendgate.alerts._store import AlertStore, StaleRound
from spendgate.alerts._worker import DeliveryReport, deliver_due
from spendgate.ledger import UsageStore

__all__ = ["Alerting", "AlertingReport", "alerting_job", "install_rules", "run_alerting", "seed_rules"]

log = logging.getLogger("spendgate.alerts")


@dataclass(frozen=True, slots=True)
class AlertingReport:
    """What one round did."""

    fired: list[Alert] = field(default_factory=list)
    resolved: int = 0
    escalated: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    errors: dict[str, str] = field(default_factory=dict)
    """Rule name -> the error its evaluation raised."""
    digests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Digest id -> per-channel outcome, for the digests this round sent (or tried to)."""


def seed_rules(config: AlertingConfig) -> tuple[Rule, ...]:
    """The rules a fresh database gets: the configuration's ``rules``, else :data:`DEFAULT_RULES`."""
    if config.rules is None:
        return DEFAULT_RULES
    return tuple(Rule.from_dict(rule) for rule in config.rules)


def install_rules(alerts: AlertStore, config: AlertingConfig, now: datetime) -> bool:
    """Install :func:`seed_rules` unless this database had its rules installed before."""
    return alerts.seed(seed_rules(config), now, source="default" if config.rules is None else "config")


class Alerting:
    """Alerting over one ledger (see the module docstring)."""

    def __init__(
        self,
        store: UsageStore,
        config: AlertingConfig | None = None,
        *,
        senders: Mapping[str, Sender] | None = None,
        health: HealthProbe | None = None,
    ) -> None:
        self.store = store
        self.config = config or AlertingConfig()
        self.alerts = AlertStore.of(store)
        self.senders: Mapping[str, Sender] = build_senders(self.config) if senders is None else senders
        self.health = health
        self._seeded = False

    def ensure_rules(self, now: datetime) -> None:
        """Install the seed rules if this database never had any (checked once per process)."""
        if not self._seeded:
            install_rules(self.alerts, self.config, now)
            self._seeded = True

    def channels(self, names: Sequence[str]) -> list[str]:
        """The configured channels among ``names`` (a rule may name channels not set up yet)."""
        missing = [name for name in names if name not in self.senders]
        if missing:
            log.debug("alert channels not configured, skipped: %s", ", ".join(missing))
        return [name for name in names if name in self.senders]

    def resolve_channels(self, rule: Rule, level: int) -> list[str]:
        """Who hears that an alert resolved: nobody without ``notify_resolved``, else the rule's first
        channels and those of every escalation level the alert reached."""
        if not self.config.notify_resolved:
            return []
        names = list(rule.channels)
        for escalation in rule.escalation[:level]:
            names += [name for name in escalation.channels if name not in names]
        return self.channels(names)

    def resolve(self, alert_id: str, by: str, now: datetime) -> tuple[Alert, bool] | None:
        """Resolve an open alert by hand (notifying as an automatic resolution would): (alert, changed) or None."""
        alert = self.alerts.get(alert_id)
        if alert is None:
            return None
        stored = self.alerts.rule(alert.rule)

        def channels(level: int) -> list[str]:
            return [] if stored is None else self.resolve_channels(stored.rule, level)

        return self.alerts.resolve(alert_id, by, now, channels)

    def evaluate_rule(self, rule: Rule, now: datetime) -> tuple[list[Alert], int]:
        """One round of one rule: (alerts fired, alerts resolved)."""
        state, stored_as = self.alerts.state_read(rule.name)
        gap = timedelta(seconds=self.config.round_gap())
        if rule.type not in EVENT_TYPES and state.evaluated_at is not None and now - state.evaluated_at < gap:
            return [], 0  # another process ran this round (its breaches count once, not twice)
        reading = observe(rule, self.store, self.config, now, state, self.health)
        if reading.cursor is not None:
            state.cursor, state.seen = reading.cursor, reading.seen
        open_alerts = self.alerts.open_alerts(rule.name)
        decision = evaluate(rule, reading.observations, state, open_alerts, now)
        try:
            fired = self.alerts.apply(
                rule, decision, now, fire_channels=self.channels(rule.channels),
                resolve_channels=lambda level: self.resolve_channels(rule, level), expected=stored_as,
            )  # fmt: skip
        except StaleRound:
            log.debug("alert rule %s: another process evaluated it meanwhile; this round is dropped", rule.name)
            return [], 0
        return fired, len(decision.resolve)

    def escalate(self, rules: Mapping[str, Rule], now: datetime) -> int:
        """Move unacknowledged alerts up their rule's escalation levels; the number of steps taken."""
        steps = 0
        for alert in self.alerts.list_alerts(status=("firing",), limit=100_000):
            rule = rules.get(alert.rule)
            if rule is None:
                continue
            for level, names in escalations_due(rule, alert, now):
                steps += self.alerts.escalate(alert.id, level, self.channels(names), now)
        return steps

    def run(self, now: datetime) -> AlertingReport:
        """Evaluate, escalate and deliver once, at ``now``."""
        if not self.config.enabled:
            return AlertingReport()
        self.ensure_rules(now)
        rules = {stored.rule.name: stored.rule for stored in self.alerts.rules()}
        fired: list[Alert] = []
        resolved = 0
        errors: dict[str, str] = {}
        for rule in rules.values():
            if not rule.enabled:
                continue
            try:
                new, cleared = self.evaluate_rule(rule, now)
            except Exception as error:  # one broken rule must not stop the others
                log.exception("alert rule %s could not be evaluated", rule.name)
                errors[rule.name] = f"{type(error).__name__}: {error}"
                continue
            fired += new
            resolved += cleared
        escalated = self.escalate(rules, now)
        delivery = deliver_due(self.alerts, self.senders, self.config, now)
        digests = send_digests(self.store, self.alerts, self.config, self.senders, now)
        return AlertingReport(fired, resolved, escalated, delivery, errors, digests)


def run_alerting(
    store: UsageStore,
    config: AlertingConfig | None,
    now: datetime,
    *,
    senders: Mapping[str, Sender] | None = None,
    health: HealthProbe | None = None,
) -> AlertingReport:
    """Evaluate every rule, escalate and deliver one round at ``now`` (see :class:`Alerting`)."""
    return Alerting(store, config, senders=senders, health=health).run(now)


def alerting_job(
    store: UsageStore,
    config: AlertingConfig | None = None,
    *,
    health: HealthProbe | None = None,
    before: Callable[[], object] | None = None,
) -> Callable[[datetime], AlertingReport]:
    """A scheduler job: ``job(now)`` runs ``before()`` (e.g. ``meter.flush``, so journaled usage is in the
    ledger) and then one :meth:`Alerting.run`. The :class:`Alerting` is built once and shared by the runs."""
    alerting = Alerting(store, config, health=health)

    def run(now: datetime) -> AlertingReport:
        if before is not None:
            before()
        return alerting.run(now)

    return run
