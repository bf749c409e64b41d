"""Rules and alerts: what to watch, when it fires, who hears about it, and an alert's lifecycle.

A :class:`Rule` compares a metric of one alert type with a threshold (``value <operator> threshold``)
over a time window; it fires for a scope after ``consecutive`` breaching evaluations in a row, at
most once per ``cooldown_s`` for that scope, and notifies its ``channels``. Unacknowledged, it
escalates through its :class:`EscalationLevel` list. An :class:`Alert` is one firing for one scope:
``firing`` -> ``acknowledged`` -> ``resolved``; while it is open a second one for the same (rule,
scope) is never created (:func:`dedup_key`).

Construction validates every field and raises :class:`~spendgate.errors.InvalidUsageError` naming it.
"""

from __future__ import annotations

import hashlib
import itertools
import operator as op
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args

from spendgate.errors import InvalidUsageError

__all__ = [
    "ALERT_STATUSES",
    "ALERT_TYPES",
    "METRICS",
    "OPERATORS",
    "SEVERITIES",
    "Alert",
    "AlertStatus",
    "AlertType",
    "EscalationLevel",
    "GroupBy",
    "Operator",
    "Rule",
    "Severity",
    "compare",
    "dedup_key",
]

AlertType = Literal[
    "budget_threshold",
    "budget_exceeded",
    "quota_exceeded",
    "cost_anomaly",
    "usage_spike",
    "token_spike",
    "error_rate",
    "latency_spike",
    "provider_failure",
    "security_threat",
    "system_health",
]
ALERT_TYPES: tuple[AlertType, ...] = get_args(AlertType)
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
Operator = Literal[">", ">=", "<", "<=", "==", "!="]
OPERATORS: Mapping[Operator, Callable[[Decimal, Decimal], bool]] = {
    ">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le, "==": op.eq, "!=": op.ne,
}  # fmt: skip
AlertStatus = Literal["firing", "acknowledged", "resolved"]
ALERT_STATUSES: tuple[AlertStatus, ...] = get_args(AlertStatus)
#: Which dimension a windowed rule (error rate, latency, provider failure) is evaluated per;
#: ``client_ip`` is only for the ``failed_auth`` metric (refused keys per client address).
GroupBy = Literal["global", "provider", "model", "team_id", "user_id", "api_key_id", "client_ip"]

#: The metric each alert type measures (the one a rule of that type may name).
METRICS: Mapping[AlertType, tuple[str, ...]] = {
    "budget_threshold": ("budget_utilization",),
    "budget_exceeded": ("exceeded",),
    "quota_exceeded": ("exceeded",),
    "cost_anomaly": ("ratio",),
    "usage_spike": ("ratio",),
    "token_spike": ("ratio",),
    "error_rate": ("error_rate",),
    "latency_spike": ("latency_ms",),
    "provider_failure": ("failure_rate", "failures"),
    "security_threat": ("distinct_addresses", "failed_auth"),
    "system_health": ("healthy",),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
_CHANNEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_MAX_SECONDS = 366 * 86400


def compare(operator: Operator, value: Decimal, threshold: Decimal) -> bool:
    """Whether ``value <operator> threshold`` holds (a breach)."""
    return OPERATORS[operator](value, threshold)


def dedup_key(rule: str, scope: str) -> str:
    """The key that keeps one open alert per (rule, scope): a SHA-256 hex digest."""
    return hashlib.sha256(f"{rule}\x1f{scope}".encode()).hexdigest()


def _seconds(name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= _MAX_SECONDS:
        raise InvalidUsageError(name, f"must be a whole number of seconds from {minimum} to {_MAX_SECONDS}")
    return value


def _channels(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidUsageError(name, f"must be a list of channel names, got {value!r}")
    out = tuple(value)
    for item in out:
        if not isinstance(item, str) or not _CHANNEL.match(item):
            raise InvalidUsageError(name, f"channel names are letters, digits, '_', '.', '-'; got {item!r}")
    if len(set(out)) != len(out):
        raise InvalidUsageError(name, f"must not repeat a channel, got {list(out)}")
    return out


def _choice(name: str, value: object, allowed: Sequence[str]) -> Any:
    if value not in allowed:
        raise InvalidUsageError(name, f"must be one of {', '.join(allowed)}; got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationLevel:
    """Notify ``channels`` when an alert is still unacknowledged ``after_s`` seconds after it fired."""

    after_s: int
    channels: tuple[str, ...]

    def __post_init__(self) -> None:
        _seconds("escalation.after_s", self.after_s, minimum=1)
        object.__setattr__(self, "channels", _channels("escalation.channels", self.channels))
        if not self.channels:
            raise InvalidUsageError("escalation.channels", "must name at least one channel")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"after_s": self.after_s, "channels": list(self.channels)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One alert rule (see the module docstring). ``window_s`` is the span a windowed metric covers,
    and for event-based types (budgets, anomalies) how long a scope stays quiet before its alert resolves.
    """

    name: str
    type: AlertType
    metric: str
    threshold: Decimal
    operator: Operator = ">="
    window_s: int = 300
    consecutive: int = 1
    cooldown_s: int = 900
    severity: Severity = "warning"
    channels: tuple[str, ...] = ("log",)
    escalation: tuple[EscalationLevel, ...] = ()
    group_by: GroupBy = "global"
    enabled: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InvalidUsageError("name", "must be 1-200 letters, digits, '_', '.', ':' or '-' (starting alnum)")
        _choice("type", self.type, ALERT_TYPES)
        _choice("metric", self.metric, METRICS[self.type])
        _choice("operator", self.operator, tuple(OPERATORS))
        _choice("severity", self.severity, SEVERITIES)
        _choice("group_by", self.group_by, get_args(GroupBy))
        if self.metric == "failed_auth" and self.group_by not in ("global", "client_ip"):
            raise InvalidUsageError("group_by", "failed_auth is counted per 'client_ip' or 'global'")
        if self.group_by == "client_ip" and self.metric != "failed_auth":
            raise InvalidUsageError("group_by", "'client_ip' is only for the failed_auth metric")
        object.__setattr__(self, "threshold", _decimal("threshold", self.threshold))
        _seconds("window_s", self.window_s, minimum=1)
        _seconds("cooldown_s", self.cooldown_s)
        if isinstance(self.consecutive, bool) or not isinstance(self.consecutive, int) or self.consecutive < 1:
            raise InvalidUsageError("consecutive", f"must be a positive whole number, got {self.consecutive!r}")
        if self.consecutive > 1000:
            raise InvalidUsageError("consecutive", f"must be at most 1000, got {self.consecutive!r}")
        object.__setattr__(self, "channels", _channels("channels", self.channels))
        if not isinstance(self.enabled, bool):
            raise InvalidUsageError("enabled", f"must be true or false, got {self.enabled!r}")
        if not isinstance(self.description, str) or len(self.description) > 1000:
            raise InvalidUsageError("description", "must be a string of at most 1000 characters")
        levels = tuple(self.escalation)
        if not all(isinstance(level, EscalationLevel) for level in levels):
            raise InvalidUsageError("escalation", "must be a list of {after_s, channels} levels")
        if any(b.after_s <= a.after_s for a, b in itertools.pairwise(levels)):
            raise InvalidUsageError("escalation", "levels must come in order of strictly increasing after_s")
        object.__setattr__(self, "escalation", levels)

    def breached(self, value: Decimal) -> bool:
        """Whether ``value`` breaches this rule."""
        return compare(self.operator, value, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the threshold as an exact decimal string)."""
        return {
            "name": self.name,
            "type": self.type,
            "metric": self.metric,
            "operator": self.operator,
            "threshold": format(self.threshold, "f"),
            "window_s": self.window_s,
            "consecutive": self.consecutive,
            "cooldown_s": self.cooldown_s,
            "severity": self.severity,
            "channels": list(self.channels),
            "escalation": [level.to_dict() for level in self.escalation],
            "group_by": self.group_by,
            "enabled": self.enabled,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """Build from JSON form; unknown keys are refused (400 naming them through the API)."""
        if not isinstance(data, Mapping):
            raise InvalidUsageError("rule", f"must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidUsageError(unknown[0], "is not a rule field")
        for required in ("name", "type", "threshold"):
            if required not in data:
                raise InvalidUsageError(required, "is required")
        values = dict(data)
        rule_type = _choice("type", values["type"], ALERT_TYPES)
        values.setdefault("metric", METRICS[rule_type][0])
        if "channels" in values:
            values["channels"] = _channels("channels", values["channels"])
        raw_levels = values.get("escalation", ())
        if isinstance(raw_levels, str | Mapping) or not isinstance(raw_levels, Sequence):
            raise InvalidUsageError("escalation", "must be a list of {after_s, channels} levels")
        levels = []
        for level in raw_levels:
            if not isinstance(level, Mapping) or set(level) != {"after_s", "channels"}:
                raise InvalidUsageError("escalation", f"each level is {{after_s, channels}}, got {level!r}")
            levels.append(EscalationLevel(after_s=level["after_s"], channels=level["channels"]))
        values["escalation"] = tuple(levels)
        return cls(**values)


def _decimal(name: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise InvalidUsageError(name, f"must be a number, got {value!r}")
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise InvalidUsageError(name, f"is not a number: {value!r}") from None
    if not number.is_finite():
        raise InvalidUsageError(name, f"must be finite, got {value!r}")
    return number


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One firing of a rule for one scope, and where it is in its lifecycle."""

    id: str
    rule: str
    type: AlertType
    scope: str
    severity: Severity
    status: AlertStatus
    title: str
    value: Decimal | None
    threshold: Decimal | None
    details: Mapping[str, Any] = field(default_factory=dict)
    occurrences: int = 1
    escalation_level: int = 0
    fired_at: datetime
    last_seen_at: datetime
    escalated_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None

    @property
    def open(self) -> bool:
        """Firing or acknowledged (not resolved)."""
        return self.status != "resolved"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: decimals as exact strings, times in ISO 8601."""

        def iso(when: datetime | None) -> str | None:
            return None if when is None else when.isoformat()

        def num(value: Decimal | None) -> str | None:
            return None if value is None else format(value, "f")

        return {
            "id": self.id,
            "rule": self.rule,
            "type": self.type,
            "scope": self.scope,
            "severity": self.severity,
            "status": self.status,
            "title": self.title,
            "value": num(self.value),
            "threshold": num(self.threshold),
            "details": dict(self.details),
            "occurrences": self.occurrences,
            "escalation_level": self.escalation_level,
            "fired_at": iso(self.fired_at),
            "last_seen_at": iso(self.last_seen_at),
            "escalated_at": iso(self.escalated_at),
            "acknowledged_at": iso(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "resolved_at": iso(self.resolved_at),
            "resolved_by": self.resolved_by,
        }
