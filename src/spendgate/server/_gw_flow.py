"""One gateway call, end to end: route → (cache) → authorize → forward → settle, or release on failure.

The decisions about a call (what to count, what to reserve, how to read usage, how to ask a stream for
its usage) are :class:`spendgate.integrations` ``Call``'s, shared with the SDK instrumentation; this
module only does the HTTP around them. Authorize, settle and release run on the event loop when the meter
does no I/O in them (``Meter.nonblocking``: memory counters and a write-ahead journal), else in worker
threads; other meter calls always run in worker threads.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Request, Response

from spendgate.budgets import Action
from spendgate.errors import PricingError, UnknownModelError
from spendgate.integrations._call import Call, Identity
from spendgate.integrations._endpoints import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_EMBEDDINGS, Endpoint
from spendgate.meter import Authorization
from spendgate.server._deps import Services
from spendgate.server._errors import ApiError
from spendgate.server._gw_cache import CachedResponse
from spendgate.server._gw_reply import budget_headers, refusal, remaining_after
from spendgate.server._gw_request import (
    cache_key,
    check_chat,
    check_embeddings,
    check_messages,
    prompt_hash,
    read_json,
    request_headers,
)
from spendgate.server._gw_routing import Route, Wire, resolve, upstream_headers, upstream_url
from spendgate.server._gw_stream import Relay, RelayResponse
from spendgate.server._gw_upstream import (
    TRANSPORT_ERRORS,
    UpstreamClient,
    UpstreamFailure,
    failure_from_exception,
    passthrough,
)
from spendgate.server._identity import Principal
from spendgate.server._response_cache import CacheBackend
from spendgate.usage import Usage

__all__ = ["ANTHROPIC_API", "CHAT_API", "EMBEDDINGS_API", "Api", "Exchange", "GatewayState", "exchange"]

log = logging.getLogger("spendgate.server.gateway")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Api:
    """One gateway API: its ledger ``request_type``, wire format, upstream path and request shape."""

    name: str
    wire: Wire
    path: str
    endpoint: Endpoint
    check: Callable[[Mapping[str, Any]], None]
    """Validates a request body (400 naming the field)."""
    streams: bool = True


CHAT_API = Api("chat", "openai", "/chat/completions", OPENAI_CHAT, check_chat)
EMBEDDINGS_API = Api("embeddings", "openai", "/embeddings", OPENAI_EMBEDDINGS, check_embeddings, streams=False)
ANTHROPIC_API = Api("messages", "anthropic", "/messages", ANTHROPIC_MESSAGES, check_messages)


@dataclass
class GatewayState:
    """What the gateway routes share in one app: the upstream connection pool, the cache, the environment.

    ``inline_meter`` (the meter's ``nonblocking``): authorize, settle and release run on the event loop
    rather than in a worker thread, saving two thread hops per call.
    """

    client: UpstreamClient
    cache: CacheBackend
    environ: Mapping[str, str]
    inline_meter: bool = False

    async def metered(self, func: Callable[[], T]) -> T:
        """``func()`` (an authorize, settle or release): on the loop when ``inline_meter``, else in a thread.

        Either way a disconnect cannot lose it: on the loop it runs to its end without yielding (so no
        cancellation can land inside it), in a thread it is shielded.
        """
        if self.inline_meter:
            return func()
        return await in_thread(func)


def _cache_wanted(headers: Mapping[str, str], principal: Principal) -> bool:
    """``x-spendgate-cache: on`` opts a request in, ``off`` out; otherwise the key's own setting decides."""
    asked = headers.get("x-spendgate-cache", "").strip().lower()
    if asked in ("on", "1", "true", "yes"):
        return True
    if asked in ("off", "0", "false", "no"):
        return False
    return principal.cache


#: At most this many tags from ``x-spendgate-tags``, each name and value at most 200 characters.
MAX_HEADER_TAGS = 32


def header_tags(headers: Mapping[str, str]) -> dict[str, str]:
    """Tags from ``x-spendgate-tags: feature=search, env=prod`` (400 naming the header when malformed)."""
    raw = headers.get("x-spendgate-tags", "").strip()
    if not raw:
        return {}
    tags: dict[str, str] = {}
    for part in raw.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or len(name) > 200 or len(value) > 200:
            raise ApiError(400, "invalid_request_error", "x-spendgate-tags: expected name=value pairs separated by "
                           f"commas (names and values at most 200 characters), got {part.strip()!r}",
                           field="x-spendgate-tags")  # fmt: skip
        tags[name] = value
    if len(tags) > MAX_HEADER_TAGS:
        raise ApiError(400, "invalid_request_error", f"x-spendgate-tags: at most {MAX_HEADER_TAGS} tags",
                       field="x-spendgate-tags")  # fmt: skip
    return tags


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))


def _money(value: Decimal | None) -> str:
    return "unknown" if value is None else format(value, "f")


async def in_thread(func: Callable[[], T]) -> T:
    """Run blocking meter work off the event loop; shielded, so a disconnect never loses a settle."""
    with anyio.CancelScope(shield=True):
        return await anyio.to_thread.run_sync(func)
    raise AssertionError("unreachable: a shielded scope is never cancelled")  # pragma: no cover


async def exchange(api: Api, svc: Services, state: GatewayState, request: Request, principal: Principal) -> Response:
    """Answer one gateway call of ``principal`` (already authenticated): read and check the body, then run."""
    svc.ledger_guard.check()  # the ledger failed a moment ago: refuse before forwarding (docs: _ledger_guard)
    body, raw = await read_json(request)
    api.check(body)
    return await Exchange(api, svc, state, request, principal, body, raw).run()


class Exchange:
    """The state of one gateway call; :meth:`run` answers it."""

    def __init__(
        self,
        api: Api,
        svc: Services,
        state: GatewayState,
        request: Request,
        principal: Principal,
        body: dict[str, Any],
        raw: bytes,
    ) -> None:
        self.api = api
        self.svc = svc
        self.meter = svc.meter
        self.state = state
        self.request = request
        self.headers = request_headers(request.scope)
        self.principal = principal
        self.body = body
        self.raw = raw
        """The request body as the client sent it (forwarded as is when nothing in it changes)."""
        self.started = time.perf_counter()
        self._prompt_hash: str | None = None

    # -- the steps ----------------------------------------------------------------------------------

    async def run(self) -> Response:
        route = resolve(self.svc.settings.upstreams, self.body["model"])
        if route.wire != self.api.wire:
            other = "/v1/messages" if route.wire == "anthropic" else "/v1/chat/completions"
            raise ApiError(400, "invalid_request_error", f"model: {route.provider} models are served at {other}",
                           field="model")  # fmt: skip
        headers = upstream_headers(route.provider, route.upstream, self.headers, self.state.environ)
        stream = self.api.streams and self.body.get("stream") is True
        key = None
        tags = {**self.principal.tags, **header_tags(self.headers)}  # the request's own tags win
        if not stream and _cache_wanted(self.headers, self.principal):
            key = cache_key(self.api.name, {**self.body, "model": f"{route.provider}/{route.model}"})
        hit = None if key is None else await self.state.cache.get(key)
        call, auth = await self.state.metered(lambda: self._authorize(route, stream, hit is not None, tags))
        if hit is not None and (auth.allowed or auth.action is Action.CACHE_ONLY):
            return await self._serve_cached(call, auth, route, hit)
        if not auth.allowed:
            return refusal(self.api.wire, auth)
        target = self._target(route, auth)
        if target is None:
            note = f"the budget allows only {auth.provider}/{auth.model}, which this gateway cannot serve here"
            fields = self._fields(call)
            await self.state.metered(lambda: self.meter.release(auth, error_kind="downgrade_refused", **fields))
            return refusal(self.api.wire, replace(auth, note=note))
        if target.provider != route.provider:
            headers = upstream_headers(target.provider, target.upstream, self.headers, self.state.environ)
        try:
            if stream:
                return await self._stream(call, auth, target, headers, self._payload(call, target))
            return await self._whole(call, auth, target, headers, self._payload(call, target), key)
        except BaseException:  # a bug or a cancellation: never leave the hold to lapse by TTL
            await self._release_quietly(call, auth)
            raise

    async def _release_quietly(self, call: Call, auth: Authorization) -> None:
        try:
            await self.state.metered(lambda: self.meter.release(auth, error_kind="error", **self._fields(call)))
        except Exception:  # the original error matters more; the hold still lapses after its TTL
            log.exception("could not release the hold %s", auth.reservation_id)

    def _authorize(
        self, route: Route, stream: bool, cache_available: bool, tags: Mapping[str, str]
    ) -> tuple[Call, Authorization]:
        p = self.principal
        identity = Identity(user_id=p.user_id, team_id=p.team_id, api_key_id=p.key_id, tier=p.tier,
                            session_id=self.headers.get("x-spendgate-session"), tags=tags,
                            request_type=self.api.name)  # fmt: skip
        call = Call(counter=self.meter.tokens, provider=route.provider, model=route.model, endpoint=self.api.endpoint,
                    identity=identity, kwargs=self.body, stream=stream)  # fmt: skip
        auth = self.meter.authorize(**call.authorize_kwargs(), cache_available=cache_available)
        return call, auth

    def _payload(self, call: Call, target: Route) -> bytes:
        """The upstream request body: the client's own bytes when the call forwards them unchanged."""
        if target.model == self.body["model"] and call.kwargs == self.body:
            return self.raw
        return json.dumps({**call.kwargs, "model": target.model}).encode()

    def _target(self, route: Route, auth: Authorization) -> Route | None:
        """Where the call goes under ``auth`` (a DOWNGRADE names another model, maybe another provider)."""
        if auth.provider == route.provider:
            return route if auth.model == route.model else Route(route.provider, auth.model, route.upstream)
        upstream = self.svc.settings.upstreams.get(auth.provider)
        if upstream is None or upstream.wire != route.wire:
            return None
        return Route(auth.provider, auth.model, upstream)

    # -- event fields and headers -------------------------------------------------------------------

    def _fields(self, call: Call, **extra: Any) -> dict[str, Any]:
        latency = extra.pop("latency_ms", None)
        fields = call.fields(_elapsed_ms(self.started) if latency is None else latency, **extra)
        if self._prompt_hash is None:
            self._prompt_hash = prompt_hash(self.body)
        scope = self.request.scope
        client = scope.get("client")
        fields.setdefault("request_bytes", len(self.raw))
        fields.setdefault("prompt_hash", self._prompt_hash)
        fields.setdefault("endpoint", scope["path"])
        fields.setdefault("client_ip", client[0] if client else None)
        fields.setdefault("user_agent", self.headers.get("user-agent"))
        return {k: v for k, v in fields.items() if v is not None}

    def _headers(self, auth: Authorization, target: Route, remaining: Decimal | None = None) -> dict[str, str]:
        return {
            **budget_headers(auth, remaining),
            "x-spendgate-reservation": auth.reservation_id,
            "x-spendgate-provider": target.provider,
            "x-spendgate-model-used": target.model,
        }

    # -- outcomes -----------------------------------------------------------------------------------

    async def _fail(self, call: Call, auth: Authorization, target: Route, failure: UpstreamFailure) -> Response:
        """Release the hold, record the failure with its kind, answer with the upstream's error (or 502/504)."""
        fields = self._fields(call, status_code=failure.upstream_status or failure.status,
                              response_bytes=len(failure.body))  # fmt: skip
        await self.state.metered(lambda: self.meter.release(auth, error_kind=failure.kind, **fields))
        log.info("upstream %s failed (%s) for %s", target.provider, failure.kind, auth.reservation_id)
        headers = {**failure.headers, **self._headers(auth, target), "x-spendgate-cost": "0"}
        return Response(failure.body, status_code=failure.status, media_type=failure.media_type, headers=headers)

    async def _whole(
        self,
        call: Call,
        auth: Authorization,
        target: Route,
        headers: dict[str, str],
        payload: bytes,
        key: str | None,
    ) -> Response:
        url = upstream_url(target.upstream, self.api.path)
        try:
            response = await self.state.client.fetch("POST", url, headers=headers, content=payload,
                                                     timeout_s=target.upstream.timeout_s)  # fmt: skip
            data = json.loads(response.content)
        except UpstreamFailure as failure:
            return await self._fail(call, auth, target, failure)
        except TRANSPORT_ERRORS as exc:
            return await self._fail(call, auth, target, failure_from_exception(exc, self.api.wire, target.provider))
        outcome = call.success(auth, data, _elapsed_ms(self.started))
        fields = self._fields(call, **outcome.fields, status_code=response.status_code,
                              response_bytes=len(response.content))  # fmt: skip
        recorded = await self.state.metered(lambda: self.meter.settle(auth, outcome.usage, **fields))
        cost = None if recorded.cost is None else recorded.cost.total
        media_type = response.headers.get("content-type", "application/json")
        if key is not None:
            entry = CachedResponse(response.content, media_type, target.provider, target.model, outcome.usage,
                                   self.meter.clock.now())  # fmt: skip
            await self.state.cache.put(key, entry)
        out = {
            **passthrough(response.headers),
            **self._headers(auth, target, remaining_after(auth, outcome.usage, cost)),
        }
        out["x-spendgate-cost"] = _money(cost)
        if key is not None:
            out["x-spendgate-cache"] = "miss"
        return Response(response.content, status_code=response.status_code, media_type=media_type, headers=out)

    async def _stream(
        self, call: Call, auth: Authorization, target: Route, headers: dict[str, str], payload: bytes
    ) -> Response:
        url = upstream_url(target.upstream, self.api.path)
        try:
            response = await self.state.client.open("POST", url, headers=headers, content=payload,
                                                    timeout_s=target.upstream.timeout_s)  # fmt: skip
        except UpstreamFailure as failure:
            return await self._fail(call, auth, target, failure)
        except TRANSPORT_ERRORS as exc:
            return await self._fail(call, auth, target, failure_from_exception(exc, self.api.wire, target.provider))
        relay = Relay(
            response=response,
            wire=self.api.wire,
            provider=target.provider,
            call=call,
            auth=auth,
            meter=self.meter,
            fields=lambda **extra: self._fields(call, **extra),
            run=self.state.metered,
        )
        out = {**passthrough(response.headers), **self._headers(auth, target)}
        out |= {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return RelayResponse(relay, headers=out)

    async def _serve_cached(self, call: Call, auth: Authorization, route: Route, hit: CachedResponse) -> Response:
        """Answer from the cache: costs nothing; recorded with ``cached=True`` and what it saved."""
        savings = self._savings(hit)
        fields = self._fields(call, status_code=200, response_bytes=len(hit.body), cached=True)
        if savings is not None:
            fields["cache_savings"] = savings
        if auth.allowed:  # the hold is replaced by nothing: the answer was free
            await self.state.metered(lambda: self.meter.settle(auth, Usage(), **fields, model_used=None))
        else:  # CACHE_ONLY: nothing was reserved, the event is recorded as it is
            p = self.principal
            ids = {"event_id": auth.reservation_id} if auth.reservation_id else {}
            await in_thread(lambda: self.meter.record(provider=route.provider, model=route.model, usage=Usage(),
                                                      user_id=p.user_id, team_id=p.team_id, api_key_id=p.key_id,
                                                      action=auth.action.value, **ids, **fields))  # fmt: skip
        headers = {**self._headers(auth, Route(hit.provider, hit.model, route.upstream)), "x-spendgate-cost": "0"}
        headers["x-spendgate-cache"] = "hit"
        if savings is not None:
            headers["x-spendgate-cache-savings"] = _money(savings)
        return Response(hit.body, status_code=200, media_type=hit.media_type, headers=headers)

    def _savings(self, hit: CachedResponse) -> Decimal | None:
        try:
            return self.meter.cost(hit.provider, hit.model, hit.usage).total
        except (PricingError, UnknownModelError):
            return None
