"""Metered streams: chunks pass through as they arrive; the call settles when the stream ends.

:class:`StreamTally` holds what a stream delivered and decides how it ended (no I/O);
:class:`MeteredStream` and :class:`AsyncMeteredStream` are thin sync/async shells around an SDK stream
that feed it and call back with the :class:`~spendgate.integrations._call.Outcome`:

* exhausted → settle with the provider's usage (OpenAI's final usage chunk, Anthropic's
  ``message_start`` + ``message_delta``), or with an estimate when the provider sent none;
* closed early (``close()``, leaving a ``with`` block) → settle what was produced: the counted input
  and the counted output so far, marked estimated. If every choice had already finished and only
  OpenAI's usage chunk was still to come, it is read first, so the figure is the provider's;
* an error mid-stream → release the hold, charging the partial usage, and re-raise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from spendgate.errors import InvalidUsageError
from spendgate.integrations._call import Call, Outcome
from spendgate.integrations._usage import anthropic_usage, field, openai_usage, to_int
from spendgate.usage import Usage

if TYPE_CHECKING:
    from spendgate.meter import Authorization

__all__ = ["AsyncMeteredStream", "MeteredStream", "StreamTally"]

logger = logging.getLogger("spendgate.integrations")

T = TypeVar("T")

_ANTHROPIC_USAGE = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                    "server_tool_use")  # fmt: skip
#: At most this many chunks are read after an early close to reach OpenAI's trailing usage chunk.
_TRAILER_LIMIT = 8


class StreamTally:
    """What one stream has delivered, and the outcome of its end (fed chunk by chunk, does no I/O)."""

    def __init__(self, call: Call, auth: Authorization) -> None:
        self.call = call
        self.auth = auth
        self.style = call.endpoint.stream_style
        self.accumulator = call.counter.stream(auth.provider, auth.model)
        self.final = False
        """Whether the provider's final usage arrived."""
        self._openai_usage: Any = None
        self._anthropic_usage: dict[str, Any] = {}
        self._choices: set[int] = set()
        self._finished: set[int] = set()

    def observe(self, item: Any) -> bool:
        """Take one chunk; returns whether the caller may see it (not an added usage-only chunk)."""
        self.accumulator.add_chunk(item)
        if self.style == "anthropic":
            kind = field(item, "type")
            if kind == "message_start":
                self._merge(field(item, "message", "usage"))
            elif kind == "message_delta":
                self._merge(field(item, "usage"))
                self.final = True
            return True
        choices = field(item, "choices") or ()
        for choice in choices:
            index = to_int(field(choice, "index"))
            self._choices.add(index)
            if field(choice, "finish_reason") is not None:
                self._finished.add(index)
        usage = field(item, "usage")
        if usage is not None:
            self._openai_usage = usage
            self.final = True
            return not (self.call.hide_usage and not choices)
        return True

    def _merge(self, usage: Any) -> None:
        for name in _ANTHROPIC_USAGE:
            value = field(usage, name)
            if value is not None:
                self._anthropic_usage[name] = value

    @property
    def awaiting_trailer(self) -> bool:
        """All choices finished and only OpenAI's usage chunk is still to come."""
        return self.style == "openai" and not self.final and bool(self._choices) and self._choices <= self._finished

    def usage(self) -> tuple[Usage, bool]:
        """The usage so far and whether it is estimated (reported usage wins; else counted output)."""
        if self.final:
            try:
                if self.style == "anthropic":
                    reported = anthropic_usage(self._anthropic_usage)
                else:
                    reported = openai_usage(self._openai_usage)
            except InvalidUsageError as exc:
                logger.warning("spendgate could not read a stream's reported usage (%s); estimating it", exc)
                reported = None
            if reported is not None:
                return reported, False
        output = self.accumulator.output_tokens
        if self._anthropic_usage.get("input_tokens") is not None:
            started = to_int(self._anthropic_usage.get("output_tokens"))
            partial = anthropic_usage({**self._anthropic_usage, "output_tokens": max(output, started)})
            if partial is not None:
                return partial, True
        return self.call.estimate(output), True

    def completed(self, latency_ms: float) -> Outcome:
        """The stream ended (exhausted or closed): settle what it used."""
        usage, estimated = self.usage()
        extra = {"tokens_estimated": True} if estimated else {}
        return Outcome(True, usage, self.call.fields(latency_ms, **extra))

    def failed(self, exc: BaseException, latency_ms: float) -> Outcome:
        """The stream broke: release the hold, charging what was produced."""
        usage, estimated = self.usage()
        partial = usage if usage.total_tokens else None
        return self.call.failure(exc, latency_ms, partial, estimated=estimated)


class _Base:
    def __init__(self, inner: Any, tally: StreamTally, started: float) -> None:
        self._inner = inner
        self._tally = tally
        self._started = started
        self._ended = False

    def _elapsed_ms(self) -> float:
        return (time.perf_counter() - self._started) * 1000

    def _take_end(self) -> bool:
        """True once: the first caller settles or releases the call."""
        if self._ended:
            return False
        self._ended = True
        return True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_inner", "_tally"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    @property
    def authorization(self) -> Authorization:
        """The authorization the call runs under (its ``reservation_id`` is the event id)."""
        return self._tally.auth


class MeteredStream(_Base, Generic[T]):
    """Wraps an SDK ``Stream``: iterate it, use it in ``with``, ``close()`` it; other attributes (such as
    ``response``) are the SDK stream's. The call settles once, when the stream ends in any way."""

    def __init__(self, inner: Any, tally: StreamTally, started: float, finish: Callable[[Outcome], object]) -> None:
        super().__init__(inner, tally, started)
        self._finish = finish

    def _end(self, outcome: Outcome) -> None:
        if self._take_end():
            self._finish(outcome)

    def __iter__(self) -> MeteredStream[T]:
        return self

    def __next__(self) -> T:
        while True:
            try:
                item = next(self._inner)
            except StopIteration:
                self._end(self._tally.completed(self._elapsed_ms()))
                raise
            except BaseException as exc:
                self._end(self._tally.failed(exc, self._elapsed_ms()))
                raise
            if self._tally.observe(item):
                return item  # type: ignore[no-any-return]

    def _read_trailer(self) -> None:
        try:
            for _ in range(_TRAILER_LIMIT):
                self._tally.observe(next(self._inner))
                if self._tally.final:
                    return
        except StopIteration:
            return
        except Exception as exc:  # the caller is done with the stream: charge what it produced
            logger.debug("spendgate could not read the usage chunk of a closed stream: %r", exc)

    def close(self) -> None:
        """Close the SDK stream and settle what was produced so far."""
        try:
            if not self._ended and self._tally.awaiting_trailer:
                self._read_trailer()
            self._inner.close()
        finally:
            self._end(self._tally.completed(self._elapsed_ms()))

    def __enter__(self) -> MeteredStream[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncMeteredStream(_Base, Generic[T]):
    """Wraps an SDK ``AsyncStream``: ``async for``, ``async with``, ``await close()``; other attributes
    are the SDK stream's. The call settles once, when the stream ends in any way."""

    def __init__(
        self, inner: Any, tally: StreamTally, started: float, finish: Callable[[Outcome], Awaitable[object]]
    ) -> None:
        super().__init__(inner, tally, started)
        self._finish = finish

    async def _end(self, outcome: Outcome) -> None:
        if self._take_end():
            await self._finish(outcome)

    def __aiter__(self) -> AsyncMeteredStream[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            try:
                item = await self._inner.__anext__()
            except StopAsyncIteration:
                await self._end(self._tally.completed(self._elapsed_ms()))
                raise
            except BaseException as exc:
                await self._end(self._tally.failed(exc, self._elapsed_ms()))
                raise
            if self._tally.observe(item):
                return item  # type: ignore[no-any-return]

    async def _read_trailer(self) -> None:
        try:
            for _ in range(_TRAILER_LIMIT):
                self._tally.observe(await self._inner.__anext__())
                if self._tally.final:
                    return
        except StopAsyncIteration:
            return
        except Exception as exc:  # the caller is done with the stream: charge what it produced
            logger.debug("spendgate could not read the usage chunk of a closed stream: %r", exc)

    async def close(self) -> None:
        """Close the SDK stream and settle what was produced so far."""
        try:
            if not self._ended and self._tally.awaiting_trailer:
                await self._read_trailer()
            await self._inner.close()
        finally:
            await self._end(self._tally.completed(self._elapsed_ms()))

    async def __aenter__(self) -> AsyncMeteredStream[T]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
