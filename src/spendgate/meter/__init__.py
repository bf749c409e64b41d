"""The `Meter` facade: count, price, record and report usage (sync and asyncio)."""

from __future__ import annotations

from spendgate.meter._async import AsyncMeter
from spendgate.meter._authorization import Authorization
from spendgate.meter._budget_api import MAX_COST_LIMIT, BudgetStatus, Drift
from spendgate.meter._core import Recorded
from spendgate.meter._export import CSV_COLUMNS, event_to_dict, write_events
from spendgate.meter._meter import Meter, RerateReport
from spendgate.meter._queue import QueueOutcome

__all__ = [
    "AsyncMeter",
    "Authorization",
    "BudgetStatus",
    "CSV_COLUMNS",
    "Drift",
    "MAX_COST_LIMIT",
    "Meter",
    "QueueOutcome",
    "Recorded",
    "RerateReport",
    "event_to_dict",
    "write_events",
]
