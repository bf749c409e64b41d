"""SQL for the analytics cubes: merging the worker's deltas, reading aggregates, pruning.

Merging is one ``INSERT ... ON CONFLICT (key) DO UPDATE`` per cube (sums add, minimums and maximums
combine), in key order, so concurrent workers lock rows in the same order. The upsert locks every row
it touched until commit; the worker then reads their sketches, merges its deltas in Python and writes
them back (:class:`CubeWriter`).

Reading sums money in two halves (``SUM(x / 2**32)``, ``SUM(x % 2**32)``) so SQLite's 64-bit ``SUM``
cannot overflow, as ``spendgate.ledger._queries`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from spendgate.ledger._analytics_schema import (
    CUBES,
    FLOAT_COLUMNS,
    MAX_COLUMNS,
    MEASURE_COLUMNS,
    MIN_COLUMNS,
    MONEY_COLUMNS,
    SKETCH_COLUMNS,
    SUM_COLUMNS,
    CubeSpec,
)

__all__ = ["CubeWriter", "Window", "aggregate", "count_distinct", "present", "prune", "sketch_rows"]

_SPLIT = 2**32
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a datetime in SQLite
_PG_TYPES = {
    "bucket_start": "timestamptz",
    **dict.fromkeys(SUM_COLUMNS + MIN_COLUMNS + MAX_COLUMNS, "bigint"),
    **dict.fromkeys(FLOAT_COLUMNS, "float8"),
    **dict.fromkeys(SKETCH_COLUMNS, "text"),
}
#: (granularity, since, until): bucket_start in [since, until) of one granularity.
Window = tuple[str, datetime, datetime]


Key = tuple[Any, ...]


def _added(table: str, column: str, postgres: bool) -> str:
    """``stored + delta``; on SQLite a money sum that overflowed into a float becomes NULL (NOT NULL refuses it)."""
    total = f"{table}.{column} + excluded.{column}"
    if postgres or column not in MONEY_COLUMNS:
        return total
    return f"CASE WHEN typeof({total}) = 'integer' THEN {total} ELSE NULL END"


class CubeWriter:
    """Merge measure deltas and sketches into one cube with plain driver SQL (no per-row ORM work).

    SQLite: ``executemany`` of an upsert. PostgreSQL: one ``INSERT ... SELECT FROM unnest(arrays)``.
    Rows are tuples of the key columns then :data:`MEASURE_COLUMNS` (sketch columns are left alone).
    """

    def __init__(self, dialect_name: str, spec: CubeSpec) -> None:
        self.spec = spec
        self.postgres = dialect_name == "postgresql"
        t, key = spec.name, spec.key
        columns = (*key, *MEASURE_COLUMNS)
        sets = [f"{c} = {_added(t, c, self.postgres)}" for c in (*SUM_COLUMNS, *FLOAT_COLUMNS)]
        least, greatest = ("LEAST", "GREATEST") if self.postgres else ("min", "max")
        for group, pick in ((MIN_COLUMNS, least), (MAX_COLUMNS, greatest)):
            sets += [f"{c} = {pick}(coalesce({t}.{c}, excluded.{c}), coalesce(excluded.{c}, {t}.{c}))" for c in group]
        conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}"
        if self.postgres:
            types = [_PG_TYPES.get(c, "varchar") for c in columns]
            arrays = ", ".join(f"%s::{typ}[]" for typ in types)
            self._upsert = f"INSERT INTO {t} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {conflict}"
            names = (*key, *SKETCH_COLUMNS)
            arrays = ", ".join(f"%s::{_PG_TYPES.get(c, 'varchar')}[]" for c in names)
            match = " AND ".join(f"{t}.{k} = u.{k}" for k in key)
            sketch_sets = ", ".join(f"{c} = u.{c}" for c in SKETCH_COLUMNS)
            self._update = f"UPDATE {t} SET {sketch_sets} FROM unnest({arrays}) AS u({', '.join(names)}) WHERE {match}"
            mark = "%s"
        else:
            marks = ", ".join("?" * len(columns))
            self._upsert = f"INSERT INTO {t} ({', '.join(columns)}) VALUES ({marks}) {conflict}"
            match = " AND ".join(f"{k} = ?" for k in key)
            self._update = f"UPDATE {t} SET {', '.join(f'{c} = ?' for c in SKETCH_COLUMNS)} WHERE {match}"
            mark = "?"
        self._select = (
            f"SELECT {', '.join((*key, *SKETCH_COLUMNS))} FROM {t}"
            f" WHERE granularity = {mark} AND bucket_start >= {mark} AND bucket_start <= {mark}"
        )
        self._bucket = key.index("bucket_start")

    def _db(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if self.postgres:
            return tuple(row)
        b = self._bucket
        return (*row[:b], row[b].strftime(_SQLITE_TIME), *row[b + 1 :])

    def upsert(self, conn: sa.Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Add each row's measures to the stored row with the same key (creating it)."""
        if not rows:
            return
        if self.postgres:
            conn.exec_driver_sql(self._upsert, tuple(list(column) for column in zip(*rows, strict=True)))
        else:
            conn.exec_driver_sql(self._upsert, [self._db(row) for row in rows])

    def read_sketches(self, conn: sa.Connection, keys: Sequence[Key]) -> dict[Key, tuple[Any, ...]]:
        """The stored sketches of ``keys`` (rows the caller has just upserted, so it holds their locks)."""
        wanted = {self._db(key): key for key in keys}
        bounds: dict[str, tuple[datetime, datetime]] = {}
        for key in keys:
            granularity, bucket = key[0], key[self._bucket]
            low, high = bounds.get(granularity, (bucket, bucket))
            bounds[granularity] = (min(low, bucket), max(high, bucket))
        width = len(self.spec.key)
        out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for granularity, (low, high) in bounds.items():
            params = (granularity, *(self._db((0,) * self._bucket + (v,))[self._bucket] for v in (low, high)))
            for row in conn.exec_driver_sql(self._select, params):
                found = wanted.get(tuple(row[:width]))
                if found is not None:
                    out[found] = tuple(row[width:])
        return out

    def write_sketches(self, conn: sa.Connection, rows: Sequence[Sequence[Any]]) -> None:
        """Set the sketches of existing rows; each row is the key then the three sketch texts."""
        if not rows:
            return
        if self.postgres:
            conn.exec_driver_sql(self._update, tuple(list(column) for column in zip(*rows, strict=True)))
        else:
            width = len(self.spec.key)
            conn.exec_driver_sql(self._update, [(*row[width:], *self._db(row[:width])) for row in rows])


def _where(spec: CubeSpec, windows: Sequence[Window], filters: Mapping[str, str]) -> list[sa.ColumnElement[bool]]:
    t = spec.table
    # Every branch repeats the equality filters, so each can use the primary key (granularity, dimension, ...).
    equal = [t.c[name] == value for name, value in filters.items()]
    periods = [
        sa.and_(t.c.granularity == granularity, *equal, t.c.bucket_start >= since, t.c.bucket_start < until)
        for granularity, since, until in windows
    ]
    return [sa.or_(*periods)]


#: Position of each measure in the measure vector.
_INDEX = {name: i for i, name in enumerate(MEASURE_COLUMNS)}
#: What an unselected measure reads as (nothing summed): 0, 0.0, or ``None`` for minimums and maximums.
_UNSET = tuple(0.0 if c in FLOAT_COLUMNS else None if c in (*MIN_COLUMNS, *MAX_COLUMNS) else 0 for c in MEASURE_COLUMNS)


def _selection(measures: Collection[str] | None) -> tuple[str, ...]:
    """``measures`` in vector order, always with ``requests`` (its NULL sum tells an empty aggregate); ``None``: all."""
    if measures is None:
        return MEASURE_COLUMNS
    unknown = set(measures) - set(MEASURE_COLUMNS)
    if unknown:
        raise ValueError(f"unknown measures: {', '.join(sorted(unknown))}")
    return tuple(c for c in MEASURE_COLUMNS if c == "requests" or c in measures)


@functools.cache
def _measure_columns(name: str, measures: tuple[str, ...]) -> tuple[sa.ColumnElement[Any], ...]:
    t = CUBES[name].table
    columns: list[sa.ColumnElement[Any]] = []
    for column in measures:
        if column in MONEY_COLUMNS:
            columns.append(sa.func.sum(t.c[column] // _SPLIT))
            columns.append(sa.func.sum(t.c[column] % _SPLIT))
        elif column in MIN_COLUMNS:
            columns.append(sa.func.min(t.c[column]))
        elif column in MAX_COLUMNS:
            columns.append(sa.func.max(t.c[column]))
        else:
            columns.append(sa.func.sum(t.c[column]))
    return tuple(columns)


def _measures(row: Sequence[Any], i: int, measures: tuple[str, ...]) -> list[Any]:
    """The full measure vector of a result row from column ``i`` on (unselected measures unset)."""
    values = list(_UNSET)
    for name in measures:
        if name in MONEY_COLUMNS:
            value: Any = int(row[i]) * _SPLIT + int(row[i + 1])
            i += 1
        elif name in FLOAT_COLUMNS:
            value = float(row[i])
        elif name in SUM_COLUMNS or row[i] is not None:
            value = int(row[i])
        else:
            value = None
        values[_INDEX[name]] = value
        i += 1
    return values


def aggregate(
    conn: sa.Connection,
    spec: CubeSpec,
    windows: Sequence[Window],
    filters: Mapping[str, str],
    group_by: Sequence[str],
    measures: Collection[str] | None = None,
) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
    """Per group: the group's values and its measure vector (money recombined into exact integers).

    ``measures``: the :data:`MEASURE_COLUMNS` to read and sum (``None``: all); the others are left
    unset (0, or ``None`` for minimums and maximums). A wide cube row costs per aggregate, so a query
    that needs a few measures reads only those.
    """
    t = spec.table
    selected = _selection(measures)
    groups = [t.c[name] for name in group_by]
    query = sa.select(*groups, *_measure_columns(spec.name, selected)).where(*_where(spec, windows, filters))
    if groups:
        query = query.group_by(*groups)
    width = len(group_by)
    for row in conn.execute(query):
        if row[width] is not None:  # None: no rows at all (an aggregate without GROUP BY)
            yield tuple(row[:width]), _measures(row, width, selected)


def sketch_rows(
    conn: sa.Connection,
    spec: CubeSpec,
    windows: Sequence[Window],
    filters: Mapping[str, str],
    group_by: Sequence[str],
    sketches: Sequence[str] = SKETCH_COLUMNS,
) -> Iterator[tuple[tuple[Any, ...], tuple[str | None, ...]]]:
    """Per cube row: its group values and the ``sketches`` columns (for merging in Python)."""
    t = spec.table
    query = sa.select(*(t.c[name] for name in group_by), *(t.c[s] for s in sketches))
    width = len(group_by)
    for row in conn.execute(query.where(*_where(spec, windows, filters))):
        yield tuple(row[:width]), tuple(row[width:])


#: Most values checked in one ``IN`` list (SQLite allows 32,766 parameters a statement).
_IN_LIMIT = 5000


def count_distinct(
    conn: sa.Connection,
    spec: CubeSpec,
    windows: Sequence[Window],
    filters: Mapping[str, str],
    columns: Sequence[str],
    extras: Sequence[Collection[str]],
) -> list[int]:
    """How many distinct values each of ``columns`` takes in the windows together with ``extras[i]``
    (values seen outside the cube, e.g. in raw events): one scan of the cube's rows.

    For each column the same scan also counts how many of its extras the cube holds, so the answer is
    ``distinct in the cube + extras not in it``. Very long extra lists are checked in chunks instead.
    """
    t = spec.table
    extra = [sorted(v for v in values if v) for values in extras]
    inline = [values if len(values) <= _IN_LIMIT else [] for values in extra]
    selected: list[sa.ColumnElement[Any]] = []
    for name, values in zip(columns, inline, strict=True):
        column = t.c[name]
        selected.append(sa.func.count(sa.distinct(column)))
        if values:
            selected.append(sa.func.count(sa.distinct(sa.case((column.in_(values), column)))))
    row = iter(conn.execute(sa.select(*selected).where(*_where(spec, windows, filters))).one())
    out = []
    for name, values, checked in zip(columns, extra, inline, strict=True):
        count = int(next(row))
        if checked:
            found = int(next(row))
        elif values:
            found = len(present(conn, spec, windows, filters, name, values))
        else:
            found = 0
        out.append(count + len(values) - found)
    return out


def present(
    conn: sa.Connection,
    spec: CubeSpec,
    windows: Sequence[Window],
    filters: Mapping[str, str],
    column: str,
    values: Collection[str],
) -> set[str]:
    """Which of ``values`` ``column`` takes in the windows."""
    t = spec.table
    found: set[str] = set()
    ordered = sorted(values)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        query = sa.select(t.c[column]).where(*_where(spec, windows, filters), t.c[column].in_(chunk)).distinct()
        found.update(row[0] for row in conn.execute(query))
    return found


def prune(conn: sa.Connection, granularity: str, before: datetime) -> int:
    """Delete cube rows of ``granularity`` whose bucket starts before ``before``; returns how many."""
    deleted = 0
    for spec in CUBES.values():
        if granularity in spec.granularities:
            t = spec.table
            result = conn.execute(sa.delete(t).where(t.c.granularity == granularity, t.c.bucket_start < before))
            deleted += result.rowcount
    return deleted
