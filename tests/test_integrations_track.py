"""`track`: a decorator that meters any function returning a provider response (sync or async)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spendgate import AsyncMeter, BudgetExceeded, InvalidUsageError, Meter, Usage
from spendgate.integrations import track
from spendgate.testing import FakeReply, FakeUpstream
from test_integrations_support import (  # fixtures are registered by being imported
    ANTHROPIC,
    HI,
    OPENAI,
    cost_of,
    fake,
    meter,
    only_event,
    reserved,
)

__all__ = ["fake", "meter"]

OPENAI_REPLY: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 100},
    },
}


def test_sync_function_returning_an_openai_dict(meter: Meter) -> None:
    models: list[str] = []

    @track(meter, provider="openai", user_id="ann", request_type="summarize")
    def ask(messages: list[Any], *, model: str, max_tokens: int) -> dict[str, Any]:
        models.append(model)
        return OPENAI_REPLY

    extra = {"spendgate_team_id": "ml"}  # per-call options are not in the function's own signature
    assert ask(HI, model="gpt-4o", max_tokens=400, **extra) is OPENAI_REPLY
    assert ask.__name__ == "ask" and models == ["gpt-4o"]
    event = only_event(meter)
    assert event.usage == OPENAI.scripted and not event.tokens_estimated
    assert event.cost == cost_of(meter, "openai", "gpt-4o", OPENAI.scripted)
    assert (event.user_id, event.team_id, event.request_type, event.model) == ("ann", "ml", "summarize", "gpt-4o")


def test_async_function_returning_an_anthropic_message(fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(usage=ANTHROPIC.scripted))

    async def main() -> Any:
        async with ANTHROPIC.async_client(fake) as client:

            @track(AsyncMeter(meter=meter), provider="anthropic", model="claude-sonnet-4-6", user_id="bo")
            async def ask(question: str, model: str = "claude-sonnet-4-6") -> Any:
                messages = [{"role": "user", "content": question}]
                return await client.messages.create(model=model, max_tokens=100, messages=messages)

            return await ask("hi")

    message = asyncio.run(main())
    assert type(message).__name__ == "Message"
    event = only_event(meter)
    assert event.usage == ANTHROPIC.scripted == Usage.from_anthropic(**message.usage.model_dump(include={
        "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"}))  # fmt: skip
    assert event.user_id == "bo" and event.cost == cost_of(meter, "anthropic", "claude-sonnet-4-6", event.usage)


def test_deny_does_not_run_the_function(meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="cy", amount="0.000001")
    ran: list[bool] = []

    @track(meter, provider="openai", model="gpt-4o", user_id="cy")
    def ask(messages: list[Any]) -> dict[str, Any]:
        ran.append(True)  # pragma: no cover - never called
        return OPENAI_REPLY  # pragma: no cover

    with pytest.raises(BudgetExceeded) as caught:
        ask(HI)
    assert ran == [] and caught.value.action == "deny" and list(meter.events()) == []


def test_downgrade_rewrites_the_model_argument(meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="dee", amount="0.02", level="adaptive")
    received: list[str] = []

    @track(meter, provider="openai", user_id="dee", tier="free")
    def positional(model: str, messages: list[Any], max_tokens: int) -> dict[str, Any]:
        received.append(model)
        return OPENAI_REPLY

    @track(meter, provider="openai", user_id="dee", tier="free")
    def keywords(**kwargs: Any) -> dict[str, Any]:
        received.append(kwargs["model"])
        return OPENAI_REPLY

    positional("gpt-4o", HI, 2000)
    keywords(model="gpt-4o", messages=HI, max_tokens=2000)
    assert received == ["gpt-4o-mini", "gpt-4o-mini"]
    assert {event.model_used for event in meter.events()} == {"gpt-4o-mini"}


def test_downgrade_without_a_model_argument_is_refused(meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="dee", amount="0.02", level="adaptive")

    @track(meter, provider="openai", model="gpt-4o", user_id="dee", tier="free")
    def ask(messages: list[Any], max_tokens: int) -> dict[str, Any]:
        return OPENAI_REPLY  # pragma: no cover - never called

    with pytest.raises(BudgetExceeded, match="no model argument"):
        ask(HI, max_tokens=2000)
    assert reserved(meter, user_id="dee") == 0 and only_event(meter).error_kind == "downgrade_refused"


def test_exception_releases_and_reraises(meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="eve", amount="10")

    class Throttled(Exception):
        status_code = 429

    @track(meter, provider="openai", model="gpt-4o", user_id="eve")
    def ask(messages: list[Any], fail: Exception) -> dict[str, Any]:
        raise fail

    for error in (Throttled("slow down"), ValueError("bad")):
        with pytest.raises(type(error)):
            ask(HI, error)
    assert reserved(meter, user_id="eve") == 0
    assert sorted((e.error_kind or "", e.status_code or 0) for e in meter.events()) == [
        ("error", 0), ("rate_limited", 429)]  # fmt: skip


def test_a_response_without_usage_is_estimated(meter: Meter) -> None:
    @track(meter, provider="openai", model="gpt-4o")
    def ask(prompt: str) -> str:
        return "Paris is the capital of France."

    ask("What is the capital of France?")
    event = only_event(meter)
    assert event.tokens_estimated
    assert event.usage == Usage(
        input_tokens=meter.count_tokens("openai", "gpt-4o", text="What is the capital of France?").total,
        output_tokens=meter.count_tokens("openai", "gpt-4o", text="Paris is the capital of France.").total,
    )


def test_other_providers_go_through_genai_prices(meter: Meter) -> None:
    @track(meter, provider="google", model="gemini-2.5-flash")
    def ask(messages: list[Any]) -> dict[str, Any]:
        usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 2}
        return {"modelVersion": "gemini-2.5-flash", "usageMetadata": usage}

    ask(HI)
    event = only_event(meter)
    assert event.usage == Usage(input_tokens=10, output_tokens=7, reasoning_tokens=2) and not event.tokens_estimated


def test_a_model_is_required(meter: Meter) -> None:
    @track(meter, provider="openai")
    def ask(messages: list[Any]) -> dict[str, Any]:
        return OPENAI_REPLY  # pragma: no cover - never called

    with pytest.raises(InvalidUsageError, match="model"):
        ask(HI)
    assert list(meter.events()) == []


def test_reported_usage_that_cannot_be_right_is_estimated(meter: Meter, caplog: pytest.LogCaptureFixture) -> None:
    @track(meter, provider="openai", model="gpt-4o")
    def ask(messages: list[Any]) -> dict[str, Any]:
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 5}}
        return {"choices": [{"message": {"content": "Hello there"}}], "usage": usage}

    ask(HI)
    event = only_event(meter)
    assert event.tokens_estimated and event.usage == Usage(
        input_tokens=meter.count_tokens("openai", "gpt-4o", messages=HI).total,
        output_tokens=meter.count_tokens("openai", "gpt-4o", text="Hello there").total,
    )
    assert any("estimating" in record.getMessage() for record in caplog.records)


def test_defaults_of_the_function_count(meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="fox", amount="0.02", level="adaptive")
    received: list[tuple[str, int]] = []

    @track(meter, provider="openai", user_id="fox", tier="free")
    def ask(messages: list[Any], model: str = "gpt-4o", max_tokens: int = 2000) -> dict[str, Any]:
        received.append((model, max_tokens))
        return OPENAI_REPLY

    ask(HI)  # gpt-4o with 2,000 output tokens does not fit $0.02: the default model is downgraded
    assert received == [("gpt-4o-mini", 2000)]
    assert only_event(meter).model == "gpt-4o"


def test_meter_track_is_the_same_decorator(meter: Meter) -> None:
    @meter.track(provider="openai", model="gpt-4o", user_id="zoe")
    def call(messages: list[dict[str, str]]) -> dict[str, object]:
        return {"model": "gpt-4o", "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}

    call([{"role": "user", "content": "hi"}])
    summary = meter.summary(user_id="zoe")
    assert (summary.requests, summary.input_tokens, summary.output_tokens) == (1, 9, 3)
