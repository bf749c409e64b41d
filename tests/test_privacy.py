"""Personal data: export everything about a user; erase a user while every total stays exact."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger_fixtures import make_event
from spendgate.analytics import Analytics, refresh
from spendgate.ledger import EventFilter, UsageStore, verify_audit_chain
from spendgate.ledger._privacy import erase_user_events, names_user
from test_admin_support import T0, Env, open_env
from test_alerts_support import clock, store

__all__ = ["clock", "store"]

U = "/api/v1"


def _traffic(env: Env) -> None:
    rows: list[dict[str, Any]] = []
    for i in range(40):
        user = ("ann", "bob", "cy")[i % 3]
        rows.append({
            "event_id": f"e{i}", "timestamp": T0 - timedelta(hours=i), "user_id": user,
            "team_id": "ml" if user != "cy" else "ops", "provider": "openai", "model": "gpt-4o",
            "usage": {"input_tokens": 1000 + i, "output_tokens": 50}, "client_ip": "10.1.2.3",
            "user_agent": "ann-laptop", "metadata": {"note": "ann's secret project"},
        })  # fmt: skip
    env.meter.record_many(rows)
    env.meter.set_limit(scope="user", scope_id="ann", metric="cost", period="day", amount=Decimal(5))
    env.meter.set_limit(scope="user", scope_id="annabel", metric="cost", period="day", amount=Decimal(5))
    env.meter.add_grant("user:ann|cost|day|UTC", Decimal(2), created_by="ops")
    env.meter.store.control.record_crossing("user:ann|cost|day|UTC", "2026-03-10", "0.5", T0, {"scope": "ann"})
    refresh(env.meter.store)


def test_limit_ids_name_a_user_exactly() -> None:
    assert names_user("user:ann|cost|day|UTC", "ann")
    assert names_user("team:ml/user:ann|tokens|month|Europe/Paris", "ann")
    assert not names_user("user:annabel|cost|day|UTC", "ann")
    assert not names_user("team:ann|cost|day|UTC", "ann")


def test_a_user_exports_everything_about_themselves(tmp_path: Path) -> None:
    with open_env(tmp_path) as env:
        _traffic(env)
        answer = env.call("GET", f"{U}/users/ann/export", "member")
        assert answer.status_code == 200 and "spendgate-user-ann.json" in answer.headers["content-disposition"]
        doc = answer.json()
        assert doc["user"]["email"] == "ann@example.com" and doc["user_id"] == "ann"
        assert [k["user_id"] for k in doc["keys"]] == ["ann"] and "secret" not in json.dumps(doc["keys"])
        assert [limit["id"] for limit in doc["limits"]] == ["user:ann|cost|day|UTC"]  # not annabel's
        assert len(doc["grants"]) == 1 and doc["grants"][0]["limit_id"] == "user:ann|cost|day|UTC"
        assert {e["target"] for e in doc["audit"]} >= {"user:ann", "limit:user:ann|cost|day|UTC"}
        assert sorted(e["event_id"] for e in doc["events"]) == sorted(f"e{i}" for i in range(0, 40, 3))
        assert all(e["user_id"] == "ann" for e in doc["events"])
        assert env.call("GET", f"{U}/users/bob/export", "member").status_code == 403
        assert env.call("GET", f"{U}/users/bob/export", "viewer").status_code == 200
        empty = env.call("GET", f"{U}/users/nobody/export", "admin").json()
        assert empty["user"] is None and empty["events"] == [] and empty["keys"] == []


def test_erasing_a_user_keeps_every_total_exact(tmp_path: Path) -> None:
    with open_env(tmp_path) as env:
        _traffic(env)
        store, week = env.meter.store, (T0 - timedelta(days=7), T0 + timedelta(hours=1))
        before = {team: store.summary(EventFilter(team_id=team)) for team in ("ml", "ops")}
        everyone = Analytics(store).summary(*week)
        ann_cost = store.summary(EventFilter(user_id="ann")).cost
        last_entry = store.control.audit_entries(limit=100_000)[-1].id
        assert env.call("POST", f"{U}/users/ann/erase", "viewer").status_code == 403
        assert env.call("POST", f"{U}/users/ann/erase", "member").status_code == 403
        answer = env.call("POST", f"{U}/users/ann/erase", "admin")
        assert answer.status_code == 200, answer.text
        result = answer.json()
        alias = result["pseudonym"]
        assert alias.startswith("erased-") and "ann" not in alias
        assert result["events"] == 14 and result["limits_removed"] == 1 and result["keys_revoked"] == 1
        assert result["user_deleted"] is True and result["threshold_crossings"] == 1 and result["cube_rows"] > 0
        # Totals: every team's and everyone's, to the cent; the user's share moved to the pseudonym.
        for team, summary in before.items():
            assert store.summary(EventFilter(team_id=team)) == summary
        after = Analytics(store).summary(*week)
        assert after.totals == everyone.totals and after.unique_users == everyone.unique_users
        assert store.summary(EventFilter(user_id="ann")).requests == 0
        assert store.summary(EventFilter(user_id=alias)).cost == ann_cost
        users = {row.key for row in Analytics(store).breakdown("user", *week).rows}
        assert alias in users and "ann" not in users
        [event] = list(store.iter_events(EventFilter(user_id=alias)))[:1]
        assert event.client_ip is None and event.user_agent is None and not event.metadata
        # What identified her is gone; the key she held no longer works.
        assert env.call("GET", f"{U}/users/ann", "admin").status_code == 404
        assert env.call("GET", f"{U}/usage/summary", "member").status_code == 401
        assert [limit.id for limit in env.meter.limits()] == ["user:annabel|cost|day|UTC"]
        assert env.meter.grants() == [] and store.control.crossings() == []
        erasure = [e for e in store.control.audit_entries(limit=100_000) if e.id > last_entry]
        assert [e.action for e in erasure] == ["grant.delete", "limit.delete", "api_key.update", "user.delete",
                                               "user.erase"]  # fmt: skip
        written = json.dumps([(e.target, e.body) for e in erasure])
        assert "ann@example.com" not in written and "user:ann" not in written
        assert erasure[-1].action == "user.erase" and erasure[-1].target == f"user:{alias}"
        assert verify_audit_chain(store).ok
        again = env.call("POST", f"{U}/users/ann/erase", "admin").json()  # nothing left: a harmless no-op
        assert again["events"] == 0 and again["user_deleted"] is False


def test_erasure_in_the_ledger_on_each_backend(store: UsageStore) -> None:
    store.record_many(
        make_event(event_id=f"x{i}", user_id="ann" if i % 2 else "bob", client_ip="10.0.0.9", metadata={"k": "v"})
        for i in range(10)
    )
    refresh(store)
    total = store.summary()
    first = erase_user_events(store, "ann")
    assert first.events == 5 and first.rollup_rows > 0 and first.cube_rows > 0
    assert store.summary() == total and store.count(EventFilter(user_id=first.pseudonym)) == 5
    assert [e.client_ip for e in store.iter_events(EventFilter(user_id=first.pseudonym))] == [None] * 5
    assert [e.client_ip for e in store.iter_events(EventFilter(user_id="bob"))] == ["10.0.0.9"] * 5
    assert erase_user_events(store, "ann", first.pseudonym).events == 0  # idempotent


def _user_keys(env: Env, path: str, rows: str, field: str = "key", **params: str) -> set[str]:
    answer = env.call("GET", f"{U}{path}", "admin", params={"since": (T0 - timedelta(days=3)).isoformat(), **params})
    assert answer.status_code == 200, answer.text
    return {row[field] for row in answer.json()[rows]}


def test_analytics_can_exclude_personal_data_per_request(tmp_path: Path) -> None:
    with open_env(tmp_path) as env:
        _traffic(env)
        plain = _user_keys(env, "/analytics/breakdown", "rows", by="user")
        assert plain == {"ann", "bob", "cy"}
        hidden = _user_keys(env, "/analytics/breakdown", "rows", by="user", exclude_pii="true")
        assert len(hidden) == 3 and all(k.startswith("u-") and len(k) == 18 for k in hidden)
        assert _user_keys(env, "/analytics/top-users", "rows", exclude_pii="true") == hidden  # stable pseudonyms
        assert _user_keys(env, "/usage/breakdown", "groups", by="user", exclude_pii="true") == hidden
        assert _user_keys(env, "/usage/breakdown", "groups", by="team", exclude_pii="true") == {"ml", "ops"}
        export = env.call("GET", f"{U}/export", "admin", params={"format": "jsonl", "exclude_pii": "true"}).text
        events = [json.loads(line) for line in export.splitlines()]
        assert len(events) == 40 and {e["user_id"] for e in events} == hidden
        assert "10.1.2.3" not in export and "ann-laptop" not in export and "secret project" not in export
        full = env.call("GET", f"{U}/export", "admin", params={"format": "jsonl"}).text
        assert "10.1.2.3" in full and {json.loads(line)["user_id"] for line in full.splitlines()} == plain
        # Totals are the same either way.
        costs = [env.call("GET", f"{U}/analytics/summary", "admin", params=p).json()["totals"]["cost"]
                 for p in ({}, {"exclude_pii": "true"})]  # fmt: skip
        assert costs[0] == costs[1]


def test_analytics_exclude_personal_data_for_every_caller_when_configured(tmp_path: Path) -> None:
    with open_env(tmp_path, analytics_exclude_pii=True) as env:
        _traffic(env)
        keys = _user_keys(env, "/analytics/breakdown", "rows", by="user")
        assert len(keys) == 3 and not keys & {"ann", "bob", "cy"}
        csv_export = env.call("GET", f"{U}/usage/export", "viewer", params={"format": "csv"}).text
        assert "ann" not in csv_export and "10.1.2.3" not in csv_export
