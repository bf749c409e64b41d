"""Brute-force protection for API keys: a client address that fails authentication too often is locked out.

An address with ``limit`` refused keys within ``window_s`` seconds gets 429 (with ``Retry-After``) for
``lockout_s`` seconds on every request, before its key is even looked at, so keys cannot be guessed
at speed. The counts are per process (each replica guards itself) and bounded in memory; an accepted
key never touches them, and while nobody is locked out the check is one empty-dict test.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["AuthGuard"]

#: Addresses whose recent failures are remembered at once (the oldest are forgotten beyond it).
MAX_TRACKED = 50_000


class AuthGuard:
    """Per-address failure counts and lockouts (see the module docstring). Thread-safe."""

    def __init__(self, limit: int, window_s: float, lockout_s: float) -> None:
        self.limit, self.window_s, self.lockout_s = limit, window_s, lockout_s
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self.lockout_s > 0

    @property
    def active(self) -> bool:
        """Whether any address is (or was, until its next request) locked out: the cheap first test."""
        return bool(self._locked)

    def retry_after(self, address: str | None, now_s: float) -> float | None:
        """Seconds until ``address`` may try again, or None when it is not locked out."""
        if not self._locked or address is None:
            return None
        with self._lock:
            until = self._locked.get(address)
            if until is None:
                return None
            if now_s >= until:
                del self._locked[address]
                return None
            return until - now_s

    def failed(self, address: str | None, now_s: float) -> bool:
        """Count a refused key from ``address``; True when this failure locks it out."""
        if not self.enabled or address is None:
            return False
        with self._lock:
            recent = self._failures.get(address)
            if recent is None:
                if len(self._failures) >= MAX_TRACKED:
                    self._failures.pop(next(iter(self._failures)))
                recent = self._failures[address] = deque(maxlen=self.limit)
            recent.append(now_s)
            if len(recent) < self.limit or now_s - recent[0] > self.window_s:
                return False
            self._locked[address] = now_s + self.lockout_s
            del self._failures[address]
            return True

    def locked(self) -> int:
        """Addresses locked out now or until their next request (for /metrics and tests)."""
        with self._lock:
            return len(self._locked)
