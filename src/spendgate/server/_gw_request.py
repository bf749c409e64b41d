"""Reading and checking gateway request bodies; their cache key and prompt hash (pure except `read_json`).

The checks cover what the gateway itself relies on (the model, the messages it counts, the output
limit it reserves for, ``stream``); every other parameter is passed on for the provider to judge.
A failed check answers 400 with ``{"error": {"type": "invalid_request_error", "field": ...}}``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request

from spendgate.server._body_limit import declared_length, too_large
from spendgate.server._errors import ApiError

__all__ = [
    "cache_key",
    "check_chat",
    "check_embeddings",
    "check_messages",
    "prompt_hash",
    "read_json",
    "request_headers",
]

#: Parameters that do not change a response's content: left out of the cache key.
_NOT_CONTENT = frozenset({"stream", "stream_options", "user", "metadata"})


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", f"{field}: {message}", field=field)


def request_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """An ASGI request's headers by (lower-case) name; of a repeated header the first, as Starlette's
    ``Headers.get`` answers. Built once per call: each lookup is then a dict lookup, not a scan."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in out:
            out[key] = value.decode("latin-1")
    return out


async def _read_body(request: Request) -> bytes:
    """The whole body, straight from ASGI ``receive`` (`Request.body` without its stream machinery, which
    costs more than the rest of reading); `ClientDisconnect` when the client leaves first; 413 past
    ``max_request_bytes``."""
    limit: int = request.app.state.services.settings.max_request_bytes
    declared = declared_length(request.scope)
    if declared is not None and declared > limit:
        raise too_large(limit)
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


async def read_json(request: Request) -> tuple[dict[str, Any], bytes]:
    """The request's JSON object and its bytes (read once: nothing else reads a gateway call's body); 400
    when the body is not a JSON object."""
    raw = await _read_body(request)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise _bad("body", "is not valid JSON (UTF-8 text, nested at most ~1000 levels)") from None
    if not isinstance(body, dict):
        raise _bad("body", f"must be a JSON object, got {type(body).__name__}")
    return body, raw


def _check_model(body: Mapping[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise _bad("model", "is required")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model", "must be a non-empty string")


def _check_int(body: Mapping[str, Any], name: str, *, low: int) -> None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise _bad(name, f"must be an integer >= {low}")


def _check_type(body: Mapping[str, Any], name: str, kinds: type | tuple[type, ...], what: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, kinds):
        raise _bad(name, f"must be {what}")


def _check_message_list(body: Mapping[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise _bad("messages", "is required")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "must be a non-empty array of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages[{i}]", "must be an object")
        if not isinstance(message.get("role"), str):
            raise _bad(f"messages[{i}].role", "must be a string")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content", "must be a string or an array of content parts")


def _check_common(body: Mapping[str, Any]) -> None:
    _check_model(body)
    _check_message_list(body)
    _check_type(body, "stream", bool, "a boolean")
    _check_type(body, "tools", list, "an array")


def check_chat(body: Mapping[str, Any]) -> None:
    """An OpenAI chat completion request (``model``, ``messages``; typed ``max_tokens``, ``n``, ``stream``)."""
    _check_common(body)
    _check_int(body, "max_tokens", low=1)
    _check_int(body, "max_completion_tokens", low=1)
    _check_int(body, "n", low=1)
    _check_type(body, "stream_options", dict, "an object")
    _check_type(body, "response_format", dict, "an object")


def check_messages(body: Mapping[str, Any]) -> None:
    """An Anthropic Messages request (``model``, ``messages``, ``max_tokens`` are required)."""
    _check_common(body)
    if body.get("max_tokens") is None:
        raise _bad("max_tokens", "is required")
    _check_int(body, "max_tokens", low=1)
    _check_type(body, "system", (str, list), "a string or an array of text blocks")


def check_embeddings(body: Mapping[str, Any]) -> None:
    """An OpenAI embeddings request: ``input`` is a string, strings, a token array or token arrays."""
    _check_model(body)
    value = body.get("input")
    if value is None:
        raise _bad("input", "is required")
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and bool(value)
        and (
            all(isinstance(item, str) for item in value)
            or all(isinstance(item, int) and not isinstance(item, bool) for item in value)
            or all(isinstance(item, list) and all(isinstance(t, int) for t in item) for item in value)
        )
    )
    if not ok:
        raise _bad("input", "must be a string, an array of strings, a token array or an array of token arrays")


#: ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)``, built once
#: (``json.dumps`` with options builds a new encoder on every call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode


def _digest(value: Any) -> str:
    return hashlib.sha256(_CANONICAL(value).encode()).hexdigest()


def cache_key(api: str, body: Mapping[str, Any]) -> str:
    """The exact-match key of a request: the API, the model and every parameter that shapes the answer."""
    return _digest({"api": api, **{k: v for k, v in body.items() if k not in _NOT_CONTENT}})


def prompt_hash(body: Mapping[str, Any]) -> str:
    """SHA-256 of the normalized prompt (``system`` + ``messages``, or embeddings' ``input``): never the prompt."""
    if "messages" in body:
        return _digest({"system": body.get("system"), "messages": body.get("messages")})
    return _digest({"input": body.get("input")})
