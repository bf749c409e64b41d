"""`GET /metrics`: Prometheus text for request counters, jobs, the journal backlog and budgets; access rules."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from spendgate import Meter, Settings, Usage
from spendgate.ledger import UsageEvent
from spendgate.server import IdentityStore, create_app
from spendgate.server._jobs import Scheduler
from spendgate.server._metrics import CONTENT_TYPE, MetricsState, RequestMetrics
from spendgate.testing import FakeClock
from test_admin_support import MASTER, T0

_SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?)$')


@contextmanager
def running(tmp_path: Path, **options: Any) -> Iterator[tuple[TestClient, Meter, dict[str, str], MetricsState]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", master_key=SecretStr(MASTER), **options)
    clock = FakeClock(T0)
    with Meter(settings=settings, clock=clock) as meter:
        ids = IdentityStore(meter.store.control, clock, cache_s=0)
        tokens = {role: ids.create_key(role=role, user_id="ann" if role == "member" else None, actor="t")[1]
                  for role in ("admin", "viewer", "member")}  # fmt: skip
        app = create_app(settings, meter=meter)
        scheduler = Scheduler(clock)
        scheduler.add("ok", 60, lambda now: None, first_run=T0)
        scheduler.add("broken", 60, lambda now: 1 / 0, first_run=T0)
        scheduler.run_pending(T0)
        with TestClient(app) as client:
            assert app.state.jobs.status()  # the app started its own scheduler, with the standard jobs
            app.state.jobs = scheduler  # these tests read a scheduler whose jobs have run
            state = app.state.metrics = MetricsState()
            yield client, meter, tokens, state


def _samples(text: str) -> dict[str, str]:
    """``name{labels}`` -> value, checking every line is valid exposition format."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# "):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        out[line.rsplit(" ", 1)[0]] = match.group(3)
    return out


def _key(name: str, **labels: str) -> str:
    """A sample's name and labels as the exposition writes them (values already escaped)."""
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


GPT = {"provider": "openai", "model": "gpt-4o"}
ML = {"limit": "ml-daily", "scope": "team:ml", "metric": "cost"}


def _event(**fields: Any) -> UsageEvent:
    values: dict[str, Any] = {"event_id": f"e{id(fields)}", "timestamp": T0, "provider": "openai", "model": "gpt-4o",
                              "usage": Usage(input_tokens=100, output_tokens=20), "cost": Decimal("0.1")}  # fmt: skip
    return UsageEvent(**{**values, **fields})


def test_request_counters_are_exact_and_labelled() -> None:
    metrics = RequestMetrics()
    metrics.observe_event(_event(cost=Decimal("0.1")))
    metrics.observe_event(_event(cost=Decimal("0.2"), action="downgrade"))
    metrics.observe_event(_event(cost=None, success=False, model='we"ird\nname'))
    metrics.observe_decision("deny", "openai", "gpt-4o")
    text = "\n".join(line for family in metrics.families() for line in family.lines())
    samples = _samples(text)
    assert samples[_key("spendgate_requests_total", **GPT, action="allow", outcome="success")] == "1"
    assert samples[_key("spendgate_requests_total", **GPT, action="downgrade", outcome="success")] == "1"
    weird = _key(
        "spendgate_requests_total", provider="openai", model='we\\"ird\\nname', action="allow", outcome="failure"
    )
    assert samples[weird] == "1"
    assert samples[_key("spendgate_cost_total", **GPT, currency="USD")] == "0.3"  # exact: not 0.30000000000000004
    assert samples[_key("spendgate_tokens_total", **GPT, kind="input")] == "200"
    assert samples[_key("spendgate_decisions_total", **GPT, action="deny")] == "1"
    assert "# TYPE spendgate_requests_total counter" in text


def test_metrics_endpoint_shows_jobs_journal_and_budgets(tmp_path: Path) -> None:
    with running(tmp_path) as (client, meter, tokens, state):
        meter.set_limit(scope="team", scope_id="ml", amount="10", id="ml-daily")
        meter.set_limit(scope="global", amount="100", id="all-daily")
        auth = meter.authorize(provider="openai", model="gpt-4o", team_id="ml", text="hello", max_tokens=10)
        recorded = meter.settle(auth, Usage(input_tokens=1000, output_tokens=100))
        assert recorded.cost is not None
        state.requests.observe_event(_event())
        response = client.get("/metrics", headers={"Authorization": f"Bearer {tokens['viewer']}"})
        assert response.status_code == 200
        assert response.headers["content-type"] == CONTENT_TYPE
        samples = _samples(response.text)
        spent = recorded.cost.total
        assert Decimal(samples[_key("spendgate_budget_used", **ML)]) == spent
        assert Decimal(samples[_key("spendgate_budget_utilization", **ML)]) == spent / 10
        assert samples['spendgate_budget_amount{limit="all-daily",scope="global",metric="cost"}'] == "100"
        assert samples['spendgate_job_last_run_ok{job="broken"}'] == "0"
        assert samples['spendgate_job_failures_total{job="broken"}'] == "1"
        assert samples['spendgate_job_last_run_ok{job="ok"}'] == "1"
        assert float(samples['spendgate_job_last_success_timestamp_seconds{job="ok"}']) == T0.timestamp()
        assert samples["spendgate_journal_pending_events"] == "0"
        assert samples[_key("spendgate_requests_total", **GPT, action="allow", outcome="success")] == "1"
        # Budgets are cached a few seconds of the meter's clock.
        meter.settle(meter.authorize(provider="openai", model="gpt-4o", team_id="ml", text="hi", max_tokens=10),
                     Usage(input_tokens=1000))  # fmt: skip
        again = _samples(client.get("/metrics", headers={"Authorization": f"Bearer {tokens['admin']}"}).text)
        assert Decimal(again[_key("spendgate_budget_used", **ML)]) == spent
        meter.clock.advance(timedelta(seconds=6))  # type: ignore[attr-defined]
        later = _samples(client.get("/metrics", headers={"Authorization": f"Bearer {tokens['admin']}"}).text)
        assert Decimal(later[_key("spendgate_budget_used", **ML)]) > spent


@pytest.mark.parametrize(
    ("options", "role", "status"),
    [
        ({}, None, 401),
        ({}, "member", 403),
        ({}, "admin", 200),
        ({"metrics_public": True}, None, 200),
        ({"metrics_enabled": False}, "admin", 404),
    ],
)
def test_access(tmp_path: Path, options: dict[str, Any], role: str | None, status: int) -> None:
    with running(tmp_path, **options) as (client, _meter, tokens, _state):
        headers = {} if role is None else {"Authorization": f"Bearer {tokens[role]}"}
        response = client.get("/metrics", headers=headers)
        assert response.status_code == status, response.text
        if status != 200:
            assert "error" in response.json()


def test_an_app_without_metrics_state_still_answers(tmp_path: Path) -> None:
    with running(tmp_path, metrics_public=True) as (client, _meter, _tokens, _state):
        del client.app.state.metrics  # type: ignore[attr-defined]
        del client.app.state.jobs  # type: ignore[attr-defined]
        samples = _samples(client.get("/metrics").text)
        assert samples["spendgate_journal_pending_events"] == "0"
        assert not any(name.startswith("spendgate_job_") for name in samples)


def test_the_meter_feeds_the_request_counters_through_its_hooks(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'h.db'}", master_key=SecretStr(MASTER), metrics_public=True
    )
    with Meter(settings=settings, clock=FakeClock(T0)) as meter:
        meter.set_limit(scope="user", scope_id="ann", amount="0.000001", id="tiny")
        app = create_app(settings, meter=meter)
        with TestClient(app) as client:
            auth = meter.authorize(provider="openai", model="gpt-4o", text="hello", max_tokens=10)
            meter.settle(auth, Usage(input_tokens=100, output_tokens=20))
            meter.settle(auth, Usage(input_tokens=100, output_tokens=20))  # a duplicate: counted once
            meter.record(provider="openai", model="gpt-4o", usage=Usage(input_tokens=5), success=False, event_id="r1")
            meter.record(provider="openai", model="gpt-4o", usage=Usage(input_tokens=5), success=False, event_id="r1")
            denied = meter.authorize(user_id="ann", provider="openai", model="gpt-4o", text="hi", max_tokens=100)
            assert not denied.allowed
            samples = _samples(client.get("/metrics").text)
        assert meter.on_event is None and meter.on_decision is None  # the app let go of the meter it was given
    assert samples[_key("spendgate_requests_total", **GPT, action="allow", outcome="success")] == "1"
    assert samples[_key("spendgate_requests_total", **GPT, action="allow", outcome="failure")] == "1"
    assert samples[_key("spendgate_tokens_total", **GPT, kind="input")] == "105"
    assert samples[_key("spendgate_decisions_total", **GPT, action="allow")] == "1"
    assert samples[_key("spendgate_decisions_total", **GPT, action=denied.action.value)] == "1"
