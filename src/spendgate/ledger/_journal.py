"""A write-ahead journal: events acknowledged on append, written to the ledger in batches.

For high-throughput settles. ``append`` writes one JSON line to a journal file (a single ``write``
system call, plus ``fsync`` for power-loss durability) and returns: from then on the event survives the
process being killed, because the line is in the operating system's hands. Appended events reach the
ledger in batches (one transaction per up to ``max_batch`` events) when ``max_pending`` accumulate, when
the oldest has waited ``max_delay_s``, or when :meth:`Journal.flush` is called (readers call it first).

Each process appends to its own file, locked with ``flock`` while the process lives. :meth:`recover`
(run when a journal opens) replays the complete lines of every file no live process holds (a crashed
process's) into the ledger, idempotently by event id, and deletes them. A line cut short by a crash was
never acknowledged and is skipped.

The journal directory must be on storage that outlives the process (not a container's scratch disk that
disappears with it): an event is safe from the moment it is appended only as long as its file survives.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendgate.errors import LedgerError
from spendgate.ledger._event import UsageEvent
from spendgate.ledger._store import UsageStore
from spendgate.usage import Usage

__all__ = ["Journal", "event_from_json", "event_to_json"]

log = logging.getLogger("spendgate.ledger")

_PREFIX = "journal-"
_SUFFIX = ".jsonl"
_USAGE_FIELDS = tuple(f.name for f in fields(Usage))
_DECIMAL_FIELDS = ("cost", "cache_savings")


def event_to_json(event: UsageEvent) -> bytes:
    """One line of JSON (newline included) that :func:`event_from_json` turns back into the same event."""
    out: dict[str, Any] = {}
    for f in fields(event):
        value = getattr(event, f.name)
        if isinstance(value, Usage):
            value = {name: str(getattr(value, name)) for name in _USAGE_FIELDS if getattr(value, name)}
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif f.name in ("tags", "metadata"):
            value = dict(value)
        out[f.name] = value
    return json.dumps(out, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def event_from_json(line: bytes) -> UsageEvent:
    data = json.loads(line)
    usage = data.pop("usage")
    counts: dict[str, Any] = {
        k: Decimal(v) if k in ("audio_seconds", "processing_seconds") else int(v) for k, v in usage.items()
    }
    data["usage"] = Usage(**counts)
    data["timestamp"] = datetime.fromisoformat(data["timestamp"])
    for name in _DECIMAL_FIELDS:
        if data.get(name) is not None:
            data[name] = Decimal(data[name])
    return UsageEvent(**data)


class Journal:
    """The write-ahead journal of one process in ``directory``, feeding ``store``. Thread-safe."""

    def __init__(
        self,
        directory: str | Path,
        store: UsageStore,
        *,
        fsync: bool = False,
        max_pending: int = 1000,
        max_delay_s: float = 0.05,
        max_batch: int = 5000,
    ) -> None:
        self.directory = Path(directory)
        self.store = store
        self.fsync = fsync
        self.max_pending = max_pending
        self.max_delay_s = max_delay_s
        self.max_batch = max_batch
        self._lock = threading.Lock()  # guards the current file and the pending list
        self._flushing = threading.Lock()  # one flush at a time
        self._pending: list[UsageEvent] = []
        self._first_at = 0.0
        self._sealed: list[tuple[Path, int, list[UsageEvent]]] = []  # rotated files (still locked), not in the ledger
        self.directory.mkdir(parents=True, exist_ok=True)
        self.recover()
        self._path, self._fd = self._open_file()

    # -- files -----------------------------------------------------------------------------------

    def _open_file(self) -> tuple[Path, int]:
        path = self.directory / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this process lives
        if self.fsync:
            self._sync_directory()
        return path, fd

    def _sync_directory(self) -> None:
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # -- appending -------------------------------------------------------------------------------

    def append(self, event: UsageEvent) -> None:
        """Make ``event`` durable now; it reaches the ledger with the next batch."""
        line = event_to_json(event)
        with self._lock:
            try:
                os.write(self._fd, line)
                if self.fsync:
                    os.fsync(self._fd)
            except OSError as exc:
                raise LedgerError(f"could not append to the journal {self._path}: {exc}") from exc
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append(event)
            due = len(self._pending) >= self.max_pending or time.monotonic() - self._first_at >= self.max_delay_s
        if due:
            try:
                self.flush(wait=False)
            except LedgerError as exc:  # the event is safe in the journal; the next flush retries
                log.warning("journal flush to the ledger failed, will retry: %s", exc)

    def flush(self, *, wait: bool = True) -> int:
        """Write every appended event to the ledger; returns how many. ``wait=False`` skips if one is running."""
        if not self._flushing.acquire(blocking=wait):
            return 0
        try:
            with self._lock:
                if self._pending:
                    self._sealed.append((self._path, self._fd, self._pending))
                    self._path, self._fd = self._open_file()
                    self._pending = []
            written = 0
            while self._sealed:
                path, fd, events = self._sealed[0]
                self._write(events)  # on failure the file stays, locked, for the next flush
                path.unlink(missing_ok=True)
                os.close(fd)
                self._sealed.pop(0)
                written += len(events)
            return written
        finally:
            self._flushing.release()

    def _write(self, events: list[UsageEvent]) -> None:
        for start in range(0, len(events), self.max_batch):
            self.store.record_many(events[start : start + self.max_batch])

    @property
    def pending(self) -> int:
        """Events appended but not yet in the ledger."""
        with self._lock:
            return len(self._pending) + sum(len(events) for _, _, events in self._sealed)

    # -- recovery --------------------------------------------------------------------------------

    def recover(self) -> int:
        """Replay the journals of processes that died into the ledger; returns how many events were replayed."""
        replayed = 0
        for path in sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process owns it
                with os.fdopen(os.dup(fd), "rb") as fh:
                    events = list(_complete_events(fh))
                self._write(events)
                path.unlink(missing_ok=True)
                replayed += len(events)
            finally:
                os.close(fd)
        return replayed

    def close(self) -> None:
        """Flush, then remove this process's (empty) journal file."""
        self.flush()
        with self._lock:
            os.close(self._fd)
            self._path.unlink(missing_ok=True)


def _complete_events(lines: Iterable[bytes]) -> Iterable[UsageEvent]:
    for line in lines:
        if not line.endswith(b"\n"):
            return  # cut short by a crash: never acknowledged
        if line.strip():
            yield event_from_json(line)
