"""Re-rating: reprice past events after a price correction, keeping the originals and writing adjustments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from spendgate.errors import PricingError
from spendgate.ledger import CostAdjustment
from spendgate.meter._core import make_filter, price_usage

if TYPE_CHECKING:
    from spendgate.meter._meter import Meter, RerateReport

__all__ = ["rerate"]

_BATCH = 1000


def rerate(
    meter: Meter,
    *,
    since: datetime,
    until: datetime | None,
    provider: str | None,
    model: str | None,
    reason: str,
    dry_run: bool,
) -> RerateReport:
    from spendgate.meter._meter import RerateReport

    examined = changed = newly_priced = still_unpriced = 0
    delta = Decimal(0)
    pending: list[CostAdjustment] = []
    errors: list[tuple[str, str]] = []
    applied: list[CostAdjustment] = []
    # Read everything first: adjusting while a cursor streams the same rows is not portable.
    meter.flush()
    events = list(meter.store.iter_events(make_filter(since=since, until=until, provider=provider, model=model)))
    for event in events:
        examined += 1
        try:
            cost = price_usage(
                meter.prices,
                meter.settings,
                provider=event.provider,
                model=event.model_used or event.model,
                usage=event.usage,
                at=event.timestamp,
                service_tier=event.service_tier,
                batch=event.service_tier == "batch",
                monthly_volume=meter.monthly_volume(event.provider, event.model, event.timestamp),
            )
        except PricingError as exc:  # e.g. a batch rate the catalog has no price for at that date
            errors.append((event.event_id, str(exc)))
            continue
        if cost is None:
            still_unpriced += event.cost is None
            continue
        if event.cost == cost.total and event.price_version == cost.price_version:
            continue
        changed += 1
        if event.cost is None:
            newly_priced += 1
            delta += cost.total
        else:
            delta += cost.total - event.cost
        pending.append(
            CostAdjustment(
                event_id=event.event_id,
                old_cost=event.cost,
                new_cost=cost.total,
                old_price_version=event.price_version,
                new_price_version=cost.price_version,
                reason=reason,
                created_at=meter.clock.now(),
            )
        )
        if len(pending) >= _BATCH and not dry_run:
            meter.store.apply_adjustments(pending)
            applied.extend(pending)
            pending = []
    if not dry_run and pending:
        meter.store.apply_adjustments(pending)
    applied.extend(pending)
    return RerateReport(
        examined=examined,
        changed=changed,
        delta=delta,
        newly_priced=newly_priced,
        still_unpriced=still_unpriced,
        adjustments=applied,
        errors=errors,
    )
