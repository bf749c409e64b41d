"""`spendgate cost`, `tokens` and `prices`: no ledger needed unless --database-url is given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

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
from spendgate.pricing import PriceBook, load_overrides
from spendgate.settings import Settings
from spendgate.tokens import TokenCounter
from spendgate.usage import Usage

__all__ = ["prices_app", "register"]

prices_app = typer.Typer(help="Show and search the price book (catalog + overrides).", no_args_is_help=True)


def _book(settings: Settings, database_url: str | None) -> PriceBook:
    if database_url is not None:
        from spendgate.meter import Meter

        meter = Meter(settings=settings)
        meter.close()
        return meter.prices
    if settings.price_file is None:
        return PriceBook(exchange_rates=settings.exchange_rates)
    price_file = load_overrides(settings.price_file)
    rates = {**price_file.exchange_rates, **settings.exchange_rates}
    return PriceBook(price_file.overrides, fallback=price_file.fallback, exchange_rates=rates)


def cost(
    provider: Annotated[str, typer.Option(help="Provider id, e.g. openai, anthropic, google.")],
    model: Annotated[str, typer.Option(help="Model name as sent to the provider.")],
    input_tokens: Annotated[int, typer.Option(help="All input tokens, cached ones included.")] = 0,
    output_tokens: Annotated[int, typer.Option(help="All output tokens, reasoning included.")] = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    service_tier: Annotated[str | None, typer.Option(help="flex, priority, ... where priced.")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Price at the provider's batch rate.")] = False,
    currency: Annotated[str, typer.Option(help="Output currency (needs an exchange rate).")] = "USD",
    at: Annotated[str | None, typer.Option(help="Price as of this date/time (default now).")] = None,
    price_file: PriceFileOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Price one call exactly."""
    settings = build_settings(database_url, price_file)
    with handle_errors():
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
        )
        breakdown = _book(settings, database_url).cost(
            provider,
            model,
            usage,
            at=parse_when(at, "at"),
            service_tier=service_tier,
            batch=batch,
            currency=currency.upper(),
        )
    data = breakdown.to_dict()
    if as_json:
        emit_json(data)
        return
    rows = [[key, value] for key, value in data.items()]
    print_table(f"{provider}/{model}", ["field", "value"], rows)


def tokens(
    provider: Annotated[str, typer.Option(help="Provider id.")],
    model: Annotated[str, typer.Option(help="Model name.")],
    text: Annotated[str | None, typer.Option(help="Text to count.")] = None,
    file: Annotated[Path | None, typer.Option(help="Count the text of this file.", exists=True)] = None,
    messages: Annotated[
        Path | None, typer.Option(help="JSON file: a list of chat messages, or {messages, tools, system}.", exists=True)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Count tokens of a text, a file or a chat request."""
    if sum(x is not None for x in (text, file, messages)) != 1:
        raise fail("give exactly one of --text, --file or --messages", 2)
    kwargs: dict[str, Any] = {}
    if text is not None:
        kwargs["text"] = text
    elif file is not None:
        kwargs["text"] = file.read_text(encoding="utf-8")
    else:
        assert messages is not None
        try:
            body = json.loads(messages.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise fail(f"--messages: not valid JSON: {exc}", 2) from None
        if isinstance(body, list):
            kwargs["messages"] = body
        elif isinstance(body, dict):
            kwargs.update({k: body[k] for k in ("messages", "tools", "system", "response_format") if k in body})
        else:
            raise fail("--messages: expected a list of messages or an object", 2)
    settings = build_settings()
    with handle_errors():
        count = TokenCounter(chars_per_token=settings.chars_per_token).count(provider, model, **kwargs)
    data = count.to_dict()
    if as_json:
        emit_json(data)
        return
    print_table(f"{provider}/{model} tokens", ["part", "tokens"], [[k, v] for k, v in data.items()])


def _price_row(info: Any) -> dict[str, Any]:
    return info.to_dict()  # type: ignore[no-any-return]


@prices_app.command("show")
def prices_show(
    provider: Annotated[str, typer.Argument(help="Provider id.")],
    model: Annotated[str, typer.Argument(help="Model name.")],
    service_tier: Annotated[str | None, typer.Option(help="Show this service tier's prices.")] = None,
    price_file: PriceFileOpt = None,
    database_url: DatabaseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one model's current prices (per million tokens) and where they come from."""
    settings = build_settings(database_url, price_file)
    with handle_errors():
        info = _book(settings, database_url).price(provider, model, service_tier=service_tier)
    data = _price_row(info)
    if as_json:
        emit_json(data)
        return
    print_table(f"{provider}/{model}", ["field", "value"], [[k, v] for k, v in data.items()])


@prices_app.command("search")
def prices_search(
    query: Annotated[str, typer.Argument(help="Part of a model name.")],
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    limit: int = 50,
    price_file: PriceFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find models whose name contains QUERY."""
    settings = build_settings(None, price_file)
    with handle_errors():
        found = [_price_row(i) for i in _book(settings, None).search(query, provider=provider, limit=limit)]
    if as_json:
        emit_json(found)
        return
    if not found:
        stdout.print(f"no model matches {query!r}")
        return
    cols = ["provider", "model_id", "input_mtok", "output_mtok", "cache_read_mtok", "source"]
    print_table(f"models matching {query!r}", cols, [[row.get(c) for c in cols] for row in found])


def register(app: typer.Typer) -> None:
    app.command()(cost)
    app.command()(tokens)
    app.add_typer(prices_app, name="prices")
