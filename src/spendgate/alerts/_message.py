"""What a notification says: one alert event rendered as a subject, plain text, HTML and a JSON payload.

Channels format from a :class:`Message`, so every channel tells the same story.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from spendgate.alerts._model import Alert
from spendgate.alerts._outbox import DeliveryEvent

__all__ = ["Message", "Notification"]

_LABELS = {"fired": "FIRING", "escalated": "ESCALATED", "resolved": "RESOLVED"}


class Notification(Protocol):
    """What email, webhooks and the log can send: an alert event (:class:`Message`) or a digest."""

    @property
    def id(self) -> str: ...

    @property
    def event(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def sent_at(self) -> datetime: ...

    def text(self) -> str: ...

    def html(self) -> str: ...

    def payload(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Message:
    """One event of one alert (``level`` is the escalation level for ``escalated``), sent at ``sent_at``."""

    alert: Alert
    event: DeliveryEvent
    level: int
    sent_at: datetime

    @property
    def id(self) -> str:
        """The alert's id."""
        return self.alert.id

    @property
    def label(self) -> str:
        """``FIRING``, ``ESCALATED (level 2)`` or ``RESOLVED``."""
        label = _LABELS[self.event]
        return f"{label} (level {self.level})" if self.event == "escalated" else label

    @property
    def subject(self) -> str:
        """A one-line summary."""
        return f"[spendgate] {self.label} {self.alert.severity.upper()}: {self.alert.title}"

    def facts(self) -> list[tuple[str, str]]:
        """(name, value) pairs every rich format lists."""
        a = self.alert
        facts = [("Rule", a.rule), ("Type", a.type), ("Scope", a.scope), ("Severity", a.severity),
                 ("Status", a.status), ("Fired at", a.fired_at.isoformat())]  # fmt: skip
        if a.value is not None:
            facts.append(("Value", format(a.value, "f")))
        if a.threshold is not None:
            facts.append(("Threshold", format(a.threshold, "f")))
        if a.occurrences > 1:
            facts.append(("Occurrences", str(a.occurrences)))
        facts.append(("Alert id", a.id))
        return facts

    def text(self) -> str:
        """Plain text: the subject, then one fact per line."""
        lines = [self.subject, ""] + [f"{name}: {value}" for name, value in self.facts()]
        details = self.alert.details
        if details:
            lines += ["", "Details:"] + [f"  {key}: {details[key]}" for key in sorted(details)]
        return "\n".join(lines) + "\n"

    def short(self) -> str:
        """A short form for SMS: label, severity, title and scope."""
        return f"spendgate {self.label} {self.alert.severity}: {self.alert.title} ({self.alert.scope})"[:320]

    def html(self) -> str:
        """An HTML document with the facts as a table (every value escaped)."""
        rows = "".join(
            f"<tr><th align='left'>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
            for name, value in self.facts()
        )
        details = "".join(
            f"<li><b>{html.escape(str(key))}</b>: {html.escape(str(value))}</li>"
            for key, value in sorted(self.alert.details.items())
        )
        extra = f"<h3>Details</h3><ul>{details}</ul>" if details else ""
        return f"<html><body><h2>{html.escape(self.subject)}</h2><table>{rows}</table>{extra}</body></html>"

    def payload(self) -> dict[str, Any]:
        """The generic webhook body: the event, the escalation level, when, and the whole alert."""
        return {"event": self.event, "level": self.level, "sent_at": self.sent_at.isoformat(),
                "summary": self.subject, "alert": self.alert.to_dict()}  # fmt: skip
