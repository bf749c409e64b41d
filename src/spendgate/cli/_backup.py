"""`spendgate backup` and `spendgate restore`: a consistent copy of the ledger, and putting one back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from spendgate.cli._common import DatabaseOpt, JsonOpt, build_settings, emit_json, fail, handle_errors, stdout
from spendgate.ledger import BackupReport, backup_ledger, restore_ledger
from spendgate.meter import Meter

__all__ = ["register"]

PathArg = Annotated[Path, typer.Argument(help="The backup file (SQLite database copy, or pg_dump custom format).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing file / replace a ledger with events.")]


@contextmanager
def _file_errors() -> Iterator[None]:
    """A backup that is missing, or a file / ledger that would be overwritten: a usage error (status 2)."""
    try:
        yield
    except (FileExistsError, FileNotFoundError) as error:
        raise fail(str(error), 2) from None


def _show(verb: str, report: BackupReport, json_out: bool) -> None:
    if json_out:
        emit_json(report.to_dict())
        return
    stdout.print(
        f"{verb} {report.path} ({report.backend}, {report.bytes:,} bytes): {report.events:,} events, "
        f"{report.limits:,} limits, {report.audit_entries:,} audit entries",
        highlight=False,
    )


def backup(path: PathArg, database_url: DatabaseOpt = None, force: ForceOpt = False, json_out: JsonOpt = False) -> None:
    """Back the ledger up to PATH while the service keeps running (journaled usage is flushed first)."""
    settings = build_settings(database_url)
    with handle_errors(), _file_errors():
        with Meter(settings=settings) as meter:
            meter.flush()  # usage still in the write-ahead journal goes into the database first
        report = backup_ledger(settings.database_url, path, force=force)
    _show("backed up to", report, json_out)


def restore(
    path: PathArg, database_url: DatabaseOpt = None, force: ForceOpt = False, json_out: JsonOpt = False
) -> None:
    """Restore the ledger from PATH (stop the service first); refuses a ledger with events unless --force."""
    settings = build_settings(database_url)
    with handle_errors(), _file_errors():
        report = restore_ledger(path, settings.database_url, force=force)
    _show("restored from", report, json_out)


def register(app: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to ``app``."""
    app.command("backup")(backup)
    app.command("restore")(restore)
