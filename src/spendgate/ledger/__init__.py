"""The durable, idempotent usage ledger.

Open one with :func:`open_store` (``sqlite:///usage.db`` embedded, ``postgresql+psycopg://...`` at
scale) and :meth:`~UsageStore.record` :class:`UsageEvent` objects. See ``docs/ledger.md``.
"""

from spendgate.ledger import (
    _alerts_schema,  # noqa: F401  (registers the alert tables on the metadata)
    _pii_keys,  # noqa: F401  (registers the personal-data key table on the metadata)
)
from spendgate.ledger._adjustments import AdjustmentRecord, CostAdjustment
from spendgate.ledger._audit import AuditVerification, verify_audit_chain
from spendgate.ledger._backup import BackupReport, backup_ledger, restore_ledger
from spendgate.ledger._control import AuditEntry, ControlStore, Crossing, QueuedRequest
from spendgate.ledger._engine import Durability
from spendgate.ledger._event import RecordResult, StoredEvent, UsageEvent
from spendgate.ledger._journal import Journal
from spendgate.ledger._migrate import upgrade
from spendgate.ledger._money import MAX_MONEY, MONEY_SCALE
from spendgate.ledger._query import DIMENSIONS, Dimension, EventFilter, Granularity, RollupRow, UsageSummary
from spendgate.ledger._retention import PRESETS as RETENTION_PRESETS
from spendgate.ledger._retention import RetentionPolicy, RetentionReport, read_watermark
from spendgate.ledger._retention_apply import RestoreReport, apply_retention, restore_archive
from spendgate.ledger._schema import Money
from spendgate.ledger._store import UsageStore, open_store

__all__ = [
    "AdjustmentRecord",
    "AuditEntry",
    "AuditVerification",
    "BackupReport",
    "ControlStore",
    "CostAdjustment",
    "Crossing",
    "DIMENSIONS",
    "Dimension",
    "Durability",
    "EventFilter",
    "Granularity",
    "Journal",
    "MAX_MONEY",
    "MONEY_SCALE",
    "Money",
    "QueuedRequest",
    "RETENTION_PRESETS",
    "RecordResult",
    "RestoreReport",
    "RetentionPolicy",
    "RetentionReport",
    "RollupRow",
    "StoredEvent",
    "UsageEvent",
    "UsageStore",
    "UsageSummary",
    "apply_retention",
    "backup_ledger",
    "open_store",
    "read_watermark",
    "restore_archive",
    "restore_ledger",
    "upgrade",
    "verify_audit_chain",
]
