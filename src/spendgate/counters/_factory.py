"""``open_counters(url)``: pick a counter backend by URL.

* ``memory://`` (``?max_keys=``, ``?max_holds=``, ``?settled_ttl=``): one process only.
* ``redis://host:port/db``, ``rediss://`` (TLS), ``unix:///path.sock``: one Redis server.
* ``redis+cluster://host:port``, ``rediss+cluster://``: Redis Cluster (redis-py ``RedisCluster``).

Redis URLs take ``?prefix=`` (default ``spendgate:``), ``?hash_tag=`` (default ``sg``) and
``?settled_ttl=`` (seconds); every other query option goes to redis-py (``socket_timeout=`` ...).
Socket timeouts default to 2 s so a hung server fails the call instead of the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from spendgate.counters._base import CounterStore, CounterUnavailable
from spendgate.counters._memory import DEFAULT_SETTLED_TTL_S, MEMORY_SETTLED_TTL_S, MemoryCounterStore
from spendgate.errors import ConfigurationError

__all__ = ["open_counters"]

_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_DEFAULT_TIMEOUTS = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}


def _number(url: str, name: str, raw: str, convert: Callable[[str], Any]) -> Any:
    try:
        return convert(raw)
    except ValueError:
        raise ConfigurationError(f"counter URL {url!r}: {name}={raw!r} is not a valid number") from None


def _open_memory(url: str, options: dict[str, str]) -> MemoryCounterStore:
    unknown = set(options) - {"max_keys", "max_holds", "settled_ttl"}
    if unknown:
        raise ConfigurationError(f"counter URL {url!r}: unknown memory:// options {sorted(unknown)}")
    try:
        return MemoryCounterStore(
            max_keys=_number(url, "max_keys", options.get("max_keys", "1000000"), int),
            max_holds=_number(url, "max_holds", options.get("max_holds", "1000000"), int),
            settled_ttl_s=_number(url, "settled_ttl", options.get("settled_ttl", str(MEMORY_SETTLED_TTL_S)), float),
        )
    except ValueError as error:
        raise ConfigurationError(f"counter URL {url!r}: {error}") from None


def _open_redis(url: str, scheme: str, options: dict[str, str]) -> CounterStore:
    try:
        import redis
        from redis.cluster import RedisCluster
    except ImportError:  # pragma: no cover - redis is installed in development
        raise ConfigurationError("redis:// counters need the redis package: pip install 'spendgate[redis]'") from None
    from spendgate.counters._redis import DRIVER_ERRORS, RedisCounterStore

    ours = {name: options.pop(name) for name in ("prefix", "hash_tag", "settled_ttl") if name in options}
    parts = urlsplit(url)
    driver_url = urlunsplit((_CLUSTER_SCHEMES.get(scheme, scheme), parts.netloc, parts.path, urlencode(options), ""))
    kwargs: dict[str, Any] = {"decode_responses": True}
    kwargs.update({name: value for name, value in _DEFAULT_TIMEOUTS.items() if name not in options})
    try:
        if scheme in _CLUSTER_SCHEMES:
            client: redis.Redis | RedisCluster = RedisCluster.from_url(driver_url, **kwargs)
        else:
            client = redis.Redis.from_url(driver_url, **kwargs)
    except DRIVER_ERRORS as error:
        raise CounterUnavailable(f"counter URL {parts.scheme}://{parts.hostname}: cannot connect: {error}") from error
    except (ValueError, TypeError) as error:
        raise ConfigurationError(f"counter URL {url!r}: {error}") from None
    try:
        settled = _number(url, "settled_ttl", ours.get("settled_ttl", str(DEFAULT_SETTLED_TTL_S)), float)
        return RedisCounterStore(
            client, prefix=ours.get("prefix", "spendgate:"), hash_tag=ours.get("hash_tag", "sg"), settled_ttl_s=settled
        )
    except ValueError as error:
        client.close()
        raise ConfigurationError(f"counter URL {url!r}: {error}") from None


def open_counters(url: str) -> CounterStore:
    """Open the counter store named by ``url`` (see the module docstring for the forms)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "memory":
        return _open_memory(url, options)
    if scheme in _REDIS_SCHEMES or scheme in _CLUSTER_SCHEMES:
        return _open_redis(url, scheme, options)
    known = "memory://, redis://, rediss://, unix://, redis+cluster://, rediss+cluster://"
    raise ConfigurationError(f"unknown counter store URL {url!r}: use one of {known}")
