"""`spendgate recommend`, `spendgate forecast` and `spendgate anomalies detect|list`: insights from the ledger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer

from spendgate.analytics._anomaly import (
    METRICS,
    AnomalyConfig,
    detect_anomalies,
    list_anomalies,
    record_anomalies,
)
from spendgate.analytics._forecast import forecast_month, limit_run_outs
from spendgate.analytics._recommend import RecommendationConfig, recommend
from spendgate.cli._common import (
    DatabaseOpt,
    JsonOpt,
    PriceFileOpt,
    build_settings,
    emit_json,
    fail,
    handle_errors,
    parse_when,
    print_table,
    stdout,
)
from spendgate.meter import Meter

__all__ = ["register"]

anomalies_app = typer.Typer(
    help="Spikes of cost, volume, errors and latency against a seasonal baseline.", no_args_is_help=True
)

SinceOpt = Annotated[str | None, typer.Option(help="From this date/time (ISO, naive = UTC) or span like 7d.")]
UntilOpt = Annotated[str | None, typer.Option(help="Up to (not including) this date/time.")]
UserOpt = Annotated[str | None, typer.Option("--user", help="Only this user.")]
TeamOpt = Annotated[str | None, typer.Option("--team", help="Only this team.")]
KeyOpt = Annotated[str | None, typer.Option("--key", help="Only this API key id.")]
ProviderOpt = Annotated[str | None, typer.Option(help="Only this provider.")]
ModelOpt = Annotated[str | None, typer.Option(help="Only this model.")]


def recommend_command(
    since: SinceOpt = "30d",
    until: UntilOpt = None,
    user: UserOpt = None,
    team: TeamOpt = None,
    key: KeyOpt = None,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    min_savings: Annotated[str, typer.Option(help="Savings floor over the period (a decimal).")] = "5.0",
    min_confidence: Annotated[float, typer.Option(help="Confidence floor, 0 to 1.")] = 0.7,
    price_file: PriceFileOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ways to spend less, each with its savings re-priced on the period's actual traffic."""
    try:
        floor = Decimal(min_savings)
    except InvalidOperation:
        raise fail(f"--min-savings: not a decimal: {min_savings!r}", 2) from None
    settings = build_settings(database_url, price_file)
    start, end = parse_when(since, "since"), parse_when(until, "until")
    with handle_errors(), Meter(settings=settings) as meter:
        config = RecommendationConfig(min_savings=floor, min_confidence=min_confidence)
        end = end or meter.clock.now()
        start = start or end - timedelta(days=30)
        if start >= end:
            raise fail("--since: must be before --until", 2)
        report = recommend(meter.store, meter.prices, since=start, until=end, user_id=user, team_id=team,
                           api_key_id=key, provider=provider, model=model, config=config,
                           chains=meter.governor.policy.get().chains)  # fmt: skip
    if as_json:
        emit_json(report.to_dict())
        return
    rows = [
        [r.type, r.priority, r.title, r.savings.normalize(), f"{r.savings_percent}%", r.confidence]
        for r in report.recommendations
    ]
    print_table("recommendations", ["type", "priority", "title", f"savings ({report.currency})", "%", "confidence"],
                rows)  # fmt: skip
    for r in report.recommendations:
        stdout.print(f"[bold]{r.title}[/]: {r.description}", highlight=False)
    stdout.print(f"{report.requests} calls costing {report.cost.normalize()} {report.currency} analysed;"
                 f" {report.withheld} recommendation(s) below the floors")  # fmt: skip


def forecast_command(
    user: UserOpt = None,
    team: TeamOpt = None,
    key: KeyOpt = None,
    provider: ProviderOpt = None,
    model: ModelOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Month-end spend with a 95 % band, and when each applicable limit runs out at the current rate."""
    settings = build_settings(database_url)
    scope = {"user_id": user, "team_id": team, "api_key_id": key, "provider": provider, "model": model}
    with handle_errors(), Meter(settings=settings) as meter:
        now = meter.clock.now()
        forecast = forecast_month(meter.store, now, scope=scope)
        statuses = meter.budget_status(user_id=user, team_id=team, api_key_id=key, provider=provider, model=model)
        limits = limit_run_outs(statuses, now)
    data: dict[str, Any] = {**forecast.to_dict(), "limits": [item.to_dict() for item in limits]}
    if as_json:
        emit_json(data)
        return
    fields = ("method", "history_days", "month_to_date_cost", "projected_cost", "lower", "upper", "daily_rate")
    print_table("forecast", ["field", "value"], [[name, data[name]] for name in fields])
    for item in data["limits"]:
        when = item["runs_out_at"] or "not before it resets"
        stdout.print(f"{item['limit']['id']}: {item['used']} of {item['amount']}, runs out {when}", highlight=False)


@anomalies_app.command("detect")
def detect_command(
    since: SinceOpt = None,
    until: UntilOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate complete hours (default: the last one) and store new anomalies for alerting."""
    settings = build_settings(database_url)
    with handle_errors(), Meter(settings=settings) as meter:
        now = meter.clock.now()
        found = detect_anomalies(meter.store, now, since=parse_when(since, "since"), until=parse_when(until, "until"),
                                 config=AnomalyConfig())  # fmt: skip
        new = {item.id for item in record_anomalies(meter.store.control, found, actor="cli")}
    if as_json:
        emit_json({"detected": [item.to_dict() for item in found], "new": sorted(new)})
        return
    _table([item.to_dict() for item in found], new)
    stdout.print(f"{len(found)} anomalies, {len(new)} new")


@anomalies_app.command("list")
def list_command(
    since: SinceOpt = "7d",
    until: UntilOpt = None,
    scope: Annotated[str | None, typer.Option(help="Only this scope: global, team:ml, model:gpt-4o...")] = None,
    metric: Annotated[str | None, typer.Option(help="Only this metric: " + ", ".join(METRICS))] = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stored anomalies of the hours in [since, until)."""
    if metric is not None and metric not in METRICS:
        raise fail(f"--metric: must be one of {', '.join(METRICS)}", 2)
    settings = build_settings(database_url)
    with handle_errors(), Meter(settings=settings) as meter:
        found = list_anomalies(meter.store.control, since=parse_when(since, "since"), until=parse_when(until, "until"),
                               scope=scope, metric=metric)  # fmt: skip
    if as_json:
        emit_json({"anomalies": [item.to_dict() for item in found]})
        return
    _table([item.to_dict() for item in found], set())


def _table(bodies: list[dict[str, Any]], new: set[str]) -> None:
    rows = [
        [b["hour"], b["type"], b["scope"], b["value"], b["baseline"], b["severity"], "new" if b["id"] in new else ""]
        for b in bodies
    ]
    print_table("anomalies", ["hour", "type", "scope", "value", "baseline", "severity", ""], rows)


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_command)
    app.command("forecast")(forecast_command)
    app.add_typer(anomalies_app, name="anomalies")
