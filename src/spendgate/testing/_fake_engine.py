"""From a request and the reply chosen for it to an `Outcome`: what to send, how, and how to fail.

Pure logic, no I/O: `respond` routes the request, validates it like the provider would, counts its
tokens, renders the provider's wire format and applies the scripted status and fault. The HTTP layer
only writes the `Outcome` out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from spendgate.errors import InvalidUsageError
from spendgate.testing import _fake_anthropic as anthropic
from spendgate.testing import _fake_openai as openai
from spendgate.testing._fake_turn import Turn, make_turn
from spendgate.testing._fake_types import FakeReply, FakeRequest, Fault, IncludeUsage
from spendgate.testing._fake_wire import Provider, dumps, error_body
from spendgate.tokens import TokenCounter
from spendgate.usage import Usage

__all__ = ["Context", "Defaults", "End", "Outcome", "error_outcome", "has_route", "respond", "unauthorized"]

#: How a response ends: properly, by closing the connection mid-body, or by a TCP reset.
End = Literal["complete", "close", "reset"]

_BAD_FRAME = {
    "openai": b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n',
    "anthropic": b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": \n\n',
}

_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One response as the HTTP layer sends it.

    ``body`` is a whole body (``content_length`` may declare more than is sent); ``events`` are SSE
    frames sent one by one with chunked encoding; ``silent`` sends nothing before ``end``.
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    events: tuple[bytes, ...] | None = None
    content_length: int | None = None
    latency_s: float = 0.0
    chunk_delay_s: float = 0.0
    end: End = "complete"
    silent: bool = False


@dataclass(frozen=True, slots=True)
class Defaults:
    """The fake's settings that apply when a reply does not say otherwise."""

    reply_text: str = "This is a fake reply."
    latency_s: float = 0.0
    include_usage: IncludeUsage = "requested"
    cached_tokens: int = 0
    fill_max_tokens: bool = False
    models: tuple[str, ...] = ()
    embedding_dimensions: int | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What rendering a reply needs besides the request and the reply."""

    defaults: Defaults
    counter: TokenCounter = field(default_factory=TokenCounter)


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


Payload = dict[str, Any] | list[bytes]
Route = Callable[[FakeRequest, FakeReply, Context], Payload]


def _request_id(request: FakeRequest) -> str:
    return f"req_fake{request.index:06d}"


def _id_header(provider: Provider) -> str:
    return "request-id" if provider == "anthropic" else "x-request-id"


def error_outcome(
    request: FakeRequest,
    status: int,
    message: str | None = None,
    *,
    error_type: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> Outcome:
    """A provider-shaped JSON error for ``request``."""
    provider = request.provider
    rid = _request_id(request)
    body = error_body(provider, status, message, error_type, code=code, param=param, request_id=rid)
    headers = (("content-type", "application/json"), (_id_header(provider), rid))
    return Outcome(status=status, headers=headers, body=dumps(body))


def unauthorized(request: FakeRequest, required_key: str | None) -> Outcome | None:
    """A 401 when the request has no key, or not ``required_key`` when one is required; else None."""
    key = request.api_key
    if key is not None and (required_key is None or key == required_key):
        return None
    if request.provider == "anthropic":
        message = "x-api-key header is required" if key is None else "invalid x-api-key"
    elif key is None:
        message = "You didn't provide an API key. You need to provide your API key in an Authorization header."
    else:
        message = f"Incorrect API key provided: {key[:3]}***{key[-2:]}."
    return error_outcome(request, 401, message)


# ---- request validation, the way the providers phrase it ------------------------------------------


def _object(request: FakeRequest) -> dict[str, Any]:
    if not isinstance(request.body, dict):
        raise _BadRequest("We could not parse the JSON body of your request: expected a JSON object.")
    return request.body


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("you must provide a model parameter", "model")
    return model


def _messages(body: Mapping[str, Any]) -> list[Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages: must be a non-empty array", "messages")
    return messages


def _positive_int(body: Mapping[str, Any], *names: str, upper: int = 10**7) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
            raise _BadRequest(f"{name}: must be an integer from 1 to {upper}, got {value!r}", name)
        return value
    return None


def _tools(body: Mapping[str, Any]) -> list[Any] | None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _BadRequest("tools: must be an array", "tools")
    return tools or None


def _usage_wanted(reply: FakeReply) -> bool:
    return reply.fault is not Fault.NO_USAGE


# ---- routes -----------------------------------------------------------------------------------------


def _chat_turn(reply: FakeReply, ctx: Context, body: dict[str, Any], choices: int) -> Turn:
    model = _model(body)
    messages = _messages(body)
    tools = _tools(body)
    response_format = body.get("response_format")
    prompt = ctx.counter.count(
        "openai",
        model,
        messages=messages,
        tools=tools,
        response_format=response_format if isinstance(response_format, dict) else None,
    )
    return make_turn(
        reply,
        provider="openai",
        model=model,
        counter=ctx.counter,
        input_tokens=prompt.total,
        default_text=ctx.defaults.reply_text,
        max_tokens=_positive_int(body, "max_completion_tokens", "max_tokens"),
        fill=ctx.defaults.fill_max_tokens,
        cached_tokens=ctx.defaults.cached_tokens,
        has_tools=tools is not None,
        choices=choices,
    )


def _chat_completions(request: FakeRequest, reply: FakeReply, ctx: Context) -> Payload:
    body = _object(request)
    choices = _positive_int(body, "n", upper=128) or 1
    turn = _chat_turn(reply, ctx, body, choices)
    ids: dict[str, Any] = {"completion_id": f"chatcmpl-fake{request.index:06d}", "request_index": request.index}
    created = int(request.time.timestamp())
    if not request.stream:
        return openai.chat_completion(turn, **ids, created=created, choices=choices, with_usage=_usage_wanted(reply))
    options = body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    mode = ctx.defaults.include_usage
    usage_chunk = _usage_wanted(reply) and (mode == "always" or (mode == "requested" and asked))
    return openai.chat_chunks(
        turn, **ids, created=created, choices=choices, usage_chunk=usage_chunk, usage_fields=usage_chunk or asked
    )


def _embedding_inputs(body: Mapping[str, Any]) -> list[str | list[int]]:
    raw = body.get("input")
    items: list[Any] = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if items and all(isinstance(x, int) and not isinstance(x, bool) for x in items):
        items = [items]  # one input given as token ids
    valid = all(
        isinstance(x, str) or (isinstance(x, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in x))
        for x in items
    )
    if not items or not valid:
        raise _BadRequest("input: must be a string, an array of strings, or token arrays", "input")
    return items


def _embeddings(request: FakeRequest, reply: FakeReply, ctx: Context) -> Payload:
    body = _object(request)
    model = _model(body)
    inputs = _embedding_inputs(body)
    dimensions = _positive_int(body, "dimensions", upper=8192) or ctx.defaults.embedding_dimensions
    texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inputs]
    tokens = sum(len(x) if isinstance(x, list) else ctx.counter.count_text("openai", model, x).total for x in inputs)
    usage = reply.usage or Usage(input_tokens=tokens)
    return openai.embedding_list(
        texts,
        model=reply.model or model,
        dimensions=dimensions or _EMBEDDING_DIMENSIONS.get(model, 1536),
        base64_encoded=body.get("encoding_format") == "base64",
        usage=usage if _usage_wanted(reply) else None,
    )


def _models(request: FakeRequest, reply: FakeReply, ctx: Context) -> Payload:
    if request.provider == "anthropic":
        return anthropic.model_list(ctx.defaults.models, request.time)
    return openai.model_list(ctx.defaults.models, int(request.time.timestamp()))


def _anthropic_prompt(body: dict[str, Any], ctx: Context) -> tuple[str, int]:
    model = _model(body)
    system = body.get("system")
    prompt = ctx.counter.count(
        "anthropic",
        model,
        messages=_messages(body),
        system=system if isinstance(system, (str, list)) else None,
        tools=_tools(body),
    )
    return model, prompt.total


def _messages_route(request: FakeRequest, reply: FakeReply, ctx: Context) -> Payload:
    body = _object(request)
    model, input_tokens = _anthropic_prompt(body, ctx)
    max_tokens = _positive_int(body, "max_tokens")
    if max_tokens is None:
        raise _BadRequest("max_tokens: Field required", "max_tokens")
    turn = make_turn(
        reply,
        provider="anthropic",
        model=model,
        counter=ctx.counter,
        input_tokens=input_tokens,
        default_text=ctx.defaults.reply_text,
        max_tokens=max_tokens,
        fill=ctx.defaults.fill_max_tokens,
        cached_tokens=ctx.defaults.cached_tokens,
        has_tools=_tools(body) is not None,
    )
    ids: dict[str, Any] = {"message_id": f"msg_fake{request.index:06d}", "request_index": request.index}
    if request.stream:
        return anthropic.message_events(turn, **ids, with_usage=_usage_wanted(reply))
    return anthropic.message(turn, **ids, with_usage=_usage_wanted(reply))


def _count_tokens(request: FakeRequest, reply: FakeReply, ctx: Context) -> Payload:
    _, input_tokens = _anthropic_prompt(_object(request), ctx)
    return {"input_tokens": reply.usage.input_tokens if reply.usage else input_tokens}


_ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v1/chat/completions"): _chat_completions,
    ("POST", "/v1/embeddings"): _embeddings,
    ("GET", "/v1/models"): _models,
    ("POST", "/v1/messages"): _messages_route,
    ("POST", "/v1/messages/count_tokens"): _count_tokens,
}


def has_route(method: str, path: str) -> bool:
    """Whether the fake serves ``method path``."""
    return (method, path) in _ROUTES


# ---- faults -----------------------------------------------------------------------------------------


def _fault_stream(frames: Sequence[bytes], reply: FakeReply, provider: Provider) -> tuple[tuple[bytes, ...], End]:
    at = len(frames) - 1 if reply.fault_after is None else min(reply.fault_after, len(frames))
    head, tail = tuple(frames[:at]), tuple(frames[at:])
    match reply.fault:
        case Fault.MALFORMED:
            return (*head, _BAD_FRAME[provider], *tail), "complete"
        case Fault.RESET:
            return head, "reset"
        case Fault.DISCONNECT:
            return head, "close"
        case Fault.TRUNCATE:
            return head, "complete"
        case _:
            return tuple(frames), "complete"


def _fault_body(outcome: Outcome, fault: Fault | None) -> Outcome:
    half = outcome.body[: len(outcome.body) // 2]
    match fault:
        case Fault.RESET:
            return replace(outcome, body=b"", end="reset", silent=True)
        case Fault.DISCONNECT | Fault.TRUNCATE:
            return replace(outcome, body=half, content_length=len(outcome.body), end="close")
        case Fault.MALFORMED:
            return replace(outcome, body=half)
        case _:
            return outcome


def _reply_headers(reply: FakeReply) -> list[tuple[str, str]]:
    headers = [(name.lower(), value) for name, value in reply.headers.items()]
    retry_after = reply.retry_after if reply.retry_after is not None else (1 if reply.status == 429 else None)
    if retry_after is not None and all(name != "retry-after" for name, _ in headers):
        headers.append(("retry-after", f"{retry_after:g}"))
    return headers


def respond(request: FakeRequest, reply: FakeReply, ctx: Context) -> Outcome:
    """The response to ``request`` as ``reply`` scripts it (a provider error for bad input)."""
    route = _ROUTES.get((request.method, request.path))
    if route is None:
        outcome = error_outcome(request, 404, f"Invalid URL ({request.method} {request.path})")
    elif reply.status >= 400:
        outcome = error_outcome(request, reply.status, reply.error, error_type=reply.error_type)
    else:
        try:
            payload = route(request, reply, ctx)
        except (_BadRequest, InvalidUsageError) as exc:
            param = exc.param if isinstance(exc, _BadRequest) else exc.field
            outcome = error_outcome(request, 400, str(exc), param=param)
        else:
            outcome = _render(request, reply, payload)
    headers = dict(outcome.headers)
    headers.update(_reply_headers(reply))
    outcome = replace(
        outcome,
        headers=tuple(headers.items()),
        latency_s=ctx.defaults.latency_s if reply.latency_s is None else reply.latency_s,
        chunk_delay_s=reply.chunk_delay_s,
    )
    return outcome if outcome.events is not None else _fault_body(outcome, reply.fault)


def _render(request: FakeRequest, reply: FakeReply, payload: Payload) -> Outcome:
    provider = request.provider
    id_header = (_id_header(provider), _request_id(request))
    if isinstance(payload, dict):
        return Outcome(
            status=reply.status, headers=(("content-type", "application/json"), id_header), body=dumps(payload)
        )
    events, end = _fault_stream(payload, reply, provider)
    headers = (("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"), id_header)
    return Outcome(status=reply.status, headers=headers, events=events, end=end)
