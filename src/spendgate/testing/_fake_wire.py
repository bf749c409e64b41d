"""Wire-level pieces shared by both providers: JSON and SSE framing, and the providers' error bodies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["Provider", "dumps", "error_body", "sse"]

Provider = Literal["openai", "anthropic"]

# status -> (type, code) in OpenAI's error object; other 4xx are invalid_request_error, other 5xx server_error.
_OPENAI_ERRORS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}

# status -> error.type in Anthropic's error object; other 4xx are invalid_request_error, other 5xx api_error.
_ANTHROPIC_ERRORS: dict[int, str] = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_DEFAULT_MESSAGES: dict[int, str] = {
    400: "Invalid request (fake upstream).",
    401: "Invalid API key (fake upstream).",
    404: "Not found (fake upstream).",
    429: "Rate limit reached (fake upstream). Please try again later.",
    500: "The server had an error while processing your request (fake upstream).",
    503: "The service is temporarily unavailable (fake upstream).",
    529: "Overloaded (fake upstream).",
}


def dumps(data: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (what the providers send)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event: ``event: X`` (if given) and one ``data:`` line, ended by a blank line."""
    payload = data if isinstance(data, str) else dumps(data).decode()
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def error_body(
    provider: Provider,
    status: int,
    message: str | None = None,
    error_type: str | None = None,
    *,
    code: str | None = None,
    param: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The provider's JSON error body for ``status``.

    OpenAI: ``{"error": {"message", "type", "param", "code"}}``; Anthropic:
    ``{"type": "error", "error": {"type", "message"}, "request_id"}``.
    """
    text = message or _DEFAULT_MESSAGES.get(status) or f"HTTP {status} (fake upstream)."
    if provider == "anthropic":
        kind = (
            error_type or _ANTHROPIC_ERRORS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
        )
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": text}}
        if request_id:
            body["request_id"] = request_id
        return body
    default_kind, default_code = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {
        "error": {
            "message": text,
            "type": error_type or default_kind,
            "param": param,
            "code": code if code is not None else default_code,
        }
    }
