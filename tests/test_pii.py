"""Personal data at rest: users' names and emails sealed with Fernet, readable through the API, rotatable, and
shredded on erasure (each user's own key destroyed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from spendgate._pii import FieldCipher, new_key
from spendgate._pii_keyring import UserSealer
from spendgate.cli import app
from spendgate.errors import ConfigurationError, LedgerError
from spendgate.ledger import open_store
from spendgate.ledger._engine import engine_of
from spendgate.ledger._pii_keys import PiiKeys
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
    assert "cy@example.com" not in raw and "Cy Young" not in raw and '"encu:' in raw  # the user's own key
    assert "cy@example.com" not in audit and "encu:" in audit  # the audit log holds the ciphertext too
    assert "ann@example.com" in _raw_user(url, "ann")  # written before encryption: plain until rotated


def test_rotate_reencrypts_every_user_with_the_first_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pii.db'}"
    with open_store(url) as store:
        clock = FakeClock(T0)
        IdentityStore(store.control, clock).put_user(User(user_id="plain", email="p@example.com"), actor="t")
        legacy = FieldCipher([OLD]).seal_record({"user_id": "sealed", "email": "s@example.com"})  # before user keys
        store.control.put("user", "sealed", legacy, actor="t")
        IdentityStore(store.control, clock, cipher=FieldCipher([OLD])).put_user(
            User(user_id="own", email="o@x"), actor="t"
        )
    runner = CliRunner()
    refused = runner.invoke(app, ["encryption", "rotate", "-d", url], env={"SPENDGATE_ENCRYPTION_KEYS": ""})
    assert refused.exit_code == 2 and "SPENDGATE_ENCRYPTION_KEYS is not set" in refused.output
    done = runner.invoke(app, ["encryption", "rotate", "-d", url], env={"SPENDGATE_ENCRYPTION_KEYS": f"{NEW},{OLD}"})
    assert done.exit_code == 0, done.output
    assert "re-encrypted 2 users; re-wrapped 1 users' keys" in done.output
    with open_store(url) as store:
        only_new = IdentityStore(store.control, FakeClock(T0), cipher=FieldCipher([NEW]))
        emails = {u.user_id: u.email for u in only_new.list_users()}
        assert emails == {"plain": "p@example.com", "sealed": "s@example.com", "own": "o@x"}
    key = runner.invoke(app, ["encryption", "new-key"]).stdout.strip()
    assert FieldCipher([key]).open(FieldCipher([key]).seal("x")) == "x"


def test_erasing_a_user_destroys_their_key_and_so_every_old_copy(tmp_path: Path) -> None:
    with open_env(tmp_path, encryption_keys=SecretStr(OLD)) as env:
        env.call("POST", "/api/v1/users", "admin", json={"user_id": "dee", "email": "dee@example.com"})
        env.call("PATCH", "/api/v1/users/dee", "admin", json={"username": "Dee Dee"})
        control = env.meter.store.control
        old = [e.body for e in control.audit_entries(limit=10_000) if e.target == "user:dee"]
        sealer = UserSealer(FieldCipher([OLD]), engine_of(env.meter.store))
        opened = [sealer.open_record(body["after"]) for body in old if body.get("after")]
        assert {b["email"] for b in opened} == {"dee@example.com"} and opened[-1]["username"] == "Dee Dee"
        erased = env.call("POST", "/api/v1/users/dee/erase", "admin").json()
        assert erased["personal_data_key_destroyed"] is True and erased["user_deleted"] is True
        assert env.call("POST", "/api/v1/users/bob/erase", "admin").json()["personal_data_key_destroyed"] is False
        # The audit log is append-only: the old entries are still there, and nothing can open them.
        still = [e.body for e in control.audit_entries(limit=10_000) if e.target == "user:dee"]
        assert still == old and "dee@example.com" not in json.dumps(still)
        for body in (b["after"] for b in still if b.get("after")):
            with pytest.raises(LedgerError, match="the user's key was destroyed"):
                sealer.open_record(body)
        # A new user with the same id gets a new key; the old ciphertext still does not open with it.
        env.call("POST", "/api/v1/users", "admin", json={"user_id": "dee", "email": "new-dee@example.com"})
        assert env.call("GET", "/api/v1/users/dee", "admin").json()["email"] == "new-dee@example.com"
        with pytest.raises(LedgerError, match="does not open with the user's key"):
            sealer.open_record(still[-1]["after"])
        assert env.call("GET", "/api/v1/audit/verify", "admin").json()["ok"] is True


def test_user_keys_are_rewrapped_by_rotation_and_unreadable_without_the_deployment_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    with open_store(url) as store:
        ids = IdentityStore(store.control, FakeClock(T0), cipher=FieldCipher([OLD]))
        ids.put_user(User(user_id="eve", email="eve@example.com"), actor="t")
        [(user_id, wrapped)] = list(PiiKeys(engine_of(store)).items())
        assert user_id == "eve" and wrapped.startswith("enc:")  # the user's key is sealed by the deployment key
        with pytest.raises(LedgerError, match="could not be decrypted"):
            IdentityStore(store.control, FakeClock(T0), cipher=FieldCipher([NEW])).get_user("eve")
        with pytest.raises(LedgerError, match="no encryption_keys are configured"):
            IdentityStore(store.control, FakeClock(T0)).get_user("eve")
        both = IdentityStore(store.control, FakeClock(T0), cipher=FieldCipher([NEW, OLD]))
        assert both.rotate_users(actor="t") == 0  # already sealed with her own key
        assert both.sealer.rewrap_keys() == 1
        assert IdentityStore(store.control, FakeClock(T0), cipher=FieldCipher([NEW])).get_user("eve") == both.get_user(
            "eve"
        )
        assert PiiKeys(engine_of(store)).rewrap("eve", "not-the-current-value", "x") is False


def test_two_writers_adding_a_users_key_both_end_with_the_one_that_won(meter_url: str) -> None:
    with open_store(meter_url) as store:
        keys = PiiKeys(engine_of(store))

        def racing_writer() -> str:  # another replica adds its key between our read and our insert
            keys.get_or_add("fay", lambda: "theirs")
            return "ours"

        assert keys.get_or_add("fay", racing_writer) == "theirs"
        assert keys.get_or_add("fay", lambda: "never-made") == "theirs"
        assert keys.delete("fay") is True and keys.delete("fay") is False and keys.get("fay") is None
