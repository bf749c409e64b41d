"""Running a :class:`~spendgate.integrations._call.Call`: authorize → call → settle, or release on failure.

The sync and async runners are the only places that talk to the meter; all decisions are the Call's,
so the two flavours differ only in ``await``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from spendgate.errors import ConfigurationError
from spendgate.integrations._call import Call, Outcome, Refused
from spendgate.integrations._streams import AsyncMeteredStream, MeteredStream, StreamTally
from spendgate.meter import AsyncMeter, Authorization, Meter

__all__ = [
    "AsyncMessageStreamManager",
    "MessageStreamManager",
    "admit_async",
    "admit_sync",
    "apply_async",
    "apply_sync",
    "as_async_meter",
    "as_sync_meter",
    "run_async",
    "run_sync",
]


def as_sync_meter(meter: Meter | AsyncMeter) -> Meter:
    """The Meter to use from synchronous code (an AsyncMeter's inner Meter)."""
    if isinstance(meter, AsyncMeter):
        return meter.meter
    if not isinstance(meter, Meter):
        raise ConfigurationError(f"meter must be a spendgate Meter or AsyncMeter, got {type(meter).__name__}")
    return meter


def as_async_meter(meter: Meter | AsyncMeter) -> AsyncMeter:
    """The AsyncMeter to use from coroutines (a Meter is wrapped, so its ledger I/O leaves the event loop)."""
    if isinstance(meter, AsyncMeter):
        return meter
    return AsyncMeter(meter=as_sync_meter(meter))


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# -- sync ---------------------------------------------------------------------------------------------


def apply_sync(meter: Meter, auth: Authorization, outcome: Outcome) -> None:
    """Settle or release ``auth`` as ``outcome`` says."""
    if outcome.ok:
        meter.settle(auth, outcome.usage, **outcome.fields)
    else:
        meter.release(auth, partial_usage=outcome.usage, **outcome.fields)


def admit_sync(meter: Meter, call: Call) -> tuple[Authorization, dict[str, Any]]:
    """Authorize ``call``; returns the authorization and the arguments to call with, or raises BudgetExceeded."""
    auth = meter.authorize(**call.authorize_kwargs())
    try:
        return auth, call.admit(auth)
    except Refused as refused:
        if refused.release:
            apply_sync(meter, auth, call.refusal(refused))
        raise refused.error from None


def run_sync(meter: Meter, call: Call, invoke: Callable[[dict[str, Any]], Any]) -> Any:
    """Authorize, ``invoke(kwargs)``, then settle (or wrap the returned stream, which settles when it ends)."""
    auth, kwargs = admit_sync(meter, call)
    started = time.perf_counter()
    try:
        result = invoke(kwargs)
    except BaseException as exc:
        apply_sync(meter, auth, call.failure(exc, _elapsed_ms(started)))
        raise
    if call.stream:
        return MeteredStream(result, StreamTally(call, auth), started, lambda outcome: apply_sync(meter, auth, outcome))
    apply_sync(meter, auth, call.success(auth, result, _elapsed_ms(started)))
    return result


# -- async --------------------------------------------------------------------------------------------


async def apply_async(meter: AsyncMeter, auth: Authorization, outcome: Outcome) -> None:
    """Settle or release ``auth`` as ``outcome`` says."""
    if outcome.ok:
        await meter.settle(auth, outcome.usage, **outcome.fields)
    else:
        await meter.release(auth, partial_usage=outcome.usage, **outcome.fields)


async def admit_async(meter: AsyncMeter, call: Call) -> tuple[Authorization, dict[str, Any]]:
    """See :func:`admit_sync`."""
    auth = await meter.authorize(**call.authorize_kwargs())
    try:
        return auth, call.admit(auth)
    except Refused as refused:
        if refused.release:
            await apply_async(meter, auth, call.refusal(refused))
        raise refused.error from None


async def run_async(meter: AsyncMeter, call: Call, invoke: Callable[[dict[str, Any]], Awaitable[Any]]) -> Any:
    """See :func:`run_sync`."""
    auth, kwargs = await admit_async(meter, call)
    started = time.perf_counter()
    try:
        result = await invoke(kwargs)
    except BaseException as exc:
        await apply_async(meter, auth, call.failure(exc, _elapsed_ms(started)))
        raise
    if call.stream:
        return AsyncMeteredStream(
            result, StreamTally(call, auth), started, lambda outcome: apply_async(meter, auth, outcome)
        )
    await apply_async(meter, auth, call.success(auth, result, _elapsed_ms(started)))
    return result


# -- Anthropic's messages.stream() helpers ---------------------------------------------------------------

_NO_RAW_STREAM = (
    "this version of the anthropic SDK has no MessageStream._raw_stream to meter; "
    "use client.messages.create(stream=True) instead"
)


def _raw_stream(stream: Any) -> Any:
    raw = getattr(stream, "_raw_stream", None)
    if raw is None:  # pragma: no cover - only with an SDK whose stream helper works differently
        raise ConfigurationError(_NO_RAW_STREAM)
    return raw


class MessageStreamManager:
    """Stands in for the SDK's ``MessageStreamManager``: ``with client.messages.stream(...) as stream``.

    Authorizes on entering (so an unused manager holds nothing), opens the SDK's stream helper with the
    admitted arguments, and meters the raw event stream underneath it: the helper's ``text_stream``,
    ``get_final_message()`` and the rest work as usual, and the call settles when the stream ends.
    """

    def __init__(self, meter: Meter, call: Call, open_manager: Callable[[dict[str, Any]], Any]) -> None:
        self._meter = meter
        self._call = call
        self._open = open_manager
        self._manager: Any = None

    def __enter__(self) -> Any:
        auth, kwargs = admit_sync(self._meter, self._call)
        started = time.perf_counter()
        try:
            self._manager = self._open(kwargs)
            stream = self._manager.__enter__()
            raw = _raw_stream(stream)
        except BaseException as exc:
            apply_sync(self._meter, auth, self._call.failure(exc, _elapsed_ms(started)))
            raise
        stream._raw_stream = MeteredStream(
            raw, StreamTally(self._call, auth), started, lambda outcome: apply_sync(self._meter, auth, outcome)
        )
        return stream

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._manager is not None:
            self._manager.__exit__(exc_type, exc, tb)


class AsyncMessageStreamManager:
    """The async twin of :class:`MessageStreamManager`: ``async with client.messages.stream(...) as stream``."""

    def __init__(self, meter: AsyncMeter, call: Call, open_manager: Callable[[dict[str, Any]], Any]) -> None:
        self._meter = meter
        self._call = call
        self._open = open_manager
        self._manager: Any = None

    async def __aenter__(self) -> Any:
        auth, kwargs = await admit_async(self._meter, self._call)
        started = time.perf_counter()
        try:
            self._manager = self._open(kwargs)
            stream = await self._manager.__aenter__()
            raw = _raw_stream(stream)
        except BaseException as exc:
            await apply_async(self._meter, auth, self._call.failure(exc, _elapsed_ms(started)))
            raise
        stream._raw_stream = AsyncMeteredStream(
            raw, StreamTally(self._call, auth), started, lambda outcome: apply_async(self._meter, auth, outcome)
        )
        return stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._manager is not None:
            await self._manager.__aexit__(exc_type, exc, tb)
