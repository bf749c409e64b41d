"""Engines for the ledger: URL checks, per-connection settings, transactions, error wrapping.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (durability "process": a committed event
survives the process being killed) or ``synchronous=FULL`` (durability "power": every commit is
fsynced). Write transactions start with ``BEGIN IMMEDIATE`` so writers queue on the busy timeout
instead of failing on a lock upgrade. PostgreSQL always runs with ``synchronous_commit=on``: a client
being killed never loses a committed transaction; surviving a power cut is the server's
configuration (fsync, synchronous replication).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url

from spendgate.errors import ConfigurationError, LedgerError

__all__ = ["Durability", "LedgerEngine", "engine_of", "parse_url"]

T = TypeVar("T")

Durability = Literal["process", "power"]

_SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
# SQLSTATEs worth retrying a whole write transaction for: serialization failure, deadlock.
_RETRYABLE = frozenset({"40001", "40P01"})
_WRITE = "spendgate_write"


def parse_url(url: str | URL) -> URL:
    """The normalised SQLAlchemy URL for a ledger URL; unsupported schemes raise ConfigurationError."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise ConfigurationError(f"invalid ledger URL {url!r}: {error}") from error
    scheme = parsed.drivername
    if scheme in _SQLITE_SCHEMES:
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in database or parsed.query.get("mode") == "memory":
            raise ConfigurationError(
                f"in-memory SQLite ledger URL {str(url)!r} is not supported (the ledger must be shared between"
                " connections and survive the process): use a file, e.g. sqlite:///usage.db"
            )
        return parsed.set(drivername="sqlite+pysqlite")
    if scheme in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigurationError(
        f"unsupported ledger URL scheme {scheme!r} in {parsed.render_as_string(hide_password=True)}:"
        " use sqlite:///path/to/usage.db or postgresql+psycopg://user@host/dbname"
    )


def _enable_wal(cursor: Any, busy_timeout: float) -> None:
    """Switch a SQLite database to WAL mode, waiting out other connections doing the same.

    Converting a new database needs an exclusive lock and SQLite reports "database is locked" at
    once, without its busy handler, when another connection converts it at the same moment.
    """
    deadline = time.monotonic() + busy_timeout
    delay = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _describe(error: BaseException) -> str:
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        return str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else type(error.orig).__name__
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _retryable(error: exc.DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in _RETRYABLE


class LedgerEngine:
    """A SQLAlchemy engine configured for the ledger, with wrapped transactions."""

    def __init__(self, url: str | URL, *, durability: Durability = "process", busy_timeout: float = 30.0) -> None:
        if durability not in ("process", "power"):
            raise ConfigurationError(f"durability must be 'process' or 'power', got {durability!r}")
        if busy_timeout <= 0:
            raise ConfigurationError(f"busy_timeout must be positive, got {busy_timeout!r}")
        self.url = parse_url(url)
        self.safe_url = self.url.render_as_string(hide_password=True)
        self.durability = durability
        try:
            if self.url.get_backend_name() == "sqlite":
                self.engine = sa.create_engine(
                    self.url, connect_args={"check_same_thread": False, "timeout": busy_timeout}, pool_size=5
                )
                self._setup_sqlite(busy_timeout)
            else:
                self.engine = sa.create_engine(
                    self.url,
                    pool_pre_ping=True,
                    connect_args={
                        "options": "-c synchronous_commit=on",
                        "application_name": "spendgate",
                        "connect_timeout": max(1, round(busy_timeout)),
                    },
                )
        except (exc.ArgumentError, ImportError) as error:
            raise ConfigurationError(f"cannot use ledger URL {self.safe_url}: {error}") from error
        self.dialect: str = self.engine.dialect.name

    def _setup_sqlite(self, busy_timeout: float) -> None:
        synchronous = "FULL" if self.durability == "power" else "NORMAL"

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                _enable_wal(cursor, busy_timeout)
                cursor.execute(f"PRAGMA synchronous = {synchronous}")
            finally:
                cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    @contextmanager
    def transaction(self, action: str, *, write: bool = False, repeatable: bool = False) -> Iterator[sa.Connection]:
        """A connection inside one transaction; driver errors become LedgerError naming ``action``.

        ``write`` takes the SQLite write lock up front; ``repeatable`` gives PostgreSQL readers one
        snapshot for several statements (SQLite transactions always read one snapshot).
        """
        try:
            with self.engine.connect() as conn:
                options: dict[str, Any] = {_WRITE: write}
                if repeatable and self.dialect == "postgresql":
                    options["isolation_level"] = "REPEATABLE READ"
                conn.execution_options(**options)
                with conn.begin():
                    yield conn
        except exc.SQLAlchemyError as error:
            raise LedgerError(f"could not {action} {self.safe_url}: {_describe(error)}") from error

    def write(self, action: str, work: Callable[[sa.Connection], T], *, attempts: int = 5) -> T:
        """Run ``work(conn)`` in a write transaction, retried on deadlock/serialization failures."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(action, write=True) as conn:
                    return work(conn)
            except LedgerError as error:
                cause = error.__cause__
                if attempt == attempts or not isinstance(cause, exc.DBAPIError) or not _retryable(cause):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def engine_of(store: object, needed_by: str = "this") -> LedgerEngine:
    """The engine of a SQL usage store (or the engine itself): what lives in the ledger's own database
    (analytics cubes, alerts, the audit chain) is reached through it."""
    if isinstance(store, LedgerEngine):
        return store
    engine = getattr(store, "_engine", None)
    if not isinstance(engine, LedgerEngine):
        raise LedgerError(f"{needed_by} needs a SQL usage store (open_store), got {type(store).__name__}")
    return engine
