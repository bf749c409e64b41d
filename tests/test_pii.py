"""Personal data at rest: users' names and emails sealed with Fernet, readable through the API, rotatable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from spendgate._pii import FieldCipher, new_key
from spendgate.cli import app
from spendgate.errors import ConfigurationError, LedgerError
from spendgate.ledger import open_store
from spendgate.server._identity import IdentityStore, User
from spendgate.settings import Settings
from spendgate.testing import FakeClock
from test_admin_support import T0, open_env

OLD, NEW = new_key(), new_key()


def test_values_are_sealed_and_opened_and_plain_ones_stay_readable() -> None:
    cipher = FieldCipher([OLD])
    sealed = cipher.seal("ann@example.com")
    assert sealed is not None and sealed.startswith("enc:") and "ann" not in sealed
    assert cipher.seal(sealed) == sealed  # never sealed twice
    assert cipher.open(sealed) == "ann@example.com" and cipher.open("plain") == "plain"
    assert cipher.seal(None) is None and cipher.open(None) is None
    assert FieldCipher().seal("x") == "x" and not FieldCipher().enabled
    with pytest.raises(LedgerError, match="no encryption_keys are configured"):
        FieldCipher().open(sealed)
    with pytest.raises(LedgerError, match="could not be decrypted"):
        FieldCipher([NEW]).open(sealed)
    with pytest.raises(LedgerError, match="could not be decrypted"):
        FieldCipher([NEW]).rotate(sealed)


def test_a_new_first_key_rotates_old_values() -> None:
    sealed = FieldCipher([OLD]).seal("bob")
    both = FieldCipher.from_text(f" {NEW} , {OLD} ")
    assert both.open(sealed) == "bob"  # old values open while both keys are configured
    rotated = both.rotate(sealed)
    assert rotated is not None and FieldCipher([NEW]).open(rotated) == "bob"
    assert FieldCipher([NEW]).open(both.rotate("plain")) == "plain"
    record = {"user_id": "bob", "email": sealed, "username": None, "tier": "free"}
    assert both.open_record(both.rotate_record(record)) == {**record, "email": "bob"}


def test_bad_keys_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ConfigurationError, match=r"encryption_keys\[1\] is not a Fernet key"):
        FieldCipher.from_text(f"{OLD},not-a-key")
    with pytest.raises(ValidationError, match="encryption_keys"):
        Settings(encryption_keys=SecretStr("short"))
    assert Settings(encryption_keys=SecretStr(OLD)).encryption_keys is not None


def _raw_user(url: str, user_id: str) -> str:
    with open_store(url) as store:
        body = store.control.get("user", user_id)
        assert body is not None
        return json.dumps(body)


def test_the_service_stores_ciphertext_and_answers_plain_text(tmp_path: Path) -> None:
    with open_env(tmp_path, encryption_keys=SecretStr(OLD)) as env:
        created = env.call("POST", "/api/v1/users", "admin", json={"user_id": "cy", "email": "cy@example.com",
                                                                   "username": "Cy Young"})  # fmt: skip
        assert created.status_code == 201 and created.json()["email"] == "cy@example.com"
        assert env.call("GET", "/api/v1/users/cy", "admin").json()["username"] == "Cy Young"
        listed = {u["user_id"]: u for u in env.call("GET", "/api/v1/users", "viewer").json()}
        assert listed["cy"]["email"] == "cy@example.com" and listed["ann"]["email"] == "ann@example.com"
        assert env.call("GET", "/api/v1/users/cy/export", "admin").json()["user"]["email"] == "cy@example.com"
        audit = json.dumps([e.body for e in env.meter.store.control.audit_entries() if e.target == "user:cy"])
        url = env.meter.settings.database_url
    raw = _raw_user(url, "cy")
    assert "cy@example.com" not in raw and "Cy Young" not in raw and '"enc:' in raw
    assert "cy@example.com" not in audit and "enc:" in audit  # the audit log holds the ciphertext too
    assert "ann@example.com" in _raw_user(url, "ann")  # written before encryption: plain until rotated


def test_rotate_reencrypts_every_user_with_the_first_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pii.db'}"
    with open_store(url) as store:
        clock = FakeClock(T0)
        IdentityStore(store.control, clock).put_user(User(user_id="plain", email="p@example.com"), actor="t")
        old = IdentityStore(store.control, clock, cipher=FieldCipher([OLD]))
        old.put_user(User(user_id="sealed", email="s@example.com"), actor="t")
    runner = CliRunner()
    refused = runner.invoke(app, ["encryption", "rotate", "-d", url], env={"SPENDGATE_ENCRYPTION_KEYS": ""})
    assert refused.exit_code == 2 and "SPENDGATE_ENCRYPTION_KEYS is not set" in refused.output
    done = runner.invoke(app, ["encryption", "rotate", "-d", url], env={"SPENDGATE_ENCRYPTION_KEYS": f"{NEW},{OLD}"})
    assert done.exit_code == 0, done.output
    assert "re-encrypted 2 users" in done.output
    with open_store(url) as store:
        only_new = IdentityStore(store.control, FakeClock(T0), cipher=FieldCipher([NEW]))
        assert {u.user_id: u.email for u in only_new.list_users()} == {"plain": "p@example.com",
                                                                        "sealed": "s@example.com"}  # fmt: skip
    key = runner.invoke(app, ["encryption", "new-key"]).stdout.strip()
    assert FieldCipher([key]).open(FieldCipher([key]).seal("x")) == "x"
