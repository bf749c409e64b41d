"""The remote metering API: authorize -> settle/release over HTTP, and batched, idempotent event ingestion."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from spendgate import Meter
from spendgate.server import create_app
from test_admin_support import MASTER, Env, env, open_env

__all__ = ["env"]

CALL = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "max_tokens": 100}
USED = {"input_tokens": 1000, "output_tokens": 100}
PRICE = Decimal("0.0035")  # gpt-4o: 1000 in at $2.50/M + 100 out at $10/M (also the worst case of CALL)


def _authorize(env: Env, role: str = "member", **extra: Any) -> Any:
    return env.call("POST", "/api/v1/authorize", role, json={**CALL, **extra})


def _settle(env: Env, reservation_id: str, role: str = "member", **extra: Any) -> Any:
    return env.call("POST", "/api/v1/settle", role, json={"reservation_id": reservation_id, "usage": USED, **extra})


def _spent(env: Env, limit_id: str) -> tuple[Decimal, Decimal]:
    status = next(s for s in env.meter.budget_status(user_id="ann") if s.limit.id == limit_id)
    return status.spent, status.reserved


def test_authorize_settle_holds_a_hard_limit_and_settle_is_idempotent(env: Env) -> None:
    limit = env.meter.set_limit(scope="user", scope_id="ann", period="day", amount="0.006")
    first = _authorize(env)
    assert first.status_code == 200 and first.json()["allowed"] is True
    body = first.json()
    assert body["worst_case"]["cost"] == "0.0035000" and body["expires_at"] == "2026-03-10T12:10:00+00:00"
    assert _spent(env, limit.id) == (Decimal(0), PRICE)  # the worst case is held

    while_held = _authorize(env)  # 0.0035 held + 0.0035 asked > 0.006
    assert while_held.status_code == 200 and while_held.json()["allowed"] is False
    assert while_held.json()["action"] == "deny" and "reservation_id" in while_held.json()
    assert int(while_held.headers["Retry-After"]) > 0

    settled = _settle(env, body["reservation_id"], latency_ms=120)
    assert settled.status_code == 200
    assert settled.json() == {
        "event_id": body["reservation_id"],
        "duplicate": False,
        "cost": "0.0035",
        "currency": "USD",
    }
    assert _spent(env, limit.id) == (PRICE, Decimal(0))

    again = _settle(env, body["reservation_id"])
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["cost"] == "0.0035"
    assert _spent(env, limit.id) == (PRICE, Decimal(0))  # nothing counted twice
    assert env.meter.summary(user_id="ann").requests == 1

    exhausted = _authorize(env)
    assert exhausted.json()["allowed"] is False and exhausted.json()["limit"]["id"] == limit.id
    event = env.meter.store.get(body["reservation_id"])
    assert event is not None and (event.user_id, event.team_id, event.latency_ms) == ("ann", "ml", 120)
    assert event.api_key_id == env.tokens["member"].split("-")[2]


def test_a_settle_on_another_replica_finds_the_reservation(tmp_path: Path) -> None:
    with open_env(tmp_path) as env:
        reservation = _authorize(env, role="master").json()["reservation_id"]
        replica = Meter(settings=env.meter.settings, clock=env.clock)
        try:
            with TestClient(create_app(env.meter.settings, meter=replica)) as other:
                answer = other.post(
                    "/api/v1/settle",
                    headers={"x-api-key": MASTER},
                    json={"reservation_id": reservation, "usage": USED, "success": True},
                )
                assert answer.status_code == 200 and answer.json()["duplicate"] is False
        finally:
            replica.close()
        assert env.meter.summary().cost == PRICE


def test_release_frees_the_hold_and_records_the_failure(env: Env) -> None:
    limit = env.meter.set_limit(scope="user", scope_id="ann", period="day", amount="1")
    reservation = _authorize(env).json()["reservation_id"]
    released = env.call(
        "POST",
        "/api/v1/release",
        "member",
        json={"reservation_id": reservation, "partial_usage": {"input_tokens": 1000}, "error_kind": "timeout"},
    )
    assert released.status_code == 200 and released.json()["cost"] == "0.0025"
    assert _spent(env, limit.id) == (Decimal("0.0025"), Decimal(0))
    event = env.meter.store.get(reservation)
    assert event is not None and event.success is False and event.error_kind == "timeout"
    twice = env.call("POST", "/api/v1/release", "member", json={"reservation_id": reservation})
    assert twice.json()["duplicate"] is True and _spent(env, limit.id)[0] == Decimal("0.0025")


def test_unknown_foreign_and_lapsed_reservations(env: Env) -> None:
    unknown = _settle(env, "rsv_never")
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "reservation_not_found"
    assert unknown.json()["error"]["field"] == "reservation_id"

    annes = _authorize(env).json()["reservation_id"]
    foreign = _settle(env, annes, role="other")
    assert foreign.status_code == 403 and foreign.json()["error"]["field"] == "reservation_id"

    env.clock.advance(seconds=env.meter.settings.hold_ttl_s + 61)
    assert _authorize(env, role="admin", user_id="bob").json()["allowed"] is True  # sweeps the lapsed one
    lapsed = _settle(env, annes)
    assert lapsed.status_code == 404 and "POST /api/v1/events" in lapsed.json()["error"]["message"]

    bad_usage = _settle(env, _authorize(env).json()["reservation_id"], usage={"input_tokens": -1})
    assert bad_usage.status_code == 400 and bad_usage.json()["error"]["field"] == "usage.input_tokens"


def test_members_are_pinned_to_themselves_and_admins_meter_for_anyone(env: Env) -> None:
    for field, value in (("user_id", "bob"), ("team_id", "other"), ("api_key_id", "k"), ("tier", "enterprise")):
        refused = _authorize(env, **{field: value})
        assert refused.status_code == 403 and refused.json()["error"]["field"] == field
    bobs = _authorize(env, role="admin", user_id="bob", session_id="s1", tags={"app": "x"}).json()
    assert bobs["allowed"] is True
    assert _settle(env, bobs["reservation_id"], role="admin").status_code == 200
    event = env.meter.store.get(bobs["reservation_id"])
    assert event is not None and (event.user_id, event.session_id, dict(event.tags)) == ("bob", "s1", {"app": "x"})
    assert event.api_key_id == env.tokens["admin"].split("-")[2]
    stop = env.call("POST", "/api/v1/emergency-stops", json={"scope": "user:ann", "reason": "loop"})
    assert stop.status_code == 201
    stopped = _authorize(env)
    assert stopped.json()["action"] == "emergency_stop" and stopped.json()["allowed"] is False
    counted = _authorize(env, input_tokens=None, messages=[{"role": "user", "content": "hello there"}], role="other")
    assert counted.json()["worst_case"]["input_tokens"] > 0


def _events(n: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"event_id": f"evt-{i}", "provider": "openai", "model": "gpt-4o", "usage": USED,
         "timestamp": "2026-03-10T11:00:00Z", "user_id": "ann", **extra}
        for i in range(start, start + n)
    ]  # fmt: skip


def test_a_batch_of_1000_is_created_then_reported_duplicate(env: Env) -> None:
    batch = _events(1000)
    first = env.call("POST", "/api/v1/events", json={"events": batch})
    assert first.status_code == 200
    body = first.json()
    assert (body["created"], body["duplicates"]) == (1000, 0)
    assert [e["event_id"] for e in body["results"]] == [e["event_id"] for e in batch]
    assert {e["status"] for e in body["results"]} == {"created"} and body["results"][0]["cost"] == "0.0035"
    assert env.meter.summary().cost == PRICE * 1000

    retry = env.call("POST", "/api/v1/events", json={"events": batch}).json()
    assert (retry["created"], retry["duplicates"]) == (0, 1000)
    assert {e["status"] for e in retry["results"]} == {"duplicate"}

    mixed = env.call("POST", "/api/v1/events", json={"events": _events(2, start=999)}).json()
    assert [e["status"] for e in mixed["results"]] == ["duplicate", "created"]
    assert env.meter.store.count() == 1001


def test_a_bad_event_writes_nothing_and_is_named(env: Env) -> None:
    batch = _events(10)
    batch[7] = {**batch[7], "usage": {"input_tokens": -5}}
    answer = env.call("POST", "/api/v1/events", json={"events": batch})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "events[7].usage.input_tokens"
    assert env.meter.store.count() == 0

    cases: list[tuple[Any, str]] = [
        ("not an object", "events[3]"),
        ({"provider": "openai", "model": "gpt-4o"}, "events[3].usage"),
        ({**batch[0], "event_id": "x", "colour": "red"}, "events[3].colour"),
        ({**batch[0], "event_id": "y", "timestamp": "yesterday"}, "events[3].timestamp"),
    ]
    for bad, field in cases:
        mixed = [*_events(3), bad]
        answer = env.call("POST", "/api/v1/events", json={"events": mixed})
        assert answer.status_code == 400 and answer.json()["error"]["field"] == field, answer.text
    assert env.meter.store.count() == 0

    too_many = env.call("POST", "/api/v1/events", json={"events": _events(1001)})
    assert too_many.status_code == 413 and too_many.json()["error"]["type"] == "batch_too_large"
    assert env.meter.store.count() == 0


def test_member_events_are_pinned_and_unpriced_models_named(tmp_path: Path) -> None:
    with open_env(tmp_path, record_unpriced=False) as env:
        foreign = env.call(
            "POST", "/api/v1/events", "member", json={"events": [*_events(2), *_events(1, 5, user_id="bob")]}
        )
        assert foreign.status_code == 403 and foreign.json()["error"]["field"] == "events[2].user_id"
        own = [{k: v for k, v in e.items() if k != "user_id"} for e in _events(2)]
        assert env.call("POST", "/api/v1/events", "member", json={"events": own}).status_code == 200
        stored = list(env.meter.events())
        assert {(e.user_id, e.team_id, e.api_key_id) for e in stored} == {
            ("ann", "ml", env.tokens["member"].split("-")[2])
        }
        unpriced = [*_events(2, 10), *_events(1, 20, model="no-such-model-xyz")]
        answer = env.call("POST", "/api/v1/events", json={"events": unpriced})
        assert answer.status_code == 400 and answer.json()["error"]["field"] == "events[2].model"
        assert env.meter.store.count() == 2


def test_a_keys_tags_are_recorded_with_its_calls_and_a_calls_own_tags_win(env: Env) -> None:
    made = env.call(
        "POST", "/api/v1/keys", json={"role": "member", "user_id": "ann", "tags": {"app": "bot", "env": "prod"}}
    )
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    auth = env.client.post("/api/v1/authorize", headers=key, json={**CALL, "tags": {"env": "staging"}}).json()
    assert env.client.post("/api/v1/settle", headers=key, json={"reservation_id": auth["reservation_id"],
                                                                 "usage": USED}).status_code == 200  # fmt: skip
    settled = env.meter.store.get(auth["reservation_id"])
    assert settled is not None and dict(settled.tags) == {"app": "bot", "env": "staging"}
    batch = [{**_events(1)[0], "event_id": "tagged-1"}, {**_events(1)[0], "event_id": "tagged-2", "tags": {"app": "x"}}]
    assert env.client.post("/api/v1/events", headers=key, json={"events": batch}).status_code == 200
    first, second = env.meter.store.get("tagged-1"), env.meter.store.get("tagged-2")
    assert first is not None and dict(first.tags) == {"app": "bot", "env": "prod"}
    assert second is not None and dict(second.tags) == {"app": "x", "env": "prod"}
