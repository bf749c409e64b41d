"""Analytics API: the dashboard's summary, breakdowns, top N, time series, heatmap and efficiency.

Answered from the analytics cubes plus the not-yet-refreshed queue (exact and current); every answer
names its ``source``. The period is ``[since, until)`` (default: the 7 days before now). Members see
only their own usage (their user id is pinned), as on the usage routes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from spendgate.analytics import Analytics, Filters
from spendgate.analytics._analytics import BreakdownBy, Granularity, Order
from spendgate.analytics._results import Metric, jsonable
from spendgate.errors import InvalidUsageError
from spendgate.server._adm_common import errors
from spendgate.server._adm_usage import usage_filters
from spendgate.server._deps import PiiViewDep, ServicesDep
from spendgate.server._pii_view import PiiView

__all__ = ["router"]

router = APIRouter(prefix="/analytics", tags=["analytics"])
_DEFAULT_PERIOD = timedelta(days=7)


class Scope:
    """A query's analytics, period and filters (members pinned to themselves)."""

    def __init__(self, analytics: Analytics, since: datetime, until: datetime, filters: Filters) -> None:
        self.analytics, self.since, self.until, self.filters = analytics, since, until, filters


def scope(
    svc: ServicesDep,
    filters: Annotated[dict[str, Any], Depends(usage_filters)],
    tag: Annotated[str | None, Query(description="'key=value'")] = None,
    currency: Annotated[str | None, Query(min_length=3, max_length=3)] = None,
) -> Scope:
    """The analytics of the service's ledger, the period (default: the last 7 days) and the filters."""
    svc.meter.flush()
    since, until = filters.pop("since"), filters.pop("until")
    until = until or svc.meter.clock.now()
    if since is None:
        try:
            since = until - _DEFAULT_PERIOD
        except OverflowError:
            raise InvalidUsageError("until", f"is too early: {until.isoformat()}") from None
    return Scope(Analytics(svc.meter.store), since, until, Filters(**filters, tag=tag, currency=currency))


ScopeDep = Annotated[Scope, Depends(scope)]


@router.get("/summary", summary="Totals, cost/latency/token statistics, distinct users/sessions", responses=errors(400))
def analytics_summary(s: ScopeDep) -> dict[str, Any]:
    result: dict[str, Any] = jsonable(s.analytics.summary(s.since, s.until, s.filters))
    return result


@router.get("/breakdown", summary="Totals per user, team, key, provider, model, ...", responses=errors(400))
def analytics_breakdown(
    s: ScopeDep,
    view: PiiViewDep,
    by: BreakdownBy = "model",
    top: Annotated[int | None, Query(ge=1, le=10_000)] = None,
    order: Order = "cost",
) -> dict[str, Any]:
    result: dict[str, Any] = jsonable(s.analytics.breakdown(by, s.since, s.until, s.filters, top=top, order=order))
    return _pseudonymous(result, view) if by == "user" else result


@router.get("/top-users", summary="The users who spent the most", responses=errors(400))
def analytics_top_users(s: ScopeDep, view: PiiViewDep, n: Annotated[int, Query(ge=1, le=1000)] = 10) -> dict[str, Any]:
    return _pseudonymous(jsonable(s.analytics.top_users(s.since, s.until, s.filters, n=n)), view)


def _pseudonymous(result: dict[str, Any], view: PiiView | None) -> dict[str, Any]:
    return result if view is None else {**result, "rows": view.keys(result["rows"])}


@router.get("/top-models", summary="The most used models (by requests)", responses=errors(400))
def analytics_top_models(s: ScopeDep, n: Annotated[int, Query(ge=1, le=1000)] = 10) -> dict[str, Any]:
    result: dict[str, Any] = jsonable(s.analytics.top_models(s.since, s.until, s.filters, n=n))
    return result


@router.get("/timeseries", summary="A metric per UTC bucket with count/sum/avg/min/max/stddev/p50/p95/p99",
            responses=errors(400))  # fmt: skip
def analytics_timeseries(s: ScopeDep, granularity: Granularity = "day", metric: Metric = "cost") -> dict[str, Any]:
    result: dict[str, Any] = jsonable(s.analytics.timeseries(granularity, metric, s.since, s.until, s.filters))
    return result


@router.get("/heatmap", summary="Requests and cost per weekday and hour (UTC)", responses=errors(400))
def analytics_heatmap(s: ScopeDep) -> dict[str, Any]:
    result: dict[str, Any] = jsonable(s.analytics.heatmap(s.since, s.until, s.filters))
    return result


@router.get("/efficiency", summary="Cost per 1,000 tokens per model", responses=errors(400))
def analytics_efficiency(s: ScopeDep) -> dict[str, Any]:
    result: dict[str, Any] = jsonable(s.analytics.efficiency(s.since, s.until, s.filters))
    return result
