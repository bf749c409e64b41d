"""Price override versions, stored as JSON so every process sees the same overrides.

The pricing package defines what an override *is*; the ledger keeps each version as an opaque JSON
body under a unique id (with provider, model and effective date beside it for ordering and lookups)
and gives the bodies back as saved. Versions are never edited in place: saving an existing id is
refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from spendgate.errors import ConfigurationError
from spendgate.ledger._schema import price_overrides
from spendgate.ledger._validate import check_aware, check_json_object, check_text, dump_json

__all__ = ["list_price_overrides", "save_price_override"]

_MAX_TEXT = 200


def save_price_override(
    conn: sa.Connection,
    *,
    override_id: str,
    provider: str,
    model: str,
    effective_from: datetime,
    body: Mapping[str, Any],
    now: datetime,
) -> None:
    """Insert one override version; a duplicate id raises :class:`ConfigurationError`."""
    row = {
        "id": check_text("id", override_id, _MAX_TEXT),
        "provider": check_text("provider", provider, _MAX_TEXT),
        "model": check_text("model", model, _MAX_TEXT),
        "effective_from": check_aware("effective_from", effective_from),
        "created_at": now,
        "body": dump_json(check_json_object("body", body)),
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(price_overrides).on_conflict_do_nothing(index_elements=["id"]).returning(price_overrides.c.id)
    if conn.execute(stmt, row).first() is None:
        raise ConfigurationError(
            f"price override {override_id!r} already exists; overrides are never edited in place:"
            " save the change as a new version with a new id"
        )


def list_price_overrides(conn: sa.Connection) -> list[dict[str, Any]]:
    """The JSON body of every stored override version, by effective date, then creation, then id."""
    t = price_overrides
    query = sa.select(t.c.body).order_by(t.c.effective_from, t.c.created_at, t.c.id)
    bodies: list[dict[str, Any]] = [json.loads(body) for body in conn.execute(query).scalars()]
    return bodies
