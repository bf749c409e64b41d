"""Shared pieces of the `spendgate` command: options, date parsing, output and error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from spendgate.errors import SpendgateError
from spendgate.settings import Settings

__all__ = [
    "DatabaseOpt",
    "JsonOpt",
    "PriceFileOpt",
    "build_settings",
    "emit_json",
    "fail",
    "handle_errors",
    "parse_when",
    "print_table",
]

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", "-d", help="Ledger URL (default: $SPENDGATE_DATABASE_URL or sqlite:///spendgate.db)."
    ),
]
PriceFileOpt = Annotated[
    Path | None,
    typer.Option("--price-file", help="TOML/YAML price overrides (default: $SPENDGATE_PRICE_FILE).", exists=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

stdout = Console()
stderr = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error to stderr and return the Exit to raise."""
    stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn spendgate's errors into a one-line message and exit status 2 (bad input) or 1 (anything else)."""
    try:
        yield
    except (ValueError, LookupError) as exc:
        raise fail(str(exc), 2) from None
    except SpendgateError as exc:
        raise fail(str(exc), 1) from None


def build_settings(database_url: str | None = None, price_file: Path | None = None) -> Settings:
    """Settings from the environment with the command line's options on top."""
    overrides: dict[str, Any] = {}
    if database_url is not None:
        overrides["database_url"] = database_url
    if price_file is not None:
        overrides["price_file"] = price_file
    try:
        return Settings(**overrides)
    except ValueError as exc:
        raise fail(f"invalid settings: {exc}", 2) from None


def parse_when(value: str | None, name: str) -> datetime | None:
    """An ISO date or datetime (naive means UTC), or a relative span like ``7d``/``24h`` before now."""
    if value is None:
        return None
    text = value.strip()
    units: dict[str, Callable[[int], timedelta]] = {
        "d": lambda n: timedelta(days=n),
        "h": lambda n: timedelta(hours=n),
        "m": lambda n: timedelta(minutes=n),
    }
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) - units[text[-1]](int(text[:-1]))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise fail(f"--{name}: not a date, datetime or span like 7d: {value!r}", 2) from None
        parsed = datetime(day.year, day.month, day.day)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def emit_json(data: Any) -> None:
    """Print JSON to stdout (Decimals as exact strings)."""
    sys.stdout.write(json.dumps(data, default=_default, indent=2) + "\n")


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A rich table on stdout; numbers right-aligned."""
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i else "left")
    for row in rows:
        table.add_row(*("" if v is None else (format(v, "f") if isinstance(v, Decimal) else str(v)) for v in row))
    stdout.print(table)
