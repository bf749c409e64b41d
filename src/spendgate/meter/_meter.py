"""`Meter`: the synchronous facade over tokens, pricing and the ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import IO, Any, TypeVar

from spendgate.clock import Clock, SystemClock
from spendgate.counters import CounterStore, MemoryCounterStore, open_counters
from spendgate.errors import InvalidUsageError, SpendgateError
from spendgate.ledger import CostAdjustment, Dimension, Journal, UsageEvent, UsageStore, UsageSummary, open_store
from spendgate.meter._core import Recorded, build_event, make_filter, parse_call, price_usage
from spendgate.meter._export import ExportFormat, write_events
from spendgate.meter._governor import Governor
from spendgate.meter._queue import QueueMethods
from spendgate.pricing import CostBreakdown, PriceBook, PriceOverride, load_overrides
from spendgate.settings import Settings
from spendgate.tokens import TokenCount, TokenCounter
from spendgate.usage import Usage

__all__ = ["Meter", "RerateReport"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class RerateReport:
    """What :meth:`Meter.rerate` found and changed."""

    examined: int
    changed: int
    delta: Decimal
    """Sum of (new cost - old cost) over the changed priced events (unpriced events newly priced count in full)."""
    newly_priced: int
    still_unpriced: int
    adjustments: list[CostAdjustment] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(event_id, message) of events that could not be priced now (left as they were)."""


def _price_book(settings: Settings, store: UsageStore, clock: Clock) -> PriceBook:
    overrides: list[PriceOverride] = []
    fallback = None
    rates: dict[str, Decimal] = {}
    if settings.price_file is not None:
        price_file = load_overrides(settings.price_file)
        overrides.extend(price_file.overrides)
        fallback = price_file.fallback
        rates.update(price_file.exchange_rates)
    rates.update(settings.exchange_rates)
    overrides.extend(PriceOverride.from_mapping(body) for body in store.list_price_overrides())
    return PriceBook(overrides, fallback=fallback, exchange_rates=rates, clock=clock)


class Meter(QueueMethods):
    """Count tokens, price calls exactly and record usage durably.

    >>> meter = Meter(database_url="sqlite:///usage.db")          # doctest: +SKIP
    >>> meter.cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=100)).total  # doctest: +SKIP
    Decimal('0.0035')

    Everything that does no I/O lives in :mod:`spendgate.meter._core`; :class:`AsyncMeter` wraps a Meter,
    so the two never drift apart.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        price_book: PriceBook | None = None,
        store: UsageStore | None = None,
        counters_url: str | None = None,
        counters: CounterStore | None = None,
    ) -> None:
        if settings is None:
            given: dict[str, Any] = {"database_url": database_url, "counters_url": counters_url}
            settings = Settings(**{k: v for k, v in given.items() if v is not None})
        elif (database_url is not None and database_url != settings.database_url) or (
            counters_url is not None and counters_url != settings.counters_url
        ):
            raise SpendgateError("pass database_url/counters_url either directly or in settings, not both")
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.store: UsageStore = store or open_store(
            settings.database_url, durability=settings.durability, clock=self.clock
        )
        try:
            self.prices = price_book or _price_book(settings, self.store, self.clock)
            self.counters: CounterStore = counters or open_counters(settings.counters_url)
        except BaseException:
            self.store.close()
            raise
        self.tokens = TokenCounter(chars_per_token=settings.chars_per_token, cache_size=settings.token_cache_size)
        self.governor = Governor(
            store=self.store, counters=self.counters, prices=self.prices, settings=settings, clock=self.clock
        )
        self.journal: Journal | None = None
        if settings.journal_dir is not None:
            self.journal = Journal(
                settings.journal_dir,
                self.store,
                fsync=settings.durability == "power",
                writer="thread" if store is not None else settings.journal_writer,  # a given store may be elsewhere
                database_url=settings.database_url,
                durability=settings.durability,
            )
            self.governor.before_read = self.journal.flush

    @property
    def nonblocking(self) -> bool:
        """True when authorize, settle and release do no network or database I/O on the caller's thread.

        That is: in-process counters (``memory://``) and settles acknowledged by the write-ahead journal
        (``journal_dir``) without an fsync (``durability="process"``), whose batches reach the ledger from
        the journal's writer. An async server may
        then call them on its event loop instead of a worker thread. (The policy cache still reads the
        ledger's limits once every ``policy_refresh_s``.)
        """
        return self.journal is not None and not self.journal.fsync and isinstance(self.counters, MemoryCounterStore)

    # -- no I/O -------------------------------------------------------------------------------------

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
        """Tokens of a text or a chat request; ``.exact`` says whether a real tokenizer counted them."""
        return self.tokens.count(
            provider, model, text=text, messages=messages, tools=tools, system=system, response_format=response_format
        )

    def cost(
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
        """The exact Decimal cost of ``usage``; raises UnknownModelError for a model with no price."""
        return self.prices.cost(
            provider,
            model,
            usage,
            at=at,
            service_tier=service_tier,
            batch=batch,
            currency=currency,
            monthly_volume=self.monthly_volume(provider, model, at),
        )

    # -- recording ----------------------------------------------------------------------------------

    def monthly_volume(self, provider: str, model: str, at: datetime | None = None) -> int:
        """Tokens recorded for this model since the start of the UTC month of ``at``, for volume-tier prices."""
        if not self.prices.has_volume_tiers(provider, model):
            return 0
        when = (at or self.clock.now()).astimezone(UTC)
        start = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if when == start:
            return 0
        self.flush()
        total = self.store.summary(make_filter(since=start, until=when, provider=provider, model=model))
        return total.input_tokens + total.output_tokens

    def _prepare(self, kwargs: Mapping[str, Any], where: str = "") -> tuple[UsageEvent, CostBreakdown | None]:
        """Parse, price and build one event; errors name the field, prefixed by ``where``."""
        try:
            call = parse_call(kwargs, self.clock)
            cost = price_usage(
                self.prices,
                self.settings,
                provider=call.provider,
                model=call.fields.get("model_used") or call.model,
                usage=call.usage,
                at=call.timestamp,
                service_tier=call.service_tier,
                batch=call.batch,
                monthly_volume=self.monthly_volume(call.provider, call.model, call.timestamp),
            )
            return build_event(call, cost), cost
        except InvalidUsageError as exc:
            if not where:
                raise
            raise InvalidUsageError(f"{where}{exc.field}", exc.message) from None

    def record(self, **kwargs: Any) -> Recorded:
        """Price and durably record one call; returns whether its ``event_id`` was already recorded.

        Required: ``provider``, ``model``, ``usage`` (a :class:`Usage` or a mapping of its fields).
        Optional: ``event_id`` (idempotency key; generated when absent), ``timestamp`` (aware datetime),
        ``user_id``, ``team_id``, ``api_key_id``, ``session_id``, ``request_type``, ``tags``, ``metadata``,
        ``model_used``, ``latency_ms``, ``success``, ``error_kind``, ``tokens_estimated``, ``service_tier``,
        ``batch``, ``action``, ``cached``, ``cache_savings``, ``prompt_hash``, ``client_ip``, ``user_agent`` and
        the generic API fields ``service``, ``endpoint``, ``status_code``, ``request_bytes``, ``response_bytes``.
        When ``record`` returns, the event is committed: it survives the process being killed.
        """
        event, cost = self._prepare(kwargs)
        result = self.store.record(event)
        if self.on_event is not None and not result.duplicate:
            self.on_event(event)
        return Recorded(event_id=result.event_id, duplicate=result.duplicate, cost=cost)

    def validate(self, event: Mapping[str, Any]) -> None:
        """Check (and price) one event as :meth:`record` would, without writing it.

        Raises :class:`InvalidUsageError` naming the field, or UnknownModelError when unpriced usage
        is refused by the settings.
        """
        self._prepare(event)

    def record_many(self, events: Iterable[Mapping[str, Any]]) -> list[Recorded]:
        """Record a batch in one transaction: all are validated first, so a bad one writes nothing."""
        prepared = [self._prepare(item, where=f"events[{i}].") for i, item in enumerate(events)]
        results = self.store.record_many([event for event, _ in prepared])
        if self.on_event is not None:
            for result, (event, _) in zip(results, prepared, strict=True):
                if not result.duplicate:
                    self.on_event(event)
        return [
            Recorded(event_id=r.event_id, duplicate=r.duplicate, cost=cost)
            for r, (_, cost) in zip(results, prepared, strict=True)
        ]

    # -- reading ------------------------------------------------------------------------------------

    def summary(self, **filters: Any) -> UsageSummary:
        """Totals (requests, tokens, cost, ...) for the events matching the filters.

        Filters: ``since``, ``until`` (half-open window, aware datetimes), ``user_id``, ``team_id``,
        ``api_key_id``, ``session_id``, ``provider``, ``model``, ``request_type``.
        """
        self.flush()
        return self.store.summary(make_filter(**filters))

    def report(self, by: Dimension, **filters: Any) -> list[tuple[str | None, UsageSummary]]:
        """Totals grouped by one dimension, most expensive first."""
        self.flush()
        return self.store.totals_by(by, make_filter(**filters))

    def events(self, **filters: Any) -> Iterator[UsageEvent]:
        """The matching events, oldest first, streamed from the ledger."""
        self.flush()
        return self.store.iter_events(make_filter(**filters))

    def export(self, out: IO[str], *, format: ExportFormat = "jsonl", **filters: Any) -> int:
        """Stream matching events to ``out`` as JSON lines, a JSON array or CSV; returns the count."""
        return write_events(self.events(**filters), out, format)

    # -- prices -------------------------------------------------------------------------------------

    def add_price_override(self, override: PriceOverride) -> None:
        """Store a new price version in the ledger database (shared by every Meter on it) and use it now."""
        self.prices.add_override(override)  # validates, refuses an in-place edit
        self.store.save_price_override(
            override.id, override.provider, override.model, override.effective_from_datetime, override.to_mapping()
        )

    def rerate(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        provider: str | None = None,
        model: str | None = None,
        reason: str = "price correction",
        dry_run: bool = False,
    ) -> RerateReport:
        """Reprice past events with today's price book; keeps each original cost and writes adjustments."""
        from spendgate.meter._rerate import rerate

        return rerate(self, since=since, until=until, provider=provider, model=model, reason=reason, dry_run=dry_run)

    def track(self, *, provider: str, model: str | None = None, **identity: Any) -> Callable[[F], F]:
        """Decorate a function that calls a provider: authorize before, settle after (see docs/integrations.md).

        ``identity``: ``user_id``, ``team_id``, ``api_key_id``, ``session_id``, ``tier``, ``tags``,
        ``request_type``. Raises :class:`~spendgate.errors.BudgetExceeded` when the call is not allowed.
        """
        from spendgate.integrations import track

        return track(self, provider=provider, model=model, **identity)

    # -- lifecycle ----------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write journaled settles to the ledger now (reads do this first); returns how many."""
        return 0 if self.journal is None else self.journal.flush()

    def close(self) -> None:
        """Flush the journal, then release the database and counter-store connections."""
        try:
            if self.journal is not None:
                self.journal.close()
            self.counters.close()
        finally:
            self.store.close()

    def __enter__(self) -> Meter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
