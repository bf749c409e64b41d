"""The gateway's hot path: its routes answered ahead of FastAPI's routing, keys answered from the cache, the
upstream connection pool and its failures, and the options `spendgate serve` runs uvicorn with."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from spendgate import Meter, Settings
from spendgate.server import IdentityStore, User, create_app
from spendgate.server import _app as app_module
from spendgate.server import _gateway as gateway_module
from spendgate.server._deps import Services, gateway_caller
from spendgate.server._errors import ApiError
from spendgate.server._gw_asgi import ROUTES, _route_path, answer
from spendgate.server._gw_upstream import TRANSPORT_ERRORS, UpstreamClient, UpstreamFailure, failure_from_exception
from spendgate.settings import Upstream
from spendgate.testing import FakeClock, FakeReply, FakeUpstream
from test_gateway_support import HI, KEY_ENV, MASTER, T0, UPSTREAM_KEY, Scripted, fake

__all__ = ["fake"]

REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


class Service:
    """The app under TestClient (meter on the event loop: a journal), upstream answers scripted."""

    def __init__(self, tmp_path: Path, *, fast_path: bool = True) -> None:
        ups = {"openai": Upstream(base_url="http://scripted/v1", api_key_env=KEY_ENV, models=["gpt-"])}
        self.settings = Settings(database_url=f"sqlite:///{tmp_path / 's.db'}", upstreams=ups, master_key=MASTER,  # type: ignore[arg-type]
                                 journal_dir=tmp_path / "journal")  # fmt: skip
        self.meter = Meter(settings=self.settings)
        self.ids = IdentityStore(self.meter.store.control, self.meter.clock)
        self.ids.put_user(User(user_id="ann"), actor="test", create=True)
        self.token = self.ids.create_key(role="member", user_id="ann", actor="test")[1]
        self.sent: list[dict[str, Any]] = []
        self.app = create_app(self.settings, meter=self.meter)
        if not fast_path:
            assert self.app.fast_routes == ROUTES
            self.app.fast_routes = {}

    async def transport(self, method: str, url: str, headers: dict[str, str], content: bytes | None,
                        timeout_s: float) -> Scripted:  # fmt: skip
        self.sent.append({"url": url, "headers": headers, "body": content})
        return Scripted(
            200, {"content-type": "application/json", "x-request-id": "req-1"}, [json.dumps(REPLY).encode()]
        )

    def post(self, client: TestClient, body: bytes, token: str | None = None) -> Any:
        headers = {"authorization": f"Bearer {token or self.token}", "content-type": "application/json"}
        return client.post("/v1/chat/completions", content=body, headers=headers)


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    svc = Service(tmp_path)
    yield svc
    svc.meter.close()


@contextlib.contextmanager
def started(service: Service) -> Iterator[TestClient]:
    with TestClient(service.app, raise_server_exceptions=False) as client:
        service.app.state.gateway.client = UpstreamClient(transport=service.transport)
        yield client


def test_the_fast_path_and_the_fastapi_route_answer_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    run = gateway_module._run
    answers = []
    for fast_path in (True, False):
        (tmp_path / str(fast_path)).mkdir()
        service = Service(tmp_path / str(fast_path), fast_path=fast_path)

        async def via_fastapi(*args: Any, fast: bool = fast_path) -> Any:
            assert not fast, "FastAPI's route was called although the fast path answers the route"
            return await run(*args)

        monkeypatch.setattr(gateway_module, "_run", via_fastapi)
        try:
            with started(service) as client:
                assert service.app.state.gateway.inline_meter
                raw = json.dumps({"model": "gpt-4o-mini", "messages": HI, "max_tokens": 5}, indent=1).encode()
                answer = service.post(client, raw)
                assert service.sent[-1]["body"] == raw  # nothing changed: the client's own bytes go upstream
                renamed = service.post(client, json.dumps({"model": "openai/gpt-4o-mini", "messages": HI}).encode())
                assert json.loads(service.sent[-1]["body"])["model"] == "gpt-4o-mini"
                assert renamed.status_code == 200
            answers.append(answer)
            service.meter.flush()  # journaled settles reach the ledger
            event = service.meter.store.get(answer.headers["x-spendgate-reservation"])
            assert event is not None and event.usage.output_tokens == 3 and event.request_bytes == len(raw)
            assert event.endpoint == "/v1/chat/completions" and event.client_ip == "testclient"
        finally:
            service.meter.close()
    fast, routed = answers
    assert fast.status_code == routed.status_code == 200 and fast.json() == routed.json() == REPLY
    spendgate = {name for name in fast.headers if name.startswith("x-spendgate-")}
    assert spendgate == {name for name in routed.headers if name.startswith("x-spendgate-")}
    assert fast.headers["x-spendgate-cost"] == routed.headers["x-spendgate-cost"] != "unknown"
    assert fast.headers["x-request-id"] == "req-1"


def test_the_fast_path_answers_errors_with_the_apps_handlers(service: Service) -> None:
    with started(service) as client:
        unauthorized = service.post(client, b"{}", token="sk-sg-nope-nope")
        assert unauthorized.status_code == 401 and unauthorized.json()["error"]["type"] == "authentication_error"
        missing = client.post("/v1/chat/completions", content=b"{}")
        assert missing.status_code == 401 and "API key is required" in missing.json()["error"]["message"]
        invalid = service.post(client, b'{"model": "gpt-4o"}', token=MASTER)
        assert invalid.status_code == 400 and invalid.json()["error"]["field"] == "messages"
        assert client.get("/v1/chat/completions").status_code == 405  # not POST: FastAPI answers
    assert service.sent == []


@pytest.mark.parametrize("fast_path", [True, False])
def test_a_bug_is_answered_500_on_either_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_path: bool) -> None:
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    service = Service(tmp_path, fast_path=fast_path)

    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway_module, "exchange", broken)
    monkeypatch.setattr("spendgate.server._gw_asgi.exchange", broken)
    try:
        with started(service) as client:
            answer_ = service.post(client, json.dumps({"model": "gpt-4o-mini", "messages": HI}).encode())
        assert (answer_.status_code, answer_.text) == (500, "Internal Server Error")
    finally:
        service.meter.close()


def test_with_fastapis_telemetry_on_gateway_calls_take_fastapis_path(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed: list[Any] = []
    run = gateway_module._run

    async def via_fastapi(*args: Any) -> Any:
        routed.append(args)
        return await run(*args)

    monkeypatch.setattr(gateway_module, "_run", via_fastapi)
    monkeypatch.setattr(service.app._native_telemetry, "enabled", lambda: True)
    with started(service) as client:
        answered = service.post(client, json.dumps({"model": "gpt-4o-mini", "messages": HI}).encode())
    assert answered.status_code == 200 and len(routed) == 1


def test_the_fast_path_answers_within_the_apps_root_path(service: Service) -> None:
    service.app.root_path = "/gw"
    with started(service) as client:
        headers = {"authorization": f"Bearer {service.token}"}
        answered = client.post("/gw/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": HI},
                               headers=headers)  # fmt: skip
    assert answered.status_code == 200 and len(service.sent) == 1


def test_routes_are_matched_within_the_root_path() -> None:
    assert _route_path({"path": "/gw/v1/messages", "root_path": "/gw"}) == "/v1/messages"
    assert _route_path({"path": "/v1/messages", "root_path": ""}) == "/v1/messages"
    assert _route_path({"path": "/v1/messages"}) == "/v1/messages"


def test_a_client_gone_before_its_body_arrived_gets_nothing(service: Service) -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    with started(service):
        scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "root_path": "", "query_string": b"",
                 "headers": [(b"authorization", f"Bearer {MASTER}".encode())], "app": service.app}  # fmt: skip
        anyio.run(answer, service.app, ROUTES["/v1/chat/completions"], scope, receive, send)
    assert sent == [] and service.sent == []


def test_keys_are_answered_from_the_identity_cache_until_it_lapses(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with Meter(f"sqlite:///{tmp_path / 'k.db'}", clock=clock) as meter:
        ids = IdentityStore(meter.store.control, clock)
        ids.put_user(User(user_id="ann"), actor="test", create=True)
        _, token = ids.create_key(role="member", user_id="ann", actor="test", expires_at=T0 + timedelta(minutes=1))
        svc = Services(settings=Settings(database_url="sqlite://"), meter=meter, identity=ids)
        looked_up: list[str] = []
        verify = ids.verify

        def counting(token: str) -> Any:
            looked_up.append(token)
            return verify(token)

        ids.verify = counting  # type: ignore[method-assign]

        def call(token: str) -> Any:
            request = Request({"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())]})
            return anyio.run(gateway_caller, request, svc)

        assert ids.cached(token) is None
        assert call(token).user_id == "ann" and len(looked_up) == 1
        assert call(token).user_id == "ann" and len(looked_up) == 1  # from the cache, on the event loop
        clock.advance(minutes=2)  # the key expired: the cache does not answer for it
        assert ids.cached(token) is None
        with pytest.raises(ApiError) as expired:
            call(token)
        assert expired.value.status == 401 and len(looked_up) == 2
        with pytest.raises(ApiError):
            call("not-a-spendgate-key")  # answered without a lookup
        assert len(looked_up) == 2


def test_uvicorn_runs_on_uvloop_and_httptools_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert app_module.uvicorn_options() == {"loop": "uvloop", "http": "httptools"}  # the server extra has both
    monkeypatch.setattr(app_module, "_installed", lambda module: False)
    assert app_module.uvicorn_options() == {"loop": "asyncio", "http": "h11"}


def test_the_connection_pool_reads_answers_and_maps_failures(fake: FakeUpstream) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1/models"
    body = json.dumps({"model": "gpt-4o-mini", "messages": HI}).encode()
    headers = {"authorization": f"Bearer {UPSTREAM_KEY}", "content-type": "application/json"}
    url = f"{fake.openai_base_url}/chat/completions"

    async def scenario() -> None:
        client = UpstreamClient()
        await client.aclose()  # never opened: nothing to close
        try:
            whole = await client.fetch("POST", url, headers=headers, content=body, timeout_s=5)
            assert whole.status_code == 200 and json.loads(whole.content)["object"] == "chat.completion"
            assert whole.headers["Content-Type"] == "application/json"  # case-insensitive
            stream = await client.open("POST", url, headers=headers, content=body, timeout_s=5)
            await stream.aclose()  # before its end: the connection is closed, not reused
            await stream.aclose()
            fake.script(FakeReply(status=429, retry_after=3, error="slow down"))
            with pytest.raises(UpstreamFailure) as limited:
                await client.fetch("POST", url, headers=headers, content=body, timeout_s=5)
            assert (limited.value.kind, limited.value.status, limited.value.headers["retry-after"]) == (
                "rate_limited", 429, "3")  # fmt: skip
            assert "slow down" in limited.value.error()["message"]
            fake.script(FakeReply(latency_s=1.0))
            with pytest.raises(TRANSPORT_ERRORS) as slow:
                await client.fetch("POST", url, headers=headers, content=body, timeout_s=0.2)
            assert failure_from_exception(slow.value, "openai", "openai").status == 504
            with pytest.raises(TRANSPORT_ERRORS) as refused:
                await client.fetch("GET", dead, headers=headers, content=None, timeout_s=5)
            failure = failure_from_exception(refused.value, "anthropic", "local")
            assert (failure.kind, failure.status) == ("connection", 502)
            assert json.loads(failure.body)["type"] == "error"  # in the Anthropic wire's shape
        finally:
            await client.aclose()

    anyio.run(scenario)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (TimeoutError(), "timeout"),
        (ConnectionRefusedError(), "connection"),
        (ConnectionError("the upstream sent a response that is not valid HTTP/1.1"), "connection"),
        (ConnectionResetError(), "connection"),
        (ValueError("header 'x' contains a line break"), "connection"),
        (json.JSONDecodeError("x", "doc", 0), "bad_response"),
    ],
)
def test_transport_failures_map_to_their_kinds(exc: BaseException, kind: str) -> None:
    assert isinstance(exc, TRANSPORT_ERRORS)
    assert failure_from_exception(exc, "openai", "openai").kind == kind
