"""How fast the dashboard renders on the demo's data, in a real browser (Debian's Chromium via Playwright).

Seeds ``--days`` of demo history (``spendgate.demo.seed_history``) into a temporary SQLite ledger, serves
the app with uvicorn on a free port, signs in with the master key and opens each page for each range.
The page itself measures a render (``data-render-ms``: from the navigation to the last chart drawn, all
API calls included). Prints JSON.

    .venv/bin/python bench/dashboard.py --days 30 --runs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Page, sync_playwright
from pydantic import SecretStr

from spendgate.demo import seed_history
from spendgate.server import create_app
from spendgate.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from gateway import free_port

MASTER = "bench-dashboard-master-key-0123"
PAGES = ("overview", "cost", "users", "budgets")
RANGES = ("24h", "7d", "30d", "90d")
_GO = """(target) => {
  if (location.hash === "#" + target) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = target;
}"""


def _render(page: Page, hash_: str) -> float:
    before = page.locator("body").get_attribute("data-renders") or "0"
    page.evaluate(_GO, hash_)
    page.locator(f"body[data-state=ready]:not([data-renders='{before}'])").wait_for(state="attached", timeout=60_000)
    return float(page.locator("body").get_attribute("data-render-ms") or "nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        report = seed_history(url, days=args.days)
        settings = Settings(database_url=url, master_key=SecretStr(MASTER), retention_interval_s=0)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        results: dict[str, Any] = {}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium)
                page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
                page.goto(f"http://127.0.0.1:{port}/#/overview?range=7d")
                page.locator("#signin-key").fill(MASTER)
                page.locator("#signin-form button[type=submit]").click()
                page.locator("body[data-state=ready]").wait_for(state="attached", timeout=60_000)
                for name in PAGES:
                    for window in RANGES:
                        times = [_render(page, f"/{name}?range={window}") for _ in range(args.runs)]
                        results[f"{name}_{window}"] = {"median_ms": statistics.median(times), "max_ms": max(times)}
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    medians = [r["median_ms"] for r in results.values()]
    print(json.dumps({
        "events": report.events, "days": args.days, "runs": args.runs,
        "overview_worst_median_ms": max(results[f"overview_{w}"]["median_ms"] for w in RANGES),
        "all_pages_median_ms": statistics.median(medians), "slowest_ms": max(r["max_ms"] for r in results.values()),
        "pages": results,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
