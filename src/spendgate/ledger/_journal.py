"""A write-ahead journal: events acknowledged on append, written to the ledger in batches, off the caller's path.

For high-throughput settles. ``append`` writes one JSON line to this process's journal file (a single
``write`` system call, plus ``fsync`` for power-loss durability) and returns: from then on the event
survives the process being killed, because the line is in the operating system's hands.

Files move through three names in the journal directory:

* ``journal-<pid>-<id>.jsonl``: the file a live process appends to, locked with ``flock`` while it does
  (created under a temporary name and locked before it gets this one, so nobody replays it half-made);
* ``sealed-<time>-<pid>-<id>.jsonl``: a file rotated out (when ``max_pending`` events or ``max_delay_s``
  have accumulated, or on :meth:`Journal.flush`), complete and waiting for the ledger;
* gone: its events are in the ledger (idempotently, by event id).

A *writer* turns sealed files into ledger batches (one transaction per up to ``max_batch`` events):
``writer="process"`` runs it in a separate process (``python -m spendgate.ledger._journal_writer``), so the
ledger writes cost the appending process nothing; ``"thread"`` runs it in a background thread (needed for a
ledger another process cannot open, such as in-memory SQLite). Whoever drains a file locks it first, so a
file is never replayed twice at once, and a second replay would be harmless anyway. The files of a process
that died (its lock is gone) are replayed by the next drain of any process sharing the directory.
:meth:`Journal.flush` (readers call it first) seals the current file and drains every sealed file itself,
waiting for one the writer is busy with, so a read always sees every settle acknowledged before it.

The journal directory must be on storage that outlives the process (not a container's scratch disk that
disappears with it): an event is safe from the moment it is appended only as long as its file survives.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import compress
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from operator import add, attrgetter, ne
from pathlib import Path
from typing import Any, Literal

from spendgate.errors import LedgerError
from spendgate.ledger._event import UsageEvent
from spendgate.ledger._journal_writer import WriterProcess
from spendgate.ledger._store import UsageStore
from spendgate.usage import Usage

__all__ = ["Journal", "WriterKind", "drain", "event_from_json", "event_to_json"]

log = logging.getLogger("spendgate.ledger")

_LIVE = "journal-"
_SEALED = "sealed-"
_DRAIN_LOCK = ".drain.lock"
_SUFFIX = ".jsonl"
_USAGE_FIELDS = tuple(f.name for f in fields(Usage))
_DECIMAL_FIELDS = ("cost", "cache_savings")


_SPECIAL = frozenset({"usage", "timestamp", "tags", "metadata", *_DECIMAL_FIELDS})
_PLAIN_FIELDS = tuple(f.name for f in fields(UsageEvent) if f.name not in _SPECIAL)
_DEFAULTS = {f.name: f.default for f in fields(UsageEvent) if f.name in _PLAIN_FIELDS}
# The plain fields split in two: those that differ from call to call, and the rest (who, what, how), which
# repeat for every call of one user on one model: their JSON is worked out once per combination.
_CALL_FIELDS = ("latency_ms", "prompt_hash", "request_bytes", "response_bytes")  # and event_id
_SHARED_FIELDS = tuple(name for name in _PLAIN_FIELDS if name not in (*_CALL_FIELDS, "event_id"))
_SHARED_DEFAULTS = tuple(_DEFAULTS.get(name) for name in _SHARED_FIELDS)
_call_values = attrgetter(*_CALL_FIELDS)
_shared_values = attrgetter(*_SHARED_FIELDS)
_usage_values = attrgetter(*_USAGE_FIELDS)
_USAGE_KEYS = tuple(f'"{name}":"' for name in _USAGE_FIELDS)
_NO_MORE = tuple(f.default for f in fields(Usage))[2:]  # every count after input and output tokens at zero
_quote = encode_basestring_ascii
_FRAGMENTS_MAX = 4096  # combinations remembered (forgotten all at once beyond it)
_fragments: dict[tuple[Any, ...], str] = {}
# The second of the last timestamp written: its start and end (UTC) and its text "2026-03-10T12:00:00".
_second: list[tuple[datetime, datetime, str]] = [
    (datetime.max.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC), "")
]


def _not_json(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder, made once (json.JSONEncoder.encode makes one per call); CPython always has it.
_c_encoder = (
    None
    if c_make_encoder is None
    else c_make_encoder(None, _not_json, encode_basestring_ascii, None, ":", ",", False, False, False)
)
_py_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _encode(value: dict[str, Any]) -> str:
    """Compact, strict JSON (no NaN or infinity) of a JSON-ready dict."""
    if _c_encoder is None:  # pragma: no cover - CPython always has the C encoder
        return _py_encoder.encode(value)
    return "".join(_c_encoder(value, 0))


def _shared_json(values: tuple[Any, ...]) -> str:
    """The JSON members (no braces; "" if none) of the shared fields that are not at their default."""
    fragment = _fragments.get(values)
    if fragment is None:
        chosen = compress(zip(_SHARED_FIELDS, values, strict=True), map(ne, values, _SHARED_DEFAULTS))
        fragment = _encode(dict(chosen))[1:-1]
        if len(_fragments) >= _FRAGMENTS_MAX:
            _fragments.clear()
        _fragments[values] = fragment
    return fragment


def _isoformat(when: datetime) -> str:
    """``when.isoformat()``, with the part up to the second worked out once per second (for UTC)."""
    if when.tzinfo is not UTC or type(when) is not datetime:
        return when.isoformat()
    start, end, second = _second[0]  # one tuple: threads that write other seconds replace it whole
    if not start <= when < end:
        start = when.replace(microsecond=0)
        second = start.replace(tzinfo=None).isoformat()
        _second[0] = (start, start + timedelta(seconds=1), second)
    micro = when.microsecond
    # str(1000000 + micro) is "1" and the six digits: cheaper than formatting them with ":06d"
    return f"{second}.{str(1_000_000 + micro)[1:]}+00:00" if micro else f"{second}+00:00"


def _usage_json(usage: Usage) -> str:
    """The JSON object of the non-zero counts of ``usage``, each as a string."""
    counts = _usage_values(usage)
    if counts[2:] == _NO_MORE:  # input and output tokens only (the common case), in one step
        inputs, outputs = counts[0], counts[1]
        if inputs and outputs:
            return f'{{"input_tokens":"{inputs}","output_tokens":"{outputs}"}}'
    members = '",'.join(map(add, compress(_USAGE_KEYS, counts), map(str, compress(counts, counts))))
    return f'{{{members}"}}' if members else "{}"


def event_to_json(event: UsageEvent) -> bytes:
    """One line of JSON (newline included) that :func:`event_from_json` turns back into the same event.

    Fields at their default are left out. The hot path serializes one event per settle, so the line is
    put together from parts: the fields shared by the calls of one user on one model are encoded once
    (see :func:`_shared_json`), and the rest are values whose JSON is plain (digits, ISO timestamps,
    decimal strings) or strings escaped by the json module's own C function.
    """
    text = (
        f'{{"event_id":{_quote(event.event_id)},"timestamp":"{_isoformat(event.timestamp)}",'
        f'"usage":{_usage_json(event.usage)}'
    )
    latency_ms, prompt_hash, request_bytes, response_bytes = _call_values(event)
    if latency_ms is not None:
        text += f',"latency_ms":{int(latency_ms)}'
    if prompt_hash is not None:
        text += f',"prompt_hash":{_quote(prompt_hash)}'
    if request_bytes is not None:
        text += f',"request_bytes":{int(request_bytes)}'
    if response_bytes is not None:
        text += f',"response_bytes":{int(response_bytes)}'
    if event.cost is not None:
        text += f',"cost":"{event.cost!s}"'
    if event.cache_savings is not None:
        text += f',"cache_savings":"{event.cache_savings!s}"'
    if event.tags:
        text += ',"tags":' + _encode(dict(event.tags))
    if event.metadata:
        text += ',"metadata":' + _encode(dict(event.metadata))
    shared = _shared_json(_shared_values(event))
    if shared:
        text += "," + shared
    return (text + "}\n").encode()


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


WriterKind = Literal["thread", "process"]


def drain(directory: Path, store: UsageStore, *, wait: bool, max_batch: int = 5000) -> int:
    """Write every sealed journal file in ``directory`` to ``store``, and the files of dead processes.

    One drain runs at a time per directory (across processes: ``.drain.lock``). ``wait`` waits for a
    drain in progress to finish and then drains whatever is left, so that everything sealed before
    the call is in the ledger when it returns; otherwise, when another drain runs, this one does
    nothing. Live processes' current files are skipped. Returns the events this call wrote.
    """
    lock = os.open(directory / _DRAIN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        written = 0
        for path in sorted(directory.glob(f"{_SEALED}*{_SUFFIX}")):
            # Blocking: the only other holder is the owner, between sealing the file and closing it.
            written += _drain_file(path, store, block=True, max_batch=max_batch)
        for path in sorted(directory.glob(f"{_LIVE}*{_SUFFIX}")):
            written += _drain_file(path, store, block=False, max_batch=max_batch)  # held: its owner lives
        return written
    finally:
        os.close(lock)  # releases the lock


def _drain_file(path: Path, store: UsageStore, *, block: bool, max_batch: int) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0  # drained (or sealed under its new name) since the directory was listed
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # its process appends to it, or another drainer has it
        if os.fstat(fd).st_nlink == 0:
            return 0  # another drainer finished it while this one waited
        with os.fdopen(os.dup(fd), "rb") as fh:
            events = list(_complete_events(fh))
        for start in range(0, len(events), max_batch):
            store.record_many(events[start : start + max_batch])
        path.unlink(missing_ok=True)
        return len(events)
    finally:
        os.close(fd)


class Journal:
    """The write-ahead journal of one process in ``directory``, feeding ``store``. Thread-safe.

    ``writer="process"`` needs ``database_url`` (the writer process opens its own connection to the same
    ledger, with ``durability``).
    """

    def __init__(
        self,
        directory: str | Path,
        store: UsageStore,
        *,
        fsync: bool = False,
        max_pending: int = 1000,
        max_delay_s: float = 0.05,
        max_batch: int = 5000,
        writer: WriterKind = "thread",
        database_url: str | None = None,
        durability: str = "process",
    ) -> None:
        if writer == "process" and database_url is None:
            raise ValueError("a journal writer process needs the ledger's database_url")
        self.directory = Path(directory)
        self.store = store
        self.fsync = fsync
        self.max_pending = max_pending
        self.max_delay_s = max_delay_s
        self.max_batch = max_batch
        self.writer: WriterKind = writer
        self._lock = threading.Lock()  # guards the current file and its line count
        self._lines = 0
        self._first_at = 0.0
        self._wake = threading.Event()
        self._stopping = False
        self.directory.mkdir(parents=True, exist_ok=True)
        self.recover()
        self._path, self._fd = self._open_file()
        self._process: WriterProcess | None = None
        if writer == "process":
            assert database_url is not None
            self._process = WriterProcess(self.directory, database_url, durability, max_delay_s, max_batch)
        self._ticker = threading.Thread(target=self._tick, name="spendgate-journal", daemon=True)
        self._ticker.start()

    # -- files -----------------------------------------------------------------------------------

    def _open_file(self) -> tuple[Path, int]:
        name = f"{os.getpid()}-{uuid.uuid4().hex}{_SUFFIX}"
        temporary = self.directory / f".new-{name}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this process appends to it
        path = self.directory / f"{_LIVE}{name}"
        os.rename(temporary, path)
        if self.fsync:
            self._sync_directory()
        return path, fd

    def _sync_directory(self) -> None:
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _seal(self) -> bool:
        """Rotate the current file out to be drained (caller holds ``_lock``); False when it was empty."""
        if not self._lines:
            return False
        sealed = self.directory / f"{_SEALED}{time.time_ns():020d}-{self._path.name[len(_LIVE) :]}"
        os.rename(self._path, sealed)  # still locked: nobody drains it before it is closed
        os.close(self._fd)
        self._lines = 0
        self._path, self._fd = self._open_file()
        return True

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
            if not self._lines:
                self._first_at = time.monotonic()
            self._lines += 1
            if self._lines >= self.max_pending:
                try:
                    self._seal()
                except OSError as exc:  # the event is safe in the current file; the next seal retries
                    log.warning("could not rotate the journal file %s: %s", self._path, exc)
                    return
                if self._process is None:
                    self._wake.set()

    def _tick(self) -> None:
        """Seal a file that has waited ``max_delay_s``; in thread mode, drain sealed files into the ledger."""
        while True:
            self._wake.wait(self.max_delay_s)
            self._wake.clear()
            if self._stopping:
                return
            try:
                with self._lock:
                    if self._lines and time.monotonic() - self._first_at >= self.max_delay_s:
                        self._seal()
                if self._process is None:
                    drain(self.directory, self.store, wait=False, max_batch=self.max_batch)
                else:
                    self._process.check()
            except Exception as exc:  # the events are safe in their files; the next tick retries
                log.warning("journal writer failed, will retry: %s", exc)

    def flush(self) -> int:
        """Write every event appended so far to the ledger; returns how many this call wrote itself."""
        with self._lock:
            self._seal()
        try:
            return drain(self.directory, self.store, wait=True, max_batch=self.max_batch)
        except Exception as exc:
            raise LedgerError(f"could not write the journal to the ledger: {exc}") from exc

    @property
    def pending(self) -> int:
        """Events appended but not yet in the ledger (counts the lines of this directory's sealed files)."""
        with self._lock:
            count = self._lines
        for path in self.directory.glob(f"{_SEALED}*{_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                count += path.read_bytes().count(b"\n")
        return count

    # -- recovery --------------------------------------------------------------------------------

    def recover(self) -> int:
        """Replay the journals of processes that died (and sealed files nobody holds); returns how many."""
        return drain(self.directory, self.store, wait=False, max_batch=self.max_batch)

    def close(self) -> None:
        """Stop the writer, flush, then remove this process's (empty) journal file."""
        self._stopping = True
        self._wake.set()
        self._ticker.join()
        if self._process is not None:
            self._process.stop()
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
