"""Timeouts of the upstream client's waits, kept with one event-loop timer instead of one per wait.

A loop timer per wait (``call_later``, then ``cancel``) cost about 3 µs on uvloop: more than the rest of
waiting for an answer. `Deadlines` files each pending wait under its timeout, so within one timeout the
deadlines come in the order the waits began; a single timer is set for the earliest deadline of all, and
when it fires it fails the overdue waits with `TimeoutError` and is set again for the next one. A wait
that ends in time costs two dict operations.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Deadlines"]

#: A deadline this close (in seconds) counts as reached when the timer fires (loop timers are not exact).
_SLACK_S = 0.001


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("the upstream did not answer in time"))


class Deadlines:
    """The pending waits of one event loop and their deadlines."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waits: dict[float, dict[asyncio.Future[None], float]] = {}
        """timeout → {waiter: deadline}, in the order the waits began (so by deadline)."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, waiter: asyncio.Future[None], timeout_s: float) -> None:
        """Fail ``waiter`` with `TimeoutError` unless it is done or `remove`\\ d within ``timeout_s``."""
        deadline = self.loop.time() + timeout_s
        waits = self._waits.get(timeout_s)
        if waits is None:
            waits = self._waits[timeout_s] = {}
        waits[waiter] = deadline
        if deadline < self._timer_at:
            self._arm(deadline)

    def remove(self, waiter: asyncio.Future[None], timeout_s: float) -> None:
        waits = self._waits.get(timeout_s)
        if waits is not None:
            waits.pop(waiter, None)

    def pending(self) -> int:
        """How many waits have a deadline."""
        return sum(len(waits) for waits in self._waits.values())

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(at, self._fire)
        self._timer_at = at

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self.loop.time() + _SLACK_S
        earliest = math.inf
        for waits in self._waits.values():
            while waits:
                waiter, deadline = next(iter(waits.items()))
                if deadline > now:
                    earliest = min(earliest, deadline)
                    break
                del waits[waiter]
                _expire(waiter)
        if earliest < math.inf:
            self._arm(earliest)
