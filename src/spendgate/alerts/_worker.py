"""The delivery worker: claim due deliveries, send each on its channel, record the outcome.

Each delivery is sent on its own (a small thread pool), and each failure is caught and recorded on
that delivery alone, so a failing or slow channel never blocks the others. A failed attempt is
retried after an exponential backoff (``backoff_s``, doubling, at most ``backoff_max_s``); after
``max_attempts`` attempts the delivery is marked ``failed`` with its last error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from spendgate.alerts._channels import DeliveryError, Sender
from spendgate.alerts._config import AlertingConfig
from spendgate.alerts._evaluate import retry_delay
from spendgate.alerts._message import Message
from spendgate.alerts._outbox import Delivery
from spendgate.alerts._store import AlertStore

__all__ = ["DeliveryReport", "deliver_due"]

log = logging.getLogger("spendgate.alerts")
Outcome = Literal["sent", "retried", "failed"]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one delivery round did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0


def _error_text(error: Exception) -> str:
    return str(error) if isinstance(error, DeliveryError) else f"{type(error).__name__}: {error}"


def _deliver_one(
    store: AlertStore, senders: Mapping[str, Sender], config: AlertingConfig, delivery: Delivery, now: datetime
) -> Outcome:
    sender = senders.get(delivery.channel)
    alert = store.get(delivery.alert_id)
    if sender is None or alert is None:
        why = f"channel {delivery.channel!r} is not configured" if sender is None else "the alert no longer exists"
        store.outbox.failed(delivery.id, why)
        return "failed"
    try:
        sender.send(Message(alert, delivery.event, delivery.level, now))
    except Exception as error:  # every channel failure is recorded on its delivery, never raised
        text = _error_text(error)
        if delivery.attempts >= config.max_attempts:
            log.error("alert delivery %s to %s failed for good: %s", delivery.id, delivery.channel, text)
            store.outbox.failed(delivery.id, text)
            return "failed"
        log.warning("alert delivery %s to %s failed (attempt %s): %s", delivery.id, delivery.channel,
                    delivery.attempts, text)  # fmt: skip
        store.outbox.retry(delivery.id, text, now + retry_delay(delivery.attempts, config.backoff_s,
                                                                 config.backoff_max_s))  # fmt: skip
        return "retried"
    store.outbox.sent(delivery.id, now)
    return "sent"


def deliver_due(
    store: AlertStore, senders: Mapping[str, Sender], config: AlertingConfig, now: datetime
) -> DeliveryReport:
    """Send the deliveries due at ``now`` (up to ``config.batch``); see the module docstring."""
    claimed = store.outbox.claim(now, limit=config.batch, lease=timedelta(seconds=config.lease_s))
    if not claimed:
        return DeliveryReport()
    workers = min(config.send_threads, len(claimed))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spendgate-alerts") as pool:
        outcomes = list(pool.map(lambda d: _deliver_one(store, senders, config, d, now), claimed))
    return DeliveryReport(outcomes.count("sent"), outcomes.count("retried"), outcomes.count("failed"))
