"""The deferred-request queue: calls a QUEUE decision postponed, run later by a worker.

A deferred call is persisted in the ledger database (so it survives restarts and any replica can run
it). :meth:`QueueMethods.run_queue` claims ready calls (higher tiers first, then oldest), authorizes each
again and, when its budget has freed or its window has reset, runs it through the caller's handler and
settles it; otherwise puts it back until then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from spendgate.budgets import Action
from spendgate.errors import InvalidUsageError
from spendgate.meter._authorization import Authorization
from spendgate.meter._budget_api import BudgetMethods
from spendgate.usage import Usage

__all__ = ["Handler", "QueueMethods", "QueueOutcome"]

Handler = Callable[[Authorization, Mapping[str, Any]], Usage]
"""Runs a deferred call now that it is allowed, and returns the usage it reported."""


@dataclass(frozen=True, slots=True)
class QueueOutcome:
    """What happened to one claimed call: ``done`` (with its event id), ``requeued``, ``failed`` or ``expired``."""

    id: str
    status: str
    event_id: str | None = None
    detail: str = ""


class QueueMethods(BudgetMethods):
    """Mixed into :class:`Meter` (builds on the budget methods)."""

    def defer(self, authorization: Authorization, request: Mapping[str, Any] | None = None) -> str:
        """Persist a call that was answered QUEUE, with the ``request`` your handler needs to make it later."""
        if authorization.action is not Action.QUEUE:
            raise InvalidUsageError(
                "authorization", f"only a QUEUE decision is deferred, not {authorization.action.value}"
            )
        now = self.clock.now()
        retry = authorization.retry_after_s
        run_after = authorization.resets_at or now + timedelta(seconds=retry if retry is not None else 60)
        tier = authorization.ctx.tier
        priority = self.settings.queue_priorities.get(tier, 0) if tier is not None else 0
        body = {"authorize": authorization.args, "request": dict(request or {})}
        self.store.control.enqueue(authorization.reservation_id, priority=priority, run_after=run_after, body=body)
        return authorization.reservation_id

    def run_queue(self, handler: Handler, *, limit: int = 10) -> list[QueueOutcome]:
        """Run up to ``limit`` deferred calls that are due (call it from a scheduler or a loop)."""
        now = self.clock.now()
        max_age = timedelta(seconds=self.settings.queue_max_age_s)
        outcomes: list[QueueOutcome] = []
        for item in self.store.control.claim(now, limit=limit):
            if now - item.created_at > max_age:
                self.store.control.finish(item.id, status="expired", result={"reason": "waited too long"})
                outcomes.append(QueueOutcome(item.id, "expired"))
                continue
            auth = self.authorize(**item.body["authorize"])
            if not auth.allowed:
                retry = auth.retry_after_s
                run_after = auth.resets_at or now + timedelta(seconds=retry if retry is not None else 60)
                self.store.control.finish(
                    item.id, status="queued", run_after=max(run_after, now + timedelta(seconds=1))
                )
                outcomes.append(QueueOutcome(item.id, "requeued", detail=auth.reason))
                continue
            try:
                usage = handler(auth, item.body["request"])
            except Exception as exc:
                self.release(auth, error_kind="deferred_call_failed")
                self.store.control.finish(item.id, status="failed", result={"error": f"{type(exc).__name__}: {exc}"})
                outcomes.append(QueueOutcome(item.id, "failed", detail=str(exc)))
                continue
            recorded = self.settle(auth, usage, metadata={"deferred": item.id})
            self.store.control.finish(item.id, status="done", result={"event_id": recorded.event_id})
            outcomes.append(QueueOutcome(item.id, "done", event_id=recorded.event_id))
        return outcomes
