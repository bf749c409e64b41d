"""`spendgate serve`: run the service (gateway, metering and admin APIs) with uvicorn."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from spendgate.cli._common import DatabaseOpt, build_settings, fail

__all__ = ["register"]


def default_journal_dir(database_url: str) -> Path | None:
    """Where `spendgate serve` journals settles by default: beside an SQLite ledger (``usage.db.journal/``).

    A PostgreSQL deployment names its own (``SPENDGATE_JOURNAL_DIR``, on storage that outlives the process)
    or runs without one (every settle commits before it is answered).
    """
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        return None
    return Path(url.database).with_name(Path(url.database).name + ".journal")


def serve(
    host: Annotated[str | None, typer.Option(help="Address (default $SPENDGATE_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default $SPENDGATE_PORT or 8080).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (needs redis:// counters when > 1).")] = 1,
    counters_url: Annotated[str | None, typer.Option(help="memory:// or redis://host:6379/0.")] = None,
    database_url: DatabaseOpt = None,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (the ledger records every metered call anyway).")
    ] = False,
) -> None:
    """Start the service on the configured ledger (SQLite by default)."""
    settings = build_settings(database_url)
    counters = counters_url or settings.counters_url
    if workers > 1 and counters.startswith("memory://"):
        raise fail(
            f"--workers {workers} with memory:// counters would give each worker its own budget counters, so every "
            f"limit would allow {workers} times its amount. Use --counters-url redis://127.0.0.1:6379/0 (shared by "
            "all workers), or one worker.",
            2,
        )
    # the workers build their settings from the environment: pass the command line's choices there
    os.environ["SPENDGATE_DATABASE_URL"] = settings.database_url
    os.environ["SPENDGATE_COUNTERS_URL"] = counters
    journal = settings.journal_dir or default_journal_dir(settings.database_url)
    if journal is not None:
        os.environ["SPENDGATE_JOURNAL_DIR"] = str(journal)
    import uvicorn

    from spendgate.server import uvicorn_options

    uvicorn.run(
        "spendgate.server._app:app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        access_log=access_log,
        **uvicorn_options(),
    )


def register(app: typer.Typer) -> None:
    app.command()(serve)
