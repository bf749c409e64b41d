"""Which upstream serves a model, at which URL, with which credentials (pure: no I/O).

A model name is routed by the ``models`` prefixes of :attr:`Settings.upstreams` (the longest matching
prefix wins); ``provider/model`` names the provider explicitly (``openai/gpt-4o``). The provider's key
is read from the environment variable its :class:`~spendgate.settings.Upstream` names: never from the
client, whose ``Authorization`` header carries its spendgate key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from spendgate.server._errors import ApiError
from spendgate.settings import Upstream

__all__ = ["Route", "Wire", "resolve", "upstream_headers", "upstream_url"]

Wire = Literal["openai", "anthropic"]

#: Anthropic's API version sent when the client names none.
ANTHROPIC_VERSION = "2023-06-01"
#: Client headers passed on to an Anthropic upstream (the API version and beta flags).
_ANTHROPIC_PASSTHROUGH = ("anthropic-version", "anthropic-beta")


@dataclass(frozen=True, slots=True)
class Route:
    """Where one model goes: the provider id, the model name the provider knows, and its upstream."""

    provider: str
    model: str
    upstream: Upstream

    @property
    def wire(self) -> Wire:
        return self.upstream.wire


def resolve(upstreams: Mapping[str, Upstream], name: str) -> Route:
    """The route for ``name``; a 400 naming ``model`` when no upstream serves it."""
    provider, sep, rest = name.partition("/")
    if sep and rest and provider in upstreams:
        return Route(provider, rest, upstreams[provider])
    best: tuple[int, str] | None = None
    for provider_id, upstream in upstreams.items():
        for prefix in upstream.models:
            if prefix and name.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), provider_id)
    if best is None:
        known = ", ".join(sorted(upstreams)) or "none configured"
        raise ApiError(
            400,
            "invalid_request_error",
            f"model: no upstream serves {name!r}; name a configured model prefix or use provider/model "
            f"(providers: {known})",
            field="model",
        )
    return Route(best[1], name, upstreams[best[1]])


def upstream_url(upstream: Upstream, path: str) -> str:
    """The upstream URL of an API ``path`` such as ``/chat/completions`` or ``/messages``.

    OpenAI-style base URLs include the version (``https://api.openai.com/v1``); Anthropic's do not
    (``https://api.anthropic.com``), so ``/v1`` is added for the Anthropic wire unless already there.
    """
    base = upstream.base_url.rstrip("/")
    if upstream.wire == "anthropic" and not base.endswith("/v1"):
        base += "/v1"
    return base + path


def upstream_headers(
    provider: str, upstream: Upstream, client_headers: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """The headers of an upstream request: the provider key from ``environ`` in the wire's style.

    A configured ``api_key_env`` that is not set answers 502 (the gateway is misconfigured; the client
    can do nothing about it); an upstream without ``api_key_env`` (a local server) gets no key.
    """
    key: str | None = None
    if upstream.api_key_env is not None:
        key = environ.get(upstream.api_key_env)
        if not key:
            raise ApiError(
                502,
                "upstream_not_configured",
                f"the gateway has no key for {provider}: set the environment variable {upstream.api_key_env}",
            )
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    if upstream.wire == "anthropic":
        for name in _ANTHROPIC_PASSTHROUGH:
            value = client_headers.get(name)
            if value:
                headers[name] = value
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
        if key:
            headers["x-api-key"] = key
    elif key:
        headers["authorization"] = f"Bearer {key}"
    return headers
