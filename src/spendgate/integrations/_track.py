"""`track`: meter any function (sync or async) that makes one LLM call and returns the provider's response."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from spendgate.integrations._call import Call, Identity, split_options
from spendgate.integrations._endpoints import GENERIC
from spendgate.integrations._run import as_async_meter, as_sync_meter, run_async, run_sync
from spendgate.meter import AsyncMeter, Meter
from spendgate.tokens import TokenCounter

__all__ = ["track"]

F = TypeVar("F", bound=Callable[..., Any])


class _Binder:
    """Reads a call's arguments by name (positional, keyword or ``**kwargs``) and writes changes back."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.signature = inspect.signature(fn)
        self.params = self.signature.parameters
        self.varkw = next((p.name for p in self.params.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[inspect.BoundArguments, dict[str, Any]]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()  # a default model or max_tokens counts as given
        named = {name: value for name, value in bound.arguments.items() if name != self.varkw}
        if self.varkw is not None:
            named.update(bound.arguments.get(self.varkw, {}))
        return bound, named

    def model_param(self, named: Mapping[str, Any]) -> str | None:
        """``"model"`` when the function takes a model argument a downgrade can rewrite, else None."""
        takes_model = "model" in self.params and self.params["model"].kind is not inspect.Parameter.VAR_KEYWORD
        return "model" if takes_model or (self.varkw is not None and "model" in named) else None

    def rebind(self, bound: inspect.BoundArguments, admitted: Mapping[str, Any]) -> inspect.BoundArguments:
        for name, value in admitted.items():
            if name in self.params and name != self.varkw:
                bound.arguments[name] = value
            elif self.varkw is not None:
                bound.arguments.setdefault(self.varkw, {})[name] = value
        return bound


def _call(
    binder: _Binder, counter: TokenCounter, provider: str, model: str | None, identity: Identity,
    args: tuple[Any, ...], kwargs: Mapping[str, Any],
) -> tuple[Call, inspect.BoundArguments]:  # fmt: skip
    call_kwargs, options = split_options(kwargs)
    bound, named = binder.bind(args, call_kwargs)
    requested = named.get("model")
    call = Call(
        counter=counter,
        provider=provider,
        model=requested if isinstance(requested, str) and requested else model,  # type: ignore[arg-type]
        endpoint=GENERIC,
        identity=identity.with_options(options),
        kwargs=named,
        model_param=binder.model_param(named),
    )
    return call, bound


def track(
    meter: Meter | AsyncMeter,
    *,
    provider: str,
    model: str | None = None,
    user_id: str | None = None,
    team_id: str | None = None,
    api_key_id: str | None = None,
    session_id: str | None = None,
    tier: str | None = None,
    tags: Mapping[str, str] | None = None,
    request_type: str | None = None,
) -> Callable[[F], F]:
    """Decorate a function that makes one LLM call, so it is authorized, then settled with its usage.

    Before each call: the model is the call's ``model`` argument (or its default), else ``model`` given
    here; the input is counted from its ``messages``, ``tools``, ``system`` and ``prompt`` (or text
    ``input``) arguments and the worst-case output is ``max_completion_tokens``/``max_tokens``/
    ``max_output_tokens`` if given (defaults count). A call that is not allowed raises
    :class:`~spendgate.errors.BudgetExceeded` without running the function; a DOWNGRADE passes the
    cheaper model as the ``model`` argument (refused with BudgetExceeded if the function takes none, or
    if the cheaper model is another provider's).

    After it: the usage is read from the returned response (an SDK object or a dict, OpenAI- or
    Anthropic-shaped, or any provider ``genai_prices.extract_usage`` knows); without usage, the output
    text is counted and the event marked estimated. If the function raises, the hold is released with
    the error kind and the exception re-raised. Per-call ``spendgate_*`` keyword arguments (see
    :func:`~spendgate.integrations.instrument`) are removed before the function is called.
    """
    identity = Identity(
        user_id=user_id,
        team_id=team_id,
        api_key_id=api_key_id,
        session_id=session_id,
        tier=tier,
        tags=dict(tags or {}),
        request_type=request_type,
    )

    def decorate(fn: F) -> F:
        binder = _Binder(fn)
        if inspect.iscoroutinefunction(fn):
            ameter = as_async_meter(meter)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                call, bound = _call(binder, ameter.meter.tokens, provider, model, identity, args, kwargs)

                async def invoke(admitted: dict[str, Any]) -> Any:
                    final = binder.rebind(bound, admitted)
                    return await fn(*final.args, **final.kwargs)

                return await run_async(ameter, call, invoke)

            return cast(F, async_wrapper)

        smeter = as_sync_meter(meter)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call, bound = _call(binder, smeter.tokens, provider, model, identity, args, kwargs)

            def invoke(admitted: dict[str, Any]) -> Any:
                final = binder.rebind(bound, admitted)
                return fn(*final.args, **final.kwargs)

            return run_sync(smeter, call, invoke)

        return cast(F, wrapper)

    return decorate
