"""What retention has to do around the analytics: drain the queue first, prune cubes with the aggregates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from spendgate.analytics._anomaly import prune_anomalies
from spendgate.analytics._refresh import RefreshJob, prune_cubes
from spendgate.ledger import UsageStore

__all__ = ["retention_hooks"]

_GRANULARITIES = ("minute", "hour", "day")


def retention_hooks(store: UsageStore) -> tuple[Callable[[], None], Callable[[datetime], int]]:
    """``(before_delete, prune_aggregates)`` for :func:`~spendgate.ledger.apply_retention`.

    ``before_delete`` moves every queued event into the cubes, so deleting raw events loses nothing
    the cubes have not counted; ``prune_aggregates(before)`` deletes the anomalies and the cube rows
    (minute, hour, day) older than the aggregate cutoff and returns how many went.
    """
    drain = RefreshJob(store, max_batches=1_000_000)

    def before_delete() -> None:
        drain()

    def prune_aggregates(before: datetime) -> int:
        removed = prune_anomalies(store.control, before, actor="retention")
        return removed + sum(prune_cubes(store, granularity, before) for granularity in _GRANULARITIES)

    return before_delete, prune_aggregates
