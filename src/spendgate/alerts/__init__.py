"""Alerting: rules evaluated off the request path, alerts with a lifecycle, an outbox, real channels.

:class:`Alerting` (or :func:`run_alerting` for one round) evaluates the rules stored in the ledger
database, fires and resolves alerts, escalates unacknowledged ones and delivers notifications
through email, webhooks, Slack, Discord, Microsoft Teams, PagerDuty, SMS (Twilio) and the log.
See ``docs/alerts.md``.
"""

from spendgate.alerts._auth_log import AuthFailures, failures_by_address, prune_auth_failures
from spendgate.alerts._channels import SIGNATURE_HEADER, DeliveryError, Sender, build_senders, sign
from spendgate.alerts._config import (
    AlertingConfig,
    ChannelConfig,
    DigestConfig,
    DiscordChannel,
    EmailChannel,
    LogChannel,
    PagerDutyChannel,
    SlackChannel,
    SmsChannel,
    TeamsChannel,
    WebhookChannel,
    alerting_config_of,
)
from spendgate.alerts._defaults import DEFAULT_ESCALATION, DEFAULT_RULES
from spendgate.alerts._digest import Digest, build_digest, send_digests
from spendgate.alerts._evaluate import Decision, Observation, RuleState, escalations_due, evaluate, retry_delay
from spendgate.alerts._message import Message
from spendgate.alerts._model import ALERT_TYPES, Alert, AlertStatus, AlertType, EscalationLevel, Rule, Severity
from spendgate.alerts._outbox import Delivery
from spendgate.alerts._prune import prune_alerting
from spendgate.alerts._run import Alerting, AlertingReport, alerting_job, run_alerting
from spendgate.alerts._sources import HealthProbe
from spendgate.alerts._store import AlertStore, StoredRule
from spendgate.alerts._worker import DeliveryReport, deliver_due

__all__ = [
    "ALERT_TYPES",
    "Alert",
    "AlertStatus",
    "AlertStore",
    "AlertType",
    "Alerting",
    "AlertingConfig",
    "AlertingReport",
    "AuthFailures",
    "ChannelConfig",
    "DEFAULT_ESCALATION",
    "DEFAULT_RULES",
    "Decision",
    "Delivery",
    "DeliveryError",
    "DeliveryReport",
    "Digest",
    "DigestConfig",
    "DiscordChannel",
    "EmailChannel",
    "EscalationLevel",
    "HealthProbe",
    "LogChannel",
    "Message",
    "Observation",
    "PagerDutyChannel",
    "Rule",
    "RuleState",
    "SIGNATURE_HEADER",
    "Sender",
    "Severity",
    "SlackChannel",
    "SmsChannel",
    "StoredRule",
    "TeamsChannel",
    "WebhookChannel",
    "alerting_config_of",
    "alerting_job",
    "build_digest",
    "build_senders",
    "deliver_due",
    "escalations_due",
    "evaluate",
    "failures_by_address",
    "prune_alerting",
    "prune_auth_failures",
    "retry_delay",
    "run_alerting",
    "send_digests",
    "sign",
]
