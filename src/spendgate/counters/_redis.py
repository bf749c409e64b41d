"""``redis://``: counters shared by any number of processes. Every multi-key step is one Lua script.

The scripts live in ``lua/`` (package data) and run with EVALSHA; redis-py loads a script again when
the server answers NOSCRIPT (after a restart or SCRIPT FLUSH). All keys of a store share one hash tag,
so each script touches a single Redis Cluster slot. Driver errors become :class:`CounterUnavailable`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisClusterException, RedisError

from spendgate.counters._abstract import BaseCounterStore
from spendgate.counters._base import (
    CommitResult,
    CounterOverflow,
    CounterState,
    CounterStatus,
    CounterUnavailable,
    Denial,
    ReserveItem,
    ReserveResult,
)
from spendgate.counters._memory import DEFAULT_SETTLED_TTL_S

if TYPE_CHECKING:
    from redis import Redis
    from redis.cluster import RedisCluster

__all__ = ["DRIVER_ERRORS", "RedisCounterStore"]

#: What redis-py raises when the server (or cluster) fails; all become CounterUnavailable.
DRIVER_ERRORS = (RedisError, RedisClusterException)

# script name -> the helper files prepended to it
_SCRIPTS: dict[str, tuple[str, ...]] = {
    "reserve": ("_lib",),
    "settle": ("_lib",),
    "read": ("_lib",),
    "init": ("_lib",),
    "compare_and_set": ("_lib",),
    "rate_acquire": ("_lib", "_rate"),
    "rate_adjust": ("_lib", "_rate"),
    "lease_acquire": ("_lib",),
}


@cache
def script_source(name: str) -> str:
    """The full Lua source of script ``name``: its helpers, then its body."""
    folder = files("spendgate.counters").joinpath("lua")
    parts = [*_SCRIPTS[name], name]
    return "\n".join(folder.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in parts)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> str:
    return str(math.ceil(seconds * 1000))


def _check_key_part(field: str, value: str, *, empty_ok: bool) -> None:
    if not isinstance(value, str) or (not value and not empty_ok) or "{" in value or "}" in value:
        raise ValueError(f"{field} must be a{'' if empty_ok else ' non-empty'} string without braces, got {value!r}")


class RedisCounterStore(BaseCounterStore):
    """Counters in Redis (standalone, TLS or Cluster), shared by every process using the same prefix and tag.

    Keys look like ``<prefix>{<hash_tag>}:c:<counter key>``. ``settled_ttl_s`` is how long a settled
    marker outlives its hold's TTL (commit retries within it are no-ops).
    """

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "spendgate:",
        hash_tag: str = "sg",
        settled_ttl_s: float = DEFAULT_SETTLED_TTL_S,
    ) -> None:
        _check_key_part("prefix", prefix, empty_ok=True)
        _check_key_part("hash_tag", hash_tag, empty_ok=False)
        if settled_ttl_s < 0:
            raise ValueError("settled_ttl_s must be >= 0")
        self._client = client
        self._settled_ttl_s = float(settled_ttl_s)
        self.key_prefix = f"{prefix}{{{hash_tag}}}:"
        self._scripts = {name: client.register_script(script_source(name)) for name in _SCRIPTS}

    def __repr__(self) -> str:
        return f"RedisCounterStore(key_prefix={self.key_prefix!r})"

    def _run(self, name: str, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        try:
            return self._scripts[name](keys=keys, args=[self.key_prefix, *args])
        except DRIVER_ERRORS as error:
            raise CounterUnavailable(f"redis counter store: {name} failed: {error}") from error

    def _counter_keys(self, keys: Sequence[str]) -> list[str]:
        prefix = self.key_prefix
        return [name for key in keys for name in (f"{prefix}c:{key}", f"{prefix}x:{key}")]

    # -- budgets -------------------------------------------------------------------------------------

    def _reserve(self, hold_id: str, items: tuple[ReserveItem, ...], *, now: float, ttl_s: float) -> ReserveResult:
        expires_at = now + ttl_s
        args: list[str | int] = [repr(now), hold_id, repr(expires_at), _ms(ttl_s + self._settled_ttl_s), len(items)]
        for item in items:
            cap = "" if item.cap is None else str(item.cap)
            expire = "" if item.expire_at is None else _ms(item.expire_at)
            args += [item.key, str(item.amount), cap, expire]
        keys = [f"{self.key_prefix}h:{hold_id}", *self._counter_keys([item.key for item in items])]
        reply = [_text(part) for part in self._run("reserve", keys, args)]
        status = reply[0]
        if status == "ok":
            return ReserveResult(CounterStatus.OK, hold_id, float(reply[1]), already=reply[2] == "1")
        if status == "settled":
            return ReserveResult(CounterStatus.SETTLED, hold_id)
        if status == "needs_init":
            return ReserveResult(CounterStatus.NEEDS_INIT, hold_id, needs_init=tuple(reply[1:]))
        key, spent, reserved = reply[1], int(reply[2]), int(reply[3])
        item = next(item for item in items if item.key == key)
        if status == "overflow" or item.cap is None:
            raise CounterOverflow(key, item.amount, spent + reserved)
        return ReserveResult(CounterStatus.DENIED, hold_id, denied=Denial(key, item.amount, item.cap, spent, reserved))

    def _settle(self, hold_id: str, amounts: dict[str, int], *, now: float) -> CommitResult:
        args: list[str | int] = [repr(now), hold_id, _ms(self._settled_ttl_s), len(amounts)]
        for key, amount in amounts.items():
            args += [key, str(amount)]
        keys = [f"{self.key_prefix}h:{hold_id}", *(f"{self.key_prefix}c:{key}" for key in amounts)]
        reply = [_text(part) for part in self._run("settle", keys, args)]
        status = reply[0]
        if status == "ok":
            spent = {reply[i]: int(reply[i + 1]) for i in range(2, len(reply), 2)}
            return CommitResult(CounterStatus.OK, hold_id, hold_found=reply[1] == "1", spent=spent)
        if status == "already":
            return CommitResult(CounterStatus.OK, hold_id, already=True)
        if status == "needs_init":
            return CommitResult(CounterStatus.NEEDS_INIT, hold_id, needs_init=tuple(reply[1:]))
        raise CounterOverflow(reply[1], int(reply[3]), int(reply[2]))

    def _read(self, keys: tuple[str, ...], *, now: float) -> dict[str, CounterState]:
        reply = [_text(part) for part in self._run("read", self._counter_keys(keys), [repr(now), *keys])]
        return {
            key: CounterState(int(reply[i * 3 + 1]), int(reply[i * 3 + 2]), initialized=reply[i * 3] == "1")
            for i, key in enumerate(keys)
        }

    def _init(self, key: str, spent: int, expire_at: float | None) -> bool:
        expire = "" if expire_at is None else _ms(expire_at)
        return bool(self._run("init", self._counter_keys([key]), [key, str(spent), expire]))

    def _compare_and_set(self, key: str, expected: int, spent: int) -> bool:
        keys = [f"{self.key_prefix}c:{key}"]
        return bool(self._run("compare_and_set", keys, [key, str(expected), str(spent)]))

    # -- rate and concurrency limits -----------------------------------------------------------------

    def _window_keys(self, key: str) -> list[str]:
        return [f"{self.key_prefix}w:{key}", f"{self.key_prefix}a:{key}"]

    def _rate_acquire(
        self, key: str, amount: int, limit: int, window_s: float, *, now: float, entry_id: str
    ) -> tuple[bool, int, float | None]:
        args = [key, repr(now), repr(now - window_s), str(amount), str(limit), entry_id, _ms(window_s + 1)]
        reply = self._run("rate_acquire", self._window_keys(key), args)
        oldest = _text(reply[2]) if len(reply) > 2 else ""
        return reply[0] == 1, int(reply[1]), float(oldest) if oldest else None

    def _rate_adjust(
        self, key: str, delta: int, window_s: float, *, now: float, entry_id: str | None, new_id: str
    ) -> None:
        args = [key, repr(now), repr(now - window_s), str(delta), entry_id or "", new_id, _ms(window_s + 1)]
        self._run("rate_adjust", self._window_keys(key), args)

    def _lease_acquire(self, key: str, lease_id: str, limit: int, *, now: float, expires_at: float) -> bool:
        ttl = _ms(expires_at - now + 1)
        keys = [f"{self.key_prefix}l:{key}"]
        return bool(self._run("lease_acquire", keys, [key, lease_id, str(limit), repr(now), repr(expires_at), ttl]))

    def _lease_release(self, key: str, lease_id: str) -> None:
        try:
            self._client.zrem(f"{self.key_prefix}l:{key}", lease_id)
        except DRIVER_ERRORS as error:
            raise CounterUnavailable(f"redis counter store: concurrency_release failed: {error}") from error

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except DRIVER_ERRORS:
            return False

    def close(self) -> None:
        try:
            self._client.close()
        except DRIVER_ERRORS as error:  # pragma: no cover - closing a pool does not talk to the server
            raise CounterUnavailable(f"redis counter store: close failed: {error}") from error
