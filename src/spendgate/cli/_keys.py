"""`spendgate keys create|list|revoke`: API keys for the service (the secret is shown once)."""

from __future__ import annotations

from typing import Annotated

import typer

from spendgate.cli._common import (
    DatabaseOpt,
    JsonOpt,
    build_settings,
    emit_json,
    fail,
    handle_errors,
    print_table,
    stdout,
)
from spendgate.meter import Meter

__all__ = ["register"]

keys_app = typer.Typer(help="API keys for the service; only a hash of each secret is stored.")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="admin, viewer or member.")] = "member",
    user: Annotated[str | None, typer.Option(help="The user the key acts for (required for members).")] = None,
    team: Annotated[str | None, typer.Option(help="The user's team.")] = None,
    name: Annotated[str | None, typer.Option(help="A label, e.g. the app or machine using it.")] = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print its secret (this is the only time it is shown)."""
    from spendgate.server import IdentityStore

    if role not in ("admin", "viewer", "member"):
        raise fail("--role: must be admin, viewer or member", 2)
    with handle_errors(), Meter(settings=build_settings(database_url)) as meter:
        key, secret = IdentityStore(meter.store.control, meter.clock).create_key(
            role=role,  # type: ignore[arg-type]
            user_id=user,
            team_id=team,
            name=name,
            actor="cli",
        )
    if as_json:
        emit_json({**key.public(), "secret": secret})
    else:
        stdout.print(f"key {key.key_id} ({key.role}): {secret}\nstore it now: only its hash is kept")


@keys_app.command("list")
def keys_list(database_url: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """Every key (never their secrets)."""
    from spendgate.server import IdentityStore

    with handle_errors(), Meter(settings=build_settings(database_url)) as meter:
        keys = IdentityStore(meter.store.control, meter.clock).list_keys()
    if as_json:
        emit_json([key.public() for key in keys])
        return
    rows = [[k.key_id, k.role, k.user_id, k.name, k.created_at, k.revoked_at or ""] for k in keys]
    print_table("API keys", ["id", "role", "user", "name", "created", "revoked"], rows)


@keys_app.command("revoke")
def keys_revoke(key_id: str, database_url: DatabaseOpt = None) -> None:
    """Revoke a key: it stops working at once."""
    from spendgate.server import IdentityStore

    with handle_errors(), Meter(settings=build_settings(database_url)) as meter:
        revoked = IdentityStore(meter.store.control, meter.clock).revoke_key(key_id, actor="cli")
    if revoked is None:
        raise fail(f"no key {key_id!r}", 1)
    stdout.print(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
