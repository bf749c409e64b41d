"""The gateway's response cache backends: memory:// and the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from spendgate.errors import ConfigurationError
from spendgate.server._gw_cache import CachedResponse
from spendgate.server._response_cache import (
    MemoryCacheBackend,
    RedisCacheBackend,
    decode_entry,
    encode_entry,
    open_response_cache,
)
from spendgate.testing import FakeClock
from spendgate.usage import Usage

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ENTRY = CachedResponse(
    body=b'{"id":"x","choices":[]}\xff',  # any bytes survive
    media_type="application/json",
    provider="openai",
    model="gpt-4o",
    usage=Usage(input_tokens=12, output_tokens=5, cache_read_tokens=2, audio_seconds=Decimal("1.5")),
    stored_at=T0,
)


def test_an_entry_survives_its_encoding() -> None:
    assert decode_entry(encode_entry(ENTRY)) == ENTRY


def test_memory_backend_expires_on_the_clock() -> None:
    clock = FakeClock(T0)
    cache = open_response_cache("memory://", clock, ttl=timedelta(seconds=60), max_entries=2)
    assert isinstance(cache, MemoryCacheBackend)

    async def scenario() -> None:
        await cache.put("k", ENTRY)
        assert await cache.get("k") == ENTRY
        clock.advance(seconds=61)
        assert await cache.get("k") is None
        await cache.aclose()

    asyncio.run(scenario())


def test_redis_backend_shares_answers_and_expires_them(redis_prefix: str) -> None:
    url = f"redis://127.0.0.1:6379/0?prefix={redis_prefix}"
    clock = FakeClock(T0)

    async def scenario() -> None:
        one = open_response_cache(url, clock, ttl=timedelta(milliseconds=300))
        two = open_response_cache(url, clock, ttl=timedelta(milliseconds=300))
        assert isinstance(one, RedisCacheBackend) and one.prefix == f"{redis_prefix}cache:"
        assert await two.get("k") is None
        await one.put("k", ENTRY)
        assert await two.get("k") == ENTRY  # another worker sees it
        await asyncio.sleep(0.5)
        assert await two.get("k") is None  # expired by Redis
        await one.aclose()
        await two.aclose()

    asyncio.run(scenario())


def test_an_unreadable_entry_is_a_miss(redis_prefix: str) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    client.set(f"{redis_prefix}cache:bad", b"not json")
    client.close()

    async def scenario() -> None:
        cache = open_response_cache(f"redis://127.0.0.1:6379/0?prefix={redis_prefix}", FakeClock(T0),
                                    ttl=timedelta(seconds=5))  # fmt: skip
        assert await cache.get("bad") is None
        await cache.aclose()

    asyncio.run(scenario())


def test_an_unreachable_redis_is_a_miss_and_a_skipped_store() -> None:
    async def scenario() -> None:
        cache = RedisCacheBackend("redis://127.0.0.1:1/0", ttl=timedelta(seconds=5), socket_timeout_s=0.2)
        assert await cache.get("k") is None
        await cache.put("k", ENTRY)  # logged, not raised
        await cache.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("url", "ttl", "message"),
    [("memcached://x", timedelta(seconds=1), "memory://"), ("memory://", timedelta(0), "positive TTL")],
)
def test_bad_configuration_is_refused(url: str, ttl: timedelta, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_response_cache(url, FakeClock(T0), ttl=ttl)
