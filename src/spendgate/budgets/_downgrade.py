"""Downgrade chains: for a model, the cheaper models to try in order when a budget runs low.

Chains are keyed by model name (``"gpt-4"``) or by ``"provider/model"`` (which wins); a requested name
with a date or ``-latest`` suffix (``"claude-3-opus-20240229"``) falls back to the chain of its base
name. Each alternative is a :class:`ModelRef` (``"openai/gpt-4o-mini"``), all names resolvable in the
genai-prices catalog. The defaults are the seeds' chains, the middle steps of those chains, and modern
families:

* gpt-4 → gpt-4-turbo → gpt-3.5-turbo → claude-3-haiku; gpt-4-turbo → gpt-3.5-turbo → claude-3-haiku
* claude-3-opus → claude-3-sonnet → claude-3-haiku → gpt-3.5-turbo
* claude-3-sonnet → claude-3-haiku → gpt-3.5-turbo → gemini-pro
* gpt-4o → gpt-4o-mini; gpt-4.1 → gpt-4.1-mini → gpt-4.1-nano; gpt-4.1-mini → gpt-4.1-nano
* claude-opus-4 → claude-sonnet-4 → claude-3-5-haiku; claude-sonnet-4 → claude-3-5-haiku
* gemini-2.5-pro → gemini-2.5-flash → gemini-2.5-flash-lite; gemini-2.5-flash → gemini-2.5-flash-lite
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from spendgate.budgets._check import BudgetConfigError, check_text

__all__ = ["DowngradeChains", "ModelRef"]

_SUFFIX = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|-\d{3,4})$")


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A provider's model: ``ModelRef("openai", "gpt-4o-mini")``, text ``"openai/gpt-4o-mini"``."""

    provider: str
    model: str

    def __post_init__(self) -> None:
        check_text("provider", self.provider, max_length=64)
        check_text("model", self.model, max_length=256)
        if "/" in self.provider:
            raise BudgetConfigError("provider", f"must not contain '/', got {self.provider!r}")

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Read ``"provider/model"`` (the model may itself contain ``/``)."""
        provider, sep, model = str(text).partition("/")
        if not sep:
            raise BudgetConfigError("chains", f"an alternative must be written 'provider/model', got {text!r}")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


_HAIKU_3 = "anthropic/claude-3-haiku-20240307"
_HAIKU_35 = "anthropic/claude-3-5-haiku-20241022"
_DEFAULTS: dict[str, tuple[str, ...]] = {
    "gpt-4": ("openai/gpt-4-turbo", "openai/gpt-3.5-turbo", _HAIKU_3),
    "gpt-4-turbo": ("openai/gpt-3.5-turbo", _HAIKU_3),
    "claude-3-opus": ("anthropic/claude-3-sonnet-20240229", _HAIKU_3, "openai/gpt-3.5-turbo"),
    "claude-3-sonnet": (_HAIKU_3, "openai/gpt-3.5-turbo", "google/gemini-pro"),
    "gpt-4o": ("openai/gpt-4o-mini",),
    "gpt-4.1": ("openai/gpt-4.1-mini", "openai/gpt-4.1-nano"),
    "gpt-4.1-mini": ("openai/gpt-4.1-nano",),
    "claude-opus-4": ("anthropic/claude-sonnet-4-20250514", _HAIKU_35),
    "claude-sonnet-4": (_HAIKU_35,),
    "gemini-2.5-pro": ("google/gemini-2.5-flash", "google/gemini-2.5-flash-lite"),
    "gemini-2.5-flash": ("google/gemini-2.5-flash-lite",),
}


def _base_name(model: str) -> str:
    return _SUFFIX.sub("", model)


@dataclass(frozen=True, slots=True)
class DowngradeChains:
    """Mapping model → ordered cheaper alternatives (immutable; build new tables with :meth:`with_chain`)."""

    chains: Mapping[str, tuple[ModelRef, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        clean: dict[str, tuple[ModelRef, ...]] = {}
        for key, alternatives in self.chains.items():
            check_text("chains", key, max_length=256)
            refs = tuple(alt if isinstance(alt, ModelRef) else ModelRef.parse(alt) for alt in alternatives)
            clean[key] = refs
        object.__setattr__(self, "chains", MappingProxyType(clean))

    @classmethod
    def defaults(cls) -> DowngradeChains:
        """The seeds' chains plus modern families (see the module doc)."""
        return cls.from_dict(_DEFAULTS)

    def alternatives(self, provider: str, model: str) -> tuple[ModelRef, ...]:
        """The chain for ``provider``/``model``: by ``provider/model``, by model, then by base model name."""
        for key in (f"{provider}/{model}", model, _base_name(model)):
            chain = self.chains.get(key)
            if chain is not None:
                return tuple(ref for ref in chain if (ref.provider, ref.model) != (provider, model))
        return ()

    def with_chain(self, model: str, alternatives: Iterable[ModelRef | str]) -> DowngradeChains:
        """A copy with the chain of ``model`` (or ``provider/model``) set to ``alternatives``."""
        refs = tuple(alt if isinstance(alt, ModelRef) else ModelRef.parse(alt) for alt in alternatives)
        return DowngradeChains({**self.chains, model: refs})

    def to_dict(self) -> dict[str, list[str]]:
        """``{"gpt-4": ["openai/gpt-4-turbo", ...]}``; :meth:`from_dict` reads it back."""
        return {key: [str(ref) for ref in chain] for key, chain in self.chains.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DowngradeChains:
        """Build from ``{model: ["provider/model", ...]}``."""
        if not isinstance(data, Mapping):
            raise BudgetConfigError("chains", f"must be a mapping of model to alternatives, got {type(data).__name__}")
        table: dict[str, tuple[ModelRef, ...]] = {}
        for key, chain in data.items():
            if isinstance(chain, str) or not isinstance(chain, Iterable):
                raise BudgetConfigError("chains", f"the chain of {key!r} must be a list of 'provider/model'")
            table[str(key)] = tuple(ModelRef.parse(str(item)) for item in chain)
        return cls(table)
