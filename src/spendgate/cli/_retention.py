"""`spendgate retention show|apply|restore`: how long the ledger keeps what, applying it, and undoing it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from spendgate.analytics import retention_hooks
from spendgate.cli._common import DatabaseOpt, JsonOpt, build_settings, emit_json, fail, handle_errors, print_table
from spendgate.ledger import RETENTION_PRESETS, RetentionPolicy, apply_retention, read_watermark, restore_archive
from spendgate.meter import Meter
from spendgate.settings import Settings

__all__ = ["register"]

retention_app = typer.Typer(
    help="Retention: archive and delete expired raw events and aggregates.", no_args_is_help=True
)

EnvironmentOpt = Annotated[
    str | None,
    typer.Option("--environment", "-e", help="Preset: " + ", ".join(RETENTION_PRESETS) + " (default: settings)."),
]
RawDaysOpt = Annotated[int | None, typer.Option("--raw-days", help="Keep raw events this many days.")]
AggregateDaysOpt = Annotated[
    str | None, typer.Option("--aggregate-days", help="Keep rollups, crossings, anomalies this many days, or 'keep'.")
]
ArchiveOpt = Annotated[
    Path | None, typer.Option("--archive-dir", help="Archive raw events here (gzip JSON lines) before deleting.")
]


def _aggregate_days(value: str) -> int | Literal["keep"]:
    if value == "keep":
        return "keep"
    try:
        return int(value)
    except ValueError:
        raise fail(f"--aggregate-days: a number of days or 'keep', got {value!r}", 2) from None


def _policy(
    settings: Settings, environment: str | None, raw_days: int | None, aggregate: str | None, archive: Path | None
) -> RetentionPolicy:
    """Command-line values over the ``retention_*`` settings over the environment's preset."""
    try:
        return RetentionPolicy.preset(
            environment or settings.environment,
            raw_days=raw_days if raw_days is not None else settings.retention_raw_days,
            aggregate_days=_aggregate_days(aggregate) if aggregate is not None else settings.retention_aggregate_days,
            archive_dir=archive if archive is not None else settings.retention_archive_dir,
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None


def _print(title: str, data: dict[str, Any]) -> None:
    rows = [[key, "kept" if value is None and key.startswith("aggregate") else value] for key, value in data.items()]
    print_table(title, ["field", "value"], rows)


@retention_app.command("show")
def show_command(
    environment: EnvironmentOpt = None,
    raw_days: RawDaysOpt = None,
    aggregate_days: AggregateDaysOpt = None,
    archive_dir: ArchiveOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The policy in force, its cutoffs now, what retention has deleted so far and what it would delete now."""
    settings = build_settings(database_url)
    policy = _policy(settings, environment, raw_days, aggregate_days, archive_dir)
    with handle_errors(), Meter(settings=settings) as meter:
        now = meter.clock.now()
        pending = apply_retention(meter.store, policy, now, dry_run=True)
        raw_before, aggregates_before = read_watermark(meter.store.control)
    data = {
        **policy.to_dict(),
        "raw_cutoff": pending.raw_cutoff.isoformat(),
        "aggregate_cutoff": None if pending.aggregate_cutoff is None else pending.aggregate_cutoff.isoformat(),
        "expired_events": pending.events_deleted,
        "expired_rollups": pending.rollups_deleted,
        "expired_crossings": pending.crossings_deleted,
        "deleted_raw_before": None if raw_before is None else raw_before.isoformat(),
        "deleted_aggregates_before": None if aggregates_before is None else aggregates_before.isoformat(),
    }
    if as_json:
        emit_json(data)
    else:
        _print("retention", data)


@retention_app.command("apply")
def apply_command(
    environment: EnvironmentOpt = None,
    raw_days: RawDaysOpt = None,
    aggregate_days: AggregateDaysOpt = None,
    archive_dir: ArchiveOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; change nothing.")] = False,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Archive (with --archive-dir) and delete expired raw events, then expired rollups, crossings, anomalies.

    Rollups stay exact: they already count the deleted events. Safe to re-run, also after a crash.
    """
    settings = build_settings(database_url)
    policy = _policy(settings, environment, raw_days, aggregate_days, archive_dir)
    with handle_errors(), Meter(settings=settings) as meter:
        meter.flush()
        before_delete, prune = retention_hooks(meter.store)
        report = apply_retention(meter.store, policy, meter.clock.now(), dry_run=dry_run,
                                 before_delete=before_delete, prune_aggregates=prune)  # fmt: skip
    data = report.to_dict()
    if as_json:
        emit_json(data)
    else:
        data["archive_files"] = len(report.archive_files)
        _print("retention (dry run)" if dry_run else "retention", data)


@retention_app.command("restore")
def restore_command(
    files: Annotated[list[Path], typer.Argument(help="Archive files (usage-YYYY-MM-DD.jsonl.gz).", exists=True)],
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put archived events back in the ledger (events already there are skipped; rollups stay exact)."""
    settings = build_settings(database_url)
    rows: list[dict[str, Any]] = []
    with handle_errors(), Meter(settings=settings) as meter:
        for path in files:
            result = restore_archive(meter.store, path)
            rows.append({"file": str(path), "restored": result.restored, "duplicates": result.duplicates,
                         "rollups_added": result.rollups_added})  # fmt: skip
    if as_json:
        emit_json({"files": rows})
    else:
        print_table("restored", ["file", "restored", "duplicates", "rollups_added"], [list(r.values()) for r in rows])


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
