"""Usage API: summary, time series, breakdowns, one user's usage, budget status, month-end projection, export.

Members see only their own usage (their user id is forced into every query); admins and viewers see all.
"""

from __future__ import annotations

import calendar
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from spendgate.errors import InvalidUsageError
from spendgate.ledger import MONEY_SCALE, Dimension, Granularity, RollupRow, UsageEvent
from spendgate.meter import BudgetStatus, write_events
from spendgate.server._adm_common import aware, errors, money, summary_dict
from spendgate.server._deps import Caller, PiiViewDep, Services, ServicesDep, own

__all__ = ["export_chunks", "router"]

router = APIRouter(tags=["usage"])

By = Literal["user", "team", "key", "session", "provider", "model", "request_type"]
_DIMENSION: dict[str, Dimension] = {
    "user": "user_id", "team": "team_id", "key": "api_key_id", "session": "session_id",
    "provider": "provider", "model": "model", "request_type": "request_type",
}  # fmt: skip
_ROLLUP_FILTERS = ("user_id", "team_id", "api_key_id", "provider", "model")
_ROLLUP_SUMS = (
    "requests", "successes", "failures", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "unpriced_requests", "estimated_requests", "cached_requests",
)  # fmt: skip
_MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json", "jsonl": "application/x-ndjson"}
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
_CHUNK = 500
_MICRO = timedelta(microseconds=1)


def usage_filters(
    principal: Caller,
    since: datetime | None = None,
    until: datetime | None = None,
    user_id: str | None = None,
    team_id: str | None = None,
    api_key_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    request_type: str | None = None,
) -> dict[str, Any]:
    """The query's ledger filters (half-open window ``since <= timestamp < until``); members pinned to themselves."""
    return {
        "since": aware("since", since),
        "until": aware("until", until),
        "user_id": own(principal, user_id),
        "team_id": team_id,
        "api_key_id": api_key_id,
        "provider": provider,
        "model": model,
        "request_type": request_type,
    }


Filters = Annotated[dict[str, Any], Depends(usage_filters)]


@router.get("/usage/summary", summary="Usage totals: requests, tokens, exact cost", responses=errors(400))
def usage_summary(filters: Filters, svc: ServicesDep) -> dict[str, Any]:
    return summary_dict(svc.meter.summary(**filters))


@router.get(
    "/usage/timeseries",
    summary="Usage per UTC hour or day, from the ledger rollups (buckets starting in [since, until))",
    responses=errors(400),
)
def usage_timeseries(filters: Filters, svc: ServicesDep, granularity: Granularity = "day") -> dict[str, Any]:
    if filters.pop("request_type") is not None:
        raise InvalidUsageError("request_type", "rollups are not kept per request type: use /usage/breakdown")
    svc.meter.flush()
    rows = svc.meter.store.rollups(granularity, since=filters.pop("since"), until=filters.pop("until"))
    buckets: dict[datetime, dict[str, Any]] = {}
    for row in rows:
        if any(value is not None and getattr(row, name) != value for name, value in filters.items()):
            continue
        _add(buckets.setdefault(row.bucket_start, _empty(row.bucket_start)), row)
    points = [_point(buckets[start]) for start in sorted(buckets)]
    return {"granularity": granularity, "points": points}


def _empty(start: datetime) -> dict[str, Any]:
    return {"bucket_start": start, "cost": Decimal(0), "latency_ms_sum": 0, "latency_requests": 0,
            **dict.fromkeys(_ROLLUP_SUMS, 0)}  # fmt: skip


def _add(bucket: dict[str, Any], row: RollupRow) -> None:
    for name in (*_ROLLUP_SUMS, "cost", "latency_ms_sum", "latency_requests"):
        bucket[name] += getattr(row, name)


def _point(bucket: dict[str, Any]) -> dict[str, Any]:
    latency_sum, latency_n = bucket.pop("latency_ms_sum"), bucket.pop("latency_requests")
    return {
        **bucket,
        "bucket_start": bucket["bucket_start"].isoformat(),
        "cost": money(bucket["cost"]),
        "currency": "USD",
        "avg_latency_ms": latency_sum / latency_n if latency_n else None,
    }


@router.get("/usage/breakdown", summary="Usage grouped by one dimension, most expensive first", responses=errors(400))
def usage_breakdown(filters: Filters, svc: ServicesDep, view: PiiViewDep, by: By = "model") -> dict[str, Any]:
    groups = [{"key": key, **summary_dict(total)} for key, total in svc.meter.report(_DIMENSION[by], **filters)]
    return {"by": by, "groups": view.keys(groups) if view is not None and by == "user" else groups}


@router.get(
    "/users/{user_id}/usage",
    summary="One user's usage: totals and per model (members: only themselves)",
    responses=errors(400),
)
def user_usage(
    user_id: str,
    principal: Caller,
    svc: ServicesDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    filters = {"user_id": own(principal, user_id), "since": aware("since", since), "until": aware("until", until)}
    groups = svc.meter.report("model", **filters)
    return {
        "user_id": user_id,
        "summary": summary_dict(svc.meter.summary(**filters)),
        "by_model": [{"key": key, **summary_dict(total)} for key, total in groups],
    }


@router.get(
    "/budgets/status",
    summary="Every limit that applies to the given ids, with spent, reserved and remaining",
    responses=errors(400),
)
def budget_status(
    principal: Caller,
    svc: ServicesDep,
    user_id: str | None = None,
    team_id: str | None = None,
    api_key_id: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    user_id = own(principal, user_id)
    statuses = budget_statuses(svc, user_id, team_id, api_key_id, provider, model)
    return {"user_id": user_id, "limits": [status.to_dict() for status in statuses]}


def budget_statuses(
    svc: Services,
    user_id: str | None,
    team_id: str | None,
    api_key_id: str | None,
    provider: str | None,
    model: str | None,
) -> list[BudgetStatus]:
    """``Meter.budget_status`` for these ids, under the user's tier (so its default limits count too)."""
    user = None if user_id is None else svc.identity.get_user(user_id)
    return svc.meter.budget_status(user_id=user_id, team_id=team_id, api_key_id=api_key_id, provider=provider,
                                   model=model, tier=None if user is None else user.tier)  # fmt: skip


@router.get(
    "/usage/projection",
    summary="Month-end spend projected linearly from the UTC month to date",
    responses=errors(400),
)
def usage_projection(filters: Filters, svc: ServicesDep) -> dict[str, Any]:
    """``projected = month_to_date / elapsed * month length``, in seconds; elapsed counts from the 1st, 00:00 UTC."""
    now = svc.meter.clock.now().astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(now.year, now.month)[1]
    end = start.replace(year=now.year + 1, month=1) if now.month == 12 else start.replace(month=now.month + 1)
    spent = svc.meter.summary(**{**filters, "since": start, "until": None}).cost
    elapsed_s = Decimal((now - start) // _MICRO) / 1_000_000
    daily = spent * 86400 / elapsed_s if elapsed_s else Decimal(0)
    projected = spent * (days * 86400) / elapsed_s if elapsed_s else spent
    return {
        "method": "linear",
        "month_start": start.isoformat(),
        "month_end": end.isoformat(),
        "as_of": now.isoformat(),
        "days_elapsed": format((elapsed_s / 86400).quantize(Decimal("0.000001")), "f"),
        "days_in_month": days,
        "month_to_date_cost": money(spent),
        "daily_average": money(daily.quantize(_QUANTUM)),
        "projected_cost": money(projected.quantize(_QUANTUM)),
        "currency": "USD",
    }


def export_chunks(events: Iterator[UsageEvent], fmt: Literal["csv", "json", "jsonl"]) -> Iterator[str]:
    """The export of ``events`` in pieces of a few hundred rows (what ``write_events`` writes, streamed)."""
    first = True
    if fmt == "json":
        yield "["
    while batch := list(islice(events, _CHUNK)):
        buf = io.StringIO()
        write_events(batch, buf, "jsonl" if fmt == "json" else fmt)
        text = buf.getvalue()
        if fmt == "csv" and not first:
            text = text.split("\r\n", 1)[1]  # the header once
        elif fmt == "json":  # write_events' array layout: "[", "\n" + row, ",\n" + row ..., "\n]\n"
            rows = text.split("\n")[:-1]
            text = "".join(("\n" if first and i == 0 else ",\n") + row for i, row in enumerate(rows))
        first = False
        yield text
    if fmt == "csv" and first:
        buf = io.StringIO()
        write_events([], buf, "csv")
        yield buf.getvalue()
    if fmt == "json":
        yield "]\n" if first else "\n]\n"


@router.get(
    "/export",
    summary="Every matching event as CSV, a JSON array or JSON lines, streamed (the same as /usage/export)",
    response_class=StreamingResponse,
    responses={**errors(400), 200: {"content": {media: {} for media in _MEDIA.values()}}},
)
@router.get(
    "/usage/export",
    summary="Every matching event as CSV, a JSON array or JSON lines, streamed (any size)",
    response_class=StreamingResponse,
    responses={**errors(400), 200: {"content": {media: {} for media in _MEDIA.values()}}},
)
def usage_export(
    filters: Filters, svc: ServicesDep, view: PiiViewDep, format: Literal["csv", "json", "jsonl"] = "jsonl"
) -> StreamingResponse:
    events = svc.meter.events(**filters)
    if view is not None:
        events = map(view.event, events)
    name = f"spendgate-usage.{format}"
    return StreamingResponse(
        export_chunks(events, format),
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
