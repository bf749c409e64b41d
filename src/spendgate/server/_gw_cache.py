"""The gateway's response cache: exact match on the normalized request, in memory, LRU with a TTL.

Only whole (non-streamed) successful responses are kept. A request opts in with the header
``x-spendgate-cache: on``; a hit costs nothing and is recorded with ``cached=True`` and the
``cache_savings`` the call would have cost. Entries live in the process (one per gateway worker).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from spendgate.clock import Clock
from spendgate.errors import ConfigurationError
from spendgate.usage import Usage

__all__ = ["CachedResponse", "ResponseCache"]


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """One stored answer: the upstream's body as sent to the client, and what producing it used."""

    body: bytes
    media_type: str
    provider: str
    model: str
    usage: Usage
    stored_at: datetime


class ResponseCache:
    """At most ``max_entries`` answers, each for ``ttl`` (least recently used dropped first); thread-safe."""

    def __init__(self, clock: Clock, *, max_entries: int = 1024, ttl: timedelta = timedelta(hours=1)) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"the response cache needs max_entries >= 1, got {max_entries}")
        if ttl <= timedelta(0):
            raise ConfigurationError(f"the response cache needs a positive ttl, got {ttl}")
        self.clock = clock
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[str, CachedResponse] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedResponse | None:
        """The answer stored under ``key`` if it has not expired (it becomes the most recently used)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.clock.now() - entry.stored_at >= self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: CachedResponse) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
