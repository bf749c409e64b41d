"""Who the demo's history is about: teams, users on each tier, the models they call and what for.

Pure data: the generator (``_history``) and the live traffic (``_traffic``) read it. Every model is one
the price catalog knows, so every seeded cost is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FEATURES", "MODELS", "PERSONAS", "TEAMS", "Feature", "ModelProfile", "Persona", "persona"]


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """A model as the demo calls it: base latency plus time per output token (milliseconds)."""

    provider: str
    model: str
    base_ms: int
    per_token_ms: float

    @property
    def ref(self) -> str:
        return f"{self.provider}/{self.model}"


MODELS: dict[str, ModelProfile] = {
    m.ref: m
    for m in (
        ModelProfile("openai", "gpt-4o", 450, 14.0),
        ModelProfile("openai", "gpt-4o-mini", 300, 7.0),
        ModelProfile("anthropic", "claude-sonnet-4-0", 650, 16.0),
        ModelProfile("anthropic", "claude-3-5-haiku-latest", 350, 6.5),
        ModelProfile("google", "gemini-2.5-flash", 280, 5.0),
    )
}


@dataclass(frozen=True, slots=True)
class Feature:
    """What a call is for (its ``feature`` tag): token ranges, request type, repeated prompts, caching."""

    name: str
    input_tokens: tuple[int, int]
    output_tokens: tuple[int, int]
    request_type: str | None = None
    """None: what the gateway records (``chat``, or ``messages`` for Anthropic's API)."""
    prompt_pool: int = 0
    """How many distinct prompts the feature repeats (0: every prompt is new)."""
    cache_hits: float = 0.0
    """Share of repeated prompts answered from the gateway's response cache."""
    cache_reads: float = 0.0
    """Share of the input read from the provider's prompt cache (Anthropic calls)."""


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("chat-assistant", (4_000, 16_000), (200, 1_200)),
        Feature("code-review", (25_000, 50_000), (600, 2_000)),
        Feature("summarize", (300, 900), (80, 250)),
        Feature("support-bot", (1_100, 1_800), (80, 300), prompt_pool=60, cache_hits=0.3),
        Feature("search", (3_000, 10_000), (80, 300)),
        Feature("agent", (20_000, 45_000), (300, 1_200), cache_reads=0.5),
        Feature("nightly-report", (20_000, 40_000), (1_000, 2_500), request_type="report"),
        Feature("eval", (2_000, 6_000), (100, 500), request_type="eval"),
    )
}


@dataclass(frozen=True, slots=True)
class Persona:
    """A user of the demo: team, tier, how much they call, which models, for what, and when."""

    user_id: str
    name: str
    team_id: str
    tier: str
    weight: float
    """Calls per working day, in units of the history's base rate."""
    models: tuple[tuple[str, float], ...]
    features: tuple[tuple[str, float], ...]
    utc_offset: int = 0
    """Hours between the user's working day and UTC (their 09:00 is 09:00 - offset UTC)."""
    service: bool = False
    """A service account: runs at night, every day, and sends no live traffic."""

    @property
    def email(self) -> str:
        return f"{self.user_id}@example.com"


TEAMS: dict[str, str] = {
    "platform": "Platform",
    "research": "Research",
    "support": "Customer Support",
    "growth": "Growth",
}

_4O, _MINI = "openai/gpt-4o", "openai/gpt-4o-mini"
_SONNET, _HAIKU = "anthropic/claude-sonnet-4-0", "anthropic/claude-3-5-haiku-latest"
_FLASH = "google/gemini-2.5-flash"

PERSONAS: tuple[Persona, ...] = (
    Persona("ava", "Ava Okafor", "platform", "enterprise", 1.6, ((_4O, 0.5), (_SONNET, 0.4), (_MINI, 0.1)),
            (("code-review", 0.5), ("chat-assistant", 0.3), ("agent", 0.2))),
    Persona("ben", "Ben Keller", "platform", "premium", 1.0, ((_MINI, 0.5), (_4O, 0.3), (_FLASH, 0.2)),
            (("chat-assistant", 0.6), ("code-review", 0.2), ("summarize", 0.2))),
    Persona("chen", "Chen Wei", "platform", "premium", 0.8, ((_SONNET, 0.5), (_HAIKU, 0.3), (_4O, 0.2)),
            (("code-review", 0.4), ("chat-assistant", 0.4), ("agent", 0.2))),
    Persona("dana", "Dana Levi", "research", "enterprise", 1.2, ((_SONNET, 0.6), (_4O, 0.4)),
            (("agent", 0.3), ("chat-assistant", 0.4), ("eval", 0.3)), utc_offset=-5),
    Persona("eli", "Eli Novak", "research", "premium", 0.9, ((_4O, 0.5), (_FLASH, 0.3), (_MINI, 0.2)),
            (("eval", 0.5), ("chat-assistant", 0.5)), utc_offset=-5),
    Persona("fay", "Fay Moreau", "research", "free", 0.5, ((_FLASH, 0.6), (_MINI, 0.4)),
            (("chat-assistant", 0.7), ("summarize", 0.3)), utc_offset=-5),
    Persona("batch-bot", "Research batch jobs", "research", "enterprise", 0.7, ((_4O, 0.6), (_SONNET, 0.4)),
            (("nightly-report", 1.0),), service=True),
    Persona("gus", "Gus Ferreira", "support", "premium", 1.4, ((_MINI, 0.5), (_HAIKU, 0.3), (_4O, 0.2)),
            (("support-bot", 0.8), ("summarize", 0.2)), utc_offset=4),
    Persona("hana", "Hana Sato", "support", "free", 0.7, ((_MINI, 0.6), (_FLASH, 0.4)),
            (("support-bot", 0.7), ("chat-assistant", 0.3)), utc_offset=4),
    Persona("ivan", "Ivan Petrov", "support", "free", 0.5, ((_HAIKU, 0.5), (_MINI, 0.5)),
            (("support-bot", 0.6), ("summarize", 0.4)), utc_offset=4),
    Persona("jo", "Jo Mensah", "growth", "premium", 1.1, ((_4O, 0.6), (_MINI, 0.4)),
            (("summarize", 0.5), ("search", 0.3), ("chat-assistant", 0.2)), utc_offset=-6),
    Persona("kai", "Kai Larsen", "growth", "free", 0.6, ((_FLASH, 0.7), (_MINI, 0.3)),
            (("search", 0.6), ("chat-assistant", 0.4)), utc_offset=-6),
    Persona("sam", "Sam Rivera", "growth", "free", 0.4, ((_MINI, 0.6), (_4O, 0.4)),
            (("chat-assistant", 0.7), ("summarize", 0.3)), utc_offset=-6),
    Persona("lee", "Lee Park", "growth", "enterprise", 1.0, ((_SONNET, 0.5), (_4O, 0.5)),
            (("chat-assistant", 0.4), ("search", 0.3), ("code-review", 0.3)), utc_offset=-6),
)  # fmt: skip


def persona(user_id: str) -> Persona:
    """The persona named ``user_id`` (KeyError if there is none)."""
    for p in PERSONAS:
        if p.user_id == user_id:
            return p
    raise KeyError(user_id)
