"""The decision's result (`Decision`, one `LimitCheck` per limit) and its knobs (`DecisionOptions`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from spendgate._frozen import twin
from spendgate.budgets._check import check_bool, check_int, iso
from spendgate.budgets._downgrade import ModelRef
from spendgate.budgets._emergency import CircuitBreaker
from spendgate.budgets._enums import Action, Verdict
from spendgate.budgets._estimate import LimitState
from spendgate.budgets._explain import explain
from spendgate.budgets._limit import Limit
from spendgate.budgets._tiers import TierPolicy

__all__ = ["Decision", "DecisionOptions", "LimitCheck"]

_DOWNGRADE = Action.DOWNGRADE  # an enum class's attribute lookup is slow (~0.3 µs) on the request path


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionOptions:
    """Deployment choices the decision cannot know by itself.

    When a tier-governed limit is exhausted and no cheaper model fits, the request is queued if
    ``queue_enabled``, else answered from cache only if ``cache_available``, else denied. THROTTLE asks
    the caller to wait ``throttle_base_s * 2**attempt`` seconds, at most ``throttle_max_s``.
    """

    queue_enabled: bool = False
    cache_available: bool = False
    throttle_base_s: int = 1
    throttle_max_s: int = 30

    def __post_init__(self) -> None:
        check_bool("queue_enabled", self.queue_enabled)
        check_bool("cache_available", self.cache_available)
        check_int("throttle_base_s", self.throttle_base_s, low=1, high=3600)
        check_int("throttle_max_s", self.throttle_max_s, low=self.throttle_base_s, high=86400)

    @property
    def on_exhausted(self) -> Action:
        """What an exhausted tier-governed limit turns into: QUEUE, CACHE_ONLY or DENY."""
        if self.queue_enabled:
            return Action.QUEUE
        if self.cache_available:
            return Action.CACHE_ONLY
        return Action.DENY

    def backoff(self, attempt: int) -> int:
        """Seconds to wait before the ``attempt``-th retry (0-based): 1, 2, 4, 8, 16, 30, 30, …"""
        attempt = check_int("throttle_attempt", attempt, high=10**6)
        return min(self.throttle_base_s * (1 << min(attempt, 32)), self.throttle_max_s)


def _num(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitCheck:
    """How one limit judged the request: its action and why, its figures with this request, and a reason.

    ``request`` is the request's worst case in the limit's metric, ``utilization`` the fraction of the
    amount (with grants) used with it, ``policy`` the tier policy that governed it (for adaptive limits).
    """

    state: LimitState
    action: Action
    verdict: Verdict
    request: Decimal
    utilization: Decimal
    policy: TierPolicy
    now: datetime
    alternative: ModelRef | None = None

    @property
    def limit(self) -> Limit:
        """The limit checked."""
        return self.state.limit

    @property
    def spent(self) -> Decimal:
        """Settled usage in the window (0 for a per-request limit)."""
        return Decimal(0) if self.limit.per_request else self.state.spent

    @property
    def reserved(self) -> Decimal:
        """Worst cases held by calls in flight (0 for a per-request limit)."""
        return Decimal(0) if self.limit.per_request else self.state.reserved

    @property
    def amount(self) -> Decimal:
        """The amount in force, with grants."""
        return self.state.amount

    @property
    def projected(self) -> Decimal:
        """What usage would be with this request: spent + reserved + the request's worst case."""
        return self.spent + self.reserved + self.request

    @property
    def remaining(self) -> Decimal:
        """What is left before this request (never negative); a per-request limit's whole amount."""
        return max(Decimal(0), self.amount - self.spent - self.reserved)

    @property
    def resets_at(self) -> datetime | None:
        """When the window frees up (None for a per-request limit)."""
        window = self.state.window
        return None if window is None else window.resets_at(self.now)

    @property
    def reason(self) -> str:
        """One human sentence (built on demand): the limit, the figures, the outcome, the reset."""
        return explain(self.state, self.request, self.verdict, self.action, self.policy, self.now, self.alternative)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (numbers as strings)."""
        resets_at = self.resets_at
        return {
            "limit_id": self.limit.id,
            "action": self.action.value,
            "verdict": self.verdict.value,
            "spent": str(self.spent),
            "reserved": str(self.reserved),
            "request": str(self.request),
            "amount": str(self.amount),
            "remaining": str(self.remaining),
            "utilization": str(self.utilization),
            "resets_at": iso(resets_at) if resets_at else None,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The verdict on one request, explaining itself.

    ``action`` is the most severe action of all applicable limits; ``allowed`` means the call may go
    ahead now (ALLOW, WARN, or DOWNGRADE on ``provider``/``model``, which then name the cheaper model).
    The ``binding`` check (the limit that decided; for ALLOW the fullest) supplies ``limit``, ``spent``,
    ``reserved``, ``remaining`` (before this request), ``amount`` (with grants), ``utilization`` (with
    this request, as a fraction), ``resets_at`` and the ``reason``. ``retry_after_s`` is the backoff
    for THROTTLE and the wait until the window resets for DENY, QUEUE and CACHE_ONLY (or until the
    breaker's cooldown ends for EMERGENCY_STOP). ``alternative`` is a cheaper model that fits every
    limit (the one used by DOWNGRADE, a suggestion otherwise). ``first_exceeded`` lists the ids of
    tier-governed limits this allowed request takes over their hard limit for the first time in the
    window: record ``now`` as their ``first_exceeded_at`` (it starts the grace period). ``checks`` holds
    every applicable limit's check. ``note`` is the reason when no limit binds (none applies, or an
    emergency stop).

    A decision from :meth:`deferred` (the plain ALLOW of the request path) computes ``binding`` and
    ``checks`` on first access; it is otherwise indistinguishable from one built with every field.
    """

    action: Action
    provider: str
    model: str
    binding: LimitCheck | None = None
    retry_after_s: int | None = None
    alternative: ModelRef | None = None
    breaker: CircuitBreaker | None = None
    first_exceeded: tuple[str, ...] = ()
    checks: tuple[LimitCheck, ...] = ()
    note: str = ""
    _explain: Callable[[], Decision] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def deferred(cls, *, action: Action, provider: str, model: str, explain: Callable[[], Decision]) -> Decision:
        """A decision whose ``binding`` and ``checks`` are taken from ``explain()`` when first read.

        ``explain`` must return the full decision (from :func:`decide`) that has the same ``action``,
        ``provider`` and ``model`` and no retry, alternative, breaker, first-exceeded limits or note:
        the request path uses it for a plain ALLOW, where nobody may ever look at the figures.
        """
        self: Any = object.__new__(_TWIN if cls is Decision else twin(cls))  # plain stores, then a frozen Decision
        self.action = action
        self.provider = provider
        self.model = model
        self.retry_after_s = None
        self.alternative = None
        self.breaker = None
        self.first_exceeded = ()
        self.note = ""
        self._explain = explain
        self.__class__ = cls
        return self  # type: ignore[no-any-return]  # binding, checks unset: __getattr__ fills them in

    if not TYPE_CHECKING:  # keep attribute typos visible to mypy

        def __getattr__(self, name: str) -> Any:
            # Only called for an unset slot, which only a deferred decision has (binding and checks).
            if name not in ("binding", "checks"):
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            explain = object.__getattribute__(self, "_explain")
            if explain is not None:  # None: another thread filled them in meanwhile
                full = explain()
                assert (full.action, full.provider, full.model) == (self.action, self.provider, self.model), full
                object.__setattr__(self, "binding", full.binding)
                object.__setattr__(self, "checks", full.checks)
                object.__setattr__(self, "_explain", None)  # drop the inputs it held
            return object.__getattribute__(self, name)

    @property
    def allowed(self) -> bool:
        """True if the call may go ahead now (ALLOW, WARN, DOWNGRADE)."""
        return self.action.allowed

    @property
    def downgraded(self) -> bool:
        """True if the call must use :attr:`model` instead of the requested one."""
        return self.action is _DOWNGRADE

    @property
    def reason(self) -> str:
        """A human explanation: the binding limit's figures and outcome (built on demand), or the note."""
        return self.binding.reason if self.binding is not None else self.note

    @property
    def limit(self) -> Limit | None:
        """The binding limit."""
        return None if self.binding is None else self.binding.limit

    @property
    def spent(self) -> Decimal | None:
        """Settled usage of the binding limit in its window."""
        return None if self.binding is None else self.binding.spent

    @property
    def reserved(self) -> Decimal | None:
        """Usage held by calls in flight under the binding limit."""
        return None if self.binding is None else self.binding.reserved

    @property
    def amount(self) -> Decimal | None:
        """The binding limit's amount in force (with grants)."""
        return None if self.binding is None else self.binding.amount

    @property
    def remaining(self) -> Decimal | None:
        """What the binding limit has left before this request."""
        return None if self.binding is None else self.binding.remaining

    @property
    def utilization(self) -> Decimal | None:
        """The binding limit's utilization with this request, as a fraction (1 = 100 %)."""
        return None if self.binding is None else self.binding.utilization

    @property
    def resets_at(self) -> datetime | None:
        """When the binding limit's window frees up, or when an emergency stop's cooldown ends."""
        if self.binding is not None:
            return self.binding.resets_at
        return None if self.breaker is None else self.breaker.cooldown_until

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view for logs and HTTP answers (Decimals as strings, times as ISO ``Z``)."""
        limit = self.limit
        resets_at = self.resets_at
        return {
            "action": self.action.value,
            "allowed": self.allowed,
            "provider": self.provider,
            "model": self.model,
            "reason": self.reason,
            "limit": None
            if limit is None
            else {
                "id": limit.id,
                "scope": str(limit.scope),
                "metric": limit.metric.value,
                "period": limit.period.value,
                "level": limit.level.value,
            },
            "spent": _num(self.spent),
            "reserved": _num(self.reserved),
            "amount": _num(self.amount),
            "remaining": _num(self.remaining),
            "utilization": _num(self.utilization),
            "resets_at": iso(resets_at) if resets_at else None,
            "retry_after_s": self.retry_after_s,
            "alternative": str(self.alternative) if self.alternative else None,
            "breaker": self.breaker.to_dict() if self.breaker else None,
            "first_exceeded": list(self.first_exceeded),
            "checks": [check.to_dict() for check in self.checks],
        }


_TWIN = twin(Decision)  # plain stores for deferred() (a subclass gets its own twin)
