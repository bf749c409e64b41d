"""What the decision reads: a request's worst case (`RequestEstimate`) and a limit's live state (`LimitState`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendgate._frozen import twin
from spendgate.budgets._check import MAX_AMOUNT, BudgetConfigError, check_aware, check_decimal, check_int, check_text
from spendgate.budgets._enums import Metric
from spendgate.budgets._limit import Limit
from spendgate.budgets._windows import Window

__all__ = ["DEFAULT_OUTPUT_CAP", "LimitState", "RequestEstimate", "worst_case_output_tokens"]

#: Output tokens assumed for a request that sets no ``max_tokens`` on a model of unknown maximum.
DEFAULT_OUTPUT_CAP = 4096
_MAX_TOKENS = 10**12  # check_int's default bound
# Members as module constants: an enum class's attribute lookup is slow (~0.3 µs) on the request path.
_COST, _INPUT, _OUTPUT, _TOTAL = Metric.COST, Metric.INPUT_TOKENS, Metric.OUTPUT_TOKENS, Metric.TOTAL_TOKENS


def worst_case_output_tokens(max_tokens: int | None, model_max_output: int | None, configured_cap: int = 4096) -> int:
    """The most output a request can produce, for reserving its worst case.

    The request's ``max_tokens`` when it sets one (capped by the model's maximum when that is known:
    the provider never returns more); else the model's maximum output; else ``configured_cap``
    (:data:`DEFAULT_OUTPUT_CAP`, 4,096, unless configured).
    """
    if (
        type(configured_cap) is int
        and 1 <= configured_cap <= _MAX_TOKENS
        and (model_max_output is None or (type(model_max_output) is int and 1 <= model_max_output <= _MAX_TOKENS))
        and (max_tokens is None or (type(max_tokens) is int and 0 <= max_tokens <= _MAX_TOKENS))
    ):  # plain ints in range (the request path): what the checks below would let through unchanged
        if max_tokens is not None:
            return max_tokens if model_max_output is None else min(max_tokens, model_max_output)
        return model_max_output if model_max_output is not None else configured_cap
    cap = check_int("configured_cap", configured_cap, low=1)
    model_max = None if model_max_output is None else check_int("model_max_output", model_max_output, low=1)
    if max_tokens is not None:
        requested = check_int("max_tokens", max_tokens)
        return requested if model_max is None else min(requested, model_max)
    return model_max if model_max is not None else cap


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestEstimate:
    """The worst case of one request on ``provider``/``model``: cost (Decimal USD) and token counts.

    ``input_tokens`` is the counted prompt; ``output_tokens`` the worst-case output (see
    :func:`worst_case_output_tokens`); ``cost`` their price. ``requests`` is always 1.
    """

    provider: str
    model: str
    cost: Decimal
    input_tokens: int = 0
    output_tokens: int = 0

    def __post_init__(self) -> None:
        check_text("provider", self.provider, max_length=64)
        check_text("model", self.model, max_length=256)
        object.__setattr__(self, "cost", check_decimal("cost", self.cost))
        check_int("input_tokens", self.input_tokens)
        check_int("output_tokens", self.output_tokens)

    @classmethod
    def trusted(
        cls, *, provider: str, model: str, cost: Decimal, input_tokens: int, output_tokens: int
    ) -> RequestEstimate:
        """The estimate, checking only ``cost``: for a caller that validated the rest (the request path).

        ``provider`` and ``model`` must have passed the constructor's checks before (the governor builds
        one estimate per model the validating way first) and the token counts must be integers from 0
        to 10**12 (a :class:`~spendgate.usage.Usage` holds them). A cost the constructor would refuse
        still goes through it, and raises.
        """
        if type(cost) is not Decimal or not cost.is_finite() or not 0 <= cost <= MAX_AMOUNT:
            return cls(
                provider=provider, model=model, cost=cost, input_tokens=input_tokens, output_tokens=output_tokens
            )
        self: Any = object.__new__(_TWIN if cls is RequestEstimate else twin(cls))  # plain stores, then frozen
        self.provider = provider
        self.model = model
        self.cost = cost + 0  # as check_decimal normalises it
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.__class__ = cls
        return self  # type: ignore[no-any-return]  # (typing.cast is a call: this is the hot path)

    @property
    def requests(self) -> int:
        """One request."""
        return 1

    @property
    def total_tokens(self) -> int:
        """Input plus worst-case output tokens."""
        return self.input_tokens + self.output_tokens

    def amount(self, metric: Metric) -> Decimal:
        """This request's worst case in ``metric``'s unit."""
        if metric is _COST:
            return self.cost
        if metric is _INPUT:
            return Decimal(self.input_tokens)
        if metric is _OUTPUT:
            return Decimal(self.output_tokens)
        if metric is _TOTAL:
            return Decimal(self.total_tokens)
        return Decimal(1)


_TWIN = twin(RequestEstimate)  # plain stores for trusted() (a subclass gets its own twin)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitState:
    """A limit with its live figures in the current window, as the counters and the ledger report them.

    ``spent`` is settled usage, ``reserved`` the worst cases held by calls in flight, both in the
    limit's metric. ``effective_amount`` is the amount with grants (see ``effective_amount()``; it
    defaults to the limit's own). ``first_exceeded_at`` is when usage first went over the tier's hard
    limit in this window (it starts the grace period; ``None`` if it has not). ``window`` is ``None``
    for a per-request limit.
    """

    limit: Limit
    window: Window | None = None
    spent: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    effective_amount: Decimal | None = None
    first_exceeded_at: datetime | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        if not isinstance(self.limit, Limit):
            raise BudgetConfigError("limit", f"must be a Limit, got {type(self.limit).__name__}")
        if self.window is None and not self.limit.per_request:
            raise BudgetConfigError("window", f"limit {self.limit.id!r} is counted per window: pass its window")
        put(self, "spent", check_decimal("spent", self.spent))
        put(self, "reserved", check_decimal("reserved", self.reserved))
        if self.effective_amount is not None:
            put(self, "effective_amount", check_decimal("effective_amount", self.effective_amount))
        if self.first_exceeded_at is not None:
            put(self, "first_exceeded_at", check_aware("first_exceeded_at", self.first_exceeded_at))

    @property
    def amount(self) -> Decimal:
        """The amount in force: the limit's own plus grants."""
        return self.limit.amount if self.effective_amount is None else self.effective_amount

    @property
    def used(self) -> Decimal:
        """Spent plus reserved; 0 for a per-request limit, which only looks at one request."""
        return Decimal(0) if self.limit.per_request else self.spent + self.reserved
