"""`spendgate limits …`, `spendgate budget …` and `spendgate stop …`: budgets from the command line."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer

from spendgate.cli._common import DatabaseOpt, JsonOpt, build_settings, emit_json, handle_errors, print_table, stdout
from spendgate.meter import Meter

__all__ = ["register"]

limits_app = typer.Typer(help="Budget limits, stored in the ledger database (every process sharing it applies them).")
budget_app = typer.Typer(help="Live budget figures and counter maintenance.")
stop_app = typer.Typer(help="Emergency stops: refuse every request in a scope.")

ScopeArg = Annotated[
    str, typer.Argument(help="global, user, team, key, session, provider, model, or a combination like user+provider.")
]
ScopeIdArg = Annotated[str | None, typer.Argument(help="The id(s), e.g. alice or alice/openai.")]
ActorOpt = Annotated[str, typer.Option(help="Who makes the change (kept in the audit log).")]


def _meter(database_url: str | None) -> Meter:
    return Meter(settings=build_settings(database_url))


@limits_app.command("set")
def limits_set(
    scope: ScopeArg,
    scope_id: ScopeIdArg = None,
    amount: Annotated[str, typer.Option(help="The limit: dollars for cost, a count for tokens and requests.")] = "",
    metric: Annotated[str, typer.Option(help="cost, input_tokens, output_tokens, total_tokens or requests.")] = "cost",
    period: Annotated[str, typer.Option(help="request, hour, day, week, month, year or rolling.")] = "day",
    level: Annotated[str, typer.Option(help="hard (block), soft (warn) or adaptive (the tier policy).")] = "hard",
    timezone: Annotated[str, typer.Option(help="IANA time zone of calendar periods.")] = "UTC",
    rolling_seconds: Annotated[int | None, typer.Option(help="Size of a rolling window.")] = None,
    actor: ActorOpt = "cli",
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or replace a limit."""
    with handle_errors(), _meter(database_url) as meter:
        if not amount:
            raise ValueError("--amount: required")
        limit = meter.set_limit(
            scope=scope,
            scope_id=scope_id,
            metric=metric,
            period=period,
            amount=amount,
            level=level,
            timezone=timezone,
            rolling_seconds=rolling_seconds,
            actor=actor,
        )
    if as_json:
        emit_json(limit.to_dict())
    else:
        stdout.print(f"limit {limit.id}: {limit.describe()}")


@limits_app.command("list")
def limits_list(database_url: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """Every stored limit."""
    with handle_errors(), _meter(database_url) as meter:
        limits = meter.limits()
    if as_json:
        emit_json([limit.to_dict() for limit in limits])
        return
    rows = [[lim.id, str(lim.scope) or "global", lim.metric.value, lim.period.value, lim.amount, lim.level.value]
            for lim in limits]  # fmt: skip
    print_table("limits", ["id", "scope", "metric", "period", "amount", "level"], rows)


@limits_app.command("rm")
def limits_rm(limit_id: str, actor: ActorOpt = "cli", database_url: DatabaseOpt = None) -> None:
    """Remove a limit by id."""
    with handle_errors(), _meter(database_url) as meter:
        removed = meter.remove_limit(limit_id, actor=actor)
    if not removed:
        raise typer.Exit(1)
    stdout.print(f"removed {limit_id}")


@budget_app.command("status")
def budget_status(
    user: Annotated[str | None, typer.Option(help="A user id.")] = None,
    team: Annotated[str | None, typer.Option(help="A team id.")] = None,
    key: Annotated[str | None, typer.Option(help="An API key id.")] = None,
    tier: Annotated[str | None, typer.Option(help="The user's tier (adds its default limits).")] = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Spent, reserved and remaining for every limit that applies."""
    with handle_errors(), _meter(database_url) as meter:
        found = meter.budget_status(user_id=user, team_id=team, api_key_id=key, tier=tier)
    if as_json:
        emit_json([status.to_dict() for status in found])
        return
    rows: list[list[Any]] = [[s.limit.id, s.spent, s.reserved, s.amount, s.remaining, f"{s.utilization:.1%}",
                              s.resets_at.isoformat() if s.resets_at else ""] for s in found]  # fmt: skip
    print_table("budget", ["limit", "spent", "reserved", "amount", "remaining", "used", "resets at"], rows)


@budget_app.command("reconcile")
def budget_reconcile(database_url: DatabaseOpt = None, as_json: JsonOpt = False) -> None:
    """Compare live counters with the ledger and correct drift (safe to run any time)."""
    with handle_errors(), _meter(database_url) as meter:
        drifts = meter.reconcile()
    data = [{"key": d.key, "limit_id": d.limit_id, "counter": d.counter, "ledger": d.ledger, "corrected": d.corrected}
            for d in drifts]  # fmt: skip
    if as_json:
        emit_json(data)
    elif not data:
        stdout.print("counters agree with the ledger")
    else:
        print_table(
            "drift",
            ["limit_id", "counter", "ledger", "corrected"],
            [[d["limit_id"], d["counter"], d["ledger"], d["corrected"]] for d in data],
        )


@stop_app.command("set")
def stop_set(
    scope: ScopeArg = "global",
    scope_id: ScopeIdArg = None,
    reason: Annotated[str, typer.Option(help="Why (shown to refused callers).")] = "emergency stop",
    minutes: Annotated[float | None, typer.Option(help="Lift by itself after this many minutes.")] = None,
    actor: ActorOpt = "cli",
    database_url: DatabaseOpt = None,
) -> None:
    """Stop every request in a scope now."""
    cooldown = None if minutes is None else timedelta(minutes=minutes)
    with handle_errors(), _meter(database_url) as meter:
        breaker = meter.emergency_stop(scope, scope_id, reason=reason, cooldown=cooldown, actor=actor)
    until = f" until {breaker.cooldown_until.isoformat()}" if breaker.cooldown_until else ""
    stdout.print(f"stopped {str(breaker.scope) or 'global'}{until}: {reason}")


@stop_app.command("clear")
def stop_clear(scope: ScopeArg = "global", scope_id: ScopeIdArg = None, actor: ActorOpt = "cli",
               database_url: DatabaseOpt = None) -> None:  # fmt: skip
    """Lift an emergency stop."""
    with handle_errors(), _meter(database_url) as meter:
        cleared = meter.clear_emergency_stop(scope, scope_id, actor=actor)
    if not cleared:
        raise typer.Exit(1)
    stdout.print("cleared")


def register(app: typer.Typer) -> None:
    app.add_typer(limits_app, name="limits")
    app.add_typer(budget_app, name="budget")
    app.add_typer(stop_app, name="stop")
