"""What kind of failure an exception from an SDK call (or its stream) was, for the ledger's ``error_kind``.

Classified by duck typing and class names, so neither SDK has to be installed: ``openai`` and
``anthropic`` raise ``APIStatusError`` (with ``status_code``), ``APITimeoutError`` and
``APIConnectionError``; inside a stream the Anthropic SDK lets the transport's own errors
(``ReadError``, ``RemoteProtocolError``: subclasses of ``TransportError``) through unwrapped.
"""

from __future__ import annotations

import asyncio
import json

__all__ = ["error_kind", "status_code"]

_CONNECTION_NAMES = frozenset({"APIConnectionError", "TransportError", "NetworkError", "ProtocolError"})


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a provider error response, if the exception carries one."""
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def error_kind(exc: BaseException) -> str:
    """``rate_limited`` (429), ``timeout``, ``upstream_error`` (5xx), ``bad_request`` (other 4xx),
    ``connection``, ``bad_response`` (a body that is not JSON), ``cancelled``, else ``error``."""
    status = status_code(exc)
    if status is not None:
        if status == 429:
            return "rate_limited"
        if status == 408:
            return "timeout"
        if status >= 500:
            return "upstream_error"
        if status >= 400:
            return "bad_request"
    names = {cls.__name__ for cls in type(exc).__mro__}
    if isinstance(exc, TimeoutError) or any("Timeout" in name for name in names):
        return "timeout"
    if isinstance(exc, ConnectionError) or names & _CONNECTION_NAMES:
        return "connection"
    if isinstance(exc, json.JSONDecodeError):
        return "bad_response"
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError | GeneratorExit):
        return "cancelled"
    return "error"
