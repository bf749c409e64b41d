"""Streaming export of ledger events as JSON lines, a JSON array or CSV (any size: one event at a time)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import IO, Any, Literal

from spendgate.ledger import UsageEvent
from spendgate.usage import Usage

__all__ = ["CSV_COLUMNS", "ExportFormat", "event_to_dict", "write_events"]

ExportFormat = Literal["jsonl", "json", "csv"]

_USAGE_FIELDS = tuple(f.name for f in fields(Usage))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Usage):
        return {name: _plain(getattr(value, name)) for name in _USAGE_FIELDS}
    return value


def event_to_dict(event: UsageEvent) -> dict[str, Any]:
    """Every field of an event as JSON-ready values (money as exact decimal strings)."""
    out: dict[str, Any] = {}
    for f in fields(event):
        value = getattr(event, f.name)
        if f.name in ("tags", "metadata"):
            out[f.name] = dict(value)
        else:
            out[f.name] = _plain(value)
    return out


def _flat(event: UsageEvent) -> dict[str, Any]:
    row = event_to_dict(event)
    usage = row.pop("usage")
    row.update(usage)
    row["tags"] = json.dumps(row["tags"], sort_keys=True)
    row["metadata"] = json.dumps(row["metadata"], sort_keys=True, default=str)
    return row


def _csv_columns() -> list[str]:
    names = [f.name for f in fields(UsageEvent)]
    i = names.index("usage")
    return names[:i] + list(_USAGE_FIELDS) + names[i + 1 :]


CSV_COLUMNS = _csv_columns()


def write_events(events: Iterable[UsageEvent], out: IO[str], fmt: ExportFormat = "jsonl") -> int:
    """Write events to ``out`` one at a time; returns how many were written."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="raise")
        writer.writeheader()
        for event in events:
            writer.writerow(_flat(event))
            count += 1
        return count
    if fmt == "json":
        out.write("[")
        for event in events:
            out.write(",\n" if count else "\n")
            out.write(json.dumps(event_to_dict(event), default=str))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    if fmt == "jsonl":
        for event in events:
            out.write(json.dumps(event_to_dict(event), default=str))
            out.write("\n")
            count += 1
        return count
    raise ValueError(f"unknown export format {fmt!r}: use jsonl, json or csv")
