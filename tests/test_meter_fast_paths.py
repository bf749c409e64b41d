"""The authorize + settle shortcuts give what the general computations give.

* estimates are shared while the model's price stays the same object, and follow an override at once;
* a quiet request's :class:`Shape` (its worst case in counter units, holds and reservation items) is
  worked out once per plan and estimate, and settles hold what the general path holds;
* ``to_units`` skips the rounding only when there is nothing to round;
* a static price's ``evaluate`` is what ``price_usage`` returns;
* the governor calls a store's primitives only while its checked methods are :class:`BaseCounterStore`'s.
"""

from __future__ import annotations

import inspect
from dataclasses import fields
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spendgate import Meter, Settings, Usage
from spendgate.budgets import Metric
from spendgate.counters import MemoryCounterStore, ReserveResult
from spendgate.counters._abstract import checks_only
from spendgate.errors import InvalidUsageError
from spendgate.meter._authorization import to_units
from spendgate.meter._budget_api import _AUTHORIZE_ARGS
from spendgate.meter._core import price_usage
from spendgate.pricing import PriceBook, PriceOverride, VolumeTier
from spendgate.pricing._compiled import _Tokens
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_ROUNDINGS = {"up": ROUND_CEILING, "down": ROUND_FLOOR, "even": ROUND_HALF_EVEN}
_BOOK = PriceBook()


def _meter(tmp_path: Path) -> Meter:
    return Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / 'm'}.db"), clock=FakeClock(T0))


def _ask(meter: Meter, **kwargs: Any) -> Any:
    return meter.authorize(provider="openai", model="gpt-4o", user_id="ann", **{"input_tokens": 100, **kwargs})


def test_estimates_are_shared_while_the_price_holds(tmp_path: Path) -> None:
    with _meter(tmp_path) as meter:
        meter.set_limit(scope="user", scope_id="ann", period="day", amount="5")
        g = meter.governor
        first = g.estimate("openai", "gpt-4o", 100, 50)
        assert first is not None and g.estimate("openai", "gpt-4o", 100, 50) is first
        assert first.cost == meter.cost("openai", "gpt-4o", Usage(input_tokens=100, output_tokens=50)).total
        assert g.estimate("openai", "gpt-4o", 100, 51) is not first  # another shape
        meter.prices.add_override(PriceOverride(provider="openai", model="gpt-4o", effective_from=date(2020, 1, 1),
                                                input=Decimal("1"), output=Decimal("2")))  # fmt: skip
        repriced = g.estimate("openai", "gpt-4o", 100, 50)
        assert repriced is not None and repriced.cost == Decimal("0.0002")  # 100 x $1/M + 50 x $2/M
        with pytest.raises(InvalidUsageError, match="input_tokens"):
            _ask(meter, input_tokens=True)  # not taken for the 1 a cached estimate may have been made for


def test_a_shape_is_worked_out_once_and_holds_what_the_general_path_holds(tmp_path: Path) -> None:
    with _meter(tmp_path) as meter:
        meter.set_limit(scope="user", scope_id="ann", period="day", amount="5")
        meter.set_limit(scope="team", scope_id="ml", metric="total_tokens", period="day", amount=10**6)
        cold = _ask(meter, team_id="ml", max_tokens=50)  # the general path: the counters are loaded first
        meter.settle(cold, Usage(input_tokens=10, output_tokens=5))
        first = _ask(meter, team_id="ml", max_tokens=50)
        second = _ask(meter, team_id="ml", max_tokens=50)
        assert first.holds is second.holds and first.reservation_id != second.reservation_id
        assert first.holds == cold.holds  # what the general path held
        assert {h.limit.metric: h.amount for h in first.holds}[Metric.TOTAL_TOKENS] == 150
        for auth in (first, second):
            meter.settle(auth, Usage(input_tokens=90, output_tokens=30))
        by_metric = {status.limit.metric: status for status in meter.budget_status(user_id="ann", team_id="ml")}
        assert by_metric[Metric.TOTAL_TOKENS].spent == 255 and by_metric[Metric.TOTAL_TOKENS].reserved == 0
        assert by_metric[Metric.COST].spent == meter.summary(user_id="ann").cost


@given(
    value=st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**9), max_value=10**9, places=15),
        st.decimals(allow_nan=False, allow_infinity=False, min_value=0, max_value=10**20),
        st.integers(-(10**12), 10**12),
    ),
    rounding=st.sampled_from(sorted(_ROUNDINGS)),
)
def test_to_units_rounds_as_the_decimal_path_does(value: Decimal | int, rounding: str) -> None:
    number = value if isinstance(value, Decimal) else Decimal(value)
    slow = int((number * Decimal(10) ** 12).to_integral_value(_ROUNDINGS[rounding]))
    assert to_units(Metric.COST, value, rounding) == slow


@given(
    inputs=st.integers(0, 10**7),
    outputs=st.integers(0, 10**6),
    cached=st.integers(0, 10**7),
    model=st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"]),
)
def test_a_static_price_costs_what_price_usage_costs(inputs: int, outputs: int, cached: int, model: str) -> None:
    provider = "anthropic" if model.startswith("claude") else "openai"
    usage = Usage(input_tokens=inputs, output_tokens=outputs, cache_read_tokens=min(cached, inputs))
    slow = price_usage(_BOOK, Settings(), provider=provider, model=model, usage=usage, at=T0, service_tier=None,
                       batch=False, monthly_volume=0)  # fmt: skip
    price = _BOOK.static_price(provider, model)
    assert price is not None and slow is not None
    assert price.evaluate(usage, model) == slow
    tokens_only = price_usage(
        _BOOK,
        Settings(),
        provider=provider,
        model=model,
        at=T0,
        service_tier=None,
        usage=Usage(input_tokens=inputs, output_tokens=outputs),
        batch=False,
        monthly_volume=0,
    )
    assert tokens_only is not None and price.tokens_total(inputs, outputs, model) == tokens_only.total  # fmt: skip


def test_the_tokens_a_price_reads_are_a_usage_of_input_and_output_only() -> None:
    counts = _Tokens(7, 9)
    for name, value in ((f.name, f.default) for f in fields(Usage)):
        assert getattr(counts, name) == {"input_tokens": 7, "output_tokens": 9}.get(name, value), name


def test_prices_that_change_are_not_static() -> None:
    book = PriceBook()
    assert book.static_price("openai", "gpt-4o") is None  # not resolved yet
    book.cost("openai", "gpt-4o", Usage(input_tokens=1))
    static = book.static_price("openai", "gpt-4o")
    assert static is not None and book.static_price("openai", "gpt-4o") is static
    book.add_override(
        PriceOverride(
            provider="acme",
            model="tiered",
            effective_from=date(2020, 1, 1),
            input=Decimal(1),
            output=Decimal(2),
            volume_tiers=[VolumeTier(above_monthly_tokens=10, discount_percent=Decimal(50))],
        )
    )
    book.add_override(PriceOverride(provider="openai", model="gpt-4o", effective_from=date(2999, 1, 1),
                                    input=Decimal(1), output=Decimal(2)))  # fmt: skip
    for model in ("tiered", "gpt-4o"):
        provider = "acme" if model == "tiered" else "openai"
        book.cost(provider, model, Usage(input_tokens=1))
        assert book.static_price(provider, model) is None  # by volume, or a version to come


def test_authorization_args_are_the_arguments_given_in_order(tmp_path: Path) -> None:
    signature = [name for name in inspect.signature(Meter.authorize).parameters if name != "self"]
    assert list(_AUTHORIZE_ARGS) == [name for name in signature if name != "reservation_id"]
    with _meter(tmp_path) as meter:
        auth = _ask(meter, max_tokens=5, tags={"f": "x"}, reservation_id="r1")
        assert list(auth.args.items()) == [("provider", "openai"), ("model", "gpt-4o"), ("user_id", "ann"),
                                           ("tags", {"f": "x"}), ("max_tokens", 5), ("input_tokens", 100),
                                           ("cache_available", False)]  # fmt: skip


def test_primitives_are_called_only_behind_the_base_checks() -> None:
    store = MemoryCounterStore()
    assert checks_only(store, "read") is store and checks_only(store, "commit") is store

    class Checked(MemoryCounterStore):
        def reserve(self, *args: Any, **kwargs: Any) -> ReserveResult:
            return super().reserve(*args, **kwargs)

    assert checks_only(Checked(), "reserve") is None and checks_only(Checked(), "read") is not None
    store.read = lambda *args, **kwargs: {}  # type: ignore[method-assign]
    assert checks_only(store, "read") is None and checks_only(object(), "read") is None


def test_a_store_stepped_in_on_sees_every_call(tmp_path: Path) -> None:
    with _meter(tmp_path) as meter:
        meter.set_limit(scope="user", scope_id="ann", period="day", amount="5")
        meter.settle(_ask(meter), Usage(input_tokens=1))  # warm: the next one is quiet
        seen: list[str] = []
        store: Any = meter.governor.counters
        for name in ("read", "reserve", "commit"):
            real = getattr(store, name)

            def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                seen.append(_name)
                return _real(*args, **kwargs)

            setattr(store, name, spy)
        meter.settle(_ask(meter), Usage(input_tokens=1))
        assert seen == ["read", "reserve", "commit"]
