"""Budget breaches, played through the real governor: authorize, then settle what was allowed.

The seeding meter runs on a `FakeClock`; each call sets it to the call's time, so the decisions
(WARN, THROTTLE, DOWNGRADE, DENY), the threshold crossings and the grace period all happen at the
times the history shows, exactly as they would have live.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from spendgate.demo._cast import MODELS, Persona
from spendgate.meter import Meter, Recorded
from spendgate.testing import FakeClock
from spendgate.usage import Usage

__all__ = ["Episode", "governed_calls"]


@dataclass(slots=True)
class Episode:
    """What a run of governed calls did: each decision's action, and the events it recorded."""

    decisions: Counter[str] = field(default_factory=Counter)
    recorded: list[Recorded] = field(default_factory=list)

    @property
    def cost(self) -> Decimal:
        return sum((r.cost.total for r in self.recorded if r.cost is not None), Decimal(0))


@dataclass(frozen=True, slots=True)
class Call:
    """One call a persona tries: the model (``provider/model``), its prompt and answer sizes, its feature."""

    model: str
    input_tokens: int
    max_tokens: int
    output_tokens: int
    feature: str


def governed_calls(
    meter: Meter,
    clock: FakeClock,
    persona: Persona,
    key_id: str | None,
    *,
    times: list[datetime],
    call: Callable[[random.Random, int], Call],
    rng: random.Random,
    id_prefix: str,
    episode: Episode,
    until: Callable[[Episode], bool],
) -> Episode:
    """At each of ``times`` (until ``until(episode)``), ``persona`` tries ``call(rng, i)`` through the meter."""
    for i, at in enumerate(times):
        if until(episode):
            break
        planned = call(rng, i)
        profile = MODELS[planned.model]
        clock.set(at)
        auth = meter.authorize(
            provider=profile.provider, model=profile.model, user_id=persona.user_id, team_id=persona.team_id,
            api_key_id=key_id, tier=persona.tier, tags={"feature": planned.feature},
            session_id=f"{persona.user_id}-{at:%m%d}-{at.hour // 4}", input_tokens=planned.input_tokens,
            max_tokens=planned.max_tokens, reservation_id=f"{id_prefix}-{i:04d}",
        )  # fmt: skip
        episode.decisions[auth.action.value] += 1
        if not auth.allowed:
            continue
        used = MODELS.get(f"{auth.provider}/{auth.model}", profile)
        latency = round((used.base_ms + used.per_token_ms * planned.output_tokens) * rng.uniform(0.8, 1.25))
        clock.set(at + timedelta(milliseconds=latency))
        usage = Usage(input_tokens=planned.input_tokens, output_tokens=min(planned.output_tokens, planned.max_tokens))
        request_type = "messages" if profile.provider == "anthropic" else "chat"
        episode.recorded.append(
            meter.settle(auth, usage, latency_ms=latency, request_type=request_type, prompt_hash=f"{id_prefix}-{i}",
                         endpoint="/v1/messages" if request_type == "messages" else "/v1/chat/completions")
        )  # fmt: skip
    return episode
