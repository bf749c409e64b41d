"""`instrument` on the real OpenAI and Anthropic SDK clients (sync and async) against `FakeUpstream`:
authorize → call → settle, downgrades, refusals and upstream failures. Streams: test_integrations_streams."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from spendgate import BudgetExceeded, ConfigurationError, Meter, Usage
from spendgate.integrations import instrument, uninstrument
from spendgate.testing import FakeReply, FakeUpstream, Fault
from test_integrations_support import (  # fixtures are registered by being imported
    FLAVORS,
    HI,
    OPENAI,
    Flavor,
    cost_of,
    fake,
    make_meter,
    meter,
    only_event,
    reserved,
)

__all__ = ["fake", "meter"]


# -- a normal call ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_call_records_exact_usage_and_cost(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(usage=flavor.scripted))
    with flavor.client(fake) as client:
        instrument(client, meter, user_id="alice", team_id="ml", tags={"app": "demo"}, request_type="support")
        reply = flavor.create(client)(**flavor.request(spendgate_session_id="s1", spendgate_tags={"step": "1"}))
    assert reply.usage is not None  # the caller gets the SDK's own response object
    event = only_event(meter)
    assert event.usage == flavor.scripted
    assert event.cost == cost_of(meter, flavor.provider, flavor.model, flavor.scripted)
    assert (event.provider, event.model, event.model_used) == (flavor.provider, flavor.model, None)
    assert (event.user_id, event.team_id, event.session_id) == ("alice", "ml", "s1")
    assert dict(event.tags) == {"app": "demo", "step": "1"}
    assert event.request_type == "support" and event.success and not event.tokens_estimated
    assert event.latency_ms is not None and event.action == "allow"
    sent = fake.requests[-1].body
    assert not any(key.startswith("spendgate") for key in sent)  # per-call options never reach the SDK


@pytest.mark.parametrize("flavor", FLAVORS)
def test_async_call_records_exact_usage_and_cost(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(usage=flavor.scripted))

    async def main() -> None:
        async with flavor.async_client(fake) as client:
            instrument(client, meter, user_id="bob")
            await flavor.create(client)(**flavor.request())

    asyncio.run(main())
    event = only_event(meter)
    assert event.usage == flavor.scripted and event.user_id == "bob" and event.request_type == "chat"
    assert event.cost == cost_of(meter, flavor.provider, flavor.model, flavor.scripted)


def test_counted_usage_matches_the_prompt_exactly(fake: FakeUpstream, meter: Meter) -> None:
    fake.cached_tokens = 4
    with OPENAI.client(fake) as client:
        instrument(client, meter)
        reply = client.chat.completions.create(model="gpt-4o", messages=HI)
    usage = only_event(meter).usage
    assert usage.input_tokens == reply.usage.prompt_tokens == meter.count_tokens("openai", "gpt-4o", messages=HI).total
    assert usage.cache_read_tokens == 4 and usage.output_tokens == reply.usage.completion_tokens


def test_embeddings_and_parse_are_metered(fake: FakeUpstream, meter: Meter) -> None:
    with OPENAI.client(fake) as client:
        instrument(client, meter, user_id="carol")
        embedded = client.embeddings.create(model="text-embedding-3-small", input=["hello there", "world"])
        parsed = client.chat.completions.parse(model="gpt-4o", messages=HI)
    events = {event.request_type: event for event in meter.events()}
    embedding, chat = events["embedding"], events["chat"]
    assert embedding.model == "text-embedding-3-small" and embedding.user_id == "carol"
    assert embedding.usage == Usage(input_tokens=embedded.usage.prompt_tokens) and embedding.usage.input_tokens > 0
    assert chat.model == "gpt-4o" and chat.usage.output_tokens == parsed.usage.completion_tokens > 0


# -- budgets ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_downgrade_sends_the_cheaper_model(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="dee", amount="0.02", level="adaptive")
    with flavor.client(fake) as client:
        instrument(client, meter, user_id="dee", tier="free")
        flavor.create(client)(**flavor.request(max_tokens=2000))
    assert fake.requests[-1].body["model"] == flavor.cheaper
    event = only_event(meter)
    assert (event.model, event.model_used, event.action) == (flavor.model, flavor.cheaper, "downgrade")
    assert event.cost == cost_of(meter, flavor.provider, flavor.cheaper, event.usage)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_async_downgrade_sends_the_cheaper_model(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="dee", amount="0.02", level="adaptive")

    async def main() -> None:
        async with flavor.async_client(fake) as client:
            instrument(client, meter, user_id="dee", tier="free")
            await flavor.create(client)(**flavor.request(max_tokens=2000))

    asyncio.run(main())
    assert fake.requests[-1].body["model"] == flavor.cheaper
    assert only_event(meter).model_used == flavor.cheaper


@pytest.mark.parametrize("flavor", FLAVORS)
def test_deny_raises_before_any_request(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    limit = meter.set_limit(scope="user", scope_id="eve", amount="0.000001")
    with flavor.client(fake) as client:
        instrument(client, meter, user_id="eve")
        with pytest.raises(BudgetExceeded) as caught:
            flavor.create(client)(**flavor.request())
    assert fake.requests == [] and list(meter.events()) == []
    assert caught.value.action == "deny" and caught.value.limit_id == limit.id
    assert reserved(meter, user_id="eve") == 0


@pytest.mark.parametrize("flavor", FLAVORS)
def test_async_deny_raises_before_any_request(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    meter.emergency_stop(reason="runaway agent")

    async def main() -> None:
        async with flavor.async_client(fake) as client:
            instrument(client, meter)
            with pytest.raises(BudgetExceeded, match="runaway agent") as caught:
                await flavor.create(client)(**flavor.request())
            assert caught.value.action == "emergency_stop"

    asyncio.run(main())
    assert fake.requests == [] and list(meter.events()) == []


def test_cross_provider_downgrade_is_refused(tmp_path: Path, fake: FakeUpstream) -> None:
    with (
        make_meter(tmp_path, chains={"gpt-4o": ["anthropic/claude-haiku-4-5"]}) as meter,
        OPENAI.client(fake) as client,
    ):
        meter.set_limit(scope="user", scope_id="fay", amount="0.02", level="adaptive")
        instrument(client, meter, user_id="fay", tier="free")
        with pytest.raises(BudgetExceeded, match="gateway") as caught:
            client.chat.completions.create(**OPENAI.request(max_tokens=2000))
        assert caught.value.action == "downgrade"
        assert caught.value.authorization.provider == "anthropic"
        assert fake.requests == []
        assert reserved(meter, user_id="fay") == 0
        event = only_event(meter)
        assert (event.success, event.error_kind, event.cost) == (False, "downgrade_refused", Decimal(0))


def test_warn_proceeds_and_logs(fake: FakeUpstream, meter: Meter, caplog: pytest.LogCaptureFixture) -> None:
    meter.set_limit(scope="user", scope_id="gus", amount="0.000001", level="soft")
    with OPENAI.client(fake) as client, caplog.at_level(logging.WARNING, logger="spendgate.integrations"):
        instrument(client, meter, user_id="gus")
        client.chat.completions.create(**OPENAI.request())
    assert len(fake.requests) == 1 and only_event(meter).action == "warn"
    assert any("budget warning" in record.getMessage() for record in caplog.records)


# -- failures ---------------------------------------------------------------------------------------------

STATUS_CASES = [
    pytest.param(500, "upstream_error", id="500"),
    pytest.param(429, "rate_limited", id="429"),
    pytest.param(400, "bad_request", id="400"),
]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize(("status", "kind"), STATUS_CASES)
def test_upstream_error_releases_and_reraises(
    flavor: Flavor, status: int, kind: str, fake: FakeUpstream, meter: Meter
) -> None:
    meter.set_limit(scope="user", scope_id="hal", amount="10")
    fake.script(FakeReply(status=status, error="boom"))
    with flavor.client(fake) as client:
        instrument(client, meter, user_id="hal")
        with pytest.raises(flavor.sdk.APIStatusError) as caught:
            flavor.create(client)(**flavor.request())
    assert caught.value.status_code == status
    assert reserved(meter, user_id="hal") == 0 and meter.budget_status(user_id="hal")[0].spent == 0
    event = only_event(meter)
    assert (event.success, event.error_kind, event.status_code, event.cost) == (False, kind, status, Decimal(0))


@pytest.mark.parametrize("flavor", FLAVORS)
def test_async_upstream_error_releases_and_reraises(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    meter.set_limit(scope="user", scope_id="hal", amount="10")
    fake.script(FakeReply(status=429))

    async def main() -> None:
        async with flavor.async_client(fake) as client:
            instrument(client, meter, user_id="hal")
            with pytest.raises(flavor.sdk.RateLimitError):
                await flavor.create(client)(**flavor.request())

    asyncio.run(main())
    assert reserved(meter, user_id="hal") == 0
    assert only_event(meter).error_kind == "rate_limited"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_timeout_and_connection_errors_are_named(flavor: Flavor, fake: FakeUpstream, meter: Meter) -> None:
    fake.script(FakeReply(latency_s=0.5), FakeReply(fault=Fault.RESET))
    with flavor.client(fake, timeout=0.1) as client:
        instrument(client, meter)
        with pytest.raises(flavor.sdk.APITimeoutError):
            flavor.create(client)(**flavor.request())
        with pytest.raises(flavor.sdk.APIConnectionError):
            flavor.create(client)(**flavor.request())
    kinds = sorted(event.error_kind or "" for event in meter.events())
    assert kinds == ["connection", "timeout"]


# -- the patching itself ----------------------------------------------------------------------------------


def test_only_the_instance_is_patched_and_can_be_restored(fake: FakeUpstream, meter: Meter) -> None:
    with OPENAI.client(fake) as metered, OPENAI.client(fake) as plain:
        assert instrument(metered, meter) is metered
        instrument(metered, meter, user_id="ivy")  # again: replaces, never stacks
        plain.chat.completions.create(**OPENAI.request())
        metered.chat.completions.create(**OPENAI.request())
        assert only_event(meter).user_id == "ivy"
        uninstrument(metered)
        metered.chat.completions.create(**OPENAI.request())
    assert len(fake.requests) == 3 and len(list(meter.events())) == 1
    assert type(metered.chat.completions).create is openai.resources.chat.completions.Completions.create


def test_bad_arguments_are_refused_before_any_request(fake: FakeUpstream, meter: Meter) -> None:
    with pytest.raises(ConfigurationError, match=r"openai\.OpenAI"):
        instrument(object(), meter)
    with OPENAI.client(fake) as client:
        with pytest.raises(ConfigurationError, match="Meter"):
            instrument(client, "sqlite://")  # type: ignore[arg-type]
        instrument(client, meter)
        with pytest.raises(TypeError, match="spendgate_user"):
            client.chat.completions.create(**OPENAI.request(spendgate_usr="x"))
    assert fake.requests == [] and list(meter.events()) == []


def test_async_meter_provider_name_and_metadata(fake: FakeUpstream, meter: Meter) -> None:
    from spendgate import AsyncMeter

    async def main() -> None:
        async with OPENAI.async_client(fake) as client:
            instrument(client, AsyncMeter(meter=meter), provider="openai", user_id="jo")
            await client.chat.completions.create(model="gpt-4o", messages=HI, spendgate_metadata={"k": "v"})

    asyncio.run(main())
    event = only_event(meter)
    assert event.provider == "openai" and event.user_id == "jo" and dict(event.metadata) == {"k": "v"}
    assert event.usage == Usage(input_tokens=8, output_tokens=6)


def test_a_sync_client_takes_an_async_meter_too(fake: FakeUpstream, meter: Meter) -> None:
    from spendgate import AsyncMeter

    with OPENAI.client(fake) as client:
        instrument(client, AsyncMeter(meter=meter), user_id="kim")
        client.chat.completions.create(**OPENAI.request())
    assert only_event(meter).user_id == "kim"


def test_sdk_code_calling_its_own_client_is_metered_once(fake: FakeUpstream, meter: Meter) -> None:
    with OPENAI.client(fake) as client, OPENAI.client(fake) as other:
        instrument(other, meter, user_id="other")
        sdk_create = client.chat.completions.create

        def helper(**kwargs: Any) -> Any:  # stands in for an SDK helper that uses other methods of its client
            client.embeddings.create(model="text-embedding-3-small", input="inner", spendgate_user_id="x")
            other.embeddings.create(model="text-embedding-3-small", input="another client")
            return sdk_create(**kwargs)

        client.chat.completions.create = helper
        instrument(client, meter, user_id="outer")
        client.chat.completions.create(**OPENAI.request())
    assert len(fake.requests) == 3
    assert sorted((e.user_id or "", e.request_type or "") for e in meter.events()) == [
        ("other", "embedding"), ("outer", "chat")]  # fmt: skip
    assert "spendgate_user_id" not in str(fake.requests[0].raw_body)


def test_async_cross_provider_downgrade_is_refused(tmp_path: Path, fake: FakeUpstream) -> None:
    async def main(meter: Meter) -> None:
        async with OPENAI.async_client(fake) as client:
            instrument(client, meter, user_id="fay", tier="free")
            with pytest.raises(BudgetExceeded, match="gateway"):
                await client.chat.completions.create(**OPENAI.request(max_tokens=2000))

    with make_meter(tmp_path, chains={"gpt-4o": ["anthropic/claude-haiku-4-5"]}) as meter:
        meter.set_limit(scope="user", scope_id="fay", amount="0.02", level="adaptive")
        asyncio.run(main(meter))
        assert fake.requests == [] and reserved(meter, user_id="fay") == 0
        assert only_event(meter).error_kind == "downgrade_refused"


def test_input_that_cannot_be_counted_is_left_to_the_provider(
    fake: FakeUpstream, meter: Meter, caplog: pytest.LogCaptureFixture
) -> None:
    with OPENAI.client(fake) as client:
        instrument(client, meter)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": 5}])
    assert len(fake.requests) == 1 and only_event(meter).error_kind == "bad_request"
    assert any("could not count" in record.getMessage() for record in caplog.records)
