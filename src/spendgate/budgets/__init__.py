"""Budgets: limits, calendar windows, tier policies, downgrade chains and the pure decision function.

Everything here is pure: no I/O, no SQL, no clock (each function takes ``now``). ``spendgate.counters``
keeps the live figures and ``spendgate.meter`` wires both together.

>>> from datetime import UTC, datetime
>>> from decimal import Decimal
>>> limit = Limit(scope=Scope.of("user", "alice"), metric=Metric.COST, period=Period.DAY, amount=Decimal("1.00"))
>>> limit.id, limit.window_at(datetime(2026, 3, 10, 15, tzinfo=UTC)).key
('user:alice|cost|day|UTC', 'day:2026-03-10@UTC')

See docs/budgets.md for scopes, periods and time zones, levels, the tier table, grace and overage,
grants, actions and downgrade chains.
"""

from __future__ import annotations

from spendgate.budgets._check import MAX_AMOUNT, BudgetConfigError
from spendgate.budgets._decide import decide
from spendgate.budgets._decision import Decision, DecisionOptions, LimitCheck
from spendgate.budgets._downgrade import DowngradeChains, ModelRef
from spendgate.budgets._emergency import BreakerSource, CircuitBreaker, EmergencyState, active_breakers
from spendgate.budgets._enums import Action, Level, Metric, Period, Verdict
from spendgate.budgets._estimate import DEFAULT_OUTPUT_CAP, LimitState, RequestEstimate, worst_case_output_tokens
from spendgate.budgets._grants import Grant, Recurrence, effective_amount, grant_contribution
from spendgate.budgets._limit import DEFAULT_THRESHOLDS, Limit, crossed_thresholds, utilization
from spendgate.budgets._quiet import QuietTest, allows_quietly
from spendgate.budgets._ratelimit import RateLimit
from spendgate.budgets._scope import DIMENSIONS, RequestContext, Scope
from spendgate.budgets._tiers import TierLimit, TierPolicy, TierTable
from spendgate.budgets._windows import Window, window

__all__ = [
    "Action",
    "BreakerSource",
    "BudgetConfigError",
    "CircuitBreaker",
    "DEFAULT_OUTPUT_CAP",
    "DEFAULT_THRESHOLDS",
    "DIMENSIONS",
    "Decision",
    "DecisionOptions",
    "DowngradeChains",
    "EmergencyState",
    "Grant",
    "Level",
    "Limit",
    "LimitCheck",
    "LimitState",
    "MAX_AMOUNT",
    "Metric",
    "ModelRef",
    "Period",
    "QuietTest",
    "RateLimit",
    "Recurrence",
    "RequestContext",
    "RequestEstimate",
    "Scope",
    "TierLimit",
    "TierPolicy",
    "TierTable",
    "Verdict",
    "Window",
    "active_breakers",
    "allows_quietly",
    "crossed_thresholds",
    "decide",
    "effective_amount",
    "grant_contribution",
    "utilization",
    "window",
    "worst_case_output_tokens",
]
