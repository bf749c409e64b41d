"""`spendgate demo` end to end, in a subprocess: seeded, served, live traffic, a clean Ctrl-C, then reused."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx
import pytest

from spendgate import Meter, Settings
from spendgate.demo import run_demo

pytestmark = pytest.mark.slow

_KEY = re.compile(r"^\s+(admin|member) key\s+(sk-sg-\S+)")
_URL = re.compile(r"^\s+dashboard\s+(http://\S+)/$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Demo:
    """``spendgate demo`` in a subprocess; its stdout is read by a thread, line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spendgate", "demo", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.stderr = ""
        self._errors: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True),
            threading.Thread(target=self._read_errors, args=(self.process.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def _read_errors(self, stream: IO[str]) -> None:
        self._errors.extend(stream)

    def wait_for_banner(self, timeout: float = 120.0) -> dict[str, str]:
        """The dashboard URL and the keys, once printed."""
        found: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while not {"url", "admin", "member"} <= set(found):
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail(f"no banner in {timeout} s; output so far: {self.seen}; stderr: {self.stderr}")
            self.seen.append(line)
            if m := _URL.match(line):
                found["url"] = m.group(1)
            elif m := _KEY.match(line):
                found[m.group(1)] = m.group(2)
        return found

    def stop(self) -> int:
        """Ctrl-C (SIGINT), then the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail("the demo did not stop within 60 s of SIGINT")
        for reader in self._readers:  # the readers end at the pipes' end: every line printed is read
            reader.join(timeout=10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        self.stderr = "".join(self._errors)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.process.returncode


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "demo.db"


def requests(client: httpx.Client, key: str) -> int:
    response = client.get("/api/v1/usage/summary", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    count: int = response.json()["requests"]
    return count


def test_the_demo_serves_seeded_history_and_live_traffic_then_stops_cleanly(database: Path) -> None:
    port = free_port()
    started = datetime.now(UTC)
    demo = Demo("--port", str(port), "--days", "3", "--database", str(database))
    try:
        banner = demo.wait_for_banner()
        assert banner["url"] == f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=banner["url"], timeout=10) as client:
            assert client.get("/readyz").status_code == 200
            seeded = requests(client, banner["admin"])
            assert seeded > 300
            own = requests(client, banner["member"])
            assert 0 < own < seeded, "the member key sees only its user's usage"
            deadline = time.monotonic() + 30
            live = seeded
            while live <= seeded + 2 and time.monotonic() < deadline:
                time.sleep(1)
                live = requests(client, banner["admin"])
            assert live > seeded + 2, "the live trickle goes through the gateway into the ledger"
    finally:
        code = demo.stop()
    assert code == 0, demo.stderr
    assert "Traceback" not in demo.stderr, demo.stderr
    assert any(line.startswith("seeded 3 days of history") for line in demo.seen), demo.seen
    assert any("demo stopped; live traffic:" in line for line in demo.seen), demo.seen
    with Meter(settings=Settings(database_url=f"sqlite:///{database}")) as meter:
        total = meter.summary()
        assert total.requests >= live
        recent = [e for e in meter.events(since=started) if e.user_agent == "spendgate-demo/1.0"]
        assert len(recent) >= live - seeded
        assert {e.provider for e in recent} <= {"openai", "anthropic", "google"}
        assert all(e.api_key_id and e.user_id for e in recent)

    # the same database again, without live traffic: the history is reused, not seeded twice
    again = Demo("--port", str(port), "--database", str(database), "--no-traffic")
    try:
        banner = again.wait_for_banner()
        with httpx.Client(base_url=banner["url"], timeout=10) as client:
            assert requests(client, banner["admin"]) == total.requests
    finally:
        assert again.stop() == 0, again.stderr
    assert any(line.startswith("reusing the demo history") for line in again.seen), again.seen
    assert "Live traffic" not in "\n".join(again.seen)


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "spendgate", "demo", "--port", str(port), "--database", str(tmp_path / "d.db")],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2
    assert "port" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "d.db").exists(), "nothing was seeded"


def test_run_demo_checks_days() -> None:
    with pytest.raises(ValueError, match="days"):
        run_demo(port=free_port(), days=0)
