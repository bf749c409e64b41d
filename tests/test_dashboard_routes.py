"""The dashboard's HTTP side without a browser: the page and its files, cache headers, and ``GET /api/v1/me``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from spendgate.server._dashboard import STATIC
from test_admin_support import Env, open_env

VENDOR = "/dashboard/vendor/chart-4.6.1.umd.js"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with open_env(tmp_path) as running:
        yield running


def test_the_page_needs_no_key_and_forbids_foreign_scripts(env: Env) -> None:
    page = env.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
    assert f'src="{VENDOR}"' in page.text and 'src="/dashboard/js/app.js"' in page.text
    assert "/" not in {getattr(route, "path", None) for route in env.client.get("/openapi.json").json()["paths"]}


def test_vendor_files_are_cached_for_a_year_and_app_files_revalidated(env: Env) -> None:
    vendor = env.client.get(VENDOR)
    assert vendor.status_code == 200 and "javascript" in vendor.headers["content-type"]
    assert vendor.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert vendor.text.startswith("/*!\n * Chart.js v4.6.1")
    script = env.client.get("/dashboard/js/app.js")
    assert script.status_code == 200 and script.headers["cache-control"] == "no-cache"
    again = env.client.get("/dashboard/js/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    assert env.client.get("/dashboard/app.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/dashboard/nope.js", "/dashboard/../_dashboard.py", "/dashboard/%2e%2e/_app.py"])
def test_nothing_outside_the_static_folder_is_served(env: Env, path: str) -> None:
    assert env.client.get(path).status_code == 404


def test_every_file_the_page_and_its_modules_load_is_shipped(env: Env) -> None:
    """Each ``src``/``href`` of the page and each relative import of every module resolves to a served file."""
    wanted = set(re.findall(r'(?:src|href)="(/dashboard/[^"]+)"', env.client.get("/").text))
    for module in STATIC.rglob("*.js"):
        if "vendor" in module.parts:
            continue
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', module.read_text()):
            wanted.add("/dashboard/" + (module.parent / target).resolve().relative_to(STATIC.resolve()).as_posix())
    assert len(wanted) >= 14
    for path in sorted(wanted):
        assert env.client.get(path).status_code == 200, path
    assert (STATIC / "vendor" / "chart-4.6.1.LICENSE.md").read_text().startswith("The MIT License")


def test_me_names_the_callers_role_and_the_tiers_they_may_read(env: Env) -> None:
    anonymous = env.call("GET", "/api/v1/me", None)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
    assert env.client.get("/api/v1/me", headers={"Authorization": "Bearer sk-sg-nope"}).status_code == 401
    admin = env.call("GET", "/api/v1/me", "admin").json()
    assert admin["role"] == "admin" and admin["can_read_all"] and admin["user_id"] is None
    assert [tier["name"] for tier in admin["tiers"]] == ["free", "premium", "enterprise"]
    viewer = env.call("GET", "/api/v1/me", "viewer").json()
    assert viewer["role"] == "viewer" and viewer["can_read_all"] and len(viewer["tiers"]) == 3
    member = env.call("GET", "/api/v1/me", "member").json()
    assert member["role"] == "member" and not member["can_read_all"]
    assert (member["user_id"], member["team_id"]) == ("ann", "ml")
    assert member["key_id"] and member["key_id"] != "master"
    other = env.call("GET", "/api/v1/me", "other").json()
    assert other["user_id"] == "bob" and [tier["name"] for tier in other["tiers"]] == [other["default_tier"]]
