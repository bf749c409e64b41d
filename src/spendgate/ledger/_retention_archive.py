"""Archive files of expired raw events: gzip JSON lines, one file per UTC day, and restoring them.

A line is the journal's event JSON (:func:`~spendgate.ledger._journal.event_to_json`) plus a ``"ledger"``
object with what the ledger keeps beside the event: the original cost and price version, when it was
recorded, and its cost adjustments. Files are named ``usage-YYYY-MM-DD.jsonl.gz``.

A day's file is written under a temporary name, fsynced, read back in full and only then renamed into
place (and the directory fsynced), so a file under its final name is always complete. Writing a day that
already has a file merges the two by event id: a run that crashed between archiving and deleting, run
again, writes the same events once.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendgate.errors import LedgerError
from spendgate.ledger._adjustments import AdjustmentRecord
from spendgate.ledger._event import StoredEvent
from spendgate.ledger._journal import event_from_json, event_to_json

__all__ = ["ArchivedEvent", "archive_lock", "archive_path", "encode", "read_archive", "write_day"]

_PREFIX = "usage-"
_compact = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_SUFFIX = ".jsonl.gz"


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One archived event with its ledger-side facts and cost adjustments (oldest first)."""

    stored: StoredEvent
    adjustments: tuple[AdjustmentRecord, ...] = ()


@contextlib.contextmanager
def archive_lock(directory: Path) -> Iterator[None]:
    """Hold the archive directory's lock (``.retention.lock``, ``flock``): one archiving run at a time per
    directory across processes, so two runs never merge the same day's file at once."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".retention.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def archive_path(directory: Path, day: date) -> Path:
    """Where the events of UTC ``day`` are archived."""
    return directory / f"{_PREFIX}{day.isoformat()}{_SUFFIX}"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _adjustment_json(item: AdjustmentRecord) -> dict[str, Any]:
    return {
        "old_cost": _money(item.old_cost),
        "new_cost": _money(item.new_cost),
        "old_price_version": item.old_price_version,
        "new_price_version": item.new_price_version,
        "reason": item.reason,
        "created_at": item.created_at.isoformat(),
    }


def encode(item: ArchivedEvent) -> bytes:
    """One archive line (newline included)."""
    ledger = {
        "original_cost": _money(item.stored.original_cost),
        "original_price_version": item.stored.original_price_version,
        "recorded_at": item.stored.recorded_at.isoformat(),
        "adjustments": [_adjustment_json(a) for a in item.adjustments],
    }
    event = event_to_json(item.stored.event)  # a JSON object: b"{...}\n"
    return event[:-2] + b',"ledger":' + _compact(ledger).encode() + b"}\n"


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _decode(line: bytes) -> ArchivedEvent:
    body = json.loads(line)
    extra = body.pop("ledger", None) or {}
    event = event_from_json(json.dumps(body).encode())
    stored = StoredEvent(
        event=event,
        original_cost=_decimal(extra.get("original_cost", _money(event.cost))),
        original_price_version=extra.get("original_price_version", event.price_version),
        recorded_at=datetime.fromisoformat(extra["recorded_at"]) if "recorded_at" in extra else event.timestamp,
    )
    adjustments = tuple(
        AdjustmentRecord(
            id=0,
            event_id=event.event_id,
            old_cost=_decimal(a["old_cost"]),
            new_cost=_decimal(a["new_cost"]),
            old_price_version=a["old_price_version"],
            new_price_version=a["new_price_version"],
            reason=a["reason"],
            created_at=datetime.fromisoformat(a["created_at"]),
        )
        for a in extra.get("adjustments", ())
    )
    return ArchivedEvent(stored, adjustments)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a gzip file's non-blank lines; a damaged file raises :class:`LedgerError`."""
    try:
        with gzip.open(path, "rb") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield number, line if line.endswith(b"\n") else line + b"\n"
    except (OSError, EOFError) as exc:
        raise LedgerError(f"cannot read archive {path}: {exc}") from exc


def _bad(path: Path, number: int, exc: Exception) -> LedgerError:
    return LedgerError(f"archive {path}, line {number}: not an archived event ({exc})")


def read_archive(path: Path) -> Iterator[ArchivedEvent]:
    """The events of one archive file, in file order; a damaged file raises :class:`LedgerError`."""
    for number, line in _lines(path):
        try:
            yield _decode(line)
        except (ValueError, KeyError, TypeError) as exc:
            raise _bad(path, number, exc) from exc


def _scan(path: Path) -> Iterator[tuple[str, bytes]]:
    """(event id, line) of each line: checks that the file reads and every line is an object with an id."""
    for number, line in _lines(path):
        try:
            event_id = json.loads(line)["event_id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise _bad(path, number, exc) from exc
        if not isinstance(event_id, str):
            raise _bad(path, number, TypeError("event_id is not a string"))
        yield event_id, line


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_day(directory: Path, day: date, events: Iterable[ArchivedEvent]) -> tuple[Path, set[str]]:
    """Archive ``events`` (all of UTC ``day``) merged with the day's existing file; returns the file and the
    ids it now holds, read back from the file itself.

    An event already in the file is replaced by the one given (the ledger's current state). The new file
    is complete and verified before it replaces the old one; on any failure the old file is untouched.
    """
    directory.mkdir(parents=True, exist_ok=True)
    final = archive_path(directory, day)
    temp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    given = {item.stored.event.event_id: item for item in events}
    expected = set(given)
    try:
        with open(temp, "wb") as raw:
            with gzip.GzipFile(filename=final.name[: -len(".gz")], mode="wb", fileobj=raw, mtime=0) as fh:
                if final.exists():
                    for event_id, line in _scan(final):
                        if event_id not in given:
                            fh.write(line)
                            expected.add(event_id)
                for item in given.values():
                    fh.write(encode(item))
            raw.flush()
            os.fsync(raw.fileno())
        found = [event_id for event_id, _ in _scan(temp)]
        if len(found) != len(expected) or set(found) != expected:
            raise LedgerError(f"archive {temp} does not read back as written ({len(found)} of {len(expected)})")
        os.replace(temp, final)
        _fsync_directory(directory)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise LedgerError(f"cannot write archive {final}: {exc}") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return final, expected
