"""Backups of the ledger database and restoring them.

* SQLite: SQLite's online backup API copies a consistent snapshot while the service keeps writing
  (WAL readers are never blocked); the copy is checked (``PRAGMA integrity_check``) before it counts
  as done. A restore copies the backup into the target with the same API (so the target's WAL is
  handled), then brings its schema up to date.
* PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore --clean --if-exists --single-transaction``
  (the PostgreSQL client tools must be on ``PATH``; their version must not be older than the server's).

Both refuse to overwrite: a backup file that exists, or a restore into a ledger that holds events,
unless ``force`` is given.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from spendgate.errors import ConfigurationError, LedgerError
from spendgate.ledger._engine import parse_url
from spendgate.ledger._migrate import upgrade

__all__ = ["BackupReport", "backup_ledger", "restore_ledger"]


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What a backup or a restore copied."""

    path: Path
    backend: str
    bytes: int
    events: int
    limits: int
    audit_entries: int

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"path": str(self.path), "backend": self.backend, "bytes": self.bytes, "events": self.events,
                "limits": self.limits, "audit_entries": self.audit_entries}  # fmt: skip


def _counts(url: URL) -> tuple[int, int, int]:
    """(events, limits, audit entries) in the ledger at ``url`` (zeros for a database without tables)."""
    engine = sa.create_engine(url)
    try:
        conn = engine.connect()
    except sa.exc.OperationalError as error:
        engine.dispose()
        raise LedgerError(f"could not open the ledger at {url.render_as_string()}: {error.orig}") from error
    try:
        with conn:
            tables = set(sa.inspect(conn).get_table_names())
            if "usage_events" not in tables:
                return 0, 0, 0
            events = conn.execute(sa.text("SELECT count(*) FROM usage_events")).scalar_one()
            limits = conn.execute(sa.text("SELECT count(*) FROM control_objects WHERE kind = 'limit'")).scalar_one()
            audit = conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one()
            return int(events), int(limits), int(audit)
    finally:
        engine.dispose()


def _sqlite_path(url: URL) -> Path:
    return Path(url.database or "")


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy in one step: a read snapshot of the source (WAL writers carry on meanwhile)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        problem = dst.execute("PRAGMA integrity_check").fetchone()[0]
    if problem != "ok":
        raise LedgerError(f"the copy {target} failed its integrity check: {problem}")


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigurationError(f"{name} is not on PATH: install the PostgreSQL client tools (e.g. postgresql-client)")
    return found


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string for ``url`` without the password, and the environment carrying it."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str], action: str) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LedgerError(f"{action} failed ({Path(command[0]).name} exit {done.returncode}): {done.stderr.strip()}")


def backup_ledger(database_url: str | URL, path: Path, *, force: bool = False) -> BackupReport:
    """Write a consistent backup of the ledger at ``database_url`` to ``path``."""
    url = parse_url(database_url)
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists: choose another file or pass force=True (--force)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        source = _sqlite_path(url)
        if not source.exists():
            raise LedgerError(f"there is no ledger at {source}")
        partial = path.with_name(path.name + ".partial")
        partial.unlink(missing_ok=True)
        _copy_sqlite(source, partial)
        events, limits, audit = _counts(url.set(database=str(partial)))  # exactly what the copy holds
        partial.replace(path)  # the file only appears under its name once it is complete and checked
        return BackupReport(path, "sqlite", path.stat().st_size, events, limits, audit)
    tool = _pg_tool("pg_dump")
    events, limits, audit = _counts(url)  # before the dump: the dump holds at least these
    dsn, env = _libpq(url)
    _run([tool, "--format=custom", "--no-owner", f"--file={path}", dsn], env, "pg_dump")
    return BackupReport(path, "postgresql", path.stat().st_size, events, limits, audit)


def restore_ledger(path: Path, database_url: str | URL, *, force: bool = False) -> BackupReport:
    """Restore the backup at ``path`` into the ledger at ``database_url`` and bring its schema up to date.
    Refuses a target that holds events unless ``force`` (its contents are then replaced)."""
    url = parse_url(database_url)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no backup at {path}")
    fresh = url.get_backend_name() == "sqlite" and not _sqlite_path(url).exists()
    if not fresh and _counts(url)[0] and not force:
        raise FileExistsError(f"the ledger at {url.render_as_string()} holds events: pass force=True (--force)")
    if url.get_backend_name() == "sqlite":
        target = _sqlite_path(url)
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_sqlite(path, target)
    else:
        dsn, env = _libpq(url)
        command = [_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
                   f"--dbname={dsn}", str(path)]  # fmt: skip
        _run(command, env, "pg_restore")
    upgrade(url)
    events, limits, audit = _counts(url)
    return BackupReport(path, url.get_backend_name(), path.stat().st_size, events, limits, audit)
