"""Multi-row inserts that stay fast on both backends.

SQLite: an ordinary ``INSERT`` executed with many parameter sets (SQLAlchemy's "insertmanyvalues"
turns it into multi-row ``VALUES`` statements, ``RETURNING`` included).

PostgreSQL: ``INSERT INTO t (cols) SELECT * FROM unnest(:a1, :a2, ...)`` with one array parameter
per column. The statement text is the same for any number of rows, so the driver does not re-parse
a statement with tens of thousands of placeholders on every batch (which made multi-row ``VALUES``
four times slower). Column types, including :class:`~spendgate.ledger._schema.Money`, still convert
every element.

Either way the result is a dialect ``Insert`` that takes ``ON CONFLICT`` and ``RETURNING``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["BulkInsert"]


class BulkInsert:
    """An insert of whole rows of ``table`` (every column except ``exclude``) for one dialect."""

    def __init__(self, dialect_name: str, table: sa.Table, *, exclude: Sequence[str] = ()) -> None:
        self.columns = [column for column in table.columns if column.name not in exclude]
        self._names = [column.name for column in self.columns]
        self._postgres = dialect_name == "postgresql"
        self.statement: postgresql.Insert | sqlite.Insert
        if self._postgres:
            arrays = [
                sa.cast(sa.bindparam(f"a_{c.name}", type_=postgresql.ARRAY(c.type)), postgresql.ARRAY(c.type))
                for c in self.columns
            ]
            source = sa.select(sa.func.unnest(*arrays).table_valued(*self._names).render_derived())
            self.statement = postgresql.insert(table).from_select(self._names, source)
        else:
            self.statement = sqlite.insert(table)

    def parameters(self, rows: Sequence[dict[str, Any]]) -> Any:
        """What to execute :attr:`statement` (or a statement built from it) with for ``rows``."""
        if self._postgres:
            return {f"a_{name}": [row[name] for row in rows] for name in self._names}
        return list(rows)
