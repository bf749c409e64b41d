"""Retention policies: how long raw events and aggregates are kept, per environment, and what a run did.

The presets are the seeds' table (raw data / aggregated):

============  ========  ===========
environment   raw       aggregates
============  ========  ===========
development   7 days    30 days
production    30 days   365 days
enterprise    90 days   kept
============  ========  ===========

Cutoffs are UTC midnights, so every archived day is complete and every deleted daily rollup is a whole
day. :func:`~spendgate.ledger.apply_retention` applies a policy (see :mod:`._retention_apply`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from spendgate.ledger._control import ControlStore
    from spendgate.settings import Settings

__all__ = ["PRESETS", "WATERMARK", "RetentionPolicy", "RetentionReport", "day_start", "read_watermark"]

#: The control object recording how far retention has deleted: ``{"raw_before", "aggregates_before"}``.
WATERMARK = ("retention", "watermark")

#: (raw days, aggregate days or None = kept) per environment, from the seeds.
PRESETS: dict[str, tuple[int, int | None]] = {
    "development": (7, 30),
    "production": (30, 365),
    "enterprise": (90, None),
}


def day_start(when: datetime) -> datetime:
    """The UTC midnight starting ``when``'s day (``when`` must be aware)."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when}: retention needs timezone-aware times")
    return when.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """How long the ledger keeps what.

    ``raw_days``: raw usage events (and their cost adjustments) older than this many whole UTC days are
    archived (when ``archive_dir`` is set) and deleted. ``aggregate_days``: rollups, threshold crossings and
    (through a hook) anomalies older than this are deleted; ``None`` keeps them forever. Aggregates never
    go before the raw events they summarize, so ``aggregate_days >= raw_days``. ``batch_size``: events
    deleted per transaction.
    """

    raw_days: int
    aggregate_days: int | None
    archive_dir: Path | None = None
    batch_size: int = 1000

    def __post_init__(self) -> None:
        if isinstance(self.raw_days, bool) or not isinstance(self.raw_days, int) or self.raw_days < 1:
            raise ValueError(f"raw_days must be a whole number of days, at least 1, got {self.raw_days!r}")
        aggregate = self.aggregate_days
        if aggregate is not None:
            if isinstance(aggregate, bool) or not isinstance(aggregate, int) or aggregate < 1:
                raise ValueError(f"aggregate_days must be at least 1 day or None (kept), got {aggregate!r}")
            if aggregate < self.raw_days:
                raise ValueError(
                    f"aggregate_days ({aggregate}) must be at least raw_days ({self.raw_days}):"
                    " rollups must outlive the raw events they summarize"
                )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.archive_dir is not None:
            object.__setattr__(self, "archive_dir", Path(self.archive_dir))

    @classmethod
    def preset(
        cls,
        environment: str,
        *,
        raw_days: int | None = None,
        aggregate_days: int | Literal["keep"] | None = None,
        archive_dir: Path | None = None,
    ) -> RetentionPolicy:
        """The seeds' preset for ``environment``, with any of its values replaced.

        ``aggregate_days="keep"`` keeps aggregates forever; ``None`` means "the preset's value".
        """
        if environment not in PRESETS:
            raise ValueError(f"unknown environment {environment!r}: use one of {', '.join(PRESETS)}")
        preset_raw, preset_aggregate = PRESETS[environment]
        if aggregate_days is None:
            aggregate = preset_aggregate
        elif aggregate_days == "keep":
            aggregate = None
        else:
            aggregate = aggregate_days
        return cls(
            raw_days=preset_raw if raw_days is None else raw_days, aggregate_days=aggregate, archive_dir=archive_dir
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy the settings describe: the environment's preset with the ``retention_*`` values on top."""
        return cls.preset(
            settings.environment,
            raw_days=settings.retention_raw_days,
            aggregate_days=settings.retention_aggregate_days,
            archive_dir=settings.retention_archive_dir,
        )

    def raw_cutoff(self, now: datetime) -> datetime:
        """Raw events with ``timestamp`` before this UTC midnight are expired."""
        return day_start(now) - timedelta(days=self.raw_days)

    def aggregate_cutoff(self, now: datetime) -> datetime | None:
        """Rollups of buckets starting before this UTC midnight are expired (``None``: kept forever)."""
        return None if self.aggregate_days is None else day_start(now) - timedelta(days=self.aggregate_days)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``aggregate_days: null`` = kept)."""
        return {
            "raw_days": self.raw_days,
            "aggregate_days": self.aggregate_days,
            "archive_dir": None if self.archive_dir is None else str(self.archive_dir),
            "batch_size": self.batch_size,
        }


@dataclass(slots=True, kw_only=True)
class RetentionReport:
    """What a retention run deleted (or, with ``dry_run``, would delete)."""

    raw_cutoff: datetime
    aggregate_cutoff: datetime | None
    dry_run: bool = False
    events_deleted: int = 0
    events_archived: int = 0
    """Events written to archive files by this run (a re-run after a crash rewrites the same events)."""
    archive_files: list[Path] = field(default_factory=list)
    adjustments_deleted: int = 0
    rollups_deleted: int = 0
    crossings_deleted: int = 0
    hook_pruned: int = 0
    """What the ``prune_aggregates`` hook reported (anomalies, analytics cubes...)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "raw_cutoff": self.raw_cutoff.isoformat(),
            "aggregate_cutoff": None if self.aggregate_cutoff is None else self.aggregate_cutoff.isoformat(),
            "dry_run": self.dry_run,
            "events_deleted": self.events_deleted,
            "events_archived": self.events_archived,
            "archive_files": [str(path) for path in self.archive_files],
            "adjustments_deleted": self.adjustments_deleted,
            "rollups_deleted": self.rollups_deleted,
            "crossings_deleted": self.crossings_deleted,
            "hook_pruned": self.hook_pruned,
        }


def read_watermark(control: ControlStore) -> tuple[datetime | None, datetime | None]:
    """(raw events deleted before, aggregates deleted before) so far; ``None`` where nothing was deleted."""
    body = control.get(*WATERMARK) or {}
    raw, aggregates = body.get("raw_before"), body.get("aggregates_before")
    return (
        None if raw is None else datetime.fromisoformat(raw),
        None if aggregates is None else datetime.fromisoformat(aggregates),
    )
