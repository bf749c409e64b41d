"""The control store: budget objects, threshold crossings, the deferred-request queue and the audit log.

It lives in the ledger database so every Meter, process and replica sharing that database sees the
same limits. Objects are opaque JSON bodies keyed by (kind, id): ``spendgate.budgets`` gives them
meaning. Every change to an object writes an audit entry in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from spendgate.clock import Clock
from spendgate.errors import InvalidUsageError
from spendgate.ledger._audit import append_audit
from spendgate.ledger._engine import LedgerEngine
from spendgate.ledger._schema import audit_log, control_objects, request_queue, threshold_crossings
from spendgate.ledger._validate import check_aware, check_json_object, check_text, dump_json

#: The audit body of a change made while erasing personal data.
_REDACTED = {"redacted": "personal data erased"}

__all__ = ["AuditEntry", "ControlStore", "Crossing", "QueuedRequest", "SqlControlStore"]

QUEUE_STATUSES = ("queued", "running", "done", "failed", "expired")


@dataclass(frozen=True, slots=True)
class Crossing:
    """A limit threshold crossed in one window (recorded once)."""

    limit_id: str
    window_key: str
    threshold: str
    crossed_at: datetime
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """A request deferred by a QUEUE decision."""

    id: str
    priority: int
    status: str
    created_at: datetime
    run_after: datetime
    attempts: int
    body: dict[str, Any]
    result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who, what, to which target, with the details."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    body: dict[str, Any]
    hash: str = ""
    """The entry's link in the audit chain (``spendgate.ledger.verify_audit_chain``)."""


@runtime_checkable
class ControlStore(Protocol):
    """Shared control-plane state. Implementations are thread-safe."""

    def put(
        self,
        kind: str,
        object_id: str,
        body: Mapping[str, Any],
        *,
        actor: str = "system",
        create_only: bool = False,
        audit_as: str | None = None,
    ) -> bool: ...

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None: ...

    def list_objects(self, kind: str) -> list[dict[str, Any]]: ...

    def delete(self, kind: str, object_id: str, *, actor: str = "system", audit_as: str | None = None) -> bool: ...

    def record_crossing(
        self, limit_id: str, window_key: str, threshold: str, crossed_at: datetime, body: Mapping[str, Any]
    ) -> bool: ...

    def crossings(
        self, *, since: datetime | None = None, limit_id: str | None = None, window_key: str | None = None
    ) -> list[Crossing]: ...

    def enqueue(self, request_id: str, *, priority: int, run_after: datetime, body: Mapping[str, Any]) -> bool: ...

    def claim(self, now: datetime, *, limit: int = 10) -> list[QueuedRequest]: ...

    def finish(
        self,
        request_id: str,
        *,
        status: str,
        result: Mapping[str, Any] | None = None,
        run_after: datetime | None = None,
    ) -> None: ...

    def queued(self, status: str | None = None) -> list[QueuedRequest]: ...

    def audit(self, actor: str, action: str, target: str, body: Mapping[str, Any]) -> None: ...

    def version(self) -> int:
        """A number that changes whenever any object changes (the audit log's newest entry: every put
        and delete writes one in its own transaction)."""
        ...

    def audit_entries(self, *, since: datetime | None = None, limit: int = 1000) -> list[AuditEntry]: ...


def _insert(conn: sa.Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _kind(kind: str) -> str:
    return check_text("kind", kind, 32)


class SqlControlStore:
    """:class:`ControlStore` on the ledger's SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: LedgerEngine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    # -- objects ---------------------------------------------------------------------------------

    def put(
        self,
        kind: str,
        object_id: str,
        body: Mapping[str, Any],
        *,
        actor: str = "system",
        create_only: bool = False,
        audit_as: str | None = None,
    ) -> bool:
        """Create or replace one object; returns True when it was created. ``create_only`` refuses a replace.
        ``audit_as`` (erasing personal data): the audit entry names ``<kind>:<audit_as>`` and keeps no bodies."""
        row = {
            "kind": _kind(kind),
            "id": check_text("id", object_id, 200),
            "body": dump_json(check_json_object("body", body)),
        }
        now = self._clock.now()

        def work(conn: sa.Connection) -> bool:
            t = control_objects
            existing = conn.execute(
                sa.select(t.c.body).where(t.c.kind == row["kind"], t.c.id == row["id"])
            ).scalar_one_or_none()
            if existing is None:
                conn.execute(sa.insert(t), {**row, "created_at": now, "updated_at": now})
            elif create_only:
                raise InvalidUsageError("id", f"{kind} {object_id!r} already exists")
            else:
                conn.execute(
                    sa.update(t)
                    .where(t.c.kind == row["kind"], t.c.id == row["id"])
                    .values(body=row["body"], updated_at=now)
                )
            action = f"{kind}.create" if existing is None else f"{kind}.update"
            before = None if existing is None else json.loads(existing)
            if audit_as is None:
                change = {"before": before, "after": json.loads(row["body"])}
                self._audit(conn, actor, action, f"{kind}:{object_id}", change)
            else:
                self._audit(conn, actor, action, f"{kind}:{audit_as}", _REDACTED)
            return existing is None

        return self._engine.write(f"save a {kind} to", work)

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        t = control_objects
        with self._engine.transaction(f"read a {kind} from") as conn:
            body = conn.execute(sa.select(t.c.body).where(t.c.kind == kind, t.c.id == object_id)).scalar_one_or_none()
        return None if body is None else dict(json.loads(body))

    def list_objects(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind``, oldest first."""
        t = control_objects
        with self._engine.transaction(f"read {kind}s from") as conn:
            bodies = conn.execute(sa.select(t.c.body).where(t.c.kind == kind).order_by(t.c.created_at, t.c.id))
            return [dict(json.loads(body)) for body in bodies.scalars()]

    def delete(self, kind: str, object_id: str, *, actor: str = "system", audit_as: str | None = None) -> bool:
        """Delete one object; False when there was none. ``audit_as``: as for :meth:`put`."""
        t = control_objects

        def work(conn: sa.Connection) -> bool:
            cond = (t.c.kind == kind) & (t.c.id == object_id)
            existing = conn.execute(sa.select(t.c.body).where(cond)).scalar_one_or_none()
            if existing is None:
                return False
            conn.execute(sa.delete(t).where(cond))
            if audit_as is None:
                self._audit(conn, actor, f"{kind}.delete", f"{kind}:{object_id}", {"before": json.loads(existing)})
            else:
                self._audit(conn, actor, f"{kind}.delete", f"{kind}:{audit_as}", _REDACTED)
            return True

        return self._engine.write(f"delete a {kind} from", work)

    # -- threshold crossings ---------------------------------------------------------------------

    def record_crossing(
        self, limit_id: str, window_key: str, threshold: str, crossed_at: datetime, body: Mapping[str, Any]
    ) -> bool:
        """Record that ``threshold`` of a limit was crossed in a window; False if it already was."""
        row = {
            "limit_id": check_text("limit_id", limit_id, 200),
            "window_key": check_text("window_key", window_key, 200),
            "threshold": check_text("threshold", threshold, 16),
            "crossed_at": check_aware("crossed_at", crossed_at),
            "body": dump_json(check_json_object("body", body)),
        }

        def work(conn: sa.Connection) -> bool:
            stmt = (
                _insert(conn)(threshold_crossings)
                .on_conflict_do_nothing(index_elements=["limit_id", "window_key", "threshold"])
                .returning(threshold_crossings.c.id)
            )
            return conn.execute(stmt, row).first() is not None

        return self._engine.write("record a threshold crossing in", work)

    def crossings(
        self, *, since: datetime | None = None, limit_id: str | None = None, window_key: str | None = None
    ) -> list[Crossing]:
        t = threshold_crossings
        query = sa.select(t.c.limit_id, t.c.window_key, t.c.threshold, t.c.crossed_at, t.c.body)
        if since is not None:
            query = query.where(t.c.crossed_at >= since)
        if limit_id is not None:
            query = query.where(t.c.limit_id == limit_id)
        if window_key is not None:
            query = query.where(t.c.window_key == window_key)
        with self._engine.transaction("read threshold crossings from") as conn:
            rows = conn.execute(query.order_by(t.c.crossed_at, t.c.id)).all()
        return [Crossing(r[0], r[1], r[2], r[3], dict(json.loads(r[4]))) for r in rows]

    # -- the deferred-request queue --------------------------------------------------------------

    def enqueue(self, request_id: str, *, priority: int, run_after: datetime, body: Mapping[str, Any]) -> bool:
        """Queue a request; False when that id is already queued (enqueueing is idempotent)."""
        now = self._clock.now()
        row = {
            "id": check_text("id", request_id, 200),
            "priority": int(priority),
            "status": "queued",
            "created_at": now,
            "run_after": check_aware("run_after", run_after),
            "updated_at": now,
            "attempts": 0,
            "body": dump_json(check_json_object("body", body)),
            "result": None,
        }

        def work(conn: sa.Connection) -> bool:
            stmt = (
                _insert(conn)(request_queue).on_conflict_do_nothing(index_elements=["id"]).returning(request_queue.c.id)
            )
            return conn.execute(stmt, row).first() is not None

        return self._engine.write("queue a request in", work)

    def claim(self, now: datetime, *, limit: int = 10) -> list[QueuedRequest]:
        """Take up to ``limit`` ready requests (highest priority, then oldest) and mark them running.

        Two workers never claim the same request (row locks on PostgreSQL, the write lock on SQLite).
        """
        t = request_queue

        def work(conn: sa.Connection) -> list[QueuedRequest]:
            query = (
                sa.select(t)
                .where(t.c.status == "queued", t.c.run_after <= now)
                .order_by(t.c.priority.desc(), t.c.created_at, t.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).mappings().all()
            ids = [row["id"] for row in rows]
            if ids:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id.in_(ids))
                    .values(status="running", attempts=t.c.attempts + 1, updated_at=now)
                )
            return [_queued({**row, "status": "running", "attempts": row["attempts"] + 1}) for row in rows]

        return self._engine.write("claim queued requests in", work)

    def finish(
        self,
        request_id: str,
        *,
        status: str,
        result: Mapping[str, Any] | None = None,
        run_after: datetime | None = None,
    ) -> None:
        """Mark a claimed request done, failed or expired, or put it back (``queued`` with ``run_after``)."""
        if status not in QUEUE_STATUSES or status == "running":
            raise InvalidUsageError("status", f"must be one of queued, done, failed, expired; got {status!r}")
        values: dict[str, Any] = {"status": status, "updated_at": self._clock.now()}
        if result is not None:
            values["result"] = dump_json(check_json_object("result", result))
        if run_after is not None:
            values["run_after"] = check_aware("run_after", run_after)
        t = request_queue
        self._engine.write(
            "update a queued request in",
            lambda conn: conn.execute(sa.update(t).where(t.c.id == request_id).values(**values)),
        )

    def queued(self, status: str | None = None) -> list[QueuedRequest]:
        t = request_queue
        query = sa.select(t).order_by(t.c.priority.desc(), t.c.created_at, t.c.id)
        if status is not None:
            query = query.where(t.c.status == status)
        with self._engine.transaction("read the request queue from") as conn:
            return [_queued(dict(row)) for row in conn.execute(query).mappings().all()]

    # -- audit -----------------------------------------------------------------------------------

    def _audit(self, conn: sa.Connection, actor: str, action: str, target: str, body: Mapping[str, Any]) -> None:
        append_audit(
            conn, self._clock.now(), check_text("actor", actor, 200), check_text("action", action, 100),
            check_text("target", target, 400), dump_json(check_json_object("body", body)),
        )  # fmt: skip

    def audit(self, actor: str, action: str, target: str, body: Mapping[str, Any]) -> None:
        """Append one entry to the audit log."""
        self._engine.write("write the audit log of", lambda conn: self._audit(conn, actor, action, target, body))

    def version(self) -> int:
        """The id of the audit log's newest entry (0 when empty): one indexed read."""
        t = audit_log
        with self._engine.transaction("read the audit log of") as conn:
            return int(conn.execute(sa.select(sa.func.max(t.c.id))).scalar_one() or 0)

    def audit_entries(self, *, since: datetime | None = None, limit: int = 1000) -> list[AuditEntry]:
        t = audit_log
        query = sa.select(t).order_by(t.c.id).limit(limit)
        if since is not None:
            query = query.where(t.c.at >= since)
        with self._engine.transaction("read the audit log of") as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AuditEntry(r["id"], r["at"], r["actor"], r["action"], r["target"], dict(json.loads(r["body"])), r["hash"])
            for r in rows
        ]


def _queued(row: Mapping[str, Any]) -> QueuedRequest:
    return QueuedRequest(
        id=row["id"],
        priority=row["priority"],
        status=row["status"],
        created_at=row["created_at"],
        run_after=row["run_after"],
        attempts=row["attempts"],
        body=dict(json.loads(row["body"])),
        result=None if row["result"] is None else dict(json.loads(row["result"])),
    )
