"""The `spendgate` command line."""

from __future__ import annotations

import typer

from spendgate.cli import (
    _audit,
    _backup,
    _budgets,
    _demo,
    _encryption,
    _insights,
    _keys,
    _ledger,
    _prices,
    _retention,
    _serve,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="spendgate",
    help="Meter, price and govern LLM usage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_prices.register(app)
_ledger.register(app)
_budgets.register(app)
_serve.register(app)
_keys.register(app)
_insights.register(app)
_retention.register(app)
_demo.register(app)
_audit.register(app)
_backup.register(app)
_encryption.register(app)


def main() -> None:
    """Entry point of the `spendgate` script."""
    app()
