"""Per-user data keys for personal data (crypto-shredding), on the ledger's ``metadata``.

``pii_keys`` holds one row per user whose personal fields are sealed: the user's own Fernet key,
itself sealed with the deployment's ``encryption_keys`` (``wrapped``). Erasing a user deletes the row,
and with it the only way to read what was sealed for them anywhere: the audit log's old entries, which
are append-only, and copies of the database. Rows are not audited: the audit log must never hold a
key, or erasure could not destroy it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy import exc

from spendgate.errors import LedgerError
from spendgate.ledger._engine import LedgerEngine
from spendgate.ledger._schema import UTCDateTime, metadata

__all__ = ["PiiKeys", "pii_keys"]

pii_keys = sa.Table(
    "pii_keys",
    metadata,
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("wrapped", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    sa.PrimaryKeyConstraint("user_id", name="pk_pii_keys"),
)


class PiiKeys:
    """The ``pii_keys`` rows of one ledger. Values are opaque text (wrapped keys); thread-safe."""

    def __init__(self, engine: LedgerEngine) -> None:
        self._engine = engine

    def get(self, user_id: str) -> str | None:
        with self._engine.transaction("read a personal-data key") as conn:
            return conn.execute(sa.select(pii_keys.c.wrapped).where(pii_keys.c.user_id == user_id)).scalar()

    def get_or_add(self, user_id: str, make: Callable[[], str]) -> str:
        """The user's wrapped key, adding ``make()`` first when there is none. Two writers racing to add
        one both end with the row that won."""
        found = self.get(user_id)
        if found is not None:
            return found
        wrapped = make()

        def add(conn: sa.Connection) -> None:
            conn.execute(sa.insert(pii_keys).values(user_id=user_id, wrapped=wrapped))

        try:
            self._engine.write("add a personal-data key", add, attempts=1)
        except LedgerError as error:
            if not isinstance(error.__cause__, exc.IntegrityError):
                raise
        found = self.get(user_id)
        if found is None:  # pragma: no cover - the row was just written or won by another writer
            raise LedgerError(f"the personal-data key of {user_id!r} vanished while it was being added")
        return found

    def delete(self, user_id: str) -> bool:
        """Destroy the user's key; False when there was none."""

        def work(conn: sa.Connection) -> bool:
            return bool(conn.execute(sa.delete(pii_keys).where(pii_keys.c.user_id == user_id)).rowcount)

        return self._engine.write("destroy a personal-data key", work)

    def items(self) -> Iterator[tuple[str, str]]:
        """Every (user id, wrapped key)."""
        with self._engine.transaction("read the personal-data keys") as conn:
            rows = conn.execute(sa.select(pii_keys.c.user_id, pii_keys.c.wrapped)).all()
        return iter([(row.user_id, row.wrapped) for row in rows])

    def rewrap(self, user_id: str, old: str, new: str) -> bool:
        """Replace a wrapped key, only if it is still ``old`` (a concurrent erase wins)."""

        def work(conn: sa.Connection) -> bool:
            t = pii_keys
            done = conn.execute(sa.update(t).where(t.c.user_id == user_id, t.c.wrapped == old).values(wrapped=new))
            return bool(done.rowcount)

        return self._engine.write("re-wrap a personal-data key", work)
