"""Every error answer is JSON: ``{"error": {"type": ..., "message": ..., ...}}`` with the right status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from spendgate.errors import (
    BudgetExceeded,
    ConfigurationError,
    InvalidUsageError,
    LedgerError,
    PricingError,
    SpendgateError,
    UnknownModelError,
)

__all__ = ["ApiError", "error_body", "install_error_handlers"]

log = logging.getLogger("spendgate.server")


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, **{k: v for k, v in extra.items() if v is not None}}}


class ApiError(Exception):
    """Raise from a route to answer ``status`` with a JSON error (and optional headers)."""

    def __init__(self, status: int, type_: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.body = error_body(type_, message, **extra)
        self.headers = headers


def _json(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


_UNPARSABLE = "There was an error parsing the body"
_UNPARSABLE_CLEAR = "the body could not be read as JSON: it is not UTF-8 text, or it is nested too deeply"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.body, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":  # loc is ("body", <character position>), not a field
            where = first.get("loc", ("body", "?"))[-1]
            reason = (first.get("ctx") or {}).get("error", "invalid JSON")
            return _json(400, error_body("invalid_request_error", f"the body is not valid JSON: {reason} (at character"
                                         f" {where})", field="body"))  # fmt: skip
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        field = ".".join(location) or None
        message = str(first.get("msg", "invalid request"))
        return _json(400, error_body("invalid_request_error", f"{field}: {message}" if field else message, field=field))

    @app.exception_handler(InvalidUsageError)
    async def _invalid(_: Request, exc: InvalidUsageError) -> JSONResponse:
        return _json(400, error_body("invalid_request_error", str(exc), field=exc.field))

    @app.exception_handler(UnknownModelError)
    async def _unknown(_: Request, exc: UnknownModelError) -> JSONResponse:
        return _json(400, error_body("unknown_model", str(exc), field="model"))

    @app.exception_handler(BudgetExceeded)
    async def _budget(_: Request, exc: BudgetExceeded) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s is not None else None
        return _json(429, {"error": {"type": "budget_exceeded", **exc.authorization.to_dict()}}, headers)

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> JSONResponse:
        log.error("ledger unavailable: %s", exc)
        services = getattr(request.app.state, "services", None)
        if services is not None:  # the gateway refuses calls for a while rather than serve them unmetered
            services.ledger_guard.tripped(str(exc))
        return _json(503, error_body("ledger_unavailable", str(exc)), {"Retry-After": "5"})

    @app.exception_handler(ConfigurationError)
    async def _config(_: Request, exc: ConfigurationError) -> JSONResponse:
        return _json(400, error_body(exc.code, str(exc), field=getattr(exc, "field", None)))

    @app.exception_handler(PricingError)
    async def _pricing(_: Request, exc: PricingError) -> JSONResponse:
        return _json(400, error_body(exc.code, str(exc)))

    @app.exception_handler(SpendgateError)
    async def _spendgate(_: Request, exc: SpendgateError) -> JSONResponse:
        return _json(400, error_body(exc.code, str(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {401: "authentication_error", 403: "permission_error", 404: "not_found", 405: "method_not_allowed"}
        if exc.status_code == 400 and exc.detail == _UNPARSABLE:  # FastAPI's words for a body json could not read
            body = error_body("invalid_request_error", _UNPARSABLE_CLEAR, field="body")
            return _json(400, body, exc.headers)
        return _json(exc.status_code, error_body(kind.get(exc.status_code, "http_error"), str(exc.detail)), exc.headers)
