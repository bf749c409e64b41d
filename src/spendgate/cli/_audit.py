"""`spendgate audit verify`: check the audit log's hash chain."""

from __future__ import annotations

import typer

from spendgate.cli._common import DatabaseOpt, JsonOpt, build_settings, emit_json, fail, handle_errors, stdout
from spendgate.ledger import verify_audit_chain
from spendgate.meter import Meter

__all__ = ["register"]

audit_app = typer.Typer(help="The audit log: append-only and hash-chained.", no_args_is_help=True)


@audit_app.command("verify")
def verify(database_url: DatabaseOpt = None, json_out: JsonOpt = False) -> None:
    """Recompute the audit log's hash chain; exit 1 at the first entry that was edited, removed or moved."""
    settings = build_settings(database_url)
    with handle_errors(), Meter(settings=settings) as meter:
        result = verify_audit_chain(meter.store)
    if json_out:
        emit_json(result.to_dict())
    elif result.ok:
        stdout.print(f"audit chain intact: {result.entries} entries, head {result.head}", highlight=False)
    if not result.ok:
        raise fail(f"audit chain broken at entry {result.bad_id}: {result.reason}", 1)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command group to ``app``."""
    app.add_typer(audit_app, name="audit")
