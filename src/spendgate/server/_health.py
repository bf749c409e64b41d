"""Operations: liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from spendgate.server._deps import ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the ledger and the counter store answer", responses={503: {}})
def readyz(svc: ServicesDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        svc.meter.store.count()
        checks["ledger"] = "ok"
    except Exception as exc:  # readiness reports any failure rather than raising it
        checks["ledger"] = f"unavailable: {exc}"
    try:
        checks["counters"] = "ok" if svc.meter.counters.ping() else "unavailable"
    except Exception as exc:
        checks["counters"] = f"unavailable: {exc}"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )
