"""Gateway edge cases: cross-provider downgrades, error events inside an upstream stream, a failing route,
and the remaining-budget header for every limit metric."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from spendgate import Meter, Settings, Usage
from spendgate.server import IdentityStore, User, create_app
from spendgate.server._gw_flow import Exchange
from spendgate.server._gw_reply import remaining_after
from spendgate.server._gw_upstream import UpstreamClient
from spendgate.settings import Upstream
from spendgate.testing import FakeUpstream
from test_gateway_support import HI, KEY_ENV, UPSTREAM_KEY, Gateway, Scripted, fake, upstreams

__all__ = ["fake"]

BIG = [{"role": "user", "content": "word " * 100}]
CHAINS = {"gpt-4o": ["deepseek/deepseek-chat"], "gpt-4.1": ["anthropic/claude-haiku-4-5"]}


@pytest.fixture
def chained(tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """A gateway with a second OpenAI-wire provider (deepseek) that gpt-4o downgrades to."""
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    ups = {
        **upstreams(fake),
        "deepseek": Upstream(base_url=fake.openai_base_url, api_key_env=KEY_ENV, models=["deepseek-"]),
    }
    gateway = Gateway(tmp_path, fake, upstreams=ups, downgrade_chains=CHAINS).start()
    gateway.meter.set_limit(scope="user", scope_id="dee", amount="0.001", level="adaptive")
    gateway.dee = gateway.user("dee", tier="free")  # type: ignore[attr-defined]
    try:
        yield gateway
    finally:
        gateway.stop()


def test_downgrade_to_another_provider_of_the_same_wire_goes_there(chained: Gateway) -> None:
    with chained.http(chained.dee) as http:  # type: ignore[attr-defined]
        answer = http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": BIG, "max_tokens": 100})
    assert answer.status_code == 200 and answer.headers["x-spendgate-provider"] == "deepseek"
    upstream = chained.fake.requests[-1]
    assert upstream.body["model"] == "deepseek-chat" and upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    event = chained.event(answer.headers["x-spendgate-reservation"])
    assert (event.provider, event.model_used) == ("deepseek", "deepseek-chat")


def test_downgrade_to_another_wire_is_refused_and_released(chained: Gateway) -> None:
    with chained.http(chained.dee) as http:  # type: ignore[attr-defined]
        answer = http.post("/v1/chat/completions", json={"model": "gpt-4.1", "messages": BIG, "max_tokens": 100})
    assert answer.status_code == 402 and chained.fake.requests == []
    assert "claude-haiku-4-5" in answer.json()["error"]["message"]
    event = chained.events()[-1]
    assert event.error_kind == "downgrade_refused" and not event.success and event.cost == 0
    assert all(status.reserved == 0 for status in chained.meter.budget_status(user_id="dee"))


def _sse(*events: str) -> bytes:
    return "".join(events).encode()


STREAMS = {
    "error_event": _sse(
        'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n',
        ": keep-alive\n\n",
        "data: [1, 2]\n\n",
        'data: {"error": {"type": "rate_limit_error", "message": "slow down"}}\n\n',
    ),
    "trailing": _sse('data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n', "data: partial"),
}


@pytest.fixture
def mocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Meter, dict[str, str]]]:
    """The app under TestClient, its upstream a mock transport answering with ``STREAMS[model]``."""
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    ups = {"openai": Upstream(base_url="http://mock/v1", api_key_env=KEY_ENV, models=["gpt-", "error", "trailing"])}
    meter = Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", upstreams=ups))
    ids = IdentityStore(meter.store.control, meter.clock)
    ids.put_user(User(user_id="ann"), actor="test", create=True)
    token = ids.create_key(role="member", user_id="ann", actor="test")[1]

    async def transport(method: str, url: str, headers: dict[str, str], content: bytes | None, timeout_s: float) -> Any:
        model = str(json.loads(content or b"{}")["model"])
        return Scripted(200, {"content-type": "text/event-stream"}, [STREAMS[model]])

    app = create_app(meter.settings, meter=meter)
    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.gateway.client = UpstreamClient(transport=transport)
        yield client, meter, {"Authorization": f"Bearer {token}"}
    meter.close()


def test_an_error_event_inside_the_upstream_stream_is_forwarded_and_recorded(
    mocked: tuple[TestClient, Meter, dict[str, str]],
) -> None:
    client, meter, auth = mocked
    body = {"model": "error_event", "messages": HI, "stream": True}
    answer = client.post("/v1/chat/completions", json=body, headers=auth)
    assert answer.status_code == 200 and "slow down" in answer.text and "keep-alive" in answer.text
    event = meter.store.get(answer.headers["x-spendgate-reservation"])
    assert event is not None and event.error_kind == "rate_limited" and not event.success
    assert event.usage.output_tokens == 1 and event.tokens_estimated  # "Hel" was produced


def test_a_stream_cut_mid_event_forwards_the_rest_and_settles(mocked: tuple[TestClient, Meter, dict[str, str]]) -> None:
    client, meter, auth = mocked
    answer = client.post("/v1/chat/completions", json={"model": "trailing", "messages": HI, "stream": True},
                         headers=auth)  # fmt: skip
    assert answer.text.endswith("data: partial")
    event = meter.store.get(answer.headers["x-spendgate-reservation"])
    assert event is not None and event.success and event.tokens_estimated and event.usage.output_tokens == 1


def test_a_bug_in_forwarding_still_releases_the_hold(
    mocked: tuple[TestClient, Meter, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, meter, auth = mocked

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Exchange, "_whole", broken)
    answer = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": HI}, headers=auth)
    assert answer.status_code == 500
    events = list(meter.events())
    assert len(events) == 1 and events[0].error_kind == "error" and not events[0].success


@pytest.mark.parametrize(
    ("metric", "left"),
    [("cost", None), ("input_tokens", 990), ("output_tokens", 995), ("total_tokens", 985), ("requests", 999)],
)
def test_remaining_after_a_call_in_the_binding_limits_metric(sqlite_url: str, metric: str, left: int | None) -> None:
    with Meter(sqlite_url) as meter:
        meter.set_limit(scope="user", scope_id="ann", metric=metric, amount=1000 if metric != "cost" else "1")
        auth = meter.authorize(provider="openai", model="gpt-4o", user_id="ann", input_tokens=10, max_tokens=5)
        usage = Usage(input_tokens=10, output_tokens=5)
        cost = meter.cost("openai", "gpt-4o", usage).total
        expected = 1 - cost if left is None else left
        assert remaining_after(auth, usage, cost) == expected
        if metric == "cost":
            assert remaining_after(auth, usage, None) is None  # unpriced: unknown
