"""Properties of budget arithmetic through the Meter, on memory:// and on the real Redis (issue 8).

A state machine authorizes, settles and releases random calls (some twice, some using more than their
hold), lets holds lapse and windows roll over with a fake clock, and after every step checks every
counter it has seen against a model of the calls and the ledger: nothing negative, reserved equal to
the live holds (so 0 once every hold is settled, released or lapsed), spent equal to the window's
ledger events, and no hard limit over its amount at any allowed authorization. Also: spend just
before and after a window boundary, and at the edge of a rolling window, lands alike on both stores.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from spendgate import Authorization, Meter, Settings, Usage
from spendgate.budgets import Level, Limit, Metric, Period, RequestContext, Window, window
from spendgate.meter._authorization import to_units
from spendgate.testing import FakeClock

#: Redis expires keys by its own clock: every window here ends long after the test runs.
T0 = datetime(2100, 3, 10, 23, 40, tzinfo=UTC)
TTL = 300.0
SETTLED = "settled_ttl=86400"  # settled markers last a day: retries within SETTLED_FOR are no-ops
SETTLED_FOR = timedelta(hours=23)
TEAMS = {"alice": "ml", "bob": "ml", "carol": None}
_NAMES = itertools.count()


@dataclass
class Call:
    auth: Authorization
    done_at: datetime | None = None


@dataclass(frozen=True)
class Recorded:
    """One event the ledger should hold: when, whose, what it used and cost."""

    at: datetime
    ctx: RequestContext
    usage: Usage
    cost: Decimal


def amount(metric: Metric, event: Recorded) -> int:
    """What ``event`` adds to a counter of ``metric``, in counter units (a failed call that used nothing is
    still a request, as in the ledger)."""
    if metric is Metric.COST:
        return to_units(metric, event.cost)
    if metric is Metric.TOTAL_TOKENS:
        return event.usage.total_tokens
    return 1


class MeterMachine(RuleBasedStateMachine):
    """Random calls against one Meter; ``counters_url`` gives each run its own counter store."""

    root: Path
    counters_url: Callable[[int], str]

    def __init__(self) -> None:
        super().__init__()
        name = next(_NAMES)
        self.clock = FakeClock(T0)
        config = Settings(
            database_url=f"sqlite:///{self.root / f'm{name}.db'}", counters_url=self.counters_url(name), hold_ttl_s=TTL
        )
        self.meter = Meter(settings=config, clock=self.clock)
        self.calls: list[Call] = []
        self.events: list[Recorded] = []
        self.seen: dict[str, tuple[Limit, Window]] = {}

    def teardown(self) -> None:
        self.meter.close()

    @initialize(
        user_cost=st.sampled_from(["0.002", "0.01", "0.05"]),
        team_cost=st.sampled_from(["0.003", "0.02"]),
        requests=st.integers(2, 12),
        tokens=st.sampled_from([1000, 50_000]),
        month_cost=st.sampled_from(["0.02", "1"]),
    )
    def set_limits(self, user_cost: str, team_cost: str, requests: int, tokens: int, month_cost: str) -> None:
        m = self.meter
        m.set_limit(scope="user", scope_id="alice", amount=user_cost)
        m.set_limit(scope="team", scope_id="ml", period="hour", amount=team_cost, timezone="Asia/Kolkata")
        m.set_limit(scope="global", metric="requests", amount=requests, timezone="America/New_York")
        m.set_limit(scope="user", scope_id="bob", metric="total_tokens", period="week", amount=tokens, level="soft")
        m.set_limit(scope="global", period="month", amount=month_cost)

    @rule(
        user=st.sampled_from(sorted(TEAMS)),
        model=st.sampled_from(["gpt-4o", "gpt-4o-mini"]),
        input_tokens=st.integers(0, 3000),
        max_tokens=st.sampled_from([None, 10, 200, 1000]),
    )
    def authorize(self, user: str, model: str, input_tokens: int, max_tokens: int | None) -> None:
        auth = self.meter.authorize(
            user_id=user, team_id=TEAMS[user], provider="openai", model=model, input_tokens=input_tokens,
            max_tokens=max_tokens,
        )  # fmt: skip
        now = self.clock.now()
        for limit in self.meter.limits():
            if limit.scope.matches(auth.ctx) and (found := limit.window_at(now)) is not None:
                self.seen[self.meter.governor.key(limit, found)] = (limit, found)
        if not auth.allowed:
            return
        self.calls.append(Call(auth))
        for status in self.meter.budget_status(user_id=user, team_id=TEAMS[user]):
            if status.limit.level is Level.HARD:
                assert status.spent + status.reserved <= status.amount, status

    @precondition(lambda self: bool(self.calls))
    @rule(
        pick=st.integers(0, 10**6),
        output_tokens=st.integers(0, 3000),
        release=st.booleans(),
        partial=st.booleans(),
    )
    def finish(self, pick: int, output_tokens: int, release: bool, partial: bool) -> None:
        """Settle or release a call: once, or again (a retry), with less or more than its hold."""
        call = self.calls[pick % len(self.calls)]
        auth, now = call.auth, self.clock.now()
        if call.done_at is not None and now - call.done_at >= SETTLED_FOR:
            return  # a retry after the settled marker is gone may count again, as documented
        estimate = auth.estimate
        assert estimate is not None
        usage = Usage(input_tokens=estimate.input_tokens, output_tokens=output_tokens)
        if release:
            used = usage if partial else Usage()
            recorded = self.meter.release(auth, partial_usage=used if partial else None)
        else:
            used = usage
            recorded = self.meter.settle(auth, usage)
        assert recorded is not None and recorded.duplicate is (call.done_at is not None)
        if call.done_at is None:
            call.done_at = now
            cost = Decimal(0) if recorded.cost is None else recorded.cost.total
            self.events.append(Recorded(now, auth.ctx, used, cost))

    @rule(seconds=st.sampled_from([1, 59, 299, 300, 301, 1200, 1800, 3600, 7200]))
    def tick(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    # -- invariants ---------------------------------------------------------------------------------

    def live_holds(self, key: str, ts: float) -> int:
        return sum(
            hold.amount
            for call in self.calls
            if call.done_at is None and call.auth.authorized_at is not None
            if call.auth.authorized_at.timestamp() + TTL > ts
            for hold in call.auth.holds
            if hold.key == key
        )

    @invariant()
    def counters_agree_with_the_holds_and_the_ledger(self) -> None:
        ts = self.clock.now().timestamp()
        for key, (limit, span) in self.seen.items():
            state = self.meter.counters.read([key], now=ts)[key]
            if not state.initialized:
                continue  # its window ended a day ago: the key expired
            assert state.spent >= 0 and state.reserved >= 0
            assert state.reserved == self.live_holds(key, ts)
            events = [e for e in self.events if e.at in span and limit.scope.matches(e.ctx)]
            assert state.spent == sum(amount(limit.metric, e) for e in events)
            if limit.metric is Metric.COST:
                assert state.spent == to_units(Metric.COST, sum((e.cost for e in events), Decimal(0)))
            dims = {f"{dim}_id": value for dim, value in limit.scope.items()}
            ledger = self.meter.summary(since=span.start, until=span.end, **dims)
            assert ledger.requests == len(events)  # the ledger holds exactly the calls finished in the window
            assert ledger.cost == sum((e.cost for e in events), Decimal(0))
            assert ledger.input_tokens + ledger.output_tokens == sum(e.usage.total_tokens for e in events)

    @invariant()
    def nothing_is_reserved_once_every_hold_is_gone(self) -> None:
        ts = self.clock.now().timestamp()
        if any(self.live_holds(key, ts) for key in self.seen):
            return
        for user, team in TEAMS.items():
            assert all(status.reserved == 0 for status in self.meter.budget_status(user_id=user, team_id=team))


def run_machine(root: Path, counters_url: Callable[[int], str]) -> None:
    machine = type("Machine", (MeterMachine,), {"root": root, "counters_url": staticmethod(counters_url)})
    run_state_machine_as_test(machine, settings=settings(max_examples=25, stateful_step_count=30, deadline=None))


def test_reservations_never_leak_on_memory_counters(tmp_path: Path) -> None:
    run_machine(tmp_path, lambda name: f"memory://?{SETTLED}")


def test_reservations_never_leak_on_redis_counters(tmp_path: Path, redis_prefix: str) -> None:
    run_machine(tmp_path, lambda name: f"redis://127.0.0.1:6379/0?prefix={redis_prefix}{name}:&{SETTLED}")


def test_a_call_settled_after_its_window_ended_counts_where_the_ledger_has_it(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2100, 3, 10, 23, 59, 59, tzinfo=UTC))
    with Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}"), clock=clock) as m:
        m.set_limit(scope="user", scope_id="alice", amount="1")
        late = m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=1000, max_tokens=100)
        clock.advance(seconds=2)  # a new day: its counter starts from the ledger, empty so far
        assert m.budget_status(user_id="alice")[0].spent == 0
        recorded = m.settle(late, Usage(input_tokens=1000, output_tokens=100))
        assert recorded.cost is not None and m.summary(user_id="alice", since=clock.now()).cost == Decimal("0.0035")
        assert m.budget_status(user_id="alice")[0].spent == recorded.cost.total  # it stays 0: the old day got it


def test_a_released_call_that_used_nothing_is_a_request_in_the_counter_as_in_the_ledger(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2100, 3, 10, 12, tzinfo=UTC))
    with Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}"), clock=clock) as m:
        m.set_limit(scope="user", scope_id="alice", metric="requests", amount=5)
        m.release(m.authorize(user_id="alice", provider="openai", model="gpt-4o", input_tokens=10, max_tokens=10))
        assert m.budget_status(user_id="alice")[0].spent == 1  # it was a request; it cost and used nothing
        assert m.summary(user_id="alice").requests == 1
        assert m.reconcile() == []  # the ledger, which rebuilds and reconciles counters, agrees (it said 1, not 0)


# -- windows across backends ---------------------------------------------------------------------------

ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham", "America/St_Johns"]
CALENDAR = [Period.HOUR, Period.DAY, Period.WEEK, Period.MONTH, Period.YEAR]
#: Key expiries must lie ahead of the Redis server's clock; past 2106 epoch seconds need 33 bits.
FUTURE = st.integers(4_102_444_800, 4_290_000_000)


@pytest.fixture
def stores(tmp_path: Path, redis_prefix: str) -> Iterator[Callable[[str], Meter]]:
    """Meters on one ledger, each with fresh counters of the backend asked for (``memory``, ``redis``)."""
    made: list[Meter] = []
    first = Meter(database_url=f"sqlite:///{tmp_path / 'windows.db'}", clock=FakeClock(T0))

    def open_meter(backend: str) -> Meter:
        url = f"redis://127.0.0.1:6379/0?prefix={redis_prefix}{next(_NAMES)}:" if backend == "redis" else "memory://"
        meter = Meter(settings=Settings(counters_url=url), store=first.store, clock=FakeClock(T0))
        made.append(meter)
        return meter

    yield open_meter
    for meter in made:
        meter.counters.close()
    first.close()


def spend(meter: Meter, user: str, at: datetime) -> tuple[str, Decimal]:
    """One call by ``user`` at ``at``, settled at once: the window key it was held in and its cost."""
    assert isinstance(meter.clock, FakeClock)
    meter.clock.set(at)
    auth = meter.authorize(user_id=user, provider="openai", model="gpt-4o-mini", input_tokens=7, max_tokens=3)
    cost = meter.settle(auth, Usage(input_tokens=7, output_tokens=3)).cost
    assert auth.allowed and cost is not None
    (hold,) = auth.holds
    return hold.window_key, cost.total


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seconds=FUTURE,
    zone=st.sampled_from(ZONES),
    period=st.sampled_from(CALENDAR),
    early=st.integers(1, 10**9),
    late=st.integers(0, 10**9),
)
def test_spend_either_side_of_a_boundary_counts_in_its_own_window_on_both_stores(
    stores: Callable[[str], Meter], seconds: int, zone: str, period: Period, early: int, late: int
) -> None:
    span = window(period, datetime.fromtimestamp(seconds, UTC), zone)
    following = window(period, span.end, zone)  # the boundary itself belongs to the next window
    before = max(span.start, span.end - timedelta(microseconds=early))
    after = span.end + min(timedelta(microseconds=late), following.duration - timedelta(microseconds=1))
    seen: list[tuple[str, str, int, Decimal]] = []
    for backend in ("memory", "redis"):
        meter, user = stores(backend), f"u{next(_NAMES)}"
        limit = meter.set_limit(scope="user", scope_id=user, period=period, timezone=zone, amount=1, level="soft")
        old_key, old_cost = spend(meter, user, before)
        new_key, new_cost = spend(meter, user, after)
        assert (old_key, new_key) == (span.key, following.key)
        (status,) = meter.budget_status(user_id=user)
        assert (status.window_start, status.spent) == (span.end, new_cost)
        old = meter.counters.read([meter.governor.key(limit, span)], now=after.timestamp())
        (old_spent,) = [state.spent for state in old.values()]
        assert old_spent == to_units(Metric.COST, old_cost)
        assert meter.summary(user_id=user, since=span.start, until=span.end).cost == old_cost
        seen.append((old_key, new_key, old_spent, status.spent))
    assert seen[0] == seen[1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seconds=FUTURE, length=st.integers(1, 7 * 86400), gap=st.floats(0, 1, exclude_max=True))
def test_a_rolling_window_drops_each_call_exactly_its_length_later_on_both_stores(
    stores: Callable[[str], Meter], seconds: int, length: int, gap: float
) -> None:
    """Rolling limits count exact sliding windows ``(now - length, now]`` (not Window.bucket_range)."""
    first = datetime.fromtimestamp(seconds, UTC)
    second = first + timedelta(seconds=int(gap * length))
    for backend in ("memory", "redis"):
        meter, user = stores(backend), f"u{next(_NAMES)}"
        meter.set_limit(scope="user", scope_id=user, metric="requests", period="rolling", rolling_seconds=length,
                        amount=100, level="soft")  # fmt: skip
        spend(meter, user, first)
        spend(meter, user, second)
        span = timedelta(seconds=length)
        probes = {
            second,
            *(t + span + edge for t in (first, second) for edge in (timedelta(milliseconds=-1), timedelta())),
        }
        for at in sorted(probes):
            assert isinstance(meter.clock, FakeClock)
            meter.clock.set(at)
            count = sum(t <= at < t + span for t in (first, second))
            assert meter.budget_status(user_id=user)[0].spent == count, (backend, at - first)
