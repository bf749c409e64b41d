"""The rules a fresh install starts with, from the seeds' alert types and thresholds.

Initial notifications go to ``log``, ``email`` and ``slack``; critical alerts left unacknowledged
escalate after 10 minutes to ``sms`` and ``pagerduty`` and after 30 minutes to ``manager`` (the
seeds' chain). A channel a rule names but the configuration does not define is skipped (and
logged), so these defaults work before any channel is set up.
"""

from __future__ import annotations

from decimal import Decimal

from spendgate.alerts._model import EscalationLevel, Rule

__all__ = ["DEFAULT_CHANNELS", "DEFAULT_ESCALATION", "DEFAULT_RULES"]

#: Where an alert goes first.
DEFAULT_CHANNELS = ("log", "email", "slack")
#: The seeds' escalation: 10 minutes unacknowledged -> SMS + PagerDuty; 30 minutes -> the final level.
DEFAULT_ESCALATION = (
    EscalationLevel(after_s=600, channels=("sms", "pagerduty")),
    EscalationLevel(after_s=1800, channels=("manager",)),
)
_DAY = 86400

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(name="budget-threshold", type="budget_threshold", metric="budget_utilization", threshold=Decimal("0.5"),
         window_s=_DAY, cooldown_s=900, severity="warning", channels=DEFAULT_CHANNELS,
         description="A limit crossed one of its alert thresholds (50/80/95 % by default)"),
    Rule(name="budget-exceeded", type="budget_exceeded", metric="exceeded", threshold=Decimal(1),
         window_s=_DAY, cooldown_s=900, severity="critical", channels=DEFAULT_CHANNELS,
         escalation=DEFAULT_ESCALATION, description="A spend limit was exceeded"),
    Rule(name="quota-exceeded", type="quota_exceeded", metric="exceeded", threshold=Decimal(1),
         window_s=_DAY, cooldown_s=900, severity="warning", channels=DEFAULT_CHANNELS,
         description="A token or request quota was exceeded"),
    Rule(name="cost-anomaly", type="cost_anomaly", metric="ratio", operator=">", threshold=Decimal(2),
         window_s=2 * 3600, cooldown_s=3600, severity="warning", channels=DEFAULT_CHANNELS,
         description="Hourly cost above 200 % of its baseline"),
    Rule(name="usage-spike", type="usage_spike", metric="ratio", operator=">", threshold=Decimal(3),
         window_s=2 * 3600, cooldown_s=3600, severity="warning", channels=DEFAULT_CHANNELS,
         description="Hourly requests above 300 % of their baseline"),
    Rule(name="error-rate-warning", type="error_rate", metric="error_rate", operator=">", threshold=Decimal("0.10"),
         window_s=300, consecutive=2, cooldown_s=900, severity="warning", channels=DEFAULT_CHANNELS,
         description="More than 10 % of requests failed over 5 minutes"),
    Rule(name="error-rate-critical", type="error_rate", metric="error_rate", operator=">", threshold=Decimal("0.25"),
         window_s=300, consecutive=2, cooldown_s=900, severity="critical", channels=DEFAULT_CHANNELS,
         escalation=DEFAULT_ESCALATION, description="More than 25 % of requests failed over 5 minutes"),
    Rule(name="latency-warning", type="latency_spike", metric="latency_ms", operator=">", threshold=Decimal(5000),
         window_s=300, consecutive=2, cooldown_s=900, severity="warning", channels=DEFAULT_CHANNELS,
         group_by="provider", description="Average latency above 5 s over 5 minutes"),
    Rule(name="latency-critical", type="latency_spike", metric="latency_ms", operator=">", threshold=Decimal(10000),
         window_s=300, consecutive=2, cooldown_s=900, severity="critical", channels=DEFAULT_CHANNELS,
         group_by="provider", escalation=DEFAULT_ESCALATION, description="Average latency above 10 s over 5 min"),
    Rule(name="provider-failure", type="provider_failure", metric="failure_rate", threshold=Decimal("0.5"),
         window_s=300, consecutive=2, cooldown_s=900, severity="critical", channels=DEFAULT_CHANNELS,
         group_by="provider", escalation=DEFAULT_ESCALATION,
         description="Half or more of a provider's calls failed upstream (timeouts, 5xx, connection)"),
    Rule(name="key-many-addresses", type="security_threat", metric="distinct_addresses", operator=">",
         threshold=Decimal(50), window_s=900, cooldown_s=3600, severity="warning", channels=DEFAULT_CHANNELS,
         description="An API key used from more than 50 client addresses in 15 minutes"),
    Rule(name="failed-auth-burst", type="security_threat", metric="failed_auth", operator=">",
         threshold=Decimal(20), window_s=300, cooldown_s=900, severity="warning", channels=DEFAULT_CHANNELS,
         group_by="client_ip", description="More than 20 refused API keys from one client address in 5 minutes"),
    Rule(name="system-health", type="system_health", metric="healthy", operator="<", threshold=Decimal(1),
         window_s=300, consecutive=2, cooldown_s=900, severity="critical", channels=DEFAULT_CHANNELS,
         escalation=DEFAULT_ESCALATION, description="A component (ledger, counters, job backlog) is unhealthy"),
)  # fmt: skip
