"""Which tokenizer and framing rules apply to a provider/model pair.

* "openai" and "azure" (and their spellings) count exactly with the model's OpenAI encoding; an OpenAI
  model we cannot map is counted with o200k_base and marked estimated.
* "openai-compatible" counts exactly only when the model name maps to a known OpenAI encoding.
* Everything else gets the character heuristic of its family, with a chars-per-token figure from the
  caller's mapping (provider name first, then family, then "default") or the built-in starting points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from spendgate.errors import ConfigurationError, InvalidUsageError
from spendgate.tokens._encodings import Bpe, encoding_name_for_model, normalize_model
from spendgate.tokens._heuristic import Heuristic

__all__ = ["DEFAULT_CHARS_PER_TOKEN", "Profile", "Resolver", "provider_family"]

#: Starting points of the heuristic, in characters per token; "default" covers unknown providers.
DEFAULT_CHARS_PER_TOKEN: Mapping[str, float] = MappingProxyType(
    {"anthropic": 3.5, "google": 4.2, "local": 4.5, "default": 4.0}
)

_EXACT_PROVIDERS = frozenset({"openai", "azure", "azure_openai", "azure-openai", "azureopenai"})
_COMPATIBLE_PROVIDERS = frozenset({"openai-compatible", "openai_compatible"})
_FAMILIES: Mapping[str, str] = {
    "anthropic": "anthropic",
    "claude": "anthropic",
    "google": "google",
    "gemini": "google",
    "google-gla": "google",
    "google-vertex": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "ollama": "local",
    "local": "local",
    "llamacpp": "local",
    "llama.cpp": "local",
    "llama-cpp": "local",
    "lmstudio": "local",
    "vllm": "local",
    "localai": "local",
}
_MAX_PROFILES = 1024


@dataclass(frozen=True, slots=True)
class Profile:
    """How to count for one provider/model: the text counter, the family and the framing constants.

    ``family`` ("openai", "anthropic", "google", "local" or "other") picks the image and audio formulas.
    The framing constants are the OpenAI cookbook's; other providers reuse them as an estimate.
    """

    provider: str
    model: str
    family: str
    counter: Bpe | Heuristic
    per_message: int = 3
    per_name: int = 1
    reply: int = 3
    func_init: int = 7

    @property
    def exact(self) -> bool:
        """Whether text is counted by the provider's own tokenizer."""
        return self.counter.exact

    @property
    def method(self) -> str:
        """How text is counted, e.g. "o200k_base" or "heuristic:anthropic:3.5"."""
        return self.counter.method


def _names(provider: str, model: str) -> tuple[str, str]:
    """Lower-case provider and model without routing prefix; both must be non-empty strings."""
    if not isinstance(provider, str) or not provider.strip():
        raise InvalidUsageError("provider", f"must be a non-empty string, got {provider!r}")
    if not isinstance(model, str) or not model.strip():
        raise InvalidUsageError("model", f"must be a non-empty string, got {model!r}")
    return provider.strip().lower(), normalize_model(model)


def _family(provider: str, model: str, encoding: str | None) -> str:
    if provider in _EXACT_PROVIDERS or (provider in _COMPATIBLE_PROVIDERS and encoding is not None):
        return "openai"
    if provider in _FAMILIES:
        return _FAMILIES[provider]
    if "claude" in model:
        return "anthropic"
    if "gemini" in model or "gemma" in model:
        return "google"
    return "other"


def provider_family(provider: str, model: str) -> str:
    """ "openai", "anthropic", "google", "local" or "other": whose image and audio formulas apply."""
    p, m = _names(provider, model)
    return _family(p, m, encoding_name_for_model(m))


def _check_ratios(chars_per_token: Mapping[str, float] | None) -> dict[str, float]:
    ratios: dict[str, float] = {}
    for key, value in (chars_per_token or {}).items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(f"chars_per_token: provider names must be non-empty strings, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ConfigurationError(f"chars_per_token[{key!r}]: must be a positive finite number, got {value!r}")
        ratios[key.strip().lower()] = float(value)
    return ratios


class Resolver:
    """Resolves provider/model pairs to :class:`Profile` objects, memoising them in a small dict."""

    def __init__(self, chars_per_token: Mapping[str, float] | None = None) -> None:
        self._ratios = _check_ratios(chars_per_token)
        self._bpe: dict[tuple[str, bool], Bpe] = {}
        self._heuristics: dict[tuple[str, float], Heuristic] = {}
        self._profiles: dict[tuple[str, str], Profile] = {}

    def profile(self, provider: str, model: str) -> Profile:
        """The profile of ``provider``/``model`` (both case-insensitive)."""
        key = (provider, model)
        found = self._profiles.get(key)
        if found is None:
            found = self._resolve(provider, model)
            if len(self._profiles) >= _MAX_PROFILES:
                self._profiles.clear()  # bounded: arbitrary model names must not grow memory without limit
            self._profiles[key] = found
        return found

    def ratio(self, provider: str, family: str) -> float:
        """Characters per token for ``provider`` (already lower-case) of ``family``."""
        for key in (provider, family):
            if key in self._ratios:
                return self._ratios[key]
        if family in DEFAULT_CHARS_PER_TOKEN:
            return DEFAULT_CHARS_PER_TOKEN[family]
        return self._ratios.get("default", DEFAULT_CHARS_PER_TOKEN["default"])

    def _bpe_counter(self, encoding: str, *, exact: bool) -> Bpe:
        counter = self._bpe.get((encoding, exact))
        if counter is None:
            counter = self._bpe[encoding, exact] = Bpe(encoding, exact=exact)
        return counter

    def _heuristic(self, label: str, ratio: float) -> Heuristic:
        counter = self._heuristics.get((label, ratio))
        if counter is None:
            if len(self._heuristics) >= _MAX_PROFILES:
                self._heuristics.clear()
            counter = self._heuristics[label, ratio] = Heuristic(label, ratio)
        return counter

    def _resolve(self, provider: str, model: str) -> Profile:
        p, m = _names(provider, model)
        encoding = encoding_name_for_model(m)
        family = _family(p, m, encoding)
        if family == "openai":
            if encoding is not None:
                legacy = m.startswith(("gpt-3.5-turbo-0301", "gpt-35-turbo-0301"))
                return Profile(
                    provider=p,
                    model=m,
                    family="openai",
                    counter=self._bpe_counter(encoding, exact=True),
                    per_message=4 if legacy else 3,
                    per_name=-1 if legacy else 1,
                    func_init=10 if encoding == "cl100k_base" else 7,
                )
            return Profile(provider=p, model=m, family=family, counter=self._bpe_counter("o200k_base", exact=False))
        label = family if family != "other" else p
        return Profile(provider=p, model=m, family=family, counter=self._heuristic(label, self.ratio(p, family)))
