"""Admin API round trips: limits, grants, emergency stops, rate limits, price versions and the audit log."""

from __future__ import annotations

from decimal import Decimal

from spendgate.usage import Usage
from test_admin_support import Env, env

__all__ = ["env"]

ANN_DAY = "user:ann|cost|day|UTC"


def _actor(env: Env, role: str = "admin") -> str:
    return f"key:{env.tokens[role].split('-')[2]}"


def test_limit_round_trip(env: Env) -> None:
    created = env.call("POST", "/api/v1/limits", json={"scope": "user", "scope_id": "ann", "amount": "2.50"})
    assert created.status_code == 201
    limit = created.json()
    assert (limit["id"], limit["amount"], limit["level"], limit["period"]) == (ANN_DAY, "2.5", "hard", "day")
    assert [x.id for x in env.meter.limits()] == [ANN_DAY]
    replaced = env.call("POST", "/api/v1/limits", json={"scope": "user:ann", "amount": "3", "level": "soft"})
    assert replaced.status_code == 200 and replaced.json()["level"] == "soft"
    assert env.call("GET", f"/api/v1/limits/{ANN_DAY}", "viewer").json()["amount"] == "3"

    patched = env.call("PATCH", f"/api/v1/limits/{ANN_DAY}", json={"amount": "4.25", "thresholds": [0.9]})
    assert patched.status_code == 200 and patched.json()["thresholds"] == [0.9] and patched.json()["level"] == "soft"
    assert env.meter.limits()[0].amount == Decimal("4.25")
    multi = env.call(
        "POST", "/api/v1/limits", json={"scope": "team:ml/provider:openai", "period": "month", "amount": 100}
    )
    assert multi.status_code == 201 and multi.json()["id"] == "team:ml/provider:openai|cost|month|UTC"
    assert env.call("GET", f"/api/v1/limits/{multi.json()['id']}").status_code == 200
    assert len(env.call("GET", "/api/v1/limits").json()) == 2

    for body, field in (
        ({"scope": "planet:mars", "amount": "1"}, "scope"),
        ({"scope": "user:ann", "amount": "-1"}, "amount"),
        ({"scope": "user:ann", "amount": "1", "period": "fortnight"}, "period"),
        ({"scope": "user:ann"}, "amount"),
    ):
        refused = env.call("POST", "/api/v1/limits", json=body)
        assert refused.status_code == 400 and refused.json()["error"]["field"] == field, refused.text
    assert env.call("DELETE", f"/api/v1/limits/{ANN_DAY}").status_code == 204
    assert env.call("GET", f"/api/v1/limits/{ANN_DAY}").status_code == 404
    assert env.call("PATCH", f"/api/v1/limits/{ANN_DAY}", json={"amount": "1"}).status_code == 404
    assert env.call("DELETE", f"/api/v1/limits/{ANN_DAY}").status_code == 404


def test_grants_top_up_a_limit(env: Env) -> None:
    env.call("POST", "/api/v1/limits", json={"scope": "user:ann", "amount": "1"})
    grant = env.call("POST", f"/api/v1/limits/{ANN_DAY}/grants", json={"amount": "0.50", "reason": "launch", "id": "g"})
    assert grant.status_code == 201
    assert (grant.json()["amount"], grant.json()["created_by"], grant.json()["reason"]) == (
        "0.5",
        _actor(env),
        "launch",
    )
    status = next(s for s in env.meter.budget_status(user_id="ann") if s.limit.id == ANN_DAY)
    assert status.amount == Decimal("1.50")
    assert [g["id"] for g in env.call("GET", f"/api/v1/limits/{ANN_DAY}/grants", "viewer").json()] == ["g"]
    assert env.call("POST", "/api/v1/limits/nope/grants", json={"amount": "1"}).status_code == 404
    assert env.call("GET", "/api/v1/limits/nope/grants").status_code == 404
    naive = env.call("POST", f"/api/v1/limits/{ANN_DAY}/grants", json={"amount": "1", "expires_at": "2026-04-01T00:00"})
    assert naive.status_code == 400 and naive.json()["error"]["field"] == "expires_at"
    assert env.call("DELETE", "/api/v1/grants/g").status_code == 204
    status = next(s for s in env.meter.budget_status(user_id="ann") if s.limit.id == ANN_DAY)
    assert status.amount == Decimal(1)
    assert env.call("DELETE", "/api/v1/grants/g").status_code == 404


def test_emergency_stops_and_rate_limits(env: Env) -> None:
    call = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "max_tokens": 10}
    stop = env.call(
        "POST", "/api/v1/emergency-stops", json={"scope": "global", "reason": "incident", "cooldown_s": 600}
    )
    assert stop.status_code == 201 and stop.json()["cooldown_until"] is not None
    assert env.call("POST", "/api/v1/authorize", "member", json=call).json()["action"] == "emergency_stop"
    assert [s["reason"] for s in env.call("GET", "/api/v1/emergency-stops").json()] == ["incident"]
    assert env.call("DELETE", "/api/v1/emergency-stops/global").status_code == 204
    assert env.call("DELETE", "/api/v1/emergency-stops/global").status_code == 404
    assert env.call("POST", "/api/v1/authorize", "member", json=call).json()["allowed"] is True

    rate = env.call("POST", "/api/v1/rate-limits", json={"scope": "user:bob", "rpm": 1})
    assert rate.status_code == 201 and rate.json()["id"] == "rate|user:bob"
    assert env.call("POST", "/api/v1/authorize", "other", json=call).json()["allowed"] is True
    throttled = env.call("POST", "/api/v1/authorize", "other", json=call)
    assert throttled.json()["action"] == "throttle" and "Retry-After" in throttled.headers
    assert [r["rpm"] for r in env.call("GET", "/api/v1/rate-limits", "viewer").json()] == [1]
    assert env.call("POST", "/api/v1/rate-limits", json={"scope": "user:bob"}).status_code == 400
    assert env.call("DELETE", "/api/v1/rate-limits/rate|user:bob").status_code == 204
    assert env.call("DELETE", "/api/v1/rate-limits/rate|user:bob").status_code == 404
    assert env.call("POST", "/api/v1/authorize", "other", json=call).json()["allowed"] is True


def test_price_versions_are_added_never_edited(env: Env) -> None:
    v1 = {"provider": "selfhost", "model": "llama-70b", "effective_from": "2026-01-01", "input": "1.00", "output": "2"}
    created = env.call("POST", "/api/v1/prices", json=v1)
    assert created.status_code == 201 and created.json()["input"] == "1.00"
    assert env.meter.cost("selfhost", "llama-70b", Usage(input_tokens=1_000_000)).total == Decimal(1)
    again = env.call("POST", "/api/v1/prices", json={**v1, "input": "0.5"})
    assert again.status_code == 409 and "never edited in place" in again.json()["error"]["message"]
    v2 = env.call("POST", "/api/v1/prices", json={**v1, "effective_from": "2026-03-01", "input": "0.5"})
    assert v2.status_code == 201
    assert env.meter.cost("selfhost", "llama-70b", Usage(input_tokens=1_000_000)).total == Decimal("0.5")
    listed = env.call("GET", "/api/v1/prices", "viewer", params={"provider": "selfhost"}).json()
    assert [p["id"] for p in listed] == ["selfhost/llama-70b@2026-01-01", "selfhost/llama-70b@2026-03-01"]
    assert env.call("GET", "/api/v1/prices/selfhost/llama-70b@2026-01-01").json()["input"] == "1.00"
    assert env.call("GET", "/api/v1/prices/selfhost/nope").status_code == 404
    assert env.call("PATCH", "/api/v1/prices/selfhost/llama-70b@2026-01-01", json={}).status_code == 405
    bad = env.call("POST", "/api/v1/prices", json={**v1, "effective_from": "2026-05-01", "input": "-1"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "input"


def test_every_change_is_audited_with_its_actor(env: Env) -> None:
    env.call("POST", "/api/v1/users", json={"user_id": "cat"})
    env.call("POST", "/api/v1/limits", json={"scope": "user:cat", "amount": "1"})
    env.call(
        "POST", "/api/v1/prices", json={"provider": "p", "model": "m", "effective_from": "2026-01-01", "input": "1"}
    )
    env.call("POST", "/api/v1/emergency-stops", "master", json={"reason": "drill"})
    reservation = env.call("POST", "/api/v1/authorize", "admin", json={"provider": "openai", "model": "gpt-4o"})
    assert reservation.json()["action"] == "emergency_stop"
    env.call("DELETE", "/api/v1/emergency-stops/global")
    env.call("POST", "/api/v1/authorize", "admin", json={"provider": "openai", "model": "gpt-4o"})

    log = env.call("GET", "/api/v1/audit").json()["entries"]
    mine = [(e["action"], e["target"]) for e in log if e["actor"] == _actor(env)]
    assert mine == [
        ("user.create", "user:cat"),
        ("limit.create", "limit:user:cat|cost|day|UTC"),
        ("price_override.create", "price_override:p/m@2026-01-01"),
        ("breaker.delete", "breaker:global"),
    ]
    assert ("breaker.create", "key:master") in {(e["action"], e["actor"]) for e in log}
    assert not any(e["action"].startswith("reservation.") for e in log)
    created = env.call("GET", "/api/v1/audit", params={"action": "user", "limit": 2}).json()
    assert [e["target"] for e in created["entries"]] == ["user:ann", "user:bob"] and created["next_since"]
    with_rsv = env.call("GET", "/api/v1/audit", params={"include_reservations": "true", "action": "reservation"})
    assert [e["action"] for e in with_rsv.json()["entries"]] == ["reservation.create"]
    by_actor = env.call("GET", "/api/v1/audit", params={"actor": "key:master"}).json()["entries"]
    assert [e["action"] for e in by_actor] == ["breaker.create"]
    by_target = env.call("GET", "/api/v1/audit", params={"target": "user:cat"}).json()["entries"]
    assert [e["body"]["after"]["user_id"] for e in by_target] == ["cat"]
