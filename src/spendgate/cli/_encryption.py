"""`spendgate encryption new-key|rotate`: keys for personal data at rest, and re-encrypting with a new one."""

from __future__ import annotations

import typer

from spendgate._pii import FieldCipher, new_key
from spendgate.cli._common import DatabaseOpt, build_settings, fail, handle_errors, stdout
from spendgate.meter import Meter
from spendgate.server._identity import IdentityStore

__all__ = ["register"]

encryption_app = typer.Typer(help="Encryption of personal data at rest (users' names and emails).",
                             no_args_is_help=True)  # fmt: skip


@encryption_app.command("new-key")
def make_key() -> None:
    """Print a new key for SPENDGATE_ENCRYPTION_KEYS (put it first to encrypt with it)."""
    stdout.print(new_key(), highlight=False)


@encryption_app.command("rotate")
def rotate(database_url: DatabaseOpt = None) -> None:
    """Re-wrap every user's own key with the first of SPENDGATE_ENCRYPTION_KEYS and seal personal fields
    still plain or sealed with a deployment key directly; afterwards the other keys can be dropped."""
    settings = build_settings(database_url)
    if settings.encryption_keys is None:
        raise fail("SPENDGATE_ENCRYPTION_KEYS is not set: nothing to encrypt with", 2)
    cipher = FieldCipher.from_secret(settings.encryption_keys)
    with handle_errors(), Meter(settings=settings) as meter:
        identities = IdentityStore(meter.store.control, meter.clock, cipher=cipher)
        rewrapped = identities.sealer.rewrap_keys()
        changed = identities.rotate_users(actor="cli")
    stdout.print(
        f"re-encrypted {changed} users; re-wrapped {rewrapped} users' keys with the first key", highlight=False
    )


def register(app: typer.Typer) -> None:
    """Add the ``encryption`` command group to ``app``."""
    app.add_typer(encryption_app, name="encryption")
