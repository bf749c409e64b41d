"""`Authorization`: what :meth:`Meter.authorize` decided, and the holds it placed for the call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from spendgate._frozen import fast_init
from spendgate.budgets import Action, Decision, Limit, Metric, RequestContext, RequestEstimate
from spendgate.usage import Usage

__all__ = ["Authorization", "Hold", "RateHold", "actual_amount", "from_units", "to_units"]

_SCALE = Decimal(10) ** 12
# Members as module constants: an enum class's attribute lookup is slow (~0.3 µs) on the request path.
_COST, _INPUT, _OUTPUT, _TOTAL = Metric.COST, Metric.INPUT_TOKENS, Metric.OUTPUT_TOKENS, Metric.TOTAL_TOKENS
_ROUNDING = {"up": ROUND_CEILING, "down": ROUND_FLOOR, "even": ROUND_HALF_EVEN}
_EXACT = 10**27  # below this many units, one division is exact at the default 28-digit precision


def to_units(metric: Metric, value: Decimal | int, rounding: str = "even") -> int:
    """A metric amount as the counters' integer: pico-dollars for cost (the ledger's unit), else a count."""
    if metric is _COST:
        scaled = (value if type(value) is Decimal else Decimal(value)) * _SCALE
        units = int(scaled)  # exact when ``scaled`` is whole (the usual case): no rounding to do
        return units if units == scaled else int(scaled.to_integral_value(_ROUNDING[rounding]))
    return int(value)


def from_units(metric: Metric, units: int) -> Decimal:
    """The counters' integer back as a Decimal amount of the metric (no exponent notation, no extra zeros)."""
    if metric is not _COST:
        return Decimal(units)
    if -_EXACT < units < _EXACT:
        # An exact quotient takes the exponent nearest 0 that holds it: trailing zeros dropped, never E+n.
        return Decimal(units) / _SCALE
    value = Decimal(units).scaleb(-12).normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]


def actual_amount(metric: Metric, usage: Usage, cost: Decimal | None, fallback: int) -> int:
    """What a settled call used of ``metric``, in counter units; ``fallback`` when its cost is unknown."""
    if metric is _COST:
        return fallback if cost is None else to_units(metric, cost)
    if metric is _INPUT:
        return usage.input_tokens
    if metric is _OUTPUT:
        return usage.output_tokens
    if metric is _TOTAL:
        return usage.input_tokens + usage.output_tokens
    return 1


@fast_init
@dataclass(frozen=True, slots=True)
class Hold:
    """A worst-case amount held on one counter for one limit until the call settles."""

    key: str
    limit: Limit
    window_key: str
    amount: int
    effective_amount: Decimal
    rolling_seconds: int | None = None
    entry_id: str | None = None
    """For a rolling window: the sliding-window entry to correct at settle."""
    bounds: tuple[tuple[int, ...], tuple[int, ...]] | None = field(default=None, compare=False, repr=False)
    """Where the limit's alert thresholds lie, in counter units, when worked out in advance (see
    :func:`~spendgate.meter._gov_fast.crossing_bounds`): lets a settle that crosses none skip the exact test."""


@dataclass(frozen=True, slots=True)
class RateHold:
    """A rate-limit slot taken for the call: a TPM entry to correct, or a concurrency lease to free."""

    key: str
    kind: str  # "rpm", "tpm" or "concurrent"
    amount: int = 0
    entry_id: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class Authorization:
    """The decision for one call and the reservation that backs it.

    ``allowed`` says whether the call may go ahead now (ALLOW, WARN, DOWNGRADE); call
    :attr:`provider`/:attr:`model` (a DOWNGRADE changes them). Pass the object to
    :meth:`Meter.settle` with the provider-reported usage, or to :meth:`Meter.release` if the call failed.
    """

    decision: Decision
    reservation_id: str
    ctx: RequestContext
    """The context the call runs under (after a downgrade, the new model)."""
    requested_model: str
    requested_provider: str
    estimate: RequestEstimate | None
    holds: tuple[Hold, ...] = ()
    rate_holds: tuple[RateHold, ...] = ()
    authorized_at: datetime | None = None
    note: str = ""
    args: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The arguments :meth:`Meter.authorize` was called with (a deferred call is authorized again with them)."""
    quick_binding: tuple[Limit, Decimal] | Callable[[], tuple[Limit, Decimal] | None] | None = field(
        default=None, compare=False, repr=False
    )
    """The binding limit and what it had left, or how the quiet path works them out from the figures it read
    (see :meth:`binding_remaining`)."""

    def binding_remaining(self) -> tuple[Limit | None, Decimal | None]:
        """The binding limit and what it has left before this call: ``(limit, remaining)``.

        The same as ``(auth.limit, auth.remaining)``, but a plain ALLOW answers it without building the
        decision's full explanation (for response headers on every call).
        """
        quick = self.quick_binding
        if callable(quick):
            quick = quick()
            object.__setattr__(self, "quick_binding", quick)  # worked out once
        if quick is not None:
            return quick
        return self.decision.limit, self.decision.remaining

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def action(self) -> Action:
        return self.decision.action

    @property
    def provider(self) -> str:
        return self.decision.provider

    @property
    def model(self) -> str:
        return self.decision.model

    @property
    def downgraded(self) -> bool:
        return self.decision.downgraded

    @property
    def reason(self) -> str:
        reason = self.decision.reason
        return f"{reason}; {self.note}" if self.note else reason

    @property
    def retry_after_s(self) -> int | None:
        return self.decision.retry_after_s

    @property
    def limit(self) -> Limit | None:
        return self.decision.limit

    @property
    def spent(self) -> Decimal | None:
        return self.decision.spent

    @property
    def reserved(self) -> Decimal | None:
        return self.decision.reserved

    @property
    def remaining(self) -> Decimal | None:
        return self.decision.remaining

    @property
    def utilization(self) -> Decimal | None:
        return self.decision.utilization

    @property
    def resets_at(self) -> datetime | None:
        return self.decision.resets_at

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the decision's explanation plus the reservation id and the worst-case estimate."""
        out = self.decision.to_dict()
        out["reservation_id"] = self.reservation_id
        out["reason"] = self.reason
        out["requested_model"] = self.requested_model
        if self.estimate is not None:
            out["worst_case"] = {
                "cost": format(self.estimate.cost, "f"),
                "input_tokens": self.estimate.input_tokens,
                "output_tokens": self.estimate.output_tokens,
            }
        return out
