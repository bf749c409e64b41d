"""The web dashboard: ``GET /`` serves its single page, ``/dashboard/...`` its scripts, styles and vendor files.

The page is a static shell (plain HTML, CSS and JavaScript modules, no build step) shipped inside the
package, so it works offline and ``pip install`` needs no Node. It needs no key to load; every figure it
shows comes from the admin API, called with the API key the user signs in with. Vendored libraries
(Chart.js, version in the file name) are cached for a year; the app's own files are revalidated on every
load (``no-cache`` with an ETag), so an upgrade shows at once. See docs/dashboard.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["PREFIX", "STATIC", "install", "router"]

STATIC = Path(__file__).parent / "static"
PREFIX = "/dashboard"
_VENDOR_CACHE = "public, max-age=31536000, immutable"
_APP_CACHE = "no-cache"
#: Scripts and styles from this origin only; data only from this origin's API; no frames, no plugins.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

router = APIRouter(include_in_schema=False)


class _Assets(StaticFiles):
    """Static files with the dashboard's cache headers (vendor files are immutable: versioned names)."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        vendor = Path(full_path).parent.name == "vendor"
        response.headers["Cache-Control"] = _VENDOR_CACHE if vendor else _APP_CACHE
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@router.get("/")
def dashboard_page() -> FileResponse:
    """The dashboard's page (the same for everyone: signing in happens in the page)."""
    return FileResponse(
        STATIC / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Cache-Control": _APP_CACHE,
            "Content-Security-Policy": _CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def install(app: FastAPI) -> None:
    """Serve the dashboard from ``app``: the page at ``/`` and its files under :data:`PREFIX`."""
    app.include_router(router)
    app.mount(PREFIX, _Assets(directory=STATIC), name="dashboard")
