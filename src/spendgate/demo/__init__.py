"""`spendgate demo`: the whole product working in one command, with no provider account.

:func:`seed_history` fills an empty ledger with weeks of realistic usage (teams, users on each tier,
several providers and models, failures, cache hits, budget breaches, a cost anomaly, alerts);
:func:`run_demo` starts a fake provider, seeds a temporary database, serves the gateway, admin API and
dashboard on it and keeps a trickle of live traffic going. See ``docs/demo.md``.
"""

from __future__ import annotations

from spendgate.demo._run import DemoKeys, demo_settings, issue_keys, run_demo
from spendgate.demo._seed import DemoUser, SeedReport, is_seeded, seed_history
from spendgate.demo._traffic import Caller, Trickle

__all__ = [
    "Caller",
    "DemoKeys",
    "DemoUser",
    "SeedReport",
    "Trickle",
    "demo_settings",
    "is_seeded",
    "issue_keys",
    "run_demo",
    "seed_history",
]
