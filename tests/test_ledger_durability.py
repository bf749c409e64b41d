"""Acknowledged events survive SIGKILL of the writing process at any moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from spendgate.ledger import open_store, upgrade

CHILD = Path(__file__).with_name("ledger_kill_child.py")


def run_and_kill(url: str, prefix: str, delay: float) -> list[str]:
    """Start the child, let it record for ``delay`` seconds after it is ready, SIGKILL it.

    Returns every id the child acknowledged (complete lines only).
    """
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, str(CHILD), url, prefix, "4"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as child:
        assert child.stdout is not None
        ready = child.stdout.readline()
        first = b""
        if ready == b"READY\n":
            first = child.stdout.readline()  # at least one acknowledgement, however loaded the machine is
            time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        output, errors = child.communicate()
    assert ready == b"READY\n", errors.decode()
    assert child.returncode == -signal.SIGKILL
    lines = (first + output).split(b"\n")[:-1]  # a torn last line was never fully acknowledged
    return [line.decode() for line in lines]


def stored_counts(url: str, prefix: str) -> Counter[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT event_id FROM usage_events WHERE event_id LIKE :p"), {"p": f"{prefix}-%"}
            )
            return Counter(row[0] for row in rows)
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("delays", [(0.05, 0.3, 0.8)])
def test_acknowledged_events_survive_sigkill(ledger_url: str, delays: tuple[float, ...]) -> None:
    upgrade(ledger_url)
    for round_, delay in enumerate(delays):
        prefix = f"kill{round_}"
        acknowledged = run_and_kill(ledger_url, prefix, delay)
        assert len(acknowledged) > 0
        stored = stored_counts(ledger_url, prefix)
        missing = set(acknowledged) - set(stored)
        assert not missing, f"acknowledged but lost after SIGKILL: {sorted(missing)[:10]}"
        assert set(stored.values()) == {1}  # ids are unique even with retried events
        with open_store(ledger_url) as store:
            assert store.check_rollups() == []
