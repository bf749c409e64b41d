"""Helpers shared by the gateway tests (``tests/test_gateway_*.py``), and tests of the gateway's pure parts.

`Gateway` runs the real app under uvicorn on 127.0.0.1 (a free port, in a thread) in front of a
`FakeUpstream`, so the official OpenAI and Anthropic SDKs stream through it exactly as in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx
import openai
import pytest
import uvicorn

from spendgate import Meter, Settings, Usage
from spendgate.errors import ConfigurationError
from spendgate.ledger import UsageEvent
from spendgate.server import IdentityStore, User, create_app
from spendgate.server._errors import ApiError
from spendgate.server._gw_cache import CachedResponse, ResponseCache
from spendgate.server._gw_request import cache_key, check_chat, check_embeddings, check_messages, prompt_hash
from spendgate.server._gw_routing import resolve, upstream_headers, upstream_url
from spendgate.server._gw_sse import SseSplitter, error_event, event_data
from spendgate.server._gw_upstream import UpstreamFailure, kind_of_status
from spendgate.settings import Upstream
from spendgate.testing import FakeClock, FakeUpstream

MASTER = "master-key-for-gateway-tests-0123"
UPSTREAM_KEY = "sk-upstream-secret"
KEY_ENV = "GW_TEST_UPSTREAM_KEY"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HI: Any = [{"role": "user", "content": "Hi there, how are you today?"}]
T = TypeVar("T")


def upstreams(fake: FakeUpstream, timeout_s: float = 5.0) -> dict[str, Upstream]:
    return {
        "openai": Upstream(base_url=fake.openai_base_url, api_key_env=KEY_ENV, models=["gpt-", "text-embedding-"],
                           timeout_s=timeout_s),
        "anthropic": Upstream(base_url=fake.anthropic_base_url, api_key_env=KEY_ENV, wire="anthropic",
                              models=["claude"], timeout_s=timeout_s),
    }  # fmt: skip


#: How the gateway runs the meter: on the event loop (memory counters + a write-ahead journal, the default
#: of ``spendgate serve``), or in worker threads (a meter that does I/O: no journal here).
MODES = ("inline", "threads")


class Gateway:
    """The service under uvicorn in a thread, in front of ``fake``; ``key`` is member ann's API key.

    ``mode`` is one of `MODES`.
    """

    def __init__(self, tmp_path: Path, fake: FakeUpstream, *, mode: str = "inline", **settings: Any) -> None:
        assert mode in MODES, mode
        self.fake = fake
        self.clock = FakeClock(T0)
        if mode == "inline":
            settings.setdefault("journal_dir", tmp_path / "journal")
        self.settings = Settings(database_url=f"sqlite:///{tmp_path / 'gw.db'}", master_key=MASTER,  # type: ignore[arg-type]
                                 upstreams=settings.pop("upstreams", None) or upstreams(fake), **settings)  # fmt: skip
        self.meter = Meter(settings=self.settings, clock=self.clock)
        self.ids = IdentityStore(self.meter.store.control, self.clock)
        self.ids.put_user(User(user_id="ann", team_id="ml"), actor="test", create=True)
        self.api_key, self.key = self.ids.create_key(role="member", user_id="ann", team_id="ml", actor="test")
        self.app = create_app(self.settings, meter=self.meter)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.clients: list[Any] = []

    def start(self) -> Gateway:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        inline = self.app.state.gateway.inline_meter
        assert inline is (self.mode == "inline"), f"the gateway runs its meter {'inline' if inline else 'in threads'}"
        return self

    @property
    def mode(self) -> str:
        return "threads" if self.settings.journal_dir is None else "inline"

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.meter.close()

    def user(self, user_id: str, tier: str | None = None) -> str:
        """A member key of a new user ``user_id`` (of ``tier``)."""
        self.ids.put_user(User(user_id=user_id, tier=tier), actor="test", create=True)
        return self.ids.create_key(role="member", user_id=user_id, actor="test")[1]

    def openai(self, key: str | None = None, **kwargs: Any) -> openai.OpenAI:
        return self._keep(openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, **kwargs))

    def anthropic(self, key: str | None = None, **kwargs: Any) -> anthropic.Anthropic:
        return self._keep(anthropic.Anthropic(base_url=self.url, api_key=key or self.key, max_retries=0, **kwargs))

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {} if key == "" else {"Authorization": f"Bearer {key or self.key}"}
        return self._keep(httpx.Client(base_url=self.url, headers=headers, timeout=10))

    def _keep(self, client: T) -> T:
        self.clients.append(client)
        return client

    def find(self, event_id: str) -> UsageEvent | None:
        """The event in the ledger (journaled settles are written there first), or None."""
        self.meter.flush()
        return self.meter.store.get(event_id)

    def event(self, event_id: str) -> UsageEvent:
        found = self.find(event_id)
        assert found is not None, f"no event {event_id}"
        return found

    def events(self, **filters: Any) -> list[UsageEvent]:
        return list(self.meter.events(**filters))

    def cost(self, provider: str, model: str, usage: Usage) -> Decimal:
        return self.meter.cost(provider, model, usage).total


def eventually(probe: Callable[[], T | None], timeout_s: float = 5.0) -> T:
    """``probe()``'s first truthy answer (for what lands in the ledger after a response has ended)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Scripted:
    """An upstream answer for `UpstreamClient`'s ``transport``: ``chunks`` in order, then ``error`` if given."""

    def __init__(self, status: int, headers: dict[str, str], chunks: list[bytes], error: Exception | None = None):
        self.status_code = status
        self.headers = httpx.Headers(headers)  # case-insensitive, as an upstream's headers are
        self.chunks = chunks
        self.error = error
        self.closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.error is not None:
            raise self.error

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as upstream:
        yield upstream


@pytest.fixture
def gw(tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """A gateway whose meter runs on the event loop (`Gateway` ``mode="inline"``)."""
    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    gateway = Gateway(tmp_path, fake).start()
    try:
        yield gateway
    finally:
        gateway.stop()


# -- the pure parts -------------------------------------------------------------------------------------


def test_routing_by_longest_prefix_or_explicit_provider() -> None:
    ups = {
        "openai": Upstream(base_url="http://o/v1", models=["gpt-"]),
        "mini": Upstream(base_url="http://m/v1/", models=["gpt-4o-mini"]),
        "anthropic": Upstream(base_url="http://a", wire="anthropic", models=["claude"]),
    }
    assert resolve(ups, "gpt-4o").provider == "openai"
    assert resolve(ups, "gpt-4o-mini-2024").provider == "mini"
    explicit = resolve(ups, "anthropic/claude-x")
    assert (explicit.provider, explicit.model, explicit.wire) == ("anthropic", "claude-x", "anthropic")
    assert resolve(ups, "claude/v2").model == "claude/v2"  # not a provider: routed by prefix as a whole
    with pytest.raises(ApiError) as unknown:
        resolve(ups, "llama-3")
    assert unknown.value.status == 400 and unknown.value.body["error"]["field"] == "model"
    assert upstream_url(ups["mini"], "/models") == "http://m/v1/models"
    assert upstream_url(ups["anthropic"], "/messages") == "http://a/v1/messages"


def test_upstream_headers_take_the_key_from_the_environment_never_the_client() -> None:
    up = Upstream(base_url="http://o/v1", api_key_env="K")
    client = {"authorization": "Bearer sg-client", "anthropic-beta": "x"}
    assert upstream_headers("openai", up, client, {"K": "sk-1"})["authorization"] == "Bearer sk-1"
    ant = Upstream(base_url="http://a", api_key_env="K", wire="anthropic")
    headers = upstream_headers("anthropic", ant, client, {"K": "sk-2"})
    assert headers["x-api-key"] == "sk-2" and headers["anthropic-beta"] == "x" and "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    local = upstream_headers("local", Upstream(base_url="http://l/v1"), client, {})
    assert "authorization" not in local and "x-api-key" not in local
    with pytest.raises(ApiError) as missing:
        upstream_headers("openai", up, client, {})
    assert missing.value.status == 502 and "K" in missing.value.body["error"]["message"]


def test_request_checks_name_the_field() -> None:
    cases: list[tuple[Callable[[dict[str, Any]], None], dict[str, Any], str]] = [
        (check_chat, {"messages": HI}, "model"),
        (check_chat, {"model": 3, "messages": HI}, "model"),
        (check_chat, {"model": "gpt-4o"}, "messages"),
        (check_chat, {"model": "gpt-4o", "messages": []}, "messages"),
        (check_chat, {"model": "gpt-4o", "messages": ["hi"]}, "messages[0]"),
        (check_chat, {"model": "gpt-4o", "messages": [{"content": "x"}]}, "messages[0].role"),
        (check_chat, {"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (check_chat, {"model": "gpt-4o", "messages": HI, "max_tokens": "10"}, "max_tokens"),
        (check_chat, {"model": "gpt-4o", "messages": HI, "n": 0}, "n"),
        (check_chat, {"model": "gpt-4o", "messages": HI, "stream": "yes"}, "stream"),
        (check_chat, {"model": "gpt-4o", "messages": HI, "tools": {}}, "tools"),
        (check_messages, {"model": "claude-x", "messages": HI}, "max_tokens"),
        (check_messages, {"model": "claude-x", "messages": HI, "max_tokens": 5, "system": 1}, "system"),
        (check_embeddings, {"model": "text-embedding-3-small"}, "input"),
        (check_embeddings, {"model": "text-embedding-3-small", "input": [1, "a"]}, "input"),
    ]
    for check, body, field in cases:
        with pytest.raises(ApiError) as bad:
            check(body)
        assert bad.value.body["error"]["field"] == field, body
    check_embeddings({"model": "m", "input": [[1, 2], [3]]})
    check_messages({"model": "claude-x", "messages": HI, "max_tokens": 5, "system": "be brief"})


def test_cache_key_ignores_delivery_options_and_prompt_hash_hides_the_prompt() -> None:
    base = {"model": "gpt-4o", "messages": HI, "temperature": 0}
    assert cache_key("chat", base) == cache_key("chat", {**base, "stream": False, "user": "bob"})
    assert cache_key("chat", base) != cache_key("chat", {**base, "temperature": 1})
    assert cache_key("chat", base) != cache_key("embeddings", base)
    digest = prompt_hash(base)
    assert len(digest) == 64 and "Hi" not in digest
    assert digest == prompt_hash({"messages": HI, "model": "other"})  # the prompt only
    assert prompt_hash({"input": "a"}) != prompt_hash({"input": "b"})


def test_response_cache_is_lru_with_a_ttl() -> None:
    clock = FakeClock(T0)
    cache = ResponseCache(clock, max_entries=2, ttl=timedelta(minutes=5))

    def entry(body: bytes) -> CachedResponse:
        return CachedResponse(body, "application/json", "openai", "gpt-4o", Usage(input_tokens=1), clock.now())

    cache.put("a", entry(b"1"))
    cache.put("b", entry(b"2"))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", entry(b"3"))
    assert cache.get("b") is None and len(cache) == 2
    clock.advance(minutes=5)
    assert cache.get("a") is None and len(cache) == 1
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ConfigurationError):
        ResponseCache(clock, max_entries=0)
    with pytest.raises(ConfigurationError):
        ResponseCache(clock, ttl=timedelta(0))


def test_sse_splitter_keeps_events_whole() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b'data: {"a"') == []
    events = splitter.feed(b": 1}\n\nevent: x\r\ndata: 2\r\n\r\ndata: [DO")
    assert events == [b'data: {"a": 1}\n\n', b"event: x\r\ndata: 2\r\n\r\n"]
    assert splitter.rest() == b"data: [DO" and splitter.rest() == b""
    assert event_data(b"event: ping\ndata: a\ndata: b\n\n") == ("ping", "a\nb")
    assert event_data(b": comment\n\n") == (None, None)
    assert error_event("anthropic", {"type": "x"}).startswith(b'event: error\ndata: {"type": "error"')
    assert error_event("openai", {"type": "x"}) == b'data: {"error": {"type": "x"}}\n\n'


def test_failure_kinds_and_error_objects() -> None:
    assert [kind_of_status(s) for s in (400, 404, 429, 500, 529)] == [
        "upstream_4xx", "upstream_4xx", "rate_limited", "upstream_5xx", "upstream_5xx"]  # fmt: skip
    assert UpstreamFailure("upstream_5xx", 500, b'{"error": {"type": "boom"}}').error() == {"type": "boom"}
    assert UpstreamFailure("upstream_5xx", 500, b"<html>oops").error()["message"] == "<html>oops"
