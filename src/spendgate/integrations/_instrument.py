"""`instrument`: meter every call an OpenAI or Anthropic SDK client makes, by patching that one instance.

Only the instance's resource objects get new methods (``client.chat.completions.create`` and so on);
the SDK classes, and every other client, are untouched. See ``docs/integrations.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from spendgate.errors import ConfigurationError
from spendgate.integrations._call import Call, Identity, split_options
from spendgate.integrations._endpoints import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_EMBEDDINGS, Endpoint
from spendgate.integrations._run import (
    AsyncMessageStreamManager,
    MessageStreamManager,
    as_async_meter,
    as_sync_meter,
    run_async,
    run_sync,
)
from spendgate.meter import AsyncMeter, Meter
from spendgate.tokens import TokenCounter

__all__ = ["instrument", "uninstrument"]

C = TypeVar("C")

_ORIGINAL = "__spendgate_original__"

#: The client (by id) whose instrumented method is running the SDK's own code, so an SDK helper that
#: calls another instrumented method of the same client is not metered twice.
_ACTIVE: ContextVar[int | None] = ContextVar("spendgate_instrumented_client", default=None)


@dataclass(frozen=True, slots=True)
class _Target:
    path: tuple[str, ...]
    method: str
    endpoint: Endpoint
    kind: Literal["call", "manager"] = "call"


_TARGETS: Mapping[str, tuple[_Target, ...]] = {
    "openai": (
        _Target(("chat", "completions"), "create", OPENAI_CHAT),
        _Target(("chat", "completions"), "parse", OPENAI_CHAT),
        _Target(("embeddings",), "create", OPENAI_EMBEDDINGS),
    ),
    "anthropic": (
        _Target(("messages",), "create", ANTHROPIC_MESSAGES),
        _Target(("messages",), "parse", ANTHROPIC_MESSAGES),
        _Target(("messages",), "stream", ANTHROPIC_MESSAGES, "manager"),
    ),
}


def _family(client: object) -> str:
    for cls in type(client).__mro__:
        package = cls.__module__.partition(".")[0]
        if package in _TARGETS:
            return package
    raise ConfigurationError(
        "instrument() takes an openai.OpenAI/AsyncOpenAI or anthropic.Anthropic/AsyncAnthropic client, "
        f"got {type(client).__module__}.{type(client).__qualname__}"
    )


def _is_async(client: object) -> bool:
    """Whether the client's methods are coroutines (its class derives from the SDK's ``AsyncAPIClient``)."""
    return any(cls.__name__ == "AsyncAPIClient" or cls.__name__.startswith("Async") for cls in type(client).__mro__)


def _resolve(client: object, path: tuple[str, ...]) -> Any:
    resource: Any = client
    for name in path:
        resource = getattr(resource, name, None)
        if resource is None:
            return None
    return resource


def _original(resource: Any, method: str) -> Any:
    current = getattr(resource, method, None)
    return getattr(current, _ORIGINAL, current)


@dataclass(frozen=True, slots=True)
class _Patch:
    """What one patched method needs: the client it belongs to, the provider, the identity and the target."""

    client_key: int
    provider: str
    identity: Identity
    target: _Target

    def make_call(self, counter: TokenCounter, kwargs: Mapping[str, Any]) -> tuple[Call | None, dict[str, Any]]:
        """The Call for one invocation (None when the SDK calls its own client from inside a metered
        call, which is metered already) and the SDK's own keyword arguments."""
        call_kwargs, options = split_options(kwargs)
        if _ACTIVE.get() == self.client_key:
            return None, call_kwargs
        call = Call(
            counter=counter,
            provider=self.provider,
            model=call_kwargs.get("model"),  # type: ignore[arg-type]  # Call checks it
            endpoint=self.target.endpoint,
            identity=self.identity.with_options(options),
            kwargs=call_kwargs,
            stream=self.target.kind == "manager" or call_kwargs.get("stream") is True,
        )
        return call, call_kwargs


def _sync_wrapper(original: Any, meter: Meter, patch: _Patch) -> Any:
    def invoke(kwargs: dict[str, Any]) -> Any:
        token = _ACTIVE.set(patch.client_key)
        try:
            return original(**kwargs)
        finally:
            _ACTIVE.reset(token)

    @functools.wraps(original)
    def wrapper(**kwargs: Any) -> Any:
        call, call_kwargs = patch.make_call(meter.tokens, kwargs)
        if call is None:
            return original(**call_kwargs)
        if patch.target.kind == "manager":
            return MessageStreamManager(meter, call, lambda admitted: original(**admitted))
        return run_sync(meter, call, invoke)

    setattr(wrapper, _ORIGINAL, original)
    return wrapper


def _async_wrapper(original: Any, meter: AsyncMeter, patch: _Patch) -> Any:
    async def invoke(kwargs: dict[str, Any]) -> Any:
        token = _ACTIVE.set(patch.client_key)
        try:
            return await original(**kwargs)
        finally:
            _ACTIVE.reset(token)

    @functools.wraps(original)
    def manager(**kwargs: Any) -> Any:
        call, call_kwargs = patch.make_call(meter.meter.tokens, kwargs)
        if call is None:
            return original(**call_kwargs)
        return AsyncMessageStreamManager(meter, call, lambda admitted: original(**admitted))

    @functools.wraps(original)
    async def wrapper(**kwargs: Any) -> Any:
        call, call_kwargs = patch.make_call(meter.meter.tokens, kwargs)
        if call is None:
            return await original(**call_kwargs)
        return await run_async(meter, call, invoke)

    chosen = manager if patch.target.kind == "manager" else wrapper
    setattr(chosen, _ORIGINAL, original)
    return chosen


def instrument(
    client: C,
    meter: Meter | AsyncMeter,
    *,
    user_id: str | None = None,
    team_id: str | None = None,
    api_key_id: str | None = None,
    session_id: str | None = None,
    tier: str | None = None,
    tags: Mapping[str, str] | None = None,
    request_type: str | None = None,
    provider: str | None = None,
) -> C:
    """Meter every call of an OpenAI or Anthropic SDK client (sync or async): authorize → call → settle.

    Patches, on this instance only: ``chat.completions.create`` and ``.parse`` and ``embeddings.create``
    (OpenAI), ``messages.create``, ``.parse`` and ``.stream`` (Anthropic). Each call is authorized
    against ``meter``'s budgets before any request is sent (not allowed → :class:`BudgetExceeded`; a
    DOWNGRADE sends the cheaper model), then settled with the provider-reported usage, or released with
    the error kind if the SDK raises (the SDK's exception is re-raised). Streams settle when they end.

    The identity arguments apply to every call; a call can override them with keyword arguments
    ``spendgate_user_id=...``, ``spendgate_team_id``, ``spendgate_api_key_id``, ``spendgate_session_id``,
    ``spendgate_tier``, ``spendgate_tags``, ``spendgate_request_type`` and ``spendgate_metadata``, which
    are removed before the SDK sees the call. ``provider`` names the provider to meter as (default
    ``"openai"`` / ``"anthropic"`` by SDK; set it for an OpenAI-compatible endpoint of another provider).

    Returns the same client. Instrumenting it again replaces the earlier settings.
    """
    family = _family(client)
    identity = Identity(
        user_id=user_id,
        team_id=team_id,
        api_key_id=api_key_id,
        session_id=session_id,
        tier=tier,
        tags=dict(tags or {}),
        request_type=request_type,
    )
    name = provider or family
    is_async = _is_async(client)
    for target in _TARGETS[family]:
        resource = _resolve(client, target.path)
        original = None if resource is None else _original(resource, target.method)
        if original is None:
            continue
        patch = _Patch(id(client), name, identity, target)
        if is_async:
            wrapper = _async_wrapper(original, as_async_meter(meter), patch)
        else:
            wrapper = _sync_wrapper(original, as_sync_meter(meter), patch)
        setattr(resource, target.method, wrapper)
    return client


def uninstrument(client: C) -> C:
    """Undo :func:`instrument` on ``client`` (a client that was never instrumented is left as it is)."""
    for target in _TARGETS[_family(client)]:
        resource = _resolve(client, target.path)
        if resource is not None and hasattr(getattr(resource, target.method, None), _ORIGINAL):
            delattr(resource, target.method)
    return client
