"""`spendgate keys`: create (secret shown once), list, revoke."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from spendgate import Meter
from spendgate.cli import app
from spendgate.server import IdentityStore

runner = CliRunner()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    made = runner.invoke(
        app, ["keys", "create", "--role", "member", "--user", "ann", "--name", "laptop", "-d", db, "--json"]
    )
    assert made.exit_code == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["secret"].startswith(f"sk-sg-{key['key_id']}-") and "hash" not in key
    with Meter(database_url=db) as meter:
        principal = IdentityStore(meter.store.control, meter.clock).verify(key["secret"])
        assert principal is not None and principal.user_id == "ann"
    listed = runner.invoke(app, ["keys", "list", "-d", db, "--json"])
    assert [k["key_id"] for k in json.loads(listed.stdout)] == [key["key_id"]]
    assert key["secret"] not in listed.stdout
    assert "laptop" in runner.invoke(app, ["keys", "list", "-d", db]).stdout
    assert "store it now" in runner.invoke(app, ["keys", "create", "--role", "admin", "-d", db]).stdout
    assert runner.invoke(app, ["keys", "create", "--role", "member", "-d", db]).exit_code == 2  # a member needs a user
    assert runner.invoke(app, ["keys", "create", "--role", "root", "-d", db]).exit_code == 2
    assert runner.invoke(app, ["keys", "revoke", key["key_id"], "-d", db]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", "nope", "-d", db]).exit_code == 1
    with Meter(database_url=db) as meter:
        assert IdentityStore(meter.store.control, meter.clock).verify(key["secret"]) is None
