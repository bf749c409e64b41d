"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright) against the real service.

One service (uvicorn in a thread, seeded SQLite ledger) and one browser for the whole module (the only browser
test module), closed when it ends rather than kept open through the rest of the suite. Every run writes a
full-page screenshot of each page to ``docs/screenshots/<page>.png`` (viewport 1280x800).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from dashboard_support import Service, Tab, chromium_or_skip, open_tab, running_service
from spendgate.alerts import run_alerting

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
PAGES = ("overview", "cost", "users", "budgets", "alerts", "recommendations")

#: Draws every chart of the page: how many non-empty values it holds and how many pixels it painted.
CHARTS_JS = """() => [...document.querySelectorAll("main canvas")].map((canvas) => {
  const chart = window.Chart.getChart(canvas);
  const values = chart ? chart.data.datasets.flatMap((d) => d.data).filter((v) => v !== null && v !== 0).length : 0;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted += 1;
  return { card: canvas.closest("section").id, values, painted };
})"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("dashboard")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_or_skip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def admin(browser: Browser, service: Service) -> Iterator[Tab]:
    tab = open_tab(browser, service, "admin")
    yield tab
    tab.page.context.close()
    assert tab.errors == [], "the page logged errors"


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _money(text: str) -> str:
    """``"USD 1,234.5"`` -> ``"1234.5"`` (the exact string, as the API sent it)."""
    currency, amount = text.split(" ", 1)
    assert currency == "USD"
    return amount.replace(",", "")


def test_sign_in_refuses_a_bad_key_and_sign_out_forgets_the_key(browser: Browser, service: Service) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(service.url + "/")
    page.locator("body[data-state=signed-out]").wait_for(state="attached")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "signin.png"), full_page=True)
    page.locator("#signin-key").fill("sk-sg-not-a-real-key")
    page.locator("#signin-form button[type=submit]").click()
    error = page.locator("#signin-error")
    error.wait_for()
    assert "not accepted" in error.inner_text()
    assert page.locator("#shell").is_hidden()
    page.locator("#signin-key").fill(service.tokens["viewer"])
    page.locator("#signin-form button[type=submit]").click()
    page.locator("body[data-state=ready]").wait_for(state="attached")
    assert page.locator("#who-role").inner_text().lower() == "viewer"
    assert page.evaluate("() => sessionStorage.getItem('spendgate.key')") == service.tokens["viewer"]
    page.goto(f"{service.url}/#/alerts?range=30d")  # the key survives a reload of the tab
    page.reload()
    page.locator("body[data-state=ready][data-page=alerts]").wait_for(state="attached")
    assert page.locator("tr[data-alert]").count() >= 1
    assert page.locator("[data-ack]").count() == 0  # viewers read alerts; only admins acknowledge
    page.locator("#signout").click()
    page.locator("body[data-state=signed-out]").wait_for(state="attached")
    assert page.evaluate("() => sessionStorage.getItem('spendgate.key')") is None
    assert page.locator("#signin").is_visible()
    context.close()


def test_every_page_renders_its_charts_and_tables_with_data(admin: Tab, service: Service) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    charted = {}
    for name in PAGES:
        admin.go(f"/{name}?range=30d", name)
        page = admin.page
        assert page.locator("main .error").count() == 0, page.locator("main .error").all_inner_texts()
        assert page.locator("main .loading").count() == 0
        charts: list[dict[str, Any]] = page.evaluate(CHARTS_JS)
        for chart in charts:
            assert chart["values"] > 0 and chart["painted"] > 500, chart
        charted[name] = {chart["card"] for chart in charts}
        for body in page.locator("main table tbody").all():
            assert body.locator("tr").count() > 0
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert charted["overview"] == {"chart-requests", "chart-cost", "chart-tokens", "chart-latency", "chart-providers",
                                   "chart-models"}  # fmt: skip
    assert {"chart-trend", "chart-projection", "breakdown-provider", "breakdown-model", "breakdown-team",
            "breakdown-tag", "efficiency", "cache-savings"} <= charted["cost"]  # fmt: skip
    assert "chart-popular" in charted["users"]
    page = admin.page
    admin.go("/users?range=30d", "users")
    assert page.locator("#heatmap .cell").count() == 7 * 24
    assert page.locator("#top-users tbody tr").count() == 5
    assert page.locator("#user-recent tbody tr").count() > 0
    admin.go("/budgets?range=30d", "budgets")
    assert page.locator("#limits tbody tr").count() == 5
    assert page.locator("#reservations tbody tr").count() == 3  # the reservation in flight holds against 3 limits
    assert page.locator("#tiers tbody tr").count() == 3
    admin.go("/alerts?range=30d", "alerts")
    assert page.locator("#deliveries tbody tr").count() >= 1
    admin.go("/recommendations?range=30d", "recommendations")
    assert page.locator("article.rec").count() >= 1


def test_the_figures_equal_the_apis_and_change_with_the_range(admin: Tab, service: Service) -> None:
    seen = {}
    for range_ in ("7d", "30d", "24h"):
        admin.go(f"/overview?range={range_}", "overview")
        window = admin.window()
        want = service.get("/api/v1/analytics/summary", **window)
        ledger = service.get("/api/v1/usage/summary", **window)
        shown = _number(admin.kpi("requests"))
        assert shown == want["totals"]["requests"] == ledger["requests"] > 0
        assert _money(admin.kpi("cost")) == want["totals"]["cost"]
        assert Decimal(_money(admin.kpi("cost"))) == Decimal(ledger["cost"])
        assert _number(admin.kpi("tokens")) == want["totals"]["tokens"]
        assert _number(admin.kpi("users")) == want["unique_users"]
        seen[range_] = shown
    assert seen["24h"] < seen["7d"] < seen["30d"]
    # a filter narrows the figures the same way the API does
    page = admin.page
    before = admin.renders()
    page.locator("#filter-provider").select_option("openai")
    admin.rendered(before, "overview")
    assert "provider=openai" in page.url
    narrowed = service.get("/api/v1/analytics/summary", provider="openai", **admin.window())
    assert _number(admin.kpi("requests")) == narrowed["totals"]["requests"] < seen["24h"]
    # a custom range (UTC) from the toolbar
    before = admin.renders()
    page.locator("[data-range=custom]").click()
    until = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=3)
    since = until - timedelta(days=2)
    page.locator("#custom-since").fill(since.strftime("%Y-%m-%dT%H:%M"))
    page.locator("#custom-until").fill(until.strftime("%Y-%m-%dT%H:%M"))
    page.locator("#custom-range button[type=submit]").click()
    admin.rendered(before, "overview")
    assert admin.window() == {"since": since.isoformat().replace("+00:00", ".000Z"),
                              "until": until.isoformat().replace("+00:00", ".000Z")}  # fmt: skip
    custom = service.get("/api/v1/analytics/summary", provider="openai", **admin.window())
    assert _number(admin.kpi("requests")) == custom["totals"]["requests"] > 0
    # the cost page: month to date and the month-end projection are the forecast's (which moves with the clock)
    admin.go("/cost?range=7d", "cost")
    forecast = service.get("/api/v1/usage/forecast")
    assert _money(admin.kpi("mtd")) == forecast["month_to_date_cost"]
    assert abs(Decimal(_money(admin.kpi("projected"))) - Decimal(forecast["projected_cost"])) < Decimal("0.01")
    assert _money(admin.kpi("cost")) == service.get("/api/v1/analytics/summary", **admin.window())["totals"]["cost"]


def test_the_overview_asks_for_each_figure_once(admin: Tab) -> None:
    """No request per row: the overview's API calls are a fixed handful whatever the data, fired together."""
    calls: list[str] = []
    admin.page.on("request", lambda request: calls.append(request.url) if "/api/v1/" in request.url else None)
    admin.go("/overview?range=90d", "overview")
    assert 8 <= len(calls) <= 13, calls
    assert sum("/analytics/timeseries" in url for url in calls) == 4
    assert int(admin.page.locator("body").get_attribute("data-render-ms") or 0) > 0


def test_acknowledging_an_alert_updates_the_page_and_the_api(admin: Tab, service: Service) -> None:
    now = datetime.now(UTC)
    service.meter.store.control.record_crossing("ann-day", now.strftime("%Y-%m-%d"), "exceeded", now, {})
    [fired] = run_alerting(service.meter.store, None, now + timedelta(seconds=2)).fired
    admin.go("/alerts?range=24h", "alerts")
    page = admin.page
    row = page.locator(f"tr[data-alert='{fired.id}']")
    assert row.locator("[data-status]").inner_text().lower() == "firing"
    before = admin.renders()
    row.locator("[data-ack]").click()
    admin.rendered(before, "alerts")
    row = page.locator(f"tr[data-alert='{fired.id}']")
    assert row.locator("[data-status]").inner_text().lower() == "acknowledged"
    assert row.locator("[data-ack]").count() == 0
    assert "key:master" in row.inner_text()
    stored = service.get(f"/api/v1/alerts/{fired.id}")
    assert stored["status"] == "acknowledged" and stored["acknowledged_by"] == "key:master"
    assert _number(admin.kpi("acknowledged")) >= 1
    # selecting the alert shows its own deliveries
    before = admin.renders()
    row.click()
    admin.rendered(before, "alerts")
    deliveries = service.get(f"/api/v1/alerts/{fired.id}/deliveries")["deliveries"]
    assert page.locator("#deliveries tbody tr").count() == len(deliveries) > 0


def test_a_member_sees_only_their_own_usage(browser: Browser, service: Service) -> None:
    tab = open_tab(browser, service, "member", "/overview?range=30d")
    page = tab.page
    assert page.locator("#who-role").inner_text().lower() == "member"
    assert page.locator("#nav a[data-page=alerts]").count() == 0
    window = tab.window()
    everyone = service.get("/api/v1/analytics/summary", **window)["totals"]["requests"]
    bob = service.get("/api/v1/analytics/summary", user_id="bob", **window)
    assert _number(tab.kpi("requests")) == bob["totals"]["requests"] < everyone
    assert _money(tab.kpi("cost")) == bob["totals"]["cost"]
    assert _number(tab.kpi("users")) == 1
    tab.go("/users?range=30d&user=ann", "users")
    assert page.locator("#top-users tbody tr").all_inner_texts()[0].startswith("bob")
    assert page.locator("#top-users tbody tr").count() == 1
    assert page.locator("#user-detail h2").inner_text().startswith("User bob")
    assert not re.search(r"\bann\b", page.locator("main").inner_text())
    tab.go("/alerts?range=30d", "overview")  # not a member's page: the overview instead
    as_bob = {"Authorization": f"Bearer {service.tokens['member']}"}
    assert httpx.get(f"{service.url}/api/v1/users/ann/usage", headers=as_bob).status_code == 403
    page.context.close()
    assert tab.errors == [], "the page logged errors"


def test_the_users_table_sorts_and_opens_a_user(admin: Tab, service: Service) -> None:
    admin.go("/users?range=30d", "users")
    page = admin.page
    requests_column = page.locator("#top-users tbody td:nth-child(4)")
    page.locator("#top-users th[data-sort=requests]").click()
    requests = [_number(text) for text in requests_column.all_inner_texts()]
    assert requests == sorted(requests, reverse=True) and len(set(requests)) > 1
    page.locator("#top-users th[data-sort=requests]").click()
    assert [_number(text) for text in requests_column.all_inner_texts()] == sorted(requests)
    before = admin.renders()
    page.locator("#top-users tr[data-user=cid]").click()
    admin.rendered(before, "users")
    assert page.locator("#user-detail h2").inner_text().startswith("User cid")
    usage = service.get("/api/v1/users/cid/usage", **admin.window())
    assert _number(admin.kpi("user-requests")) == usage["summary"]["requests"]
    assert _money(admin.kpi("user-cost")) == usage["summary"]["cost"]
    assert page.locator("#user-limits tbody tr").count() >= 1


def test_the_export_buttons_download_what_the_export_api_gives(admin: Tab, service: Service) -> None:
    admin.go("/overview?range=24h&team_id=web", "overview")
    window = admin.window()
    headers = {"Authorization": f"Bearer {service.tokens['admin']}"}
    for fmt in ("csv", "json"):
        with admin.page.expect_download() as info:
            admin.page.locator(f"[data-export={fmt}]").click()
        download = info.value
        assert download.suggested_filename == f"spendgate-usage-{window['since'][:10]}-{window['until'][:10]}.{fmt}"
        got = Path(download.path()).read_bytes()
        want = httpx.get(f"{service.url}/api/v1/export", params={"format": fmt, "team_id": "web", **window},
                         headers=headers, timeout=30)  # fmt: skip
        assert got == want.content and len(got) > 200


def test_live_refresh_redraws_every_minute_unless_turned_off(browser: Browser, service: Service) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.clock.install()
    page.goto(f"{service.url}/#/overview?range=24h")
    page.locator("#signin-key").fill(service.tokens["viewer"])
    page.locator("#signin-form button[type=submit]").click()
    tab = Tab(page=page, errors=[])
    page.locator("body[data-state=ready]").wait_for(state="attached")
    first = tab.window()["until"]
    before = tab.renders()
    page.clock.run_for(61_000)
    tab.rendered(before, "overview")
    assert tab.window()["until"] > first  # the window moved with the clock
    page.locator("#live").uncheck()
    quiet = tab.renders()
    page.clock.run_for(125_000)
    page.wait_for_timeout(300)
    assert tab.renders() == quiet
    context.close()
