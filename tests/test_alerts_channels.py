"""Every channel delivers to a real local receiver; a failing channel is retried with backoff, then failed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger_fixtures import make_event
from spendgate.alerts import SIGNATURE_HEADER, AlertingConfig, AlertStore, run_alerting
from spendgate.ledger import UsageStore
from spendgate.testing import FakeClock
from test_alerts_support import T0, HttpReceiver, SmtpReceiver, clock, http_receiver, smtp_receiver, store

__all__ = ["clock", "store"]

SECRET = "webhook-secret-0123456789"
LIMIT = "user:bob|cost|day|UTC"
ALL = ["mail", "hook", "slack", "discord", "teams", "pd", "sms", "broken", "log"]


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    with http_receiver() as receiver:
        receiver.statuses.update({"/pd": 202, "/twilio/2010-04-01/Accounts/AC123/Messages.json": 201, "/fail": 500})
        yield receiver


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpReceiver]:
    with smtp_receiver(tmp_path) as receiver:
        yield receiver


def _config(http: HttpReceiver, smtp: SmtpReceiver, **extra: Any) -> AlertingConfig:
    channels = {
        "mail": {"type": "email", "host": "127.0.0.1", "port": smtp.port, "sender": "spendgate@example.com",
                 "to": ["ops@example.com", "cfo@example.com"], "ca_file": smtp.ca_file},
        "hook": {"type": "webhook", "url": http.url("/hook"), "secret": SECRET},
        "slack": {"type": "slack", "url": http.url("/slack")},
        "discord": {"type": "discord", "url": http.url("/discord")},
        "teams": {"type": "teams", "url": http.url("/teams")},
        "pd": {"type": "pagerduty", "url": http.url("/pd"), "routing_key": "R0UTING"},
        "sms": {"type": "sms", "url": http.url("/twilio"), "account_sid": "AC123", "auth_token": "tok",
                "from_number": "+15550000000", "to": ["+15551111111", "+15552222222"]},
        "broken": {"type": "webhook", "url": http.url("/fail")},
    }  # fmt: skip
    rule = {"name": "over-budget", "type": "budget_exceeded", "threshold": 1, "severity": "critical",
            "channels": ALL}  # fmt: skip
    return AlertingConfig.model_validate(
        {"channels": channels, "rules": [rule], "max_attempts": 3, "backoff_s": 30, **extra}
    )


def _exceed(store: UsageStore, at: datetime) -> None:
    store.control.record_crossing(LIMIT, "2026-03-10", "exceeded", at, {"scope": "user:bob", "metric": "cost"})


def test_every_channel_delivers_and_a_failing_one_is_retried_then_failed(
    store: UsageStore, clock: FakeClock, http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    config = _config(http, smtp)
    _exceed(store, T0)
    clock.advance(seconds=10)
    report = run_alerting(store, config, clock.now())
    [alert] = report.fired
    assert (report.delivery.sent, report.delivery.retried, report.delivery.failed) == (8, 1, 0)

    # email: over STARTTLS (the server refuses mail without it), plain text and HTML
    [(envelope, mail)] = smtp.messages
    assert envelope.rcpt_tos == ["ops@example.com", "cfo@example.com"]
    assert mail["Subject"].startswith("[spendgate] FIRING CRITICAL: user:bob exceeded limit")
    assert mail.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_payload(decode=True) for part in mail.walk() if not part.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert f"Alert id: {alert.id}".encode() in parts["text/plain"] and b"<table>" in parts["text/html"]

    # generic webhook: JSON with a valid HMAC-SHA256 signature of the exact body
    [hook] = http.at("/hook")
    expected = "sha256=" + hmac.new(SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(hook.headers[SIGNATURE_HEADER.lower()], expected)
    assert hook.json()["event"] == "fired" and hook.json()["alert"]["id"] == alert.id
    tampered = "sha256=" + hmac.new(SECRET.encode(), hook.body + b" ", hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(hook.headers[SIGNATURE_HEADER.lower()], tampered)

    slack = http.at("/slack")[0].json()
    assert slack["text"].startswith("[spendgate] FIRING") and slack["blocks"][0]["type"] == "header"
    discord = http.at("/discord")[0].json()
    assert discord["embeds"][0]["color"] == 0xD7263D and discord["content"] == slack["text"]
    teams = http.at("/teams")[0].json()
    assert teams["type"] == "message"
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert {"title": "Scope", "value": alert.scope} in card["content"]["body"][1]["facts"]
    pd = http.at("/pd")[0].json()
    assert (pd["routing_key"], pd["event_action"], pd["dedup_key"]) == ("R0UTING", "trigger", alert.id)
    assert pd["payload"]["severity"] == "critical" and pd["payload"]["source"] == "spendgate"
    sms = http.at("/twilio/2010-04-01/Accounts/AC123/Messages.json")
    assert [urllib.parse.parse_qs(r.body.decode())["To"] for r in sms] == [["+15551111111"], ["+15552222222"]]
    assert sms[0].headers["authorization"] == "Basic " + base64.b64encode(b"AC123:tok").decode()
    assert urllib.parse.parse_qs(sms[0].body.decode())["Body"][0].startswith("spendgate FIRING critical")

    # the broken channel: retried after 30 s, then 60 s, then failed with its last error; nothing resent elsewhere
    alerts = AlertStore.of(store)
    broken = next(d for d in alerts.outbox.deliveries(alert_id=alert.id) if d.channel == "broken")
    assert (broken.status, broken.attempts) == ("pending", 1) and "HTTP 500" in (broken.last_error or "")
    assert broken.next_attempt_at == clock.now() + timedelta(seconds=30)
    clock.advance(seconds=29)
    assert run_alerting(store, config, clock.now()).delivery.retried == 0  # not due yet
    clock.advance(seconds=1)
    assert run_alerting(store, config, clock.now()).delivery.retried == 1
    broken = next(d for d in alerts.outbox.deliveries(alert_id=alert.id) if d.channel == "broken")
    assert broken.attempts == 2 and broken.next_attempt_at == clock.now() + timedelta(seconds=60)
    clock.advance(seconds=60)
    assert run_alerting(store, config, clock.now()).delivery.failed == 1
    statuses = {d.channel: (d.status, d.attempts) for d in alerts.outbox.deliveries(alert_id=alert.id)}
    assert statuses.pop("broken") == ("failed", 3)
    assert set(statuses.values()) == {("sent", 1)} and set(statuses) == set(ALL) - {"broken"}
    assert len(http.at("/fail")) == 3 and len(http.at("/slack")) == 1 and len(smtp.messages) == 1


def test_unreachable_and_unconfigured_channels_fail_alone(store: UsageStore, clock: FakeClock, http: HttpReceiver,
                                                          tmp_path: Path) -> None:  # fmt: skip
    config = AlertingConfig.model_validate({
        "channels": {"dead": {"type": "slack", "url": "http://127.0.0.1:9/nothing", "timeout_s": 2},
                     "hook": {"type": "webhook", "url": http.url("/hook")}},
        "rules": [{"name": "r", "type": "budget_exceeded", "threshold": 1, "channels": ["dead", "hook", "nowhere"]}],
        "max_attempts": 1,
    })  # fmt: skip
    _exceed(store, T0)
    report = run_alerting(store, config, clock.now())
    assert (report.delivery.sent, report.delivery.failed) == (1, 1)
    [dead] = [d for d in AlertStore.of(store).outbox.deliveries() if d.channel == "dead"]
    assert dead.status == "failed" and "could not reach 127.0.0.1:9" in (dead.last_error or "")
    assert {d.channel for d in AlertStore.of(store).outbox.deliveries()} == {"dead", "hook"}  # "nowhere" skipped
    assert "signature" not in " ".join(http.at("/hook")[0].headers)  # no secret, no signature


def test_daily_digest_by_email_and_webhook_once_per_day(
    store: UsageStore, clock: FakeClock, http: HttpReceiver, smtp: SmtpReceiver
) -> None:
    config = _config(http, smtp, rules=[], digests=[{"period": "daily", "channels": ["mail", "hook", "broken"]}],
                     max_attempts=2)  # fmt: skip
    day = T0 - timedelta(days=1)  # 2026-03-09, the last complete UTC day at T0
    spend = [("ann", "gpt-4o", "0.50"), ("ann", "gpt-4o", "0.25"), ("bob", "claude", "0.10"), ("cy", "gpt-4o", "2")]
    store.record_many(make_event(timestamp=day + timedelta(hours=i), user_id=u, model=m, cost=Decimal(c))
                      for i, (u, m, c) in enumerate(spend))  # fmt: skip
    store.record(make_event(timestamp=T0, user_id="zed", cost=Decimal(100)))  # today: not in yesterday's digest
    store.control.record_crossing("user:ann|cost|day|UTC", "2026-03-09", "0.8", day + timedelta(hours=1), {})
    report = run_alerting(store, config, clock.now())
    statuses = {name: record["status"] for name, record in report.digests["digest-daily-20260309"].items()}
    assert statuses == {"mail": "sent", "hook": "sent", "broken": "pending"}

    [(_, mail)] = smtp.messages
    assert mail["Subject"] == "[spendgate] Daily digest 2026-03-09: 2.85 USD"
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert b"cy: 2 USD (1 requests)" in text and b"user:ann|cost|day|UTC 0.8 (2026-03-09)" in text
    [hook] = http.at("/hook")
    assert hook.headers[SIGNATURE_HEADER.lower()] == "sha256=" + hmac.new(SECRET.encode(), hook.body,
                                                                          hashlib.sha256).hexdigest()  # fmt: skip
    body = hook.json()
    assert (body["event"], body["period"], body["cost"], body["requests"]) == ("digest", "daily", "2.85", 4)
    assert [u["name"] for u in body["top_users"]] == ["cy", "ann", "bob"]
    assert body["top_users"][1] == {"name": "ann", "cost": "0.75", "requests": 2}
    assert [m["name"] for m in body["top_models"]] == ["gpt-4o", "claude"]

    clock.advance(seconds=30)  # the broken channel is retried, then given up; the others are not sent again
    again = run_alerting(store, config, clock.now()).digests["digest-daily-20260309"]
    assert set(again) == {"mail", "hook", "broken"} and again["broken"]["status"] == "failed"
    assert again["broken"]["attempts"] == 2 and "HTTP 500" in again["broken"]["last_error"]
    clock.advance(minutes=5)
    assert run_alerting(store, config, clock.now()).digests == {}
    assert len(smtp.messages) == 1 and len(http.at("/hook")) == 1 and len(http.at("/fail")) == 2
    clock.advance(days=1)  # the next day's digest
    assert "digest-daily-20260310" in run_alerting(store, config, clock.now()).digests
    assert len(smtp.messages) == 2
