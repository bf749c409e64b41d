"""`spendgate record`, `report`, `export`, `rerate` and `db upgrade`: commands on the ledger."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from spendgate.cli._common import (
    DatabaseOpt,
    JsonOpt,
    PriceFileOpt,
    build_settings,
    emit_json,
    fail,
    handle_errors,
    parse_when,
    print_table,
    stdout,
)
from spendgate.errors import InvalidUsageError
from spendgate.meter import Meter

__all__ = ["register"]

db_app = typer.Typer(help="Ledger database maintenance.", no_args_is_help=True)

_BATCH = 1000
_DIMENSIONS = {
    "user": "user_id",
    "team": "team_id",
    "key": "api_key_id",
    "session": "session_id",
    "provider": "provider",
    "model": "model",
    "request_type": "request_type",
}

SinceOpt = Annotated[str | None, typer.Option(help="From this date/time (ISO, naive = UTC) or span like 7d.")]
UntilOpt = Annotated[str | None, typer.Option(help="Up to (not including) this date/time.")]


def _filters(since: str | None, until: str | None, **exact: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in exact.items() if v is not None}
    if since is not None:
        out["since"] = parse_when(since, "since")
    if until is not None:
        out["until"] = parse_when(until, "until")
    return out


def _read_events(lines: list[str]) -> list[tuple[int, dict[str, Any]]]:
    events: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"line {number}: not valid JSON ({exc.msg})", 2) from None
        if not isinstance(item, dict):
            raise fail(f"line {number}: expected a JSON object", 2)
        events.append((number, item))
    return events


def record(
    database_url: DatabaseOpt = None,
    price_file: PriceFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record usage events given as JSON lines on stdin.

    Each line: {"provider", "model", "usage": {"input_tokens", ...}, "event_id"?, "user_id"?, ...}.
    Every line is validated before anything is written; events with an event_id already recorded are
    reported as duplicates, so re-running the same input is safe.
    """
    events = _read_events(sys.stdin.read().splitlines())
    settings = build_settings(database_url, price_file)
    recorded = duplicates = unpriced = 0
    with handle_errors(), Meter(settings=settings) as meter:
        for number, item in events:  # validate everything first: no partial write for bad input
            try:
                meter.validate(item)
            except InvalidUsageError as exc:
                raise fail(f"line {number}: {exc}", 2) from None
        items = [item for _, item in events]
        for start in range(0, len(items), _BATCH):
            for result in meter.record_many(items[start : start + _BATCH]):
                duplicates += result.duplicate
                recorded += not result.duplicate
                unpriced += not result.duplicate and result.cost is None
    summary = {"recorded": recorded, "duplicates": duplicates, "unpriced": unpriced}
    if as_json:
        emit_json(summary)
    else:
        stdout.print(f"recorded {recorded}, duplicates {duplicates}, unpriced {unpriced}")


def report(
    by: Annotated[str, typer.Option(help="Group by: " + ", ".join(_DIMENSIONS))] = "model",
    since: SinceOpt = None,
    until: UntilOpt = None,
    user: Annotated[str | None, typer.Option(help="Only this user.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Totals by user, team, key, provider or model for a period."""
    if by not in _DIMENSIONS:
        raise fail(f"--by: must be one of {', '.join(_DIMENSIONS)}", 2)
    settings = build_settings(database_url)
    filters = _filters(since, until, user_id=user, team_id=team, provider=provider, model=model)
    with handle_errors(), Meter(settings=settings) as meter:
        rows = meter.report(_DIMENSIONS[by], **filters)  # type: ignore[arg-type]
        total = meter.summary(**filters)
    fields = ["requests", "failures", "input_tokens", "output_tokens", "cost", "unpriced_requests"]
    if as_json:
        emit_json(
            {
                "by": by,
                "rows": [{by: key, **{f: getattr(s, f) for f in fields}} for key, s in rows],
                "total": {f: getattr(total, f) for f in fields},
            }
        )
        return
    table_rows = [[key if key is not None else "(none)", *(getattr(s, f) for f in fields)] for key, s in rows]
    table_rows.append(["TOTAL", *(getattr(total, f) for f in fields)])
    print_table(f"usage by {by}", [by, *fields], table_rows)


def export(
    format: Annotated[str, typer.Option("--format", "-f", help="csv, json or jsonl.")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default stdout).")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    user: Annotated[str | None, typer.Option(help="Only this user.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    database_url: DatabaseOpt = None,
) -> None:
    """Export events as CSV or JSON, streamed (any size)."""
    if format not in ("csv", "json", "jsonl"):
        raise fail("--format: must be csv, json or jsonl", 2)
    settings = build_settings(database_url)
    filters = _filters(since, until, user_id=user, team_id=team, provider=provider, model=model)
    with handle_errors(), Meter(settings=settings) as meter:
        if output is None:
            count = meter.export(sys.stdout, format=format, **filters)  # type: ignore[arg-type]
        else:
            with output.open("w", encoding="utf-8", newline="") as fh:
                count = meter.export(fh, format=format, **filters)  # type: ignore[arg-type]
            stdout.print(f"wrote {count} events to {output}")


def rerate(
    since: Annotated[str, typer.Option(help="Reprice events from this date/time (required).")],
    until: UntilOpt = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    reason: Annotated[str, typer.Option(help="Why, kept with every adjustment.")] = "price correction",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    price_file: PriceFileOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reprice past events with the current prices, keeping originals and writing adjustments."""
    settings = build_settings(database_url, price_file)
    since_at = parse_when(since, "since")
    assert since_at is not None
    with handle_errors(), Meter(settings=settings) as meter:
        result = meter.rerate(
            since=since_at,
            until=parse_when(until, "until"),
            provider=provider,
            model=model,
            reason=reason,
            dry_run=dry_run,
        )
    errors = [{"event_id": event_id, "error": message} for event_id, message in result.errors]
    data: dict[str, Any] = {
        "examined": result.examined,
        "changed": result.changed,
        "newly_priced": result.newly_priced,
        "still_unpriced": result.still_unpriced,
        "delta": result.delta,
        "dry_run": dry_run,
    }
    if as_json:
        emit_json({**data, "errors": errors})
        return
    print_table("rerate", ["field", "value"], [[k, v] for k, v in data.items()])
    for error in errors:
        stdout.print(f"not repriced: {error['event_id']}: {error['error']}")


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOpt = None) -> None:
    """Create or migrate the ledger schema to the latest version."""
    from spendgate.ledger import upgrade

    settings = build_settings(database_url)
    with handle_errors():
        upgrade(settings.database_url)
    stdout.print(f"ledger schema is up to date at {settings.database_url}")


def register(app: typer.Typer) -> None:
    app.command()(record)
    app.command()(report)
    app.command()(export)
    app.command()(rerate)
    app.add_typer(db_app, name="db")
