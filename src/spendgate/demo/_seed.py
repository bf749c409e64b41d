"""`seed_history`: a ledger with weeks of realistic usage, limits, breaches, an anomaly, alerts.

Steps, all at the given ``now`` (a `FakeClock` drives the seeding meter):

1. teams, users on each tier, one API key per user;
2. the recorded history (``_history.generate``), written with the Meter's batch path;
3. limits sized from that history (a global soft budget, team budgets, a user limit, a token quota, a
   rate limit), then two breaches played through the real governor: a free-tier user warned then
   throttled by the tier's daily budget, and a team whose hard monthly budget crosses 95 % and then
   denies a call (an admin tops it up with a grant afterwards);
4. the analytics refresh, anomaly detection (the history holds one user's runaway job a few days
   ago), alerting rounds and the recommendations, so the dashboard shows everything at once.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_UP, Decimal
from typing import Any

from spendgate.alerts import Alerting, alerting_config_of
from spendgate.analytics import RecommendationReport, RefreshJob, detect_anomalies, recommend, record_anomalies
from spendgate.demo._cast import PERSONAS, TEAMS, persona
from spendgate.demo._episodes import Call, Episode, governed_calls
from spendgate.demo._history import Spike, generate
from spendgate.meter import Meter, Recorded
from spendgate.server import IdentityStore, Team, User
from spendgate.settings import Settings
from spendgate.testing import FakeClock
from spendgate.usage import Usage

__all__ = ["MARKER", "DemoUser", "SeedReport", "is_seeded", "seed_history"]

#: The control object that marks a database as holding a demo history: ``(kind, id)``.
MARKER = ("demo", "history")
_ACTOR = "demo"
_BATCH = 2_000
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
#: The runaway job: a user's agent loop on one model, from 14:00 UTC for four hours, two or more days back.
_SPIKE_USER, _SPIKE_MODEL, _SPIKE_DAYS_AGO = "dana", "anthropic/claude-sonnet-4-0", 2
#: Anomaly detection at seeding looks at the last three days (the runaway job is two days back).
_DETECT_HOURS = 72
#: History long enough for hour-of-week baselines (two weeks).
_WEEKLY_DAYS = 14
#: The UTC hours of the day the breaches happen in.
_EPISODE_HOURS = (timedelta(hours=11), timedelta(hours=19))
#: gpt-4o's list prices per token (input, output), to size the team's calls.
_GPT4O_IN, _GPT4O_OUT = Decimal("0.0000025"), Decimal("0.00001")
#: Who breaches what.
BREACH_USER, BUDGET_TEAM, BUDGET_USER = "sam", "support", "gus"


@dataclass(frozen=True, slots=True)
class DemoUser:
    """A seeded user and the id of the API key its history was recorded with."""

    user_id: str
    name: str
    team_id: str
    tier: str
    key_id: str
    service: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedReport:
    """What :func:`seed_history` made."""

    since: datetime
    until: datetime
    days: int
    seed: int
    teams: tuple[str, ...]
    users: tuple[DemoUser, ...]
    events: int
    """Usage events recorded (history and governed calls)."""
    cost: Decimal
    """The sum of their costs, as priced when recorded."""
    failures: int
    cache_hits: int
    decisions: Mapping[str, int]
    """The governor's decisions in the breach episodes, by action (ALLOW, WARN, THROTTLE, DOWNGRADE, DENY)."""
    limits: tuple[str, ...]
    crossings: int
    """Threshold crossings recorded (thresholds reached, limits exceeded)."""
    spike: Spike | None
    anomalies: tuple[str, ...]
    alerts: tuple[str, ...]
    """Titles of the alerts the alerting round fired."""
    recommendations: tuple[str, ...]
    """Types of the recommendations over the last 30 days."""
    seconds: float = 0.0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def user(self, user_id: str) -> DemoUser:
        for user in self.users:
            if user.user_id == user_id:
                return user
        raise KeyError(user_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (money as exact strings)."""
        return {
            "since": self.since.isoformat(), "until": self.until.isoformat(), "days": self.days, "seed": self.seed,
            "teams": list(self.teams), "users": [u.user_id for u in self.users], "events": self.events,
            "cost": format(self.cost, "f"), "failures": self.failures, "cache_hits": self.cache_hits,
            "decisions": dict(self.decisions), "limits": list(self.limits), "crossings": self.crossings,
            "anomalies": list(self.anomalies), "alerts": list(self.alerts),
            "recommendations": list(self.recommendations), "seconds": round(self.seconds, 3),
        }  # fmt: skip


def is_seeded(meter: Meter) -> bool:
    """True when the meter's database already holds a demo history."""
    return meter.store.control.get(*MARKER) is not None


def _cents_up(value: Decimal, step: Decimal = Decimal("0.01")) -> Decimal:
    return max(step, (value / step).to_integral_value(rounding=ROUND_UP) * step)


class _Seeder:
    def __init__(self, meter: Meter, clock: FakeClock, now: datetime, days: int, seed: int) -> None:
        self.meter = meter
        self.clock = clock
        self.now = now
        self.days = days
        self.seed = seed
        self.since = now - timedelta(days=days)
        self.rng = random.Random(f"demo-governed-{seed}")
        self.events = 0
        self.cost = Decimal(0)
        self.failures = 0
        self.cache_hits = 0
        self.decisions: Counter[str] = Counter()
        self.limits: list[str] = []

    # -- who --------------------------------------------------------------------------------------

    def cast(self) -> tuple[DemoUser, ...]:
        ids = IdentityStore(self.meter.store.control, self.clock)
        for team_id, name in TEAMS.items():
            ids.put_team(Team(team_id=team_id, name=name, metadata={"demo": True}), actor=_ACTOR, create=True)
        users = []
        for p in PERSONAS:
            ids.put_user(User(user_id=p.user_id, username=p.name, email=p.email, tier=p.tier, team_id=p.team_id,
                              metadata={"demo": True, "service": p.service}), actor=_ACTOR, create=True)  # fmt: skip
            key, _ = ids.create_key(role="member", user_id=p.user_id, team_id=p.team_id, actor=_ACTOR,
                                    name="service" if p.service else "app")  # fmt: skip
            users.append(DemoUser(p.user_id, p.name, p.team_id, p.tier, key.key_id, p.service))
        return tuple(users)

    # -- what was recorded -----------------------------------------------------------------------

    def count(self, events: Iterable[Mapping[str, Any]], recorded: Iterable[Recorded]) -> None:
        for event, result in zip(events, recorded, strict=True):
            self.events += not result.duplicate
            if result.cost is not None and not result.duplicate:
                self.cost += result.cost.total
            self.failures += event.get("success") is False
            self.cache_hits += bool(event.get("cached"))

    def spike(self) -> Spike | None:
        """The runaway job: on the last Tuesday to Friday at least two days back (a weekday after a weekday, so
        even a short history's hour-of-day baseline is a working day's), with four days of history before it."""
        day = (self.now - _DAY * _SPIKE_DAYS_AGO).replace(hour=14, minute=0, second=0, microsecond=0)
        while day.weekday() not in (1, 2, 3, 4):
            day -= _DAY
        if day - self.since < 4 * _DAY:
            return None
        return Spike(_SPIKE_USER, _SPIKE_MODEL, "agent", day, hours=4, calls_per_hour=40)

    def history(self, users: tuple[DemoUser, ...], spike: Spike | None) -> None:
        prices = self.meter.prices

        def price(provider: str, model: str, usage: Usage) -> Decimal:
            return prices.cost(provider, model, usage).total

        keys = {u.user_id: u.key_id for u in users}
        events = generate(now=self.now, days=self.days, seed=self.seed, keys=keys, price=price, spike=spike)
        for start in range(0, len(events), _BATCH):
            batch = events[start : start + _BATCH]
            self.count(batch, self.meter.record_many(batch))

    def episode(self, episode: Episode) -> None:
        self.decisions.update(episode.decisions)
        self.count(({} for _ in episode.recorded), episode.recorded)

    # -- limits and breaches -----------------------------------------------------------------------

    def daily_average(self, **filters: Any) -> Decimal:
        """Average daily spend over the last week of history (or all of it, when shorter)."""
        span = min(self.days, 7)
        total = self.meter.summary(since=self.now - _DAY * span, until=self.now, **filters).cost
        return total / span

    def month_projection(self, **filters: Any) -> Decimal:
        return self.daily_average(**filters) * 30

    def set_limits(self) -> None:
        m = self.meter
        set_limit = m.set_limit
        self.limits += [
            set_limit(scope="global", period="month", amount=_cents_up(self.month_projection() * Decimal("1.2"),
                      Decimal(50)), level="soft", actor=_ACTOR).id,
            set_limit(scope="team", scope_id="platform", period="month",
                      amount=_cents_up(self.month_projection(team_id="platform") * Decimal("1.5"), Decimal(10)),
                      actor=_ACTOR).id,
            set_limit(scope="team", scope_id="research", period="month",
                      amount=_cents_up(self.month_projection(team_id="research") * Decimal("0.9"), Decimal(10)),
                      actor=_ACTOR).id,
            set_limit(scope="team", scope_id="growth", period="month",
                      amount=_cents_up(self.month_projection(team_id="growth") * 2, Decimal(10)), actor=_ACTOR).id,
            set_limit(scope="user", scope_id="ava", period="day",
                      amount=_cents_up(self.daily_average(user_id="ava") * Decimal("1.6"), Decimal(1)),
                      level="soft", actor=_ACTOR).id,
            set_limit(scope="user", scope_id="eli", metric="total_tokens", period="day", amount=600_000,
                      actor=_ACTOR).id,
        ]  # fmt: skip
        m.set_rate_limit("user", "kai", rpm=20, actor=_ACTOR)

    def episode_window(self) -> tuple[datetime, datetime]:
        """Where the breaches happen: today's busiest hours (11:00-19:00 UTC), or yesterday's when today's
        are not over yet. Among many calls, a breach's calls trip budgets, not the anomaly detector."""
        today = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        day = today if self.now >= today + _EPISODE_HOURS[1] + _HOUR / 6 else today - _DAY
        start, end = day + _EPISODE_HOURS[0], day + _EPISODE_HOURS[1]
        start = max(start, self.since)
        return (start, end) if start < end else (self.since, self.now - _HOUR / 6)

    def times(self, count: int) -> list[datetime]:
        """``count`` moments spread evenly over :meth:`episode_window`."""
        start, end = self.episode_window()
        step = (end - start) / count
        return [start + step * i for i in range(count)]

    def overspend(self, users: tuple[DemoUser, ...]) -> None:
        """A free-tier user's long gpt-4o conversations run into the tier's $1/day: WARN at 70 %, then THROTTLE
        (a retry-after answer) once a request's worst case would take it past 80 %."""
        p = persona(BREACH_USER)

        def call(rng: random.Random, i: int) -> Call:
            return Call("openai/gpt-4o", rng.randint(18_000, 24_000), 1_000, rng.randint(400, 900), "chat-assistant")

        def governed(e: Episode) -> bool:
            return e.decisions["throttle"] >= 3

        episode = governed_calls(
            self.meter, self.clock, p, self._key(users, p.user_id), times=self.times(24),
            call=call, rng=self.rng, id_prefix=f"demo-{self.seed}-tier", episode=Episode(), until=governed,
        )  # fmt: skip
        self.episode(episode)

    def team_budget(self, users: tuple[DemoUser, ...]) -> None:
        """A team's hard monthly budget, set at 94.5 % used: calls cross 95 % (an alert), then one is denied;
        an admin then tops the budget up with a grant for the rest of the month."""
        month = self.episode_window()[0].replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        spent = self.meter.summary(team_id=BUDGET_TEAM, since=month, until=self.now).cost
        amount = _cents_up(spent / Decimal("0.945"))
        limit = self.meter.set_limit(scope="team", scope_id=BUDGET_TEAM, period="month", amount=amount, actor=_ACTOR)
        self.limits.append(limit.id)

        # about eight calls from 94.5 % to a refusal, whatever the budget: each costs an eighth of the gap
        per_call = (amount - spent) / 8
        longest = min(1_000, max(300, int(per_call * Decimal("0.2") / _GPT4O_OUT)))
        context = min(120_000, max(2_000, int((per_call - longest * _GPT4O_OUT) / _GPT4O_IN)))

        def call(rng: random.Random, i: int) -> Call:
            return Call("openai/gpt-4o", context, longest, rng.randint(longest * 8 // 10, longest), "support-bot")

        def denied(e: Episode) -> bool:
            return e.decisions["deny"] >= 2

        p = persona(BUDGET_USER)
        times = self.times(12)
        episode = governed_calls(
            self.meter, self.clock, p, self._key(users, p.user_id), times=times, call=call, rng=self.rng,
            id_prefix=f"demo-{self.seed}-team", episode=Episode(), until=denied,
        )  # fmt: skip
        self.episode(episode)
        self.clock.advance(minutes=5)
        self.meter.add_grant(limit.id, _cents_up(amount / 4), reason="top-up after the launch campaign",
                             created_by="admin", id=f"demo-grant-{BUDGET_TEAM}")  # fmt: skip

    @staticmethod
    def _key(users: tuple[DemoUser, ...], user_id: str) -> str:
        return next(u.key_id for u in users if u.user_id == user_id)

    # -- what the dashboard shows at once ---------------------------------------------------------

    def anomalies(self, spike: Spike | None) -> tuple[str, ...]:
        """Detect anomalies in the last three days and the runaway job's day, as the hourly job would have
        (and store them).

        With under two weeks of history the detector compares hours of the day, not of the week, so
        after a weekend every Monday looks like a spike: then only the runaway job's day is looked at.
        """
        floor = self.now.replace(minute=0, second=0, microsecond=0)
        first = self.since.replace(minute=0, second=0, microsecond=0) + _HOUR
        since, until = floor - _HOUR * _DETECT_HOURS, floor
        if spike is not None:
            since = min(since, spike.start.replace(hour=0))
        since = max(since, first)
        if self.days < _WEEKLY_DAYS:
            if spike is None:
                return ()
            since = spike.start.replace(hour=0)
            until = min(since + _DAY, floor)
        if since >= until:
            return ()
        config = self.meter.settings.anomaly()
        found = detect_anomalies(self.meter.store, self.now, since=since, until=until, config=config)
        record_anomalies(self.meter.store.control, found, actor="detector")
        return tuple(a.id for a in found)

    def recommendations(self) -> RecommendationReport:
        m = self.meter
        return recommend(m.store, m.prices, since=self.now - 30 * _DAY, until=self.now,
                         config=m.settings.recommendation(), chains=m.governor.policy.get().chains)  # fmt: skip


def seed_history(settings: Settings | str, *, days: int = 30, seed: int = 0, now: datetime | None = None) -> SeedReport:
    """Seed ``days`` of demo history ending at ``now`` (default: the current time) into an empty ledger.

    ``settings`` (or a database URL) names the ledger. The same ``seed`` and ``now`` give the same events
    and totals. Raises ValueError when ``days`` is out of range or the database already holds a demo.
    """
    if isinstance(settings, str):
        settings = Settings(database_url=settings, journal_dir=None)
    if not 1 <= days <= 90:
        raise ValueError(f"days: must be from 1 to 90, got {days}")
    started = time.perf_counter()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    clock = FakeClock(now - timedelta(days=days))  # the cast and limits exist before their history
    with Meter(settings=settings.model_copy(update={"journal_dir": None}), clock=clock) as meter:
        if is_seeded(meter):
            raise ValueError(f"{settings.database_url} already holds a demo history: use another database")
        s = _Seeder(meter, clock, now, days, seed)
        users = s.cast()
        spike = s.spike()
        s.history(users, spike)
        clock.set(now - timedelta(days=days))
        s.set_limits()
        s.overspend(users)
        s.team_budget(users)
        # an alerting round when the breaches are over (the service runs one every minute)
        alerting = Alerting(meter.store, alerting_config_of(settings))
        fired = alerting.run(s.episode_window()[1]).fired
        clock.set(now)
        RefreshJob(meter.store)()
        anomalies = s.anomalies(spike)
        fired += alerting.run(now).fired
        report = s.recommendations()
        crossings = len(meter.store.control.crossings())
        result = SeedReport(
            since=s.since, until=now, days=days, seed=seed, teams=tuple(TEAMS), users=users, events=s.events,
            cost=s.cost, failures=s.failures, cache_hits=s.cache_hits, decisions=dict(s.decisions),
            limits=tuple(s.limits), crossings=crossings, spike=spike, anomalies=anomalies,
            alerts=tuple(a.title for a in fired), recommendations=tuple(r.type for r in report.recommendations),
            seconds=time.perf_counter() - started,
        )  # fmt: skip
        meter.store.control.put(*MARKER, result.to_dict(), actor=_ACTOR, create_only=True)
    return result
