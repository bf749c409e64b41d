"""Admin API round trips: users, teams and API keys (secret shown once; revoked, rotated, expired keys refused)."""

from __future__ import annotations

from datetime import timedelta

from test_admin_support import T0, Env, env

__all__ = ["env"]


def test_user_round_trip(env: Env) -> None:
    profile = {"user_id": "cat", "username": "Cat", "email": "cat@example.com", "tier": "free", "team_id": "ml",
               "preferences": {"theme": "dark"}, "metadata": {"cost_center": "42"}}  # fmt: skip
    created = env.call("POST", "/api/v1/users", json=profile)
    assert created.status_code == 201
    assert created.json() == {**profile, "is_active": True, "created_at": T0.isoformat()}
    assert env.call("POST", "/api/v1/users", json={"user_id": "cat"}).status_code == 409
    assert env.call("GET", "/api/v1/users/cat", "viewer").json() == created.json()
    assert [u["user_id"] for u in env.call("GET", "/api/v1/users").json()] == ["ann", "bob", "cat"]

    patched = env.call("PATCH", "/api/v1/users/cat", json={"tier": "premium", "username": None, "is_active": False})
    assert patched.status_code == 200
    assert (patched.json()["tier"], patched.json()["username"], patched.json()["is_active"]) == ("premium", None, False)
    assert patched.json()["email"] == "cat@example.com"  # untouched
    stored = env.ids.get_user("cat")
    assert stored is not None and stored.tier == "premium" and not stored.is_active

    for body, field in (
        ({"team_id": "nope"}, "team_id"),
        ({"user_id": "other"}, "user_id"),
        ({"is_active": None}, "is_active"),
        ({"email": ""}, "email"),
    ):
        refused = env.call("PATCH", "/api/v1/users/cat", json=body)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field, refused.text
    assert env.call("PATCH", "/api/v1/users/zed", json={}).status_code == 404

    key = env.call("POST", "/api/v1/keys", json={"role": "member", "user_id": "bob"}).json()["key"]
    assert env.client.get("/api/v1/usage/summary", headers={"x-api-key": key}).status_code == 200
    assert env.call("DELETE", "/api/v1/users/bob").status_code == 204
    assert env.call("GET", "/api/v1/users/bob").status_code == 404
    assert env.ids.verify(key) is None  # a deleted user's keys are revoked
    assert env.call("DELETE", "/api/v1/users/bob").status_code == 404


def test_team_round_trip(env: Env) -> None:
    created = env.call("POST", "/api/v1/teams", json={"team_id": "ops", "name": "Operations", "metadata": {"a": 1}})
    assert created.status_code == 201 and created.json()["name"] == "Operations"
    assert env.call("POST", "/api/v1/teams", json={"team_id": "ops"}).status_code == 409
    assert env.call("PATCH", "/api/v1/teams/ops", json={"name": "Ops"}).json()["name"] == "Ops"
    assert env.call("PATCH", "/api/v1/teams/ops", json={"metadata": None}).status_code == 400
    assert env.call("PATCH", "/api/v1/teams/zed", json={"name": "Z"}).status_code == 404
    assert env.call("GET", "/api/v1/teams/ops").json()["metadata"] == {"a": 1}
    assert {t["team_id"] for t in env.call("GET", "/api/v1/teams", "viewer").json()} == {"ml", "ops"}
    busy = env.call("DELETE", "/api/v1/teams/ml")
    assert busy.status_code == 409 and "ann" in busy.json()["error"]["message"]
    assert env.call("DELETE", "/api/v1/teams/ops").status_code == 204
    assert env.call("GET", "/api/v1/teams/ops").status_code == 404
    assert env.call("DELETE", "/api/v1/teams/ops").status_code == 404


def test_a_key_is_shown_once_and_works_until_revoked(env: Env) -> None:
    created = env.call("POST", "/api/v1/keys", json={"role": "member", "user_id": "ann", "name": "ci"})
    assert created.status_code == 201
    key = created.json()
    secret, key_id = key["key"], key["key_id"]
    assert secret.startswith(f"sk-sg-{key_id}-") and key["team_id"] == "ml"  # the user's team
    principal = env.ids.verify(secret)
    assert principal is not None and (principal.role, principal.user_id, principal.tier) == ("member", "ann", "premium")

    listed = env.call("GET", "/api/v1/keys")
    got = env.call("GET", f"/api/v1/keys/{key_id}")
    for answer in (listed, got):
        assert secret not in answer.text and "hash" not in answer.text and '"key":' not in answer.text
    assert got.json()["name"] == "ci" and key_id in {k["key_id"] for k in listed.json()}
    mine = env.call("GET", "/api/v1/keys", "member").json()
    assert mine and {k["user_id"] for k in mine} == {"ann"}

    headers = {"Authorization": f"Bearer {secret}"}
    assert env.client.get("/api/v1/usage/summary", headers=headers).status_code == 200
    revoked = env.call("POST", f"/api/v1/keys/{key_id}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] == T0.isoformat()
    refused = env.client.get("/api/v1/usage/summary", headers=headers)
    assert refused.status_code == 401 and env.ids.verify(secret) is None
    assert env.call("POST", f"/api/v1/keys/{key_id}/rotate").status_code == 409
    assert env.call("POST", "/api/v1/keys/nope/revoke").status_code == 404


def test_rotation_and_expiry(env: Env) -> None:
    expires = (T0 + timedelta(hours=1)).isoformat()
    created = env.call("POST", "/api/v1/keys", json={"role": "viewer", "expires_at": expires}).json()
    rotated = env.call("POST", f"/api/v1/keys/{created['key_id']}/rotate")
    assert rotated.status_code == 201
    new = rotated.json()
    assert new["key_id"] != created["key_id"] and new["expires_at"] == created["expires_at"]
    assert env.ids.verify(created["key"]) is None
    assert env.client.get("/api/v1/users", headers={"x-api-key": new["key"]}).status_code == 200
    env.clock.advance(hours=2)
    assert env.client.get("/api/v1/users", headers={"x-api-key": new["key"]}).status_code == 401
    assert env.call("POST", f"/api/v1/keys/{new['key_id']}/rotate").status_code == 409

    own = env.tokens["member"].split("-")[2]
    mine = env.call("POST", f"/api/v1/keys/{own}/rotate", "member")
    assert mine.status_code == 201 and mine.json()["user_id"] == "ann"
    assert env.call("GET", "/api/v1/usage/summary", "member").status_code == 401
    assert env.client.get("/api/v1/usage/summary", headers={"x-api-key": mine.json()["key"]}).status_code == 200


def test_key_creation_is_checked(env: Env) -> None:
    past = (T0 - timedelta(seconds=1)).isoformat()
    for body, field in (
        ({"role": "member"}, "user_id"),
        ({"role": "owner"}, "role"),
        ({"role": "viewer", "expires_at": "2026-04-01T00:00:00"}, "expires_at"),
        ({"role": "viewer", "expires_at": past}, "expires_at"),
        ({"role": "member", "user_id": "zed"}, "user_id"),
        ({"role": "viewer", "team_id": "zed"}, "team_id"),
    ):
        refused = env.call("POST", "/api/v1/keys", json=body)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field, refused.text
    assert env.call("GET", "/api/v1/keys/nope").status_code == 404


def test_a_key_can_carry_cache_opt_in_and_tags_kept_through_rotation(env: Env) -> None:
    body = {"role": "member", "user_id": "ann", "cache": True, "tags": {"feature": "search", "env": "prod"}}
    created = env.call("POST", "/api/v1/keys", json=body).json()
    assert created["cache"] is True and created["tags"] == {"feature": "search", "env": "prod"}
    principal = env.ids.verify(created["key"])
    assert principal is not None and principal.cache and dict(principal.tags) == body["tags"]
    rotated = env.call("POST", f"/api/v1/keys/{created['key_id']}/rotate").json()
    assert rotated["cache"] is True and rotated["tags"] == body["tags"]
    plain = env.call("POST", "/api/v1/keys", json={"role": "viewer"}).json()
    assert plain["cache"] is False and plain["tags"] == {}
    for tags, field in (
        ({"feature": 1}, "tags.feature"),
        ({"": "x"}, "tags"),
        ({f"t{i}": "x" for i in range(40)}, "tags"),
    ):
        refused = env.call("POST", "/api/v1/keys", json={"role": "viewer", "tags": tags})
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field, refused.text
