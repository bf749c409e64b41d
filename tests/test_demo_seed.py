"""`seed_history`: the demo's seeded ledger has every story the dashboard tells, exactly and reproducibly.

Two weeks ending on a Wednesday afternoon, seeded once for the module (the CLI end to end is in
``test_demo_cli.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate import Meter, Settings
from spendgate.alerts import AlertStore
from spendgate.analytics import list_anomalies, pending
from spendgate.demo import SeedReport, seed_history
from spendgate.demo._history import generate
from spendgate.ledger import UsageEvent
from spendgate.testing import FakeClock
from spendgate.usage import Usage

NOW = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)  # a Wednesday
DAYS = 14
SEED = 7
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[SeedReport, str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    return seed_history(url, days=DAYS, seed=SEED, now=NOW), url


@pytest.fixture(scope="module")
def report(seeded: tuple[SeedReport, str]) -> SeedReport:
    return seeded[0]


@pytest.fixture(scope="module")
def meter(seeded: tuple[SeedReport, str]) -> Iterator[Meter]:
    with Meter(settings=Settings(database_url=seeded[1]), clock=FakeClock(NOW)) as running:
        yield running


@pytest.fixture(scope="module")
def events(meter: Meter) -> list[UsageEvent]:
    return list(meter.events())


def test_the_ledger_holds_exactly_what_was_seeded(report: SeedReport, meter: Meter) -> None:
    total = meter.summary()
    assert total.requests == report.events > 3_000
    assert total.cost == report.cost > Decimal(50)
    assert total.failures == report.failures > 0
    assert total.cached_requests == report.cache_hits > 0
    assert total.unpriced_requests == 0, "every model is in the price catalog"


def test_the_history_spans_the_days_asked_and_ends_now(report: SeedReport, meter: Meter) -> None:
    start = NOW - DAYS * DAY
    assert (report.since, report.until) == (start, NOW)
    assert meter.summary(until=start).requests == 0
    assert meter.summary(since=NOW).requests == 0
    for day in range(DAYS):
        assert meter.summary(since=start + day * DAY, until=start + (day + 1) * DAY).requests > 20, day
    assert meter.summary(since=NOW - timedelta(hours=1), until=NOW).requests > 0


def test_teams_tiers_providers_and_models(report: SeedReport, meter: Meter) -> None:
    assert set(report.teams) == {"platform", "research", "support", "growth"}
    assert {u.tier for u in report.users} == {"free", "premium", "enterprise"}
    providers = {key for key, _ in meter.report("provider")}
    assert providers == {"openai", "anthropic", "google"}
    models = {key for key, _ in meter.report("model")}
    assert models >= {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-0", "claude-3-5-haiku-latest", "gemini-2.5-flash"}
    by_team = dict(meter.report("team_id"))
    assert set(by_team) == set(report.teams)
    assert all(summary.cost > 0 for summary in by_team.values())
    by_user = dict(meter.report("user_id"))
    assert set(by_user) == {u.user_id for u in report.users}


def test_daily_and_weekly_rhythm_and_growth(events: list[UsageEvent]) -> None:
    platform = [e for e in events if e.team_id == "platform"]  # works on UTC office hours
    per_hour = Counter(e.timestamp.hour for e in platform)
    assert sum(per_hour[h] for h in range(9, 17)) > 5 * sum(per_hour[h] for h in range(0, 8))
    per_day = Counter(e.timestamp.date() for e in platform)
    whole = set(per_day) - {NOW.date(), (NOW - DAYS * DAY).date()}
    weekdays = [per_day[day] for day in whole if day.weekday() < 5]
    weekend = [per_day[day] for day in whole if day.weekday() >= 5]
    assert min(weekdays) > 2 * max(weekend)
    first_week = sum(1 for e in events if e.timestamp < NOW - 7 * DAY)
    assert len(events) - first_week > first_week, "traffic grows"


def test_tags_sessions_request_types_failures_and_cache_hits(events: list[UsageEvent]) -> None:
    features = Counter(e.tags.get("feature") for e in events)
    assert set(features) >= {"chat-assistant", "code-review", "support-bot", "agent", "nightly-report"}
    assert None not in features
    assert len({e.session_id for e in events if e.session_id}) > 50
    assert {e.request_type for e in events} >= {"chat", "messages", "report", "eval"}
    kinds = Counter(e.error_kind for e in events if not e.success)
    assert len(kinds) >= 3 and None not in kinds
    hits = [e for e in events if e.cached]
    assert hits and all(e.cost == 0 and e.cache_savings and e.cache_savings > 0 for e in hits)
    assert sum(1 for e in events if e.usage.cache_read_tokens) > 0, "prompt caching on Anthropic calls"


def test_budget_breaches_deny_warn_and_alert(report: SeedReport, meter: Meter, events: list[UsageEvent]) -> None:
    assert report.decisions["deny"] >= 1
    assert report.decisions["warn"] >= 1
    assert report.decisions["throttle"] >= 1
    assert any(e.action == "warn" and e.user_id == "sam" for e in events), "a WARN decision is on the event"
    crossings = {(c.limit_id, c.threshold) for c in meter.threshold_crossings()}
    assert ("team:support|cost|month|UTC", "0.95") in crossings
    assert ("user:sam|cost|day|UTC|tier:free", "0.5") in crossings
    firing = AlertStore.of(meter.store).list_alerts(status=("firing",))
    budget = {a.scope for a in firing if a.rule == "budget-threshold"}
    assert any("team:support|cost|month|UTC" in scope for scope in budget), budget
    # after the refusal an admin topped the team budget up
    assert [g.limit_id for g in meter.grants()] == ["team:support|cost|month|UTC"]
    (support,) = [s for s in meter.budget_status(team_id="support") if s.limit.id == "team:support|cost|month|UTC"]
    assert support.amount > support.limit.amount
    assert Decimal("0.7") < support.utilization < 1
    assert len(report.limits) >= 6 and meter.rate_limits()


def test_the_runaway_job_is_the_anomaly_the_detector_finds(report: SeedReport, meter: Meter) -> None:
    spike = report.spike
    assert spike is not None and spike.user_id == "dana"
    assert spike.start.weekday() in (1, 2, 3, 4) and NOW - 7 * DAY < spike.start < NOW - DAY
    found = list_anomalies(meter.store.control, metric="cost", scope="user:dana")
    hours = [spike.start + timedelta(hours=h) for h in range(spike.hours)]
    assert [a.hour for a in found] == hours
    assert all(a.ratio is None or a.ratio > 10 for a in found)
    users = {a.scope for a in list_anomalies(meter.store.control) if a.scope.startswith("user:")}
    assert users == {"user:dana"}, "no other user's hours look anomalous"
    cost_alerts = AlertStore.of(meter.store).list_alerts(rule="cost-anomaly")
    assert "user:dana" in {a.scope for a in cost_alerts}
    assert set(report.anomalies) >= {a.id for a in found}


def test_everything_shows_at_once(report: SeedReport, meter: Meter) -> None:
    assert pending(meter.store).items == 0, "the analytics refresh ran"
    assert report.recommendations, "the optimizer has something to say"
    assert report.alerts


def test_the_same_seed_gives_the_same_history(report: SeedReport, meter: Meter, tmp_path: Path) -> None:
    again = seed_history(f"sqlite:///{tmp_path / 'again.db'}", days=DAYS, seed=SEED, now=NOW)
    assert (again.events, again.cost, again.failures, again.cache_hits) == (
        report.events, report.cost, report.failures, report.cache_hits,
    )  # fmt: skip
    assert again.decisions == report.decisions
    assert again.anomalies == report.anomalies
    with Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / 'again.db'}")) as other:
        assert [(k, s.cost) for k, s in other.report("user_id")] == [(k, s.cost) for k, s in meter.report("user_id")]


def test_another_seed_gives_another_history(tmp_path: Path) -> None:
    one = seed_history(f"sqlite:///{tmp_path / 'one.db'}", days=2, seed=1, now=NOW)
    two = seed_history(f"sqlite:///{tmp_path / 'two.db'}", days=2, seed=2, now=NOW)
    assert one.cost != two.cost
    assert one.spike is None, "two days are too few for a baseline"


def test_a_database_is_seeded_once(seeded: tuple[SeedReport, str]) -> None:
    with pytest.raises(ValueError, match="already holds a demo history"):
        seed_history(seeded[1], days=1, now=NOW)


@pytest.mark.parametrize("days", [0, 91])
def test_days_out_of_range(tmp_path: Path, days: int) -> None:
    with pytest.raises(ValueError, match="days"):
        seed_history(f"sqlite:///{tmp_path / 'x.db'}", days=days, now=NOW)


def test_generation_is_pure() -> None:
    def price(provider: str, model: str, usage: Usage) -> Decimal:
        return Decimal(usage.input_tokens + usage.output_tokens)

    first = generate(now=NOW, days=2, seed=3, keys={}, price=price)
    assert first == generate(now=NOW, days=2, seed=3, keys={}, price=price)
    assert first != generate(now=NOW, days=2, seed=4, keys={}, price=price)
    assert all(NOW - 2 * DAY <= e["timestamp"] < NOW for e in first)
