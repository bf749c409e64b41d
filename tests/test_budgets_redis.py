"""One hard limit, two processes, one Redis: the limit holds and counters agree with the ledger."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from spendgate import Meter, Usage
from spendgate.budgets import Action

CHILD = Path(__file__).with_name("budget_child.py")


@pytest.fixture
def redis_url(redis_prefix: str) -> str:
    return f"redis://127.0.0.1:6379/0?prefix={redis_prefix}"


def test_two_processes_share_one_hard_limit(redis_url: str, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    limit = Decimal("0.25")
    with Meter(database_url=database_url, counters_url=redis_url) as meter:
        meter.set_limit(scope="team", scope_id="shared", amount=limit)
        per_call = meter.cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=400)).total
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), database_url, redis_url, "6", "25"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]  # 2 processes x 6 threads x 25 calls = 300 authorizations
    allowed = 0
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        allowed += int(out.strip())
    with Meter(database_url=database_url, counters_url=redis_url) as meter:
        spent = meter.summary(team_id="shared").cost
        assert spent <= limit
        assert spent == allowed * per_call
        (status,) = meter.budget_status(team_id="shared")
        assert status.spent == spent and status.reserved == 0  # counters equal the ledger to the cent
        assert meter.reconcile() == []
        # the worst case ($0.0075) was held, the actual ($0.0065) charged: the last calls fit the remainder
        assert allowed >= int(limit / Decimal("0.0075"))
        nxt = meter.authorize(team_id="shared", provider="openai", model="gpt-4o", input_tokens=1000, max_tokens=500)
        assert nxt.action is Action.DENY


def test_counters_lost_in_redis_are_rebuilt_from_the_ledger(redis_url: str, tmp_path: Path) -> None:
    import redis

    database_url = f"sqlite:///{tmp_path / 'rebuild.db'}"
    with Meter(database_url=database_url, counters_url=redis_url) as meter:
        meter.set_limit(scope="user", scope_id="zed", metric="requests", amount=3)
        for _ in range(2):
            d = meter.authorize(user_id="zed", provider="openai", model="gpt-4o", input_tokens=1)
            meter.settle(d, Usage(input_tokens=1))
        prefix = redis_url.split("prefix=")[1]
        client = redis.Redis(host="127.0.0.1", port=6379)
        client.delete(*client.scan_iter(match=f"{prefix}*"))  # Redis lost its data
        client.close()
        assert meter.budget_status(user_id="zed")[0].spent == 2  # set from the ledger, not from zero
        assert meter.authorize(user_id="zed", provider="openai", model="gpt-4o", input_tokens=1).allowed
        assert meter.authorize(user_id="zed", provider="openai", model="gpt-4o", input_tokens=1).action is Action.DENY
