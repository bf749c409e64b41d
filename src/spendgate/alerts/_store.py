"""Rules and alerts in the ledger database (tables of ``spendgate.ledger._alerts_schema``).

Every alert change and the deliveries announcing it are written in one transaction (the outbox):
an alert is never stored without its notifications, nor a notification queued for an alert that
was rolled back. At most one alert per (rule, scope) is open at a time (a unique ``open_key``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from spendgate.alerts._evaluate import Decision, RuleState
from spendgate.alerts._model import Alert, Rule, dedup_key
from spendgate.alerts._outbox import Outbox, insert_deliveries
from spendgate.ledger._alerts_schema import alert_rules, alerts
from spendgate.ledger._engine import LedgerEngine
from spendgate.ledger._engine import engine_of as _engine_of
from spendgate.ledger._schema import control_objects
from spendgate.ledger._validate import dump_json

__all__ = ["AlertStore", "StaleRound", "StoredRule"]

#: The control object marking that the default rules were installed (so deleting them all sticks).
_SEEDED = {"kind": "alerting", "id": "rules-seeded"}


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A rule with where it came from and when it changed."""

    rule: Rule
    source: str
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the rule's fields plus ``source``, ``created_at``, ``updated_at``."""
        return {**self.rule.to_dict(), "source": self.source, "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}  # fmt: skip


def _insert(conn: sa.Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _alert(row: Mapping[Any, Any]) -> Alert:
    body = json.loads(row["body"])
    return Alert(
        id=row["id"], rule=row["rule_id"], type=row["type"], scope=row["scope"], severity=row["severity"],
        status=row["status"], title=row["title"],
        value=None if body.get("value") is None else Decimal(body["value"]),
        threshold=None if body.get("threshold") is None else Decimal(body["threshold"]),
        details=body.get("details", {}), occurrences=row["occurrences"], escalation_level=row["escalation_level"],
        fired_at=row["fired_at"], last_seen_at=row["last_seen_at"], escalated_at=row["escalated_at"],
        acknowledged_at=row["acknowledged_at"], acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"], resolved_by=row["resolved_by"],
    )  # fmt: skip


def _body(value: Decimal, threshold: Decimal, details: Mapping[str, Any]) -> str:
    return dump_json({"value": format(value, "f"), "threshold": format(threshold, "f"), "details": dict(details)})


def engine_of(store: object) -> LedgerEngine:
    """The engine of a SQL usage store (alerts live in the ledger's own database)."""
    return _engine_of(store, "alerting")


class StaleRound(Exception):
    """Another evaluator wrote a round of the rule after this round read its state."""


class AlertStore:
    """Rules, alerts and their outbox on the ledger's engine (SQLite or PostgreSQL). Thread-safe."""

    def __init__(self, engine: LedgerEngine) -> None:
        self._engine = engine
        self.outbox = Outbox(engine)
        """The deliveries."""

    @classmethod
    def of(cls, store: object) -> AlertStore:
        """The alert store in the database of ``store`` (a :class:`~spendgate.ledger.UsageStore`)."""
        return cls(engine_of(store))

    # -- rules -----------------------------------------------------------------------------------

    def seed(self, rules: Sequence[Rule], now: datetime, *, source: str = "default") -> bool:
        """Install ``rules`` once per database (a fresh install); False when rules were installed before."""

        if self.seeded():
            return False

        def work(conn: sa.Connection) -> bool:
            marker = {**_SEEDED, "body": dump_json({"rules": [r.name for r in rules]}), "created_at": now,
                      "updated_at": now}  # fmt: skip
            stmt = _insert(conn)(control_objects).on_conflict_do_nothing(index_elements=["kind", "id"])
            if conn.execute(stmt.returning(control_objects.c.id), marker).first() is None:
                return False
            for rule in rules:
                conn.execute(
                    _insert(conn)(alert_rules).on_conflict_do_nothing(index_elements=["id"]),
                    self._rule_row(rule, source, now),
                )
            return True

        return self._engine.write("install the default alert rules in", work)

    def seeded(self) -> bool:
        """Whether this database's rules were installed (by :meth:`seed`) already."""
        t = control_objects
        with self._engine.transaction("read alert rules from") as conn:
            found = conn.execute(sa.select(t.c.id).where(t.c.kind == _SEEDED["kind"], t.c.id == _SEEDED["id"]))
            return found.first() is not None

    @staticmethod
    def _rule_row(rule: Rule, source: str, now: datetime) -> dict[str, Any]:
        return {"id": rule.name, "body": dump_json(rule.to_dict()), "state": dump_json(RuleState().to_dict()),
                "source": source, "created_at": now, "updated_at": now}  # fmt: skip

    def rules(self) -> list[StoredRule]:
        """Every rule, by name."""
        t = alert_rules
        with self._engine.transaction("read alert rules from") as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.id)).mappings().all()
        return [StoredRule(Rule.from_dict(json.loads(r["body"])), r["source"], r["created_at"], r["updated_at"])
                for r in rows]  # fmt: skip

    def rule(self, name: str) -> StoredRule | None:
        """One rule, or None."""
        return next((stored for stored in self.rules() if stored.rule.name == name), None)

    def create_rule(self, rule: Rule, now: datetime, *, source: str = "api") -> bool:
        """Add a rule; False when one of that name exists."""

        def work(conn: sa.Connection) -> bool:
            stmt = _insert(conn)(alert_rules).on_conflict_do_nothing(index_elements=["id"])
            return conn.execute(stmt.returning(alert_rules.c.id), self._rule_row(rule, source, now)).first() is not None

        return self._engine.write("save an alert rule to", work)

    def replace_rule(self, rule: Rule, now: datetime) -> bool:
        """Replace a rule's definition (its state is kept); False when there is no such rule."""
        t = alert_rules

        def work(conn: sa.Connection) -> bool:
            done = conn.execute(
                sa.update(t).where(t.c.id == rule.name).values(body=dump_json(rule.to_dict()), updated_at=now)
            )
            return done.rowcount == 1

        return self._engine.write("save an alert rule to", work)

    def delete_rule(self, name: str) -> bool:
        """Delete a rule (its alerts stay, for the record); False when there is no such rule."""
        t = alert_rules
        return self._engine.write(
            "delete an alert rule from", lambda conn: conn.execute(sa.delete(t).where(t.c.id == name)).rowcount == 1
        )

    def state(self, name: str) -> RuleState:
        """The evaluator's memory of a rule (fresh when the rule is unknown)."""
        return self.state_read(name)[0]

    def state_read(self, name: str) -> tuple[RuleState, str | None]:
        """The memory of a rule and its stored text, to pass to :meth:`apply` as ``expected``."""
        t = alert_rules
        with self._engine.transaction("read alert rule state from") as conn:
            text = conn.execute(sa.select(t.c.state).where(t.c.id == name)).scalar_one_or_none()
        return (RuleState() if text is None else RuleState.from_dict(json.loads(text))), text

    # -- alerts ----------------------------------------------------------------------------------

    def get(self, alert_id: str) -> Alert | None:
        """One alert, or None."""
        with self._engine.transaction("read an alert from") as conn:
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().first()
        return None if row is None else _alert(row)

    def list_alerts(
        self, *, status: Iterable[str] | None = None, rule: str | None = None, since: datetime | None = None,
        limit: int = 100,
    ) -> list[Alert]:  # fmt: skip
        """Alerts, newest first: in any of ``status``, of one ``rule``, fired at or after ``since``."""
        t = alerts
        query = sa.select(t).order_by(t.c.fired_at.desc(), t.c.id).limit(limit)
        if status is not None:
            query = query.where(t.c.status.in_(list(status)))
        if rule is not None:
            query = query.where(t.c.rule_id == rule)
        if since is not None:
            query = query.where(t.c.fired_at >= since)
        with self._engine.transaction("read alerts from") as conn:
            return [_alert(row) for row in conn.execute(query).mappings().all()]

    def open_alerts(self, rule: str) -> dict[str, Alert]:
        """The open alerts of a rule, by scope."""
        return {a.scope: a for a in self.list_alerts(status=("firing", "acknowledged"), rule=rule, limit=100_000)}

    def apply(
        self,
        rule: Rule,
        decision: Decision,
        now: datetime,
        *,
        fire_channels: Sequence[str],
        resolve_channels: Callable[[int], Sequence[str]],
        expected: str | None = None,
    ) -> list[Alert]:
        """Write one evaluation round of ``rule`` in one transaction: its new state, the alerts it fires
        (with their deliveries), the open alerts it touches and those it resolves (notifying
        ``resolve_channels(escalation level reached)``). Returns the new alerts.
        A firing whose (rule, scope) another evaluator opened meanwhile is dropped (dedup). With
        ``expected`` (the state text the round started from), a round that another evaluator's round
        overtook writes nothing and raises :class:`StaleRound`."""
        t = alerts

        def work(conn: sa.Connection) -> list[Alert]:
            update = sa.update(alert_rules).where(alert_rules.c.id == rule.name)
            if expected is not None:
                update = update.where(alert_rules.c.state == expected)
            written = conn.execute(update.values(state=dump_json(decision.state.to_dict()))).rowcount
            if expected is not None and written != 1:
                raise StaleRound(rule.name)
            fired: list[Alert] = []
            for firing in decision.fire:
                alert_id = "alt_" + secrets.token_hex(12)
                row = {
                    "id": alert_id, "rule_id": rule.name, "type": rule.type,
                    "scope": firing.scope, "severity": rule.severity, "status": "firing",
                    "open_key": dedup_key(rule.name, firing.scope), "title": firing.title[:500],
                    "body": _body(firing.value, rule.threshold, firing.details), "occurrences": 1,
                    "escalation_level": 0, "fired_at": now, "last_seen_at": now, "escalated_at": None,
                    "acknowledged_at": None, "acknowledged_by": None, "resolved_at": None, "resolved_by": None,
                }  # fmt: skip
                stmt = _insert(conn)(t).on_conflict_do_nothing(index_elements=["open_key"]).returning(t.c.id)
                if conn.execute(stmt, row).first() is None:
                    continue
                insert_deliveries(conn, alert_id, fire_channels, "fired", 0, now)
                fired.append(_alert(row))
            for touch in decision.touch:
                conn.execute(
                    sa.update(t).where(t.c.id == touch.alert_id, t.c.status != "resolved")
                    .values(occurrences=t.c.occurrences + 1, last_seen_at=now,
                            body=_body(touch.value, rule.threshold, touch.details))
                )  # fmt: skip
            for alert_id in decision.resolve:
                self._resolve(conn, alert_id, "system", now, resolve_channels)
            return fired

        return self._engine.write("record alerts in", work)

    def _resolve(
        self, conn: sa.Connection, alert_id: str, by: str, now: datetime, channels: Callable[[int], Sequence[str]]
    ) -> bool:
        t = alerts
        level = conn.execute(
            sa.select(t.c.escalation_level).where(t.c.id == alert_id, t.c.status != "resolved")
        ).scalar_one_or_none()
        if level is None:
            return False
        done = conn.execute(
            sa.update(t).where(t.c.id == alert_id, t.c.status != "resolved")
            .values(status="resolved", open_key=None, resolved_at=now, resolved_by=by)
        )  # fmt: skip
        if done.rowcount != 1:
            return False
        insert_deliveries(conn, alert_id, channels(level), "resolved", 0, now)
        return True

    def _change(self, action: str, work: Any, alert_id: str) -> tuple[Alert, bool] | None:
        def run(conn: sa.Connection) -> tuple[Alert, bool] | None:
            changed = bool(work(conn))
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).mappings().first()
            return None if row is None else (_alert(row), changed)

        result: tuple[Alert, bool] | None = self._engine.write(action, run)
        return result

    def acknowledge(self, alert_id: str, by: str, now: datetime) -> tuple[Alert, bool] | None:
        """Acknowledge a firing alert (its escalation stops). Returns (alert, whether it changed), or None
        for an unknown id; acknowledging an acknowledged or resolved alert changes nothing."""
        t = alerts

        def work(conn: sa.Connection) -> bool:
            stmt = sa.update(t).where(t.c.id == alert_id, t.c.status == "firing")
            return (
                conn.execute(stmt.values(status="acknowledged", acknowledged_at=now, acknowledged_by=by)).rowcount == 1
            )

        return self._change("acknowledge an alert in", work, alert_id)

    def resolve(
        self, alert_id: str, by: str, now: datetime, channels: Callable[[int], Sequence[str]]
    ) -> tuple[Alert, bool] | None:
        """Resolve an open alert by hand, notifying ``channels(escalation level reached)``. Same answer as
        :meth:`acknowledge`."""
        return self._change(
            "resolve an alert in", lambda conn: self._resolve(conn, alert_id, by, now, channels), alert_id
        )

    def escalate(self, alert_id: str, level: int, channels: Sequence[str], now: datetime) -> bool:
        """Move a still-firing alert to escalation ``level`` and queue that level's deliveries, at most once."""
        t = alerts

        def work(conn: sa.Connection) -> bool:
            done = conn.execute(
                sa.update(t).where(t.c.id == alert_id, t.c.status == "firing", t.c.escalation_level < level)
                .values(escalation_level=level, escalated_at=now)
            )  # fmt: skip
            if done.rowcount != 1:
                return False
            insert_deliveries(conn, alert_id, channels, "escalated", level, now)
            return True

        return self._engine.write("escalate an alert in", work)
