"""Channels: small senders that turn a :class:`Message` into each service's documented wire shape.

HTTP channels POST with the standard library (``urllib.request``): no dependency, a timeout per
call, and any status outside 2xx is a :class:`DeliveryError` carrying the status and the start of
the answer. Why hand-written rather than apprise: see docs/alerts.md ("Channels").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol

from spendgate.alerts._config import (
    AlertingConfig,
    ChannelConfig,
    DiscordChannel,
    EmailChannel,
    LogChannel,
    PagerDutyChannel,
    SlackChannel,
    SmsChannel,
    TeamsChannel,
    WebhookChannel,
)
from spendgate.alerts._email import EmailSender
from spendgate.alerts._message import Message, Notification
from spendgate.errors import SpendgateError

__all__ = ["DIGEST_SENDERS", "DeliveryError", "SIGNATURE_HEADER", "Sender", "build_senders", "sign"]

#: The header carrying ``sha256=<hex HMAC-SHA256 of the body>`` on generic webhooks.
SIGNATURE_HEADER = "X-Spendgate-Signature"
_USER_AGENT = "spendgate-alerts/1"
_COLORS = {"info": 0x2E86DE, "warning": 0xF0A202, "critical": 0xD7263D}
_RESOLVED_COLOR = 0x2CA58D


class DeliveryError(SpendgateError):
    """A channel could not deliver a message (the text says why; it is stored as ``last_error``)."""

    code = "delivery_failed"


class Sender(Protocol):
    """Sends one message on one channel, or raises (any exception counts as a failed attempt)."""

    def send(self, message: Message) -> None: ...


def sign(secret: str, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=`` + hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> bytes:
    """POST ``body``; the answer's bytes on 2xx, else :class:`DeliveryError`."""
    host = urllib.parse.urlsplit(url).netloc
    request = urllib.request.Request(url, data=body, method="POST", headers={"User-Agent": _USER_AGENT, **headers})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            data: bytes = answer.read()
            return data
    except urllib.error.HTTPError as error:
        text = error.read()[:300].decode("utf-8", "replace")
        raise DeliveryError(f"{host} answered HTTP {error.code}: {text}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DeliveryError(f"could not reach {host}: {reason}") from None


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def _color(message: Message) -> int:
    return _RESOLVED_COLOR if message.event == "resolved" else _COLORS[message.alert.severity]


class WebhookSender:
    """Generic JSON webhook (the message's ``payload()``), HMAC-signed when a secret is set."""

    def __init__(self, config: WebhookChannel) -> None:
        self.config = config

    def send(self, message: Notification) -> None:
        body = _json(message.payload())
        headers = {"Content-Type": "application/json", "X-Spendgate-Event": message.event, **self.config.headers}
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value(), body)
        post(self.config.url, body, headers, self.config.timeout_s)


class _JsonPost:
    """A channel that POSTs one JSON document built by :meth:`document`."""

    def __init__(self, config: SlackChannel | DiscordChannel | TeamsChannel) -> None:
        self.config = config

    def document(self, message: Message) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, message: Message) -> None:
        post(self.config.url, _json(self.document(message)), {"Content-Type": "application/json"},
             self.config.timeout_s)  # fmt: skip


class SlackSender(_JsonPost):
    """Slack incoming webhook: ``text`` (the fallback) and Block Kit blocks."""

    def document(self, message: Message) -> dict[str, Any]:
        fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in message.facts()[:10]]
        return {
            "text": message.subject,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
                {"type": "section", "fields": fields},
            ],
        }


class DiscordSender(_JsonPost):
    """Discord webhook: ``content`` and one embed with the facts as fields."""

    def document(self, message: Message) -> dict[str, Any]:
        fields = [{"name": name, "value": value[:1024], "inline": True} for name, value in message.facts()[:25]]
        embed = {"title": message.alert.title[:256], "description": message.label, "color": _color(message),
                 "fields": fields}  # fmt: skip
        return {"content": message.subject[:2000], "embeds": [embed]}


class TeamsSender(_JsonPost):
    """Microsoft Teams workflow webhook: a message with one Adaptive Card (title and a FactSet)."""

    def document(self, message: Message) -> dict[str, Any]:
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True, "text": message.subject},
                {"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in message.facts()]},
            ],
        }
        attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        return {"type": "message", "attachments": [attachment]}


class PagerDutySender:
    """PagerDuty Events API v2: ``trigger`` when fired or escalated, ``resolve`` when resolved; the alert id
    is the ``dedup_key``, so PagerDuty folds an alert's events into one incident."""

    def __init__(self, config: PagerDutyChannel) -> None:
        self.config = config

    def document(self, message: Message) -> dict[str, Any]:
        a = message.alert
        event: dict[str, Any] = {
            "routing_key": self.config.routing_key.get_secret_value(),
            "event_action": "resolve" if message.event == "resolved" else "trigger",
            "dedup_key": a.id,
        }
        if message.event != "resolved":
            event["payload"] = {
                "summary": message.subject[:1024], "source": "spendgate", "severity": a.severity,
                "timestamp": a.fired_at.isoformat(), "component": a.scope, "group": a.rule, "class": a.type,
                "custom_details": {**dict(message.facts()), **{str(k): v for k, v in a.details.items()}},
            }  # fmt: skip
        return event

    def send(self, message: Message) -> None:
        post(self.config.url, _json(self.document(message)), {"Content-Type": "application/json"},
             self.config.timeout_s)  # fmt: skip


class SmsSender:
    """SMS through Twilio's Messages API, one request per number (form-encoded, HTTP basic auth)."""

    def __init__(self, config: SmsChannel) -> None:
        self.config = config

    def send(self, message: Message) -> None:
        c = self.config
        url = f"{c.url.rstrip('/')}/2010-04-01/Accounts/{urllib.parse.quote(c.account_sid)}/Messages.json"
        token = base64.b64encode(f"{c.account_sid}:{c.auth_token.get_secret_value()}".encode()).decode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {token}"}
        for number in c.to:
            body = urllib.parse.urlencode({"To": number, "From": c.from_number, "Body": message.short()}).encode()
            post(url, body, headers, c.timeout_s)


class LogSender:
    """One log record per message: WARNING, or ERROR for critical alerts; the payload is ``extra["spendgate"]``."""

    def __init__(self, config: LogChannel) -> None:
        self.log = logging.getLogger(config.logger)

    def send(self, message: Notification) -> None:
        critical = isinstance(message, Message) and message.alert.severity == "critical"
        level = logging.ERROR if critical and message.event != "resolved" else logging.WARNING
        self.log.log(level, "%s", message.subject, extra={"spendgate": message.payload()})


#: The senders that can also send digests (a :class:`Notification` that is not an alert event).
DIGEST_SENDERS = (EmailSender, WebhookSender, LogSender)


def _sender(config: ChannelConfig) -> Sender:
    if isinstance(config, EmailChannel):
        return EmailSender(config)
    if isinstance(config, WebhookChannel):
        return WebhookSender(config)
    if isinstance(config, SlackChannel):
        return SlackSender(config)
    if isinstance(config, DiscordChannel):
        return DiscordSender(config)
    if isinstance(config, TeamsChannel):
        return TeamsSender(config)
    if isinstance(config, PagerDutyChannel):
        return PagerDutySender(config)
    if isinstance(config, SmsChannel):
        return SmsSender(config)
    return LogSender(config)


def build_senders(config: AlertingConfig) -> dict[str, Sender]:
    """One sender per configured channel name, plus ``log`` unless the configuration names its own."""
    senders: dict[str, Sender] = {"log": LogSender(LogChannel())}
    senders.update({name: _sender(channel) for name, channel in config.channels.items()})
    return senders
