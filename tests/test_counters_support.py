"""Helpers shared by the counters tests (``tests/test_counters_*.py``), and tests of the helpers' policy.

Redis is the real server on 127.0.0.1:6379 (``SPENDGATE_TEST_REDIS`` overrides the URL). db 0 is shared
with other suites, so every store gets a random key prefix and :func:`drop_prefix` deletes exactly those
keys afterwards; nothing here ever flushes a database. An unreachable server skips the Redis cases,
except under CI (``CI=true``), where it fails. Set ``SPENDGATE_TEST_REDIS_CLUSTER`` (for example
``redis+cluster://127.0.0.1:7101``) to run the contract suite against a Redis Cluster as well.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from redis.cluster import RedisCluster

from spendgate.counters import BaseCounterStore, MemoryCounterStore, RedisCounterStore, open_counters

REDIS_URL = os.environ.get("SPENDGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
CLUSTER_URL = os.environ.get("SPENDGATE_TEST_REDIS_CLUSTER", "")
#: 2100-01-01 UTC. Redis expires keys by its own clock, so test keys carry expiries after this instant.
T0 = 4_102_444_800.0
BACKENDS = ["memory", "redis", *(["redis-cluster"] if CLUSTER_URL else [])]


def redis_or_skip(url: str = REDIS_URL) -> redis.Redis:
    """A raw client for the test server; skips (or, under CI, fails) when the server is unreachable."""
    client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        client.close()
        message = f"Redis not reachable on 127.0.0.1:6379: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: a missing service is a failure)")
        pytest.skip(message)
    return client


def new_prefix() -> str:
    return f"sgtest-{uuid.uuid4().hex[:12]}:"


def drop_prefix(client: redis.Redis | RedisCluster, prefix: str) -> int:
    """Delete every key under ``prefix`` (and nothing else); returns how many there were."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    return len(keys)


@contextmanager
def open_backend(name: str, prefix: str | None = None) -> Iterator[BaseCounterStore]:
    """A fresh store of backend ``name``; for Redis, under its own prefix, deleted on exit."""
    if name == "memory":
        store = MemoryCounterStore()
        try:
            yield store
        finally:
            store.close()
        return
    raw: redis.Redis | RedisCluster
    if name == "redis-cluster":
        raw = RedisCluster.from_url(CLUSTER_URL.replace("+cluster", ""), decode_responses=True)
    else:
        raw = redis_or_skip()
    prefix = prefix or new_prefix()
    opened = open_counters(f"{CLUSTER_URL if name == 'redis-cluster' else REDIS_URL}?prefix={prefix}")
    assert isinstance(opened, RedisCounterStore)
    try:
        yield opened
    finally:
        opened.close()
        drop_prefix(raw, prefix)
        raw.close()


def test_drop_prefix_deletes_only_its_own_keys() -> None:
    raw = redis_or_skip()
    mine, other = new_prefix(), new_prefix()
    try:
        raw.set(f"{mine}a", 1)
        raw.set(f"{mine}{{sg}}:b", 2)
        raw.set(f"{other}a", 3)
        assert drop_prefix(raw, mine) == 2
        assert raw.exists(f"{mine}a", f"{mine}{{sg}}:b") == 0
        assert raw.get(f"{other}a") == "3"
    finally:
        drop_prefix(raw, other)
        raw.close()


def test_missing_redis_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"Redis not reachable on 127\.0\.0\.1:6379"):
        redis_or_skip("redis://127.0.0.1:1/0")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="Redis not reachable"):
        redis_or_skip("redis://127.0.0.1:1/0")
