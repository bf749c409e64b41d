"""Pure alerting decisions: observations + a rule's memory + its open alerts -> what to fire, touch, resolve.

Nothing here reads a clock or a database: the caller passes ``now``, the observations its sources
made, the rule's :class:`RuleState` and its open alerts, and writes the returned :class:`Decision`.

Per (rule, scope), in each evaluation round:

* a breaching observation counts one more consecutive breach. When the count reaches
  ``rule.consecutive``, no alert for that scope is open, and ``rule.cooldown_s`` has passed since the
  scope last fired, a new alert fires; an open alert is touched instead (its occurrences counted);
* a non-breaching observation resets the count and resolves the scope's open alert;
* no observation (no traffic, or no new event) resets the count too; an open alert whose scope has
  not breached for ``rule.window_s`` resolves.

Escalation (:func:`escalations_due`): a ``firing`` (not acknowledged) alert reaches level ``i`` once
``escalation[i-1].after_s`` seconds have passed since it fired; each level is notified once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from spendgate.alerts._model import Alert, Rule

__all__ = [
    "Decision",
    "Firing",
    "Observation",
    "RuleState",
    "ScopeState",
    "Touch",
    "escalations_due",
    "evaluate",
    "retry_delay",
]


@dataclass(frozen=True, slots=True)
class Observation:
    """One measured value of a rule's metric for one scope (``"global"``, ``"provider:openai"``...)."""

    scope: str
    value: Decimal
    title: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ScopeState:
    """What a rule remembers of one scope."""

    breaches: int = 0
    last_breach: datetime | None = None
    last_fired: datetime | None = None


@dataclass(slots=True)
class RuleState:
    """A rule's memory between rounds: per-scope counts, and for event sources a read cursor and the
    keys of the events already read near it (so an overlapping read never fires an event twice)."""

    scopes: dict[str, ScopeState] = field(default_factory=dict)
    cursor: datetime | None = None
    seen: list[str] = field(default_factory=list)
    evaluated_at: datetime | None = None
    """When a round of the rule was last written (by any process sharing the database)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""

        def iso(when: datetime | None) -> str | None:
            return None if when is None else when.isoformat()

        return {
            "scopes": {
                scope: {"breaches": s.breaches, "last_breach": iso(s.last_breach), "last_fired": iso(s.last_fired)}
                for scope, s in sorted(self.scopes.items())
            },
            "cursor": iso(self.cursor),
            "seen": list(self.seen),
            "evaluated_at": iso(self.evaluated_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleState:
        """Inverse of :meth:`to_dict` (an empty mapping is a fresh state)."""

        def when(text: str | None) -> datetime | None:
            return None if text is None else datetime.fromisoformat(text)

        scopes = {
            scope: ScopeState(int(s["breaches"]), when(s["last_breach"]), when(s["last_fired"]))
            for scope, s in data.get("scopes", {}).items()
        }
        return cls(
            scopes=scopes, cursor=when(data.get("cursor")), seen=list(data.get("seen", [])),
            evaluated_at=when(data.get("evaluated_at")),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Firing:
    """A new alert to create."""

    scope: str
    value: Decimal
    title: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Touch:
    """An open alert seen breaching again."""

    alert_id: str
    value: Decimal
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """What one evaluation round of one rule decided."""

    fire: tuple[Firing, ...]
    touch: tuple[Touch, ...]
    resolve: tuple[str, ...]
    """Ids of open alerts whose condition cleared."""
    state: RuleState


def _last_per_scope(rule: Rule, observations: Iterable[Observation]) -> dict[str, Observation]:
    """One observation per scope: the last breaching one if any breached, else the last one."""
    chosen: dict[str, Observation] = {}
    for obs in observations:
        current = chosen.get(obs.scope)
        if current is None or rule.breached(obs.value) or not rule.breached(current.value):
            chosen[obs.scope] = obs
    return chosen


def evaluate(
    rule: Rule,
    observations: Iterable[Observation],
    state: RuleState,
    open_alerts: Mapping[str, Alert],
    now: datetime,
) -> Decision:
    """Decide one round of ``rule`` (see the module docstring). ``open_alerts`` maps scope -> open alert."""
    scopes = {scope: ScopeState(s.breaches, s.last_breach, s.last_fired) for scope, s in state.scopes.items()}
    cooldown = timedelta(seconds=rule.cooldown_s)
    fire: list[Firing] = []
    touch: list[Touch] = []
    resolve: list[str] = []
    observed = _last_per_scope(rule, observations)
    for scope, obs in observed.items():
        memory = scopes.setdefault(scope, ScopeState())
        alert = open_alerts.get(scope)
        if not rule.breached(obs.value):
            memory.breaches = 0
            if alert is not None:
                resolve.append(alert.id)
            continue
        memory.breaches += 1
        memory.last_breach = now
        if alert is not None:
            touch.append(Touch(alert.id, obs.value, obs.details))
        elif memory.breaches >= rule.consecutive and (memory.last_fired is None or now - memory.last_fired >= cooldown):
            fire.append(Firing(scope, obs.value, obs.title, obs.details))
            memory.last_fired = now
    quiet = timedelta(seconds=rule.window_s)
    for scope, memory in scopes.items():
        if scope not in observed:
            memory.breaches = 0
    for scope, alert in open_alerts.items():
        if scope in observed:
            continue
        remembered = scopes.get(scope)
        last = remembered.last_breach if remembered is not None and remembered.last_breach else alert.last_seen_at
        if now - last >= quiet:
            resolve.append(alert.id)
    kept = {
        scope: memory
        for scope, memory in scopes.items()
        if memory.breaches
        or scope in open_alerts
        or (memory.last_fired is not None and now - memory.last_fired < cooldown)
    }
    new_state = RuleState(scopes=kept, cursor=state.cursor, seen=list(state.seen), evaluated_at=now)
    return Decision(tuple(fire), tuple(touch), tuple(resolve), new_state)


def escalations_due(rule: Rule, alert: Alert, now: datetime) -> list[tuple[int, tuple[str, ...]]]:
    """The escalation levels (1-based, with their channels) ``alert`` reaches at ``now`` and has not yet."""
    if alert.status != "firing":
        return []
    return [
        (index, level.channels)
        for index, level in enumerate(rule.escalation, start=1)
        if index > alert.escalation_level and now - alert.fired_at >= timedelta(seconds=level.after_s)
    ]


def retry_delay(attempts: int, base_s: float, max_s: float) -> timedelta:
    """Exponential backoff after ``attempts`` failed attempts: ``base * 2**(attempts-1)``, at most ``max_s``."""
    return timedelta(seconds=min(max_s, base_s * 2 ** max(0, attempts - 1)))
