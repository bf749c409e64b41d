"""Group commit: concurrent writers share one transaction, without a background thread.

Leader/follower scheme. A caller puts its items in the queue as a *slot*. If no leader is active it
becomes the leader: it takes the queued slots (up to ``max_batch`` items, always at least one slot),
writes them with one call of ``write`` (one transaction), resolves every slot it took (results or
the exception), then either promotes the oldest waiting slot to leader or clears the leader flag.
Everyone else waits on their slot. A leader writes exactly one batch, which always contains its own
slot, so nobody is stuck leading for other callers.

If a batch of several slots fails, each slot is retried alone, so one caller's bad items never fail
another caller's. Retrying is safe because writes are idempotent (event ids).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommitter"]

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    """One caller's items and, once resolved, its results or error."""

    __slots__ = ("error", "items", "lead", "results", "wake")

    def __init__(self, items: list[T]) -> None:
        self.items = items
        self.wake = threading.Event()
        self.lead = False
        self.results: list[R] | None = None
        self.error: BaseException | None = None


class GroupCommitter(Generic[T, R]):
    """Batches concurrent :meth:`submit` calls into shared ``write`` calls.

    ``write(items)`` must commit all ``items`` atomically and return one result per item, in order.
    """

    def __init__(self, write: Callable[[list[T]], list[R]], *, max_batch: int = 5000) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: deque[_Slot[T, R]] = deque()
        self._leading = False
        #: Number of write calls made (batches), for statistics and tests.
        self.batches = 0

    def submit(self, items: Sequence[T]) -> list[R]:
        """Write ``items`` (with whatever else is queued) and return their results once committed."""
        if not items:
            return []
        slot: _Slot[T, R] = _Slot(list(items))
        with self._lock:
            self._queue.append(slot)
            if not self._leading:
                self._leading = True
                slot.lead = True
        if not slot.lead:
            slot.wake.wait()
        if slot.lead:
            self._lead()
        if slot.error is not None:
            raise slot.error
        assert slot.results is not None  # resolved with results when there is no error
        return slot.results

    def _take_batch(self) -> list[_Slot[T, R]]:
        batch: list[_Slot[T, R]] = []
        size = 0
        with self._lock:
            while self._queue and (not batch or size + len(self._queue[0].items) <= self._max_batch):
                slot = self._queue.popleft()
                batch.append(slot)
                size += len(slot.items)
        return batch

    def _lead(self) -> None:
        batch = self._take_batch()
        try:
            self._write_batch(batch)
        except BaseException as exc:  # interrupted (KeyboardInterrupt...): nobody may wait forever
            for slot in batch:
                if slot.results is None and slot.error is None:
                    slot.error = exc
            raise
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    self._leading = False
            for slot in batch:
                slot.wake.set()

    def _write_batch(self, batch: list[_Slot[T, R]]) -> None:
        items = [item for slot in batch for item in slot.items]
        self.batches += 1
        try:
            results = self._write(items)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for slot in batch:  # isolate the failure: one caller's problem is not everyone's
                try:
                    self.batches += 1
                    slot.results = self._write(slot.items)
                except Exception as slot_exc:
                    slot.error = slot_exc
            return
        start = 0
        for slot in batch:
            slot.results = results[start : start + len(slot.items)]
            start += len(slot.items)
