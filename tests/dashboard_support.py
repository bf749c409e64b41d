"""Shared set-up for the dashboard tests: a real service (uvicorn in a thread) on a seeded SQLite ledger.

(No tests here.) :func:`seed_events` builds deterministic history relative to ``now``: three teams, five
users on three tiers, four providers and seven models over the last 40 days, with failures, cache hits,
limits, a reservation in flight and a fired alert. :func:`running_service` serves the app on a free port.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page
from pydantic import SecretStr

from spendgate import Meter, Settings
from spendgate.alerts import run_alerting
from spendgate.analytics import refresh
from spendgate.budgets import Scope
from spendgate.server import IdentityStore, Team, User, create_app

__all__ = [
    "CHROMIUM",
    "DAYS",
    "LIMITS",
    "MASTER",
    "MODELS",
    "USERS",
    "Service",
    "Tab",
    "chromium_or_skip",
    "open_tab",
    "running_service",
    "seed_events",
]

MASTER = "dashboard-master-key-0123456789"
CHROMIUM = "/usr/bin/chromium"
DAYS = 40
MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("google", "gemini-2.5-flash"),
    ("google", "gemini-2.0-flash"),
    ("mistral", "mistral-large-latest"),
)
FEATURES = ("search", "chat", "summaries")
#: user id -> (team, tier, how many calls an hour they make, relative to the others)
USERS = {
    "ann": ("ml", "premium", 3),
    "bob": ("web", "free", 1),
    "cid": ("data", "enterprise", 2),
    "dee": ("ml", "enterprise", 2),
    "eve": ("web", "premium", 1),
}


def seed_events(now: datetime, days: int = DAYS) -> list[dict[str, Any]]:
    """Deterministic usage events over the ``days`` before ``now`` (a few per hour, busier in office hours)."""
    events: list[dict[str, Any]] = []
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    hour = 0
    while (at := start + timedelta(hours=hour)) < now - timedelta(minutes=2):
        busy = 3 if 8 <= at.hour < 18 and at.weekday() < 5 else 1
        n = 0
        for user, (team, _, weight) in USERS.items():
            for k in range(weight * busy if (hour + len(user)) % 3 else weight):
                i = len(events)
                provider, model = MODELS[(i * 7 + hour + k) % len(MODELS)]
                events.append(
                    {
                        "event_id": f"seed-{i}",
                        "timestamp": at + timedelta(minutes=(n * 7 + k * 3) % 60, seconds=i % 60),
                        "provider": provider,
                        "model": model,
                        "user_id": user,
                        "team_id": team,
                        "session_id": f"{user}-s{hour // 24}",
                        "request_type": "batch" if i % 10 == 0 else "chat",
                        "prompt_hash": f"p{i % 50}" if i % 4 == 0 else None,
                        "tags": {"env": "prod" if i % 5 else "staging", "feature": FEATURES[i % 3]},
                        "usage": {
                            "input_tokens": 400 + (i * 37) % 1800,
                            "output_tokens": 50 + (i * 53) % 700,
                            "cache_read_tokens": 300 if i % 6 == 0 else 0,
                        },
                        "latency_ms": 120 + (i * 97) % 2400,
                        "success": i % 41 != 0,
                        "error_kind": None if i % 41 else "upstream_5xx",
                        "cached": i % 29 == 0,
                        "cache_savings": Decimal("0.0042") if i % 29 == 0 else None,
                    }
                )
                n += 1
        hour += 1
    return events


@dataclass
class Service:
    """The running service: its URL, the meter behind it and a key per role."""

    url: str
    meter: Meter
    tokens: dict[str, str]
    alert_id: str

    def get(self, path: str, role: str = "admin", **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        answer = httpx.get(self.url + path, params=params, headers=headers, timeout=30)
        answer.raise_for_status()
        return answer.json()


def _seed_identity(meter: Meter) -> dict[str, str]:
    ids = IdentityStore(meter.store.control, meter.clock, cache_s=0)
    for team in ("ml", "web", "data"):
        ids.put_team(Team(team_id=team, name=team.upper()), actor="setup", create=True)
    for user, (team, tier, _) in USERS.items():
        ids.put_user(User(user_id=user, email=f"{user}@example.com", tier=tier, team_id=team), actor="setup")
    return {
        "admin": MASTER,
        "viewer": ids.create_key(role="viewer", actor="setup", name="dash-viewer")[1],
        "member": ids.create_key(role="member", user_id="bob", team_id="web", actor="setup", name="bob")[1],
    }


LIMITS = (  # id, scope, period, amount, level
    ("global-month", "global", "month", "500.00", "soft"),
    ("team-ml-month", "team:ml", "month", "120.00", "hard"),
    ("web-openai", "team:web/provider:openai", "month", "40.00", "hard"),
    ("ann-day", "user:ann", "day", "25.00", "hard"),
    ("bob-week", "user:bob", "week", "3.00", "hard"),
)


def _seed_limits(meter: Meter) -> None:
    for limit_id, scope, period, amount, level in LIMITS:
        meter.set_limit(scope=Scope.parse(scope), period=period, amount=Decimal(amount), level=level, id=limit_id)


def _fire_alert(meter: Meter, now: datetime) -> str:
    window = now.strftime("%Y-%m-%d")
    meter.store.control.record_crossing("bob-week", window, "exceeded", now, {"scope": "user:bob"})
    fired = run_alerting(meter.store, None, now + timedelta(seconds=1)).fired
    assert fired, "the seeded budget crossing fired no alert"
    return fired[0].id


@contextmanager
def running_service(tmp_path: Path) -> Iterator[Service]:
    """Seed a fresh SQLite ledger and serve the app on 127.0.0.1 (a free port) until the block ends."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'dash.db'}", master_key=SecretStr(MASTER), hold_ttl_s=3600)
    meter = Meter(settings=settings)
    now = datetime.now(UTC)
    tokens = _seed_identity(meter)
    meter.record_many(seed_events(now))
    refresh(meter.store)
    _seed_limits(meter)
    meter.authorize(provider="openai", model="gpt-4o", user_id="ann", team_id="ml", tier="premium",
                    input_tokens=2000, max_tokens=4000)  # fmt: skip  # a reservation in flight
    alert_id = _fire_alert(meter, now)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings, meter=meter), log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="dashboard-uvicorn")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard test service did not start")
        time.sleep(0.02)
    try:
        yield Service(url=f"http://127.0.0.1:{port}", meter=meter, tokens=tokens, alert_id=alert_id)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        meter.close()


def chromium_or_skip() -> str:
    """The path of Debian's Chromium; skips without it, except under CI=true, where it is a failure."""
    path = shutil.which(CHROMIUM) or shutil.which("chromium")
    if path is None:
        message = f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: a missing browser is a failure)")
        pytest.skip(message)
    return path


_GO = """(target) => {
  if (location.hash === "#" + target) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = target;
}"""


@dataclass
class Tab:
    """A signed-in browser page and the console errors it logged (CSP violations, script errors)."""

    page: Page
    errors: list[str]

    def renders(self) -> int:
        return int(self.page.locator("body").get_attribute("data-renders") or 0)

    def rendered(self, before: int, page: str | None = None) -> None:
        """Wait until a render after ``before`` finished (of ``page``, if given)."""
        selector = f"body[data-state=ready]:not([data-renders='{before}'])"
        if page is not None:
            selector += f"[data-page={page}]"
        self.page.locator(selector).wait_for(state="attached", timeout=60_000)

    def go(self, hash_: str, page: str) -> None:
        """Navigate to ``#<hash_>`` (rendering again when already there) and wait for that page to render."""
        before = self.renders()
        self.page.evaluate(_GO, hash_)
        self.rendered(before, page)

    def window(self) -> dict[str, str]:
        """The ``[since, until)`` the last render covered."""
        body = self.page.locator("body")
        return {"since": body.get_attribute("data-since") or "", "until": body.get_attribute("data-until") or ""}

    def kpi(self, key: str) -> str:
        return self.page.locator(f"[data-kpi={key}] .value").inner_text()


def open_tab(browser: Browser, service: Service, role: str, hash_: str = "/overview?range=7d") -> Tab:
    """A fresh browser context signed in with ``role``'s key, on ``hash_`` once it has rendered."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{service.url}/#{hash_}")
    page.locator("#signin-key").fill(service.tokens[role])
    page.locator("#signin-form button[type=submit]").click()
    page.locator("body[data-state=ready]").wait_for(state="attached", timeout=60_000)
    return Tab(page=page, errors=errors)
