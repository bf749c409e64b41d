"""The alerting tables (``spendgate.alerts`` gives them meaning), on the ledger's ``metadata``.

* ``alert_rules``: one row per rule, keyed by its name; ``body`` is the rule as JSON, ``state`` the
  evaluator's memory of it (consecutive breaches, last firing and read cursors per scope), ``source``
  where it came from (``default``, ``config`` or ``api``).
* ``alerts``: one row per firing of a rule for a scope, with its lifecycle (``firing`` ->
  ``acknowledged`` -> ``resolved``). ``open_key`` is a hash of (rule, scope) while the alert is open
  and NULL once resolved: its unique constraint keeps at most one open alert per (rule, scope) on
  every backend, however many evaluators run.
* ``alert_deliveries``: the outbox. One row per (alert, channel, event), written in the same
  transaction as the alert change it announces; a worker claims due rows, sends them and records
  the outcome (``pending`` -> ``sent`` or ``failed``, with ``attempts`` and ``last_error``).
* ``auth_failures``: refused API keys per minute and client address (``""`` when unknown), added to by
  every process that refused them; the ``security_threat`` rules with metric ``failed_auth`` read it.
"""

from __future__ import annotations

import sqlalchemy as sa

from spendgate.ledger._schema import UTCDateTime, metadata

__all__ = ["DELIVERY_STATUSES", "alert_deliveries", "alert_rules", "alerts", "auth_failures"]

#: The states of a delivery: waiting (maybe after a failed attempt), sent, given up.
DELIVERY_STATUSES = ("pending", "sent", "failed")

_AUTO_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("rule_id", sa.String(200), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("scope", sa.String(400), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("open_key", sa.String(64), nullable=True),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("occurrences", sa.Integer, nullable=False),
    sa.Column("escalation_level", sa.Integer, nullable=False),
    sa.Column("fired_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("escalated_at", UTCDateTime(), nullable=True),
    sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
    sa.Column("acknowledged_by", sa.String(200), nullable=True),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    sa.Column("resolved_by", sa.String(200), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    sa.UniqueConstraint("open_key", name="uq_alerts_open_key"),
    sa.Index("ix_alerts_status_fired_at", "status", "fired_at"),
    sa.Index("ix_alerts_rule_scope", "rule_id", "scope"),
)

alert_deliveries = sa.Table(
    "alert_deliveries",
    metadata,
    sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
    sa.Column("alert_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("level", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
    sa.Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_alert_deliveries_alert_id", "alert_id"),
)

auth_failures = sa.Table(
    "auth_failures",
    metadata,
    sa.Column("minute", UTCDateTime(), nullable=False),
    sa.Column("client_ip", sa.String(64), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("minute", "client_ip", name="pk_auth_failures"),
)
