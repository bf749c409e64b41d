"""Schema migrations: Alembic scripts shipped in ``spendgate/ledger/migrations``, run from code.

:func:`upgrade` brings a database to the newest schema; ``spendgate db upgrade`` and
``open_store(..., create=True)`` call it. Concurrent first-time migrations are safe: the whole
upgrade runs in one transaction that first takes a lock (PostgreSQL ``pg_advisory_xact_lock``,
SQLite ``BEGIN IMMEDIATE``), so a second process waits, then finds the schema current.
Alembic's version is kept in ``spendgate_alembic_version`` so the ledger can share a database
with an application's own Alembic history.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from spendgate.errors import LedgerError
from spendgate.ledger._engine import LedgerEngine

__all__ = ["VERSION_TABLE", "alembic_config", "current_revision", "head_revision", "migrate", "upgrade"]

#: Alembic version table of the ledger schema.
VERSION_TABLE = "spendgate_alembic_version"
#: Key of the PostgreSQL advisory lock held while migrating ("spendgat" in ASCII).
_LOCK_KEY = int.from_bytes(b"spendgat", "big") & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config for the shipped scripts, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", "spendgate.ledger:migrations")
    config.set_main_option("path_separator", "os")
    config.attributes["version_table"] = VERSION_TABLE
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest schema revision this version of spendgate ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise LedgerError("spendgate ships no ledger migrations")
    return head


def current_revision(conn: sa.Connection) -> str | None:
    """The schema revision of the connected database (``None`` before the first migration)."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def migrate(engine: LedgerEngine) -> None:
    """Upgrade the engine's database to the newest schema (a no-op when it is current)."""
    with engine.transaction("read the schema version of") as conn:
        if current_revision(conn) == head_revision():
            return
    with engine.transaction("migrate", write=True) as conn:
        if engine.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        command.upgrade(alembic_config(conn), "head")


def upgrade(url: str | URL) -> None:
    """Bring the ledger database at ``url`` to the newest schema.

    Safe to run concurrently and repeatedly. Raises :class:`~spendgate.errors.ConfigurationError`
    for an unsupported URL and :class:`~spendgate.errors.LedgerError` when the database fails.
    """
    engine = LedgerEngine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
