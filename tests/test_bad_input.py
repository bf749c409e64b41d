"""Bad input at the service's edges: every case is a 4xx with a JSON error naming what is wrong, and
nothing is written (no event, no partial batch)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_admin_support import Env, open_env

EVENTS = "/api/v1/events"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with open_env(tmp_path_factory.mktemp("bad-input")) as running:
        yield running


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_id": "ok-1", "user_id": "u", "provider": "openai", "model": "gpt-4o",
            "usage": {"input_tokens": 10, "output_tokens": 5}, **fields}  # fmt: skip


def _post(env: Env, path: str, body: bytes, role: str = "admin") -> Any:
    return env.client.post(path, content=body, headers={**env.auth(role), "content-type": "application/json"})


def _refused(answer: Any, status: int = 400) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["type"] and error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"{not json", "body", "not valid JSON"),
        (b'{"events": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "body", "nested too deeply"),
        (b'{"events": [{"event_id": "\xff\xfe", "provider": "openai", "model": "gpt-4o"}]}', "body", "not UTF-8"),
        (
            json.dumps({"events": [_event(usage={"input_tokens": -5})]}).encode(),
            "events[0].usage.input_tokens",
            "must not be negative",
        ),
        (
            json.dumps({"events": [_event(usage={"input_tokens": 10**30})]}).encode(),
            "events[0].usage.input_tokens",
            "must be at most",
        ),
        (
            b'{"events": [{"event_id": "n", "provider": "openai", "model": "gpt-4o", "usage": {"input_tokens": NaN}}]}',
            "events[0].usage.input_tokens",
            "integer",
        ),
        (
            json.dumps({"events": [_event(), _event(event_id="ok-2", latency_ms=-1)]}).encode(),
            "events[1].latency_ms",
            "",
        ),
        (json.dumps({"events": "all of them"}).encode(), "events", ""),
    ],
    ids=["not-json", "deep", "invalid-utf8", "negative", "huge", "nan", "one-bad-in-batch", "wrong-shape"],
)
def test_bad_ingest_bodies_are_refused_and_nothing_is_written(env: Env, body: bytes, field: str, words: str) -> None:
    before = env.meter.store.count()
    error = _refused(_post(env, EVENTS, body))
    assert error["field"] == field and words in error["message"]
    env.meter.flush()
    assert env.meter.store.count() == before  # the good event of a refused batch was not written either


def test_duplicates_and_unknown_models_are_recorded_explicitly(env: Env) -> None:
    body = {"events": [_event(event_id="dup"), _event(event_id="dup"), _event(event_id="odd", model="no-such-model")]}
    answer = env.call("POST", EVENTS, "admin", json=body).json()
    assert [r["duplicate"] for r in answer["results"]] == [False, True, False]
    assert answer["results"][2]["cost"] is None  # unpriced, said so: never a silent zero
    again = env.call("POST", EVENTS, "admin", json=body).json()
    assert again["created"] == 0 and again["duplicates"] == 3
    assert env.meter.store.get("odd") is not None and env.meter.store.get("odd").cost is None  # type: ignore[union-attr]


_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(_SCALARS,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20))  # fmt: skip
def test_arbitrary_json_never_gets_a_5xx(env: Env, value: Any) -> None:
    for path in (EVENTS, "/api/v1/limits", "/api/v1/users", "/api/v1/authorize"):
        for body in (value, {"events": [value]}, {"events": [{**_event(), "usage": value}]}):
            answer = env.call("POST", path, "admin", json=body)
            assert answer.status_code < 500, (path, body, answer.text)


def test_gateway_bodies_it_cannot_read_are_4xx(env: Env, tmp_path: Path) -> None:
    for body in (b"{x", b'{"model": "gpt-4o", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                 b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xff"}]}'):  # fmt: skip
        answer = _post(env, "/v1/chat/completions", body, role="member")
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json()["error"]["message"]


def _chunks(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_oversized_bodies_get_413_naming_body_and_nothing_is_written(tmp_path: Path) -> None:
    with open_env(tmp_path, max_request_bytes=4096) as small:
        events = json.dumps({"events": [_event(event_id=f"big-{i}") for i in range(100)]}).encode()
        chat = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]}).encode()
        assert len(events) > 4096 and len(chat) > 4096
        for path, body, role in ((EVENTS, events, "admin"), ("/v1/chat/completions", chat, "member"),
                                 ("/api/v1/authorize", chat, "admin")):  # fmt: skip
            headers = {**small.auth(role), "content-type": "application/json"}
            declared = small.client.post(path, content=body, headers=headers)  # Content-Length: refused unread
            streamed = small.client.post(path, content=_chunks(body), headers=headers)  # chunked: counted
            for answer in (declared, streamed):
                error = _refused(answer, 413)
                assert error["type"] == "request_too_large" and error["field"] == "body" and "4096" in error["message"]
        assert small.meter.summary().requests == 0  # nothing recorded, nothing forwarded
        fits = json.dumps({"events": [_event(event_id="small")]}).encode()
        assert _post(small, EVENTS, fits).status_code == 200
        assert small.call("GET", "/api/v1/users", "admin").status_code == 200  # bodiless requests are untouched
