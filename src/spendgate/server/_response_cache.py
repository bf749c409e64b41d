"""Where the gateway's response cache keeps its answers: in the process (``memory://``) or in Redis.

``memory://`` is one LRU per gateway worker (:class:`~spendgate.server._gw_cache.ResponseCache`).
``redis://host:6379/0`` shares the answers between every worker and replica: each entry is one key
(``<prefix>cache:<request hash>``) holding the answer as JSON, expiring with the TTL on Redis' own clock.
A cache is an optimization: when Redis is unreachable a lookup is a miss and a store is skipped (logged),
and the call goes on to the upstream, metered as usual.

Both backends are asynchronous, so a Redis round trip never blocks the gateway's event loop.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from spendgate.clock import Clock
from spendgate.errors import ConfigurationError
from spendgate.server._gw_cache import CachedResponse, ResponseCache
from spendgate.usage import Usage

__all__ = [
    "CacheBackend",
    "MemoryCacheBackend",
    "RedisCacheBackend",
    "decode_entry",
    "encode_entry",
    "open_response_cache",
]

log = logging.getLogger("spendgate.server.gateway")

_DECIMAL_USAGE = ("audio_seconds", "processing_seconds")


class CacheBackend(Protocol):
    """What the gateway needs of a response cache."""

    async def get(self, key: str) -> CachedResponse | None: ...

    async def put(self, key: str, entry: CachedResponse) -> None: ...

    async def aclose(self) -> None: ...


def encode_entry(entry: CachedResponse) -> bytes:
    """An entry as compact JSON (the body base64-encoded; usage counts as strings, zeros left out)."""
    usage = {name: str(value) for name, value in entry.usage.to_dict().items() if value}
    return json.dumps(
        {
            "body": base64.b64encode(entry.body).decode(),
            "media_type": entry.media_type,
            "provider": entry.provider,
            "model": entry.model,
            "usage": usage,
            "stored_at": entry.stored_at.isoformat(),
        },
        separators=(",", ":"),
    ).encode()


def decode_entry(raw: bytes | str) -> CachedResponse:
    """The entry :func:`encode_entry` wrote (raises ``ValueError`` for anything else)."""
    data: dict[str, Any] = json.loads(raw)
    counts = {
        name: Decimal(value) if name in _DECIMAL_USAGE else int(value) for name, value in dict(data["usage"]).items()
    }
    return CachedResponse(
        body=base64.b64decode(data["body"]),
        media_type=str(data["media_type"]),
        provider=str(data["provider"]),
        model=str(data["model"]),
        usage=Usage.from_dict(counts),
        stored_at=datetime.fromisoformat(data["stored_at"]),
    )


class MemoryCacheBackend:
    """The in-process LRU behind the asynchronous interface."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    async def get(self, key: str) -> CachedResponse | None:
        return self.cache.get(key)

    async def put(self, key: str, entry: CachedResponse) -> None:
        self.cache.put(key, entry)

    async def aclose(self) -> None:
        self.cache.clear()


class RedisCacheBackend:
    """Answers in Redis under ``<prefix>cache:``, each expiring after ``ttl``."""

    def __init__(self, url: str, *, ttl: timedelta, prefix: str = "spendgate:", socket_timeout_s: float = 1.0) -> None:
        import redis.asyncio

        self.ttl_ms = max(1, int(ttl.total_seconds() * 1000))
        self.prefix = f"{prefix}cache:"
        self._client = redis.asyncio.Redis.from_url(url, socket_timeout=socket_timeout_s)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    async def get(self, key: str) -> CachedResponse | None:
        try:
            raw = await self._client.get(self.prefix + key)
        except self._errors as exc:
            log.warning("response cache unreachable, treating as a miss: %s", exc)
            return None
        if raw is None:
            return None
        try:
            return decode_entry(raw)
        except (ValueError, KeyError, TypeError) as exc:  # not ours, or from an incompatible version
            log.warning("ignoring an unreadable response cache entry %s: %s", key, exc)
            return None

    async def put(self, key: str, entry: CachedResponse) -> None:
        try:
            await self._client.set(self.prefix + key, encode_entry(entry), px=self.ttl_ms)
        except self._errors as exc:
            log.warning("response cache unreachable, answer not stored: %s", exc)

    async def aclose(self) -> None:
        await self._client.aclose()


def open_response_cache(url: str, clock: Clock, *, ttl: timedelta, max_entries: int = 1024) -> CacheBackend:
    """The backend for ``url``: ``memory://`` or ``redis://host:port/db[?prefix=...]``."""
    if ttl <= timedelta(0):
        raise ConfigurationError(f"the response cache needs a positive TTL, got {ttl}")
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryCacheBackend(ResponseCache(clock, max_entries=max_entries, ttl=ttl))
    if parts.scheme in ("redis", "rediss"):
        options = parse_qs(parts.query)
        prefix = options.pop("prefix", ["spendgate:"])[-1]
        base = parts._replace(query=urlencode({name: values[-1] for name, values in options.items()})).geturl()
        return RedisCacheBackend(base, ttl=ttl, prefix=prefix)
    raise ConfigurationError(f"response cache URL {url!r}: use memory:// or redis://host:6379/0")
