"""A user's data in the ledger: read all of it (right of access) and anonymize it (right to erasure).

Erasing replaces the user's id with one pseudonym (``erased-<hex>``) in their events, the rollups and
the analytics cubes, and clears what could identify a person in their events (client address, user
agent, free-form metadata). Nothing is deleted, so team, model and global totals stay exact to the
cent and "distinct users" still counts them once. The pseudonym is random: it is not derived from
the user id, so it cannot be reversed or recomputed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from spendgate.ledger._analytics_schema import ENTITY, ENTITY_MODEL
from spendgate.ledger._engine import engine_of
from spendgate.ledger._event import UsageEvent
from spendgate.ledger._query import EventFilter
from spendgate.ledger._schema import threshold_crossings, usage_events, usage_rollups
from spendgate.ledger._store import UsageStore

__all__ = [
    "ErasedEvents",
    "erase_user_crossings",
    "erase_user_events",
    "names_user",
    "new_pseudonym",
    "user_events",
]

_PAGE = 2000


def new_pseudonym() -> str:
    """A fresh random stand-in for an erased user id."""
    return "erased-" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class ErasedEvents:
    """What :func:`erase_user_events` changed."""

    pseudonym: str
    events: int
    rollup_rows: int
    cube_rows: int


def user_events(store: UsageStore, user_id: str) -> Iterator[UsageEvent]:
    """Every event of ``user_id``, oldest first (streamed in pages)."""
    return store.iter_events(EventFilter(user_id=user_id), batch_size=_PAGE)


def names_user(limit_id: str, user_id: str) -> bool:
    """Whether a limit id's scope (``"team:ml/user:alice|cost|day|UTC"``) names ``user_id``."""
    return f"user:{user_id}" in limit_id.split("|", 1)[0].split("/")


def erase_user_events(store: object, user_id: str, pseudonym: str | None = None) -> ErasedEvents:
    """Anonymize ``user_id`` in the ledger in one transaction (see the module docstring). Running it again
    with the same pseudonym picks up rows that arrived meanwhile (e.g. cubes refreshed concurrently)."""
    alias = pseudonym or new_pseudonym()
    e, r = usage_events, usage_rollups

    def work(conn: sa.Connection) -> ErasedEvents:
        events = conn.execute(
            sa.update(e).where(e.c.user_id == user_id)
            .values(user_id=alias, client_ip=None, user_agent=None, metadata=None)
        ).rowcount  # fmt: skip
        rollups = conn.execute(sa.update(r).where(r.c.user_id == user_id).values(user_id=alias)).rowcount
        cubes = 0
        for cube in (ENTITY, ENTITY_MODEL):
            t = cube.table
            cubes += conn.execute(
                sa.update(t).where(t.c.dimension == "user", t.c.value == user_id).values(value=alias)
            ).rowcount
        return ErasedEvents(alias, int(events or 0), int(rollups or 0), int(cubes or 0))

    return engine_of(store, "erasing a user").write("anonymize a user in", work)


def erase_user_crossings(store: object, user_id: str) -> int:
    """Delete the threshold crossings of limits scoped to ``user_id`` (their ids and bodies name the user)."""
    t = threshold_crossings

    def work(conn: sa.Connection) -> int:
        ids = [i for i in conn.execute(sa.select(t.c.limit_id).distinct()).scalars() if names_user(i, user_id)]
        return int(conn.execute(sa.delete(t).where(t.c.limit_id.in_(ids))).rowcount or 0) if ids else 0

    return engine_of(store, "erasing a user").write("remove a user's threshold crossings from", work)
