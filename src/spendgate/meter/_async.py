"""`AsyncMeter`: the asyncio face of :class:`Meter`.

Methods that do no I/O run inline; methods that touch the ledger run the same :class:`Meter` method in a
worker thread, where the ledger's group commit lets concurrent calls share transactions. There is one
implementation of the logic, so the two can't drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import IO, Any

from spendgate.clock import Clock
from spendgate.ledger import Dimension, UsageEvent, UsageSummary
from spendgate.meter._authorization import Authorization
from spendgate.meter._budget_api import BudgetStatus
from spendgate.meter._core import Recorded
from spendgate.meter._export import ExportFormat
from spendgate.meter._meter import Meter, RerateReport
from spendgate.pricing import CostBreakdown, PriceBook
from spendgate.settings import Settings
from spendgate.tokens import TokenCount
from spendgate.usage import Usage

__all__ = ["AsyncMeter"]


class AsyncMeter:
    """Like :class:`Meter`, with coroutines for everything that does I/O."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        price_book: PriceBook | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.meter = meter or Meter(database_url, settings=settings, clock=clock, price_book=price_book)

    def count_tokens(
        self,
        provider: str,
        model: str,
        *,
        text: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        system: str | Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> TokenCount:
        """Tokens of a text or chat request (CPU only, so not a coroutine)."""
        return self.meter.count_tokens(
            provider, model, text=text, messages=messages, tools=tools, system=system, response_format=response_format
        )

    async def cost(
        self,
        provider: str,
        model: str,
        usage: Usage,
        *,
        at: datetime | None = None,
        service_tier: str | None = None,
        batch: bool = False,
        currency: str = "USD",
    ) -> CostBreakdown:
        """The exact cost (a coroutine because volume-tiered prices read the ledger)."""
        if not self.meter.prices.has_volume_tiers(provider, model):
            return self.meter.cost(
                provider, model, usage, at=at, service_tier=service_tier, batch=batch, currency=currency
            )
        return await asyncio.to_thread(
            self.meter.cost, provider, model, usage, at=at, service_tier=service_tier, batch=batch, currency=currency
        )

    async def record(self, **kwargs: Any) -> Recorded:
        """See :meth:`Meter.record`."""
        return await asyncio.to_thread(lambda: self.meter.record(**kwargs))

    async def record_many(self, events: Iterable[Mapping[str, Any]]) -> list[Recorded]:
        """See :meth:`Meter.record_many`."""
        items = list(events)
        return await asyncio.to_thread(self.meter.record_many, items)

    async def summary(self, **filters: Any) -> UsageSummary:
        """See :meth:`Meter.summary`."""
        return await asyncio.to_thread(lambda: self.meter.summary(**filters))

    async def report(self, by: Dimension, **filters: Any) -> list[tuple[str | None, UsageSummary]]:
        """See :meth:`Meter.report`."""
        return await asyncio.to_thread(lambda: self.meter.report(by, **filters))

    async def events(self, **filters: Any) -> list[UsageEvent]:
        """The matching events as a list (use :meth:`export` for data sets of any size)."""
        return await asyncio.to_thread(lambda: list(self.meter.events(**filters)))

    async def export(self, out: IO[str], *, format: ExportFormat = "jsonl", **filters: Any) -> int:
        """See :meth:`Meter.export` (writes from a worker thread)."""
        return await asyncio.to_thread(lambda: self.meter.export(out, format=format, **filters))

    async def rerate(self, **kwargs: Any) -> RerateReport:
        """See :meth:`Meter.rerate`."""
        return await asyncio.to_thread(lambda: self.meter.rerate(**kwargs))

    async def authorize(self, **kwargs: Any) -> Authorization:
        """See :meth:`Meter.authorize` (counters and the policy may need I/O, so it runs in a thread)."""
        return await asyncio.to_thread(lambda: self.meter.authorize(**kwargs))

    async def settle(self, authorization: Authorization, usage: Usage, **fields: Any) -> Recorded:
        """See :meth:`Meter.settle`."""
        return await asyncio.to_thread(lambda: self.meter.settle(authorization, usage, **fields))

    async def release(self, authorization: Authorization, **kwargs: Any) -> Recorded | None:
        """See :meth:`Meter.release`."""
        return await asyncio.to_thread(lambda: self.meter.release(authorization, **kwargs))

    async def budget_status(self, **ids: Any) -> list[BudgetStatus]:
        """See :meth:`Meter.budget_status`."""
        return await asyncio.to_thread(lambda: self.meter.budget_status(**ids))

    async def close(self) -> None:
        await asyncio.to_thread(self.meter.close)

    async def __aenter__(self) -> AsyncMeter:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
