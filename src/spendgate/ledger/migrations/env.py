"""Alembic environment for the ledger schema: runs on the connection spendgate hands it.

Use :func:`spendgate.ledger.upgrade` (or ``spendgate db upgrade``) rather than the ``alembic``
command: it passes the connection, holds the migration lock and names the version table.
"""

from __future__ import annotations

from alembic import context

from spendgate.errors import ConfigurationError
from spendgate.ledger._schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise ConfigurationError("ledger migrations run through spendgate.ledger.upgrade(url), not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=config.attributes["version_table"],
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
