"""Budgets at the gateway: refusals before forwarding (402/429), DOWNGRADE, rate limits, the response cache."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from spendgate import Usage
from spendgate.testing import FakeUpstream
from test_gateway_support import HI, KEY_ENV, UPSTREAM_KEY, Gateway, fake, gw

__all__ = ["fake", "gw"]

CACHE_ON = {"x-spendgate-cache": "on"}


def chat(model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HI, **extra}


def test_an_exhausted_hard_limit_answers_402_without_calling_the_upstream(gw: Gateway) -> None:
    limit = gw.meter.set_limit(scope="user", scope_id="ann", amount="0.0001")
    client = gw.openai()
    first = client.chat.completions.with_raw_response.create(**chat(max_tokens=5))
    spent = Decimal(first.headers["x-spendgate-cost"])
    assert spent > 0 and first.headers["x-spendgate-budget-limit"] == limit.id
    calls = len(gw.fake.requests)
    with gw.http() as http:
        denied = http.post("/v1/chat/completions", json=chat(max_tokens=5))
    assert denied.status_code == 402 and len(gw.fake.requests) == calls  # never forwarded
    error = denied.json()["error"]
    assert error["type"] == "budget_exceeded" and error["action"] == "deny" and error["message"]
    assert error["limit"]["id"] == limit.id and Decimal(error["spent"]) == spent
    assert Decimal(error["remaining"]) == Decimal("0.0001") - spent and error["resets_at"].startswith("2026-03-11")
    assert int(denied.headers["retry-after"]) == 12 * 3600  # T0 is noon: the day window resets at midnight UTC
    with pytest.raises(openai.APIStatusError) as sdk:
        client.chat.completions.create(**chat(max_tokens=5))
    assert sdk.value.status_code == 402 and len(gw.fake.requests) == calls


def test_downgrade_forwards_the_cheaper_model_and_says_so(gw: Gateway) -> None:
    key = gw.user("dee", tier="free")
    gw.meter.set_limit(scope="user", scope_id="dee", amount="0.001", level="adaptive")
    big: Any = [{"role": "user", "content": "word " * 100}]
    raw = gw.openai(key).chat.completions.with_raw_response.create(model="gpt-4o", messages=big, max_tokens=100)
    used = raw.headers["x-spendgate-model-used"]
    assert used == "gpt-4o-mini" and raw.headers["x-spendgate-action"] == "downgrade"
    assert gw.fake.requests[-1].body["model"] == "gpt-4o-mini"
    reply = raw.parse()
    assert reply.usage is not None
    event = gw.event(raw.headers["x-spendgate-reservation"])
    assert (event.model, event.model_used, event.action) == ("gpt-4o", "gpt-4o-mini", "downgrade")
    usage = Usage(input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens)
    assert event.cost == gw.cost("openai", "gpt-4o-mini", usage)


def test_rate_limit_answers_429_with_retry_after(gw: Gateway) -> None:
    gw.meter.set_rate_limit("key", gw.api_key.key_id, rpm=1)
    with gw.http() as http:
        assert http.post("/v1/chat/completions", json=chat()).status_code == 200
        calls = len(gw.fake.requests)
        throttled = http.post("/v1/chat/completions", json=chat())
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert throttled.json()["error"]["type"] == "rate_limited" and len(gw.fake.requests) == calls


def test_emergency_stop_answers_429_until_cleared(gw: Gateway) -> None:
    gw.meter.emergency_stop(reason="runaway agent", cooldown=timedelta(minutes=5))
    with gw.http() as http:
        stopped = http.post("/v1/messages", json={**chat("claude-haiku-4-5"), "max_tokens": 10})
        assert stopped.status_code == 429 and stopped.headers["retry-after"] == "300"
        body = stopped.json()
        assert body["type"] == "error" and body["error"]["type"] == "emergency_stop"  # Anthropic's shape
        assert "runaway agent" in body["error"]["message"] and gw.fake.requests == []
        gw.meter.clear_emergency_stop()
        assert http.post("/v1/messages", json={**chat("claude-haiku-4-5"), "max_tokens": 10}).status_code == 200


def test_cache_hit_skips_the_upstream_costs_nothing_and_records_the_savings(gw: Gateway) -> None:
    with gw.http() as http:
        first = http.post("/v1/chat/completions", json=chat(temperature=0), headers=CACHE_ON)
        second = http.post("/v1/chat/completions", json=chat(temperature=0, user="bob"), headers=CACHE_ON)
        uncached = http.post("/v1/chat/completions", json=chat(temperature=0))
    assert first.headers["x-spendgate-cache"] == "miss" and second.headers["x-spendgate-cache"] == "hit"
    assert len(gw.fake.requests) == 2  # the hit never reached the upstream; the opted-out call did
    assert second.content == first.content and second.headers["x-spendgate-cost"] == "0"
    original = gw.event(first.headers["x-spendgate-reservation"])
    hit = gw.event(second.headers["x-spendgate-reservation"])
    assert hit.cached and hit.cost == 0 and hit.usage.total_tokens == 0
    assert original.cost is not None and hit.cache_savings == original.cost > 0
    assert Decimal(second.headers["x-spendgate-cache-savings"]) == original.cost
    assert not gw.event(uncached.headers["x-spendgate-reservation"]).cached


def _exhaust_tier_budget(gw: Gateway, user: str) -> None:
    """An adaptive limit of ``user`` spent past 100 % with its grace period over (see test_meter_budgets_more)."""
    m = gw.meter
    limit = m.set_limit(scope="user", scope_id=user, amount="0.01", level="adaptive")
    window = limit.window_at(m.clock.now())
    assert window is not None
    m.store.control.record_crossing(limit.id, window.key, "exceeded", m.clock.now() - timedelta(hours=7), {})
    m.budget_status(user_id=user, tier="free")  # initializes the counter from the ledger
    key = m.governor.key(limit, window)
    spent = m.counters.read([key], now=m.clock.now().timestamp())[key].spent
    assert m.counters.compare_and_set(key, spent, 10_500_000_000)  # $0.0105: 105 % of the limit


def test_cache_only_decision_is_served_from_the_cache(gw: Gateway) -> None:
    key = gw.user("cy", tier="free")
    with gw.http(key) as http:
        warm = http.post("/v1/chat/completions", json=chat("gpt-4o-mini"), headers=CACHE_ON)
        assert warm.status_code == 200
        _exhaust_tier_budget(gw, "cy")
        calls = len(gw.fake.requests)
        served = http.post("/v1/chat/completions", json=chat("gpt-4o-mini"), headers=CACHE_ON)
        other = http.post("/v1/chat/completions", json=chat("gpt-4o-mini", temperature=1), headers=CACHE_ON)
    assert served.status_code == 200 and served.headers["x-spendgate-action"] == "cache_only"
    assert served.content == warm.content and len(gw.fake.requests) == calls
    event = next(e for e in gw.events(user_id="cy") if e.cached)
    assert event.action == "cache_only" and event.cost == 0 and event.cache_savings
    assert other.status_code == 402 and other.json()["error"]["action"] == "deny"  # nothing cached for it


def test_a_key_that_opts_in_is_cached_without_the_header_and_a_request_can_opt_out(gw: Gateway) -> None:
    _, token = gw.ids.create_key(role="member", user_id="ann", team_id="ml", actor="test", cache=True)
    with gw.http(token) as http:
        first = http.post("/v1/chat/completions", json=chat(temperature=0))
        second = http.post("/v1/chat/completions", json=chat(temperature=0))
        skipped = http.post("/v1/chat/completions", json=chat(temperature=0), headers={"x-spendgate-cache": "off"})
    assert first.headers["x-spendgate-cache"] == "miss" and second.headers["x-spendgate-cache"] == "hit"
    assert "x-spendgate-cache" not in skipped.headers and len(gw.fake.requests) == 2


def test_tags_come_from_the_key_and_the_x_spendgate_tags_header(gw: Gateway) -> None:
    _, token = gw.ids.create_key(role="member", user_id="ann", actor="test", tags={"app": "bot", "env": "prod"})
    with gw.http(token) as http:
        tagged = http.post("/v1/chat/completions", json=chat(), headers={"x-spendgate-tags": "env=dev, feature=search"})
        plain = http.post("/v1/chat/completions", json=chat())
        bad = http.post("/v1/chat/completions", json=chat(), headers={"x-spendgate-tags": "feature"})
    event = gw.event(tagged.headers["x-spendgate-reservation"])
    assert dict(event.tags) == {"app": "bot", "env": "dev", "feature": "search"}  # the request's own win
    assert dict(gw.event(plain.headers["x-spendgate-reservation"]).tags) == {"app": "bot", "env": "prod"}
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "x-spendgate-tags"
    assert len(gw.fake.requests) == 2  # the malformed one never reached the upstream


def test_a_redis_response_cache_is_shared_by_gateways(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch, redis_prefix: str
) -> None:
    import redis

    monkeypatch.setenv(KEY_ENV, UPSTREAM_KEY)
    url = f"redis://127.0.0.1:6379/0?prefix={redis_prefix}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = Gateway(tmp_path / "a", fake, response_cache_url=url).start()
    two = Gateway(tmp_path / "b", fake, response_cache_url=url).start()
    try:
        with one.http() as a, two.http() as b:
            first = a.post("/v1/chat/completions", json=chat(temperature=0), headers=CACHE_ON)
            second = b.post("/v1/chat/completions", json=chat(temperature=0), headers=CACHE_ON)
        assert first.headers["x-spendgate-cache"] == "miss" and second.headers["x-spendgate-cache"] == "hit"
        assert second.content == first.content and len(fake.requests) == 1
        assert two.event(second.headers["x-spendgate-reservation"]).cached
        client = redis.Redis(host="127.0.0.1", port=6379)
        assert list(client.scan_iter(match=f"{redis_prefix}cache:*"))  # the answer lives in Redis
        client.close()
    finally:
        one.stop()
        two.stop()
