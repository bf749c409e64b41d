"""Operations: liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from spendgate.server._deps import ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the ledger and the counter store answer", responses={503: {}})
def readyz(request: Request, svc: ServicesDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        svc.meter.store.get("readyz-probe")  # one primary-key lookup: cheap at any ledger size
        checks["ledger"] = "ok"
    except Exception as exc:  # readiness reports any failure rather than raising it
        checks["ledger"] = f"unavailable: {exc}"
    try:
        checks["counters"] = "ok" if svc.meter.counters.ping() else "unavailable"
    except Exception as exc:
        checks["counters"] = f"unavailable: {exc}"
    ready = all(value == "ok" for value in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
    jobs = getattr(request.app.state, "jobs", None)
    if jobs is not None:  # information only: a failing background job does not take the service out of rotation
        body["jobs"] = {status.name: status.to_dict() for status in jobs.status()}
    return JSONResponse(body, status_code=200 if ready else 503)
