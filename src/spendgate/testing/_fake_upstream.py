"""`FakeUpstream`: an OpenAI- and Anthropic-compatible provider on 127.0.0.1, for tests.

It speaks the providers' wire formats over real HTTP, so official SDKs, gateways and instrumentation
can be tested without a network: chat completions (whole and streamed), embeddings, the model list and
Anthropic Messages. Replies are deterministic, their usage is counted with spendgate's `TokenCounter`,
and every reply can be scripted, delayed or broken on purpose. See ``docs/testing.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Self

from spendgate.clock import Clock, SystemClock
from spendgate.errors import ConfigurationError
from spendgate.testing._fake_engine import Context, Defaults, Outcome, error_outcome, has_route, respond, unauthorized
from spendgate.testing._fake_http import HttpServer
from spendgate.testing._fake_types import FakeReply, FakeRequest, IncludeUsage
from spendgate.tokens import TokenCounter

__all__ = ["DEFAULT_MODELS", "FakeUpstream", "Responder", "main"]

#: Called for each request that no scripted reply is queued for; None means "the default reply".
Responder = Callable[[FakeRequest], FakeReply | None]

#: What ``GET /v1/models`` lists unless told otherwise.
DEFAULT_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-5",
    "gpt-5-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-sonnet-4-6",
    "claude-opus-4-7",
    "claude-haiku-4-5",
)

_INCLUDE_USAGE = ("requested", "always", "never")


class FakeUpstream:
    """A fake LLM provider over real HTTP on 127.0.0.1, started explicitly (``start()``/``stop()`` or ``with``).

    Every request is answered by, in order: the next reply queued with `script`, else the
    ``responder``'s reply, else a default reply built from these settings:

    * ``reply_text``: the text of a default reply, cut to the request's ``max_tokens``
      (``max_completion_tokens``); with ``fill_max_tokens`` it is repeated to use all of them.
    * ``latency_s``: wait this long before each response.
    * ``include_usage``: whether OpenAI streams end with a usage chunk: ``"requested"`` (when
      ``stream_options.include_usage`` is true, as OpenAI does), ``"always"`` or ``"never"``.
    * ``cached_tokens``: report this many prompt tokens (at most all of them) as cache reads.
    * ``api_key``: require this key (``Authorization: Bearer`` or ``x-api-key``); by default any key
      is accepted, but a request without one gets the provider's 401.
    * ``models``: what ``GET /v1/models`` lists; ``embedding_dimensions``: vector size when the request
      gives none (by default 3072 for text-embedding-3-large, else 1536).
    * ``counter`` counts tokens (a fresh `TokenCounter` by default); ``clock`` stamps requests and
      ``created`` fields (the system clock by default; pass a `FakeClock` for fixed times).

    The settings are plain attributes and may be changed while the fake runs.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        reply_text: str = "This is a fake reply.",
        latency_s: float = 0.0,
        include_usage: IncludeUsage = "requested",
        cached_tokens: int = 0,
        fill_max_tokens: bool = False,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        embedding_dimensions: int | None = None,
        responder: Responder | None = None,
        counter: TokenCounter | None = None,
        clock: Clock | None = None,
    ) -> None:
        if include_usage not in _INCLUDE_USAGE:
            raise ConfigurationError(f"include_usage: must be one of {_INCLUDE_USAGE}, got {include_usage!r}")
        if cached_tokens < 0 or latency_s < 0:
            raise ConfigurationError("cached_tokens and latency_s must not be negative")
        self.port = port
        self.reply_text = reply_text
        self.latency_s = latency_s
        self.include_usage: IncludeUsage = include_usage
        self.cached_tokens = cached_tokens
        self.fill_max_tokens = fill_max_tokens
        self.api_key = api_key
        self.models = tuple(models)
        self.embedding_dimensions = embedding_dimensions
        self.responder = responder
        self.counter = counter or TokenCounter()
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._script: deque[FakeReply] = deque()
        self._requests: list[FakeRequest] = []
        self._errors: list[Exception] = []
        self._count = 0
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None

    # ---- life cycle ---------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 (``port`` 0 picks a free port) and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("FakeUpstream is already started")
        server = HttpServer(self.port, self._handle)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="spendgate-fake-upstream", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and wait for the server's threads. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running fake."""
        if self._server is None:
            raise RuntimeError("FakeUpstream is not started: call start() or use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for OpenAI clients: ``url + "/v1"``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for Anthropic clients: ``url``."""
        return self.url

    # ---- scripting and inspection --------------------------------------------------------------------

    def script(self, *replies: FakeReply) -> None:
        """Queue replies for the next requests, in order (each is used once)."""
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._script)

    @property
    def requests(self) -> list[FakeRequest]:
        """The requests received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[Exception]:
        """Exceptions raised by the ``responder`` (each was answered with a 500)."""
        with self._lock:
            return list(self._errors)

    def reset(self) -> None:
        """Forget recorded requests and errors and drop queued replies; settings stay."""
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._errors.clear()

    # ---- serving -------------------------------------------------------------------------------------

    def _defaults(self) -> Defaults:
        return Defaults(
            reply_text=self.reply_text,
            latency_s=self.latency_s,
            include_usage=self.include_usage,
            cached_tokens=self.cached_tokens,
            fill_max_tokens=self.fill_max_tokens,
            models=self.models,
            embedding_dimensions=self.embedding_dimensions,
        )

    def _record(self, method: str, path: str, query: str, headers: Mapping[str, str], raw: bytes) -> FakeRequest:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            request = FakeRequest(method, path, query, dict(headers), body, raw, self.clock.now(), self._count)
            self._count += 1
            self._requests.append(request)
        return request

    def _choose(self, request: FakeRequest) -> FakeReply | Outcome:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.responder is None:
            return FakeReply()
        try:
            return self.responder(request) or FakeReply()
        except Exception as exc:
            with self._lock:
                self._errors.append(exc)
            return error_outcome(request, 500, f"responder raised {type(exc).__name__}: {exc}")

    def _handle(self, method: str, path: str, query: str, headers: Mapping[str, str], raw: bytes) -> Outcome:
        request = self._record(method, path, query, headers, raw)
        if raw and request.body is None:
            return error_outcome(request, 400, "We could not parse the JSON body of your request.")
        denied = unauthorized(request, self.api_key)
        if denied is not None:
            return denied
        if not has_route(method, path):
            return respond(request, FakeReply(), Context(self._defaults(), self.counter))
        reply = self._choose(request)
        if isinstance(reply, Outcome):
            return reply
        return respond(request, reply, Context(self._defaults(), self.counter))


def main(argv: Iterable[str] | None = None) -> None:
    """Run a fake upstream until interrupted: ``python -m spendgate.testing._fake_upstream --port 8399``."""
    parser = argparse.ArgumentParser(description="A fake OpenAI/Anthropic-compatible provider on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8399)
    parser.add_argument("--reply-text", default="This is a fake reply.")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each response")
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    args = parser.parse_args(None if argv is None else list(argv))
    fake = FakeUpstream(port=args.port, reply_text=args.reply_text, latency_s=args.latency, api_key=args.api_key)
    with fake:
        print(f"fake upstream on {fake.url} (OpenAI base URL {fake.openai_base_url}); Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    main()
