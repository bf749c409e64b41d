"""Kill and restart the counter store (a Redis of the test's own) under load: hard limits fail closed
while it is gone, counters are rebuilt from the ledger when it returns (empty), nothing is counted
twice, and the hard limit still holds over the whole run."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from spendgate import Action, Meter, Settings, Usage
from spendgate.ledger import EventFilter
from test_faults_kill import _free_port

LIMIT = Decimal("0.02")  # about 160 calls of gpt-4o-mini at the usage below
USAGE = Usage(input_tokens=400, output_tokens=100)
THREADS = 4


class PrivateRedis:
    """A redis-server on a free port that keeps nothing on disk: killing it loses every counter."""

    def __init__(self, binary: str) -> None:
        self.binary, self.port = binary, _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                client.close()
                return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail("the private redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (the machine's Redis service comes from it)")
    server = PrivateRedis(binary)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


def test_counter_store_restart_under_load(tmp_path: Path, private_redis: PrivateRedis) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
                        counters_url=f"redis://127.0.0.1:{private_redis.port}/0?socket_timeout=0.5",
                        journal_dir=None)  # fmt: skip
    outage = threading.Event()
    stop = threading.Event()
    allowed_in_outage: list[float] = []
    results: list[Action] = []
    lock = threading.Lock()
    with Meter(settings=settings) as meter:
        meter.set_limit(scope="user", scope_id="dana", metric="cost", period="day", amount=LIMIT, level="hard")

        def calls() -> None:
            while not stop.is_set():
                during = outage.is_set()
                d = meter.authorize(user_id="dana", provider="openai", model="gpt-4o-mini", input_tokens=400,
                                    max_tokens=100)  # fmt: skip
                if d.allowed:
                    if during and outage.is_set():
                        allowed_in_outage.append(time.monotonic())
                    meter.settle(d, USAGE, latency_ms=5, success=True)
                with lock:
                    results.append(d.action)
                time.sleep(0.002)

        threads = [threading.Thread(target=calls) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        before_outage = meter.store.summary(EventFilter(user_id="dana")).cost
        private_redis.kill()
        outage.set()
        time.sleep(1.5)
        with lock:
            denied_in_outage = results.count(Action.DENY)
        outage.clear()
        private_redis.start()  # back, and empty: every counter is gone
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and meter.store.summary(EventFilter(user_id="dana")).cost < LIMIT * 9 / 10:
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        spent = meter.store.summary(EventFilter(user_id="dana")).cost
        [status] = [s for s in meter.budget_status(user_id="dana") if s.limit.id == "user:dana|cost|day|UTC"]
    assert before_outage > 0 and denied_in_outage > 0
    assert allowed_in_outage == []  # fail closed: a hard limit never allows while its counters are gone
    assert spent <= LIMIT  # the hard limit held across the outage
    assert spent > LIMIT * 8 / 10  # and traffic went on after the counters came back
    assert status.spent == spent and status.reserved == 0  # rebuilt from the ledger, nothing counted twice


def test_a_settle_while_the_counter_store_is_down_is_still_recorded(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
                        counters_url=f"redis://127.0.0.1:{private_redis.port}/0?socket_timeout=0.5",
                        journal_dir=None)  # fmt: skip
    with Meter(settings=settings) as meter:
        meter.set_limit(scope="user", scope_id="dana", metric="cost", period="day", amount=LIMIT, level="hard")
        d = meter.authorize(user_id="dana", provider="openai", model="gpt-4o-mini", input_tokens=400, max_tokens=100)
        assert d.allowed
        private_redis.kill()  # the call went out; its settle finds the counter store gone
        recorded = meter.settle(d, USAGE, latency_ms=5, success=True)
        assert meter.store.get(recorded.event_id) is not None  # the ledger has it all the same
        refused = meter.authorize(user_id="dana", provider="openai", model="gpt-4o-mini", input_tokens=1, max_tokens=1)
        assert refused.action is Action.DENY  # and new calls fail closed meanwhile
        private_redis.start()  # back, empty: the counter is initialized from the ledger, this call included
        [status] = meter.budget_status(user_id="dana")
        assert status.spent == meter.store.summary(EventFilter(user_id="dana")).cost > 0
