"""Alerting configuration: named channels, delivery retries, evaluation guards, seed rules.

It is a pydantic model so it can sit in :class:`~spendgate.settings.Settings` (field ``alerting``)
and be read from the same TOML/YAML file::

    [alerting.channels.ops-mail]
    type = "email"
    host = "smtp.example.com"
    sender = "spendgate@example.com"
    to = ["ops@example.com"]

Rules name channels by these keys. ``log`` always exists (it writes to the ``spendgate.alerts``
logger) unless redefined.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "AlertingConfig",
    "ChannelConfig",
    "DigestConfig",
    "DiscordChannel",
    "EmailChannel",
    "LogChannel",
    "PagerDutyChannel",
    "SlackChannel",
    "SmsChannel",
    "TeamsChannel",
    "WebhookChannel",
    "alerting_config_of",
]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class _Http(BaseModel):
    model_config = _STRICT
    url: str
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class EmailChannel(BaseModel):
    """SMTP with STARTTLS (on by default); sends a plain-text and an HTML part."""

    model_config = _STRICT
    type: Literal["email"] = "email"
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    sender: str
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    ca_file: str | None = None
    """A CA bundle to verify the server with (default: the system's)."""
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class WebhookChannel(_Http):
    """A generic JSON POST; with ``secret`` it carries ``X-Spendgate-Signature: sha256=<hex HMAC of the body>``."""

    type: Literal["webhook"] = "webhook"
    secret: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class SlackChannel(_Http):
    """A Slack incoming webhook URL."""

    type: Literal["slack"] = "slack"


class DiscordChannel(_Http):
    """A Discord webhook URL."""

    type: Literal["discord"] = "discord"


class TeamsChannel(_Http):
    """A Microsoft Teams workflow (or connector) webhook URL; posts an Adaptive Card."""

    type: Literal["teams"] = "teams"


class PagerDutyChannel(_Http):
    """PagerDuty Events API v2: trigger on firing and escalation, resolve on resolution (dedup key = alert id)."""

    type: Literal["pagerduty"] = "pagerduty"
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key: SecretStr


class SmsChannel(_Http):
    """SMS through Twilio's REST API (``POST {url}/2010-04-01/Accounts/{sid}/Messages.json``), one per number."""

    type: Literal["sms"] = "sms"
    url: str = "https://api.twilio.com"
    account_sid: str
    auth_token: SecretStr
    from_number: str
    to: list[str] = Field(min_length=1)


class LogChannel(BaseModel):
    """A structured log line at WARNING (ERROR for critical alerts)."""

    model_config = _STRICT
    type: Literal["log"] = "log"
    logger: str = "spendgate.alerts"


ChannelConfig = Annotated[
    EmailChannel
    | WebhookChannel
    | SlackChannel
    | DiscordChannel
    | TeamsChannel
    | PagerDutyChannel
    | SmsChannel
    | LogChannel,
    Field(discriminator="type"),
]

#: Failure kinds of the ledger's ``error_kind`` that count as the provider failing (not the client).
PROVIDER_FAILURE_KINDS = ("timeout", "connection", "upstream_5xx", "upstream_error", "bad_response")


class DigestConfig(BaseModel):
    """A daily or weekly summary (UTC days; weeks from Monday) sent after the period ends, by email or webhook."""

    model_config = _STRICT
    period: Literal["daily", "weekly"]
    channels: list[str] = Field(min_length=1)
    top: int = Field(default=5, ge=1, le=50)
    """How many users and models to list."""


class AlertingConfig(BaseModel):
    """How alerting evaluates and delivers. Defaults suit a fresh install."""

    model_config = _STRICT
    enabled: bool = True
    interval_s: float = Field(default=60.0, ge=0)
    """How often the service's scheduler runs :func:`~spendgate.alerts.run_alerting` (0 disables it)."""
    round_gap_s: float | None = Field(default=None, ge=0)
    """A windowed rule (error rate, latency, failures, security, health) that any process evaluated less than
    this long ago is skipped, so replicas sharing a database don't count one breach twice towards
    ``consecutive``; default: half of ``interval_s``."""
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    rules: list[dict[str, Any]] | None = None
    """Rules to install on a fresh database instead of the built-in defaults (then managed through the API)."""
    max_attempts: int = Field(default=6, ge=1, le=50)
    """Delivery attempts before a delivery is marked failed."""
    backoff_s: float = Field(default=30.0, gt=0)
    """Wait after the first failed attempt; doubles after each further one."""
    backoff_max_s: float = Field(default=3600.0, gt=0)
    lease_s: float = Field(default=120.0, gt=0)
    """How long a claimed delivery is reserved for the worker sending it."""
    batch: int = Field(default=100, ge=1, le=10000)
    """Deliveries claimed per round."""
    send_threads: int = Field(default=4, ge=1, le=64)
    """Deliveries sent at once (a slow channel does not hold up the others)."""
    min_requests: int = Field(default=10, ge=1)
    """Error-rate, latency and provider-failure rules judge a scope only with this many requests in the window."""
    provider_failure_kinds: tuple[str, ...] = PROVIDER_FAILURE_KINDS
    notify_resolved: bool = True
    """Also notify a rule's first channels when its alert resolves."""

    def round_gap(self) -> float:
        """``round_gap_s``, or half of ``interval_s`` when unset."""
        return self.interval_s / 2 if self.round_gap_s is None else self.round_gap_s

    digests: list[DigestConfig] = Field(default_factory=list)
    """Daily and weekly digests (top users, top models, budget events, alerts)."""
    event_overlap_s: float = Field(default=120.0, ge=0)
    """Event sources (budget crossings, anomalies) re-read this far behind their cursor, for late writers."""


def alerting_config_of(settings: object) -> AlertingConfig:
    """The alerting configuration of a :class:`~spendgate.settings.Settings` (its ``alerting`` field, as a
    model or a mapping); the defaults when it has none."""
    value = getattr(settings, "alerting", None)
    if isinstance(value, AlertingConfig):
        return value
    if isinstance(value, Mapping):
        return AlertingConfig.model_validate(dict(value))
    return AlertingConfig()
