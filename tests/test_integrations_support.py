"""Shared fixtures and helpers of the ``test_integrations_*`` files (no tests of its own).

Each provider is a `Flavor`: how to build its sync/async SDK client against the `FakeUpstream`, what a
request looks like, and a usage figure in its own shape, so one test runs against both providers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from spendgate import Meter, Settings, Usage
from spendgate.ledger import UsageEvent
from spendgate.testing import FakeClock, FakeUpstream

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HI: list[Any] = [{"role": "user", "content": "hi"}]
#: Cheaper models for the test models (both same-provider, so the SDK clients can honour them).
CHAINS = {"gpt-4o": ["openai/gpt-4o-mini"], "claude-sonnet-4-6": ["anthropic/claude-haiku-4-5"]}
WORDS = [f"word{i} " for i in range(40)]


@dataclass(frozen=True)
class Flavor:
    """One provider's SDK, as the tests drive it."""

    provider: str
    model: str
    cheaper: str
    sdk: Any
    scripted: Usage
    """A usage in spendgate's convention that this provider's wire format can carry in full."""

    def client(self, fake: FakeUpstream, **options: Any) -> Any:
        if self.provider == "openai":
            return openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0, **options)
        return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="test", max_retries=0, **options)

    def async_client(self, fake: FakeUpstream, **options: Any) -> Any:
        if self.provider == "openai":
            return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0, **options)
        return anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="test", max_retries=0, **options)

    def create(self, client: Any) -> Any:
        """The SDK method that makes a chat call."""
        return client.chat.completions.create if self.provider == "openai" else client.messages.create

    def request(self, **extra: Any) -> dict[str, Any]:
        return {"model": self.model, "messages": HI, "max_tokens": 50, **extra}


OPENAI = Flavor(
    "openai", "gpt-4o", "gpt-4o-mini", openai,
    Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=800, reasoning_tokens=100),
)  # fmt: skip
ANTHROPIC = Flavor(
    "anthropic", "claude-sonnet-4-6", "claude-haiku-4-5", anthropic,
    Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=800, cache_write_tokens=100),
)  # fmt: skip
FLAVORS = [pytest.param(OPENAI, id="openai"), pytest.param(ANTHROPIC, id="anthropic")]


def make_meter(path: Path, chains: dict[str, list[str]] = CHAINS, **settings: Any) -> Meter:
    return Meter(
        settings=Settings(database_url=f"sqlite:///{path / 'meter.db'}", downgrade_chains=chains, **settings),
        clock=FakeClock(T0),
    )


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(clock=FakeClock(T0)) as upstream:
        yield upstream


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[Meter]:
    with make_meter(tmp_path) as m:
        yield m


def only_event(meter: Meter) -> UsageEvent:
    events = list(meter.events())
    assert len(events) == 1, events
    return events[0]


def reserved(meter: Meter, **ids: Any) -> Decimal:
    """What is held right now on the limits of ``ids`` (there must be at least one)."""
    statuses = meter.budget_status(**ids)
    assert statuses
    return sum((s.reserved for s in statuses), Decimal(0))


def cost_of(meter: Meter, provider: str, model: str, usage: Usage) -> Decimal:
    return meter.cost(provider, model, usage).total


def strip_ids(chunks: list[Any]) -> list[dict[str, Any]]:
    """Chunks as dicts without their per-request ``id`` (so two requests' streams compare equal)."""
    out = []
    for chunk in chunks:
        data = chunk.model_dump()
        data.pop("id", None)
        if isinstance(data.get("message"), dict):
            data["message"].pop("id", None)
        out.append(data)
    return out
