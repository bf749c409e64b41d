"""`spendgate demo`: the gateway, admin API and dashboard on weeks of seeded history, with live traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spendgate.cli._common import fail

__all__ = ["register"]


def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    days: Annotated[int, typer.Option(min=1, max=90, help="Days of history to seed, ending now.")] = 30,
    database: Annotated[
        Path | None,
        typer.Option(
            help="SQLite file for the ledger, kept afterwards (reused if it holds a demo); default: a temporary one."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the history (the same seed, the same history).")] = 0,
    traffic: Annotated[bool, typer.Option("--traffic/--no-traffic", help="Keep live requests going.")] = True,
) -> None:
    """Run spendgate on a fake provider with seeded history: no provider account needed. Ctrl-C stops it."""
    from spendgate.demo import run_demo

    try:
        code = run_demo(host=host, port=port, days=days, database=database, seed=seed, traffic=traffic)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command()(demo)
