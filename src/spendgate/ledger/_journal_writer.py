"""The journal's writer process: drains sealed journal files into the ledger, off the appending process.

The appending process starts it (a ``python`` running :func:`main`) and sends its settings as
one JSON line on the child's standard input, which then stays open: the child drains the journal
directory every ``max_delay_s`` until that pipe closes (its parent stopped or died), drains once more and
exits. It ignores SIGINT, so a Ctrl-C in a terminal stops the parent, whose exit then ends the child.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from spendgate.ledger._store import UsageStore

__all__ = ["WriterProcess", "main", "serve"]

log = logging.getLogger("spendgate.ledger")

#: How often a writer that keeps dying is restarted, at most.
RESTART_INTERVAL_S = 5.0


class WriterProcess:
    """The appending process's handle on its writer process, restarted (at most every 5 s) if it dies."""

    def __init__(self, directory: Path, database_url: str, durability: str, max_delay_s: float, max_batch: int) -> None:
        self._config = json.dumps(
            {
                "directory": str(directory),
                "database_url": database_url,
                "durability": durability,
                "max_delay_s": max_delay_s,
                "max_batch": max_batch,
            }
        ).encode()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._start()

    def _start(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # the directory that holds `spendgate`
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._started_at = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from spendgate.ledger._journal_writer import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(self._config + b"\n")  # the database URL travels here, not on the command line
        stdin.flush()

    @property
    def pid(self) -> int | None:
        """The writer's process id (None when it is not running)."""
        return None if self._proc is None else self._proc.pid

    def check(self) -> None:
        """Restart the writer if it died (its files wait in the directory meanwhile: nothing is lost)."""
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        if time.monotonic() - self._started_at < RESTART_INTERVAL_S:
            return
        log.warning("the journal writer process exited with %s; restarting it", proc.returncode)
        self._close_pipe(proc)
        self._start()

    def stop(self, grace_s: float = 0.25) -> None:
        """Close the writer's pipe; stop it if it has not finished within ``grace_s``.

        Stopping it mid-batch is safe: its transaction rolls back and its files stay for the caller's own
        last drain (``Journal.close`` drains in-process right after), which skips nothing and, the
        ledger being idempotent by event id, doubles nothing.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._close_pipe(proc)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()

    @staticmethod
    def _close_pipe(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):  # it had exited
                proc.stdin.close()


def serve(control: IO[bytes], directory: Path, store: UsageStore, max_delay_s: float, max_batch: int) -> int:
    """Drain ``directory`` into ``store`` every ``max_delay_s`` until ``control`` reaches its end.

    Returns the events written. A failed drain is logged and retried on the next tick.
    """
    from spendgate.ledger._journal import drain

    fd = control.fileno()
    written = 0
    while True:
        ready, _, _ = select.select([fd], [], [], max_delay_s)
        done = bool(ready) and not os.read(fd, 4096)
        try:
            written += drain(directory, store, wait=done, max_batch=max_batch)
        except Exception as exc:  # the files stay; the next tick retries
            log.warning("journal writer could not drain %s: %s", directory, exc)
        if done:
            return written


def main() -> None:
    """The writer process's entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="spendgate journal writer: %(message)s")
    config = json.loads(sys.stdin.buffer.readline())
    from spendgate.ledger._store import open_store

    store = open_store(config["database_url"], durability=config["durability"], create=False)
    try:
        serve(sys.stdin.buffer, Path(config["directory"]), store, config["max_delay_s"], config["max_batch"])
    finally:
        store.close()
