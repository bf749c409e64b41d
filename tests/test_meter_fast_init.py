"""``fast_init``: frozen dataclasses built with plain stores behave exactly like the generated ``__init__``."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import FrozenInstanceError, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from spendgate import Usage
from spendgate._frozen import fast_init, twin
from spendgate.budgets import RequestContext
from spendgate.counters import CommitResult, CounterState, CounterStatus, ReserveItem, ReserveResult
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageEvent
from spendgate.meter import Authorization


@fast_init
@dataclass(frozen=True, slots=True)
class Sample:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int = field(default=4, init=False)
    e: tuple[int, ...] = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("a must not be negative")


@dataclass(frozen=True, slots=True)
class Plain:  # the same class without fast_init, for comparison
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int = field(default=4, init=False)
    e: tuple[int, ...] = field(default=(), kw_only=True)


def test_same_fields_defaults_and_factories() -> None:
    s = Sample(1)
    assert type(s) is Sample
    assert (s.a, s.b, s.c, s.d, s.e) == (1, "b", [], 4, ())
    assert Sample(1).c is not Sample(1).c  # a new list each time, as default_factory makes it
    t = Sample(2, "x", [3], e=(5,))
    assert dataclasses.astuple(t) == dataclasses.astuple(Plain(2, "x", [3], e=(5,)))
    assert t == Sample(a=2, b="x", c=[3], e=(5,)) and t != s
    assert repr(t) == "Sample(a=2, b='x', c=[3], d=4, e=(5,))"


def test_frozen_hashable_and_copyable() -> None:
    s = Sample(1, e=(2,))
    with pytest.raises(FrozenInstanceError):
        s.a = 2  # type: ignore[misc]
    assert hash(CounterState(1, 2)) == hash(CounterState(1, 2)) and {CounterState(1, 2), CounterState(1, 2)} == {
        CounterState(1, 2)
    }
    assert dataclasses.replace(s, a=3) == Sample(3, e=(2,))
    assert pickle.loads(pickle.dumps(s)) == s
    assert copy.deepcopy(s) == s


def test_argument_errors_and_post_init_as_generated() -> None:
    with pytest.raises(TypeError, match=r"Sample.__init__\(\) missing 1 required positional argument: 'a'"):
        Sample()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'd'"):
        Sample(1, d=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="positional"):
        Sample(1, "b", [], (1,))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="must not be negative"):
        Sample(-1)


def test_only_frozen_slotted_dataclasses() -> None:
    @dataclass(slots=True)
    class Mutable:
        a: int

    with pytest.raises(TypeError, match="frozen"):
        fast_init(Mutable)

    class Base:
        __slots__ = ("a",)

    class Derived(Base):
        __slots__ = ("b",)

    with pytest.raises(TypeError, match="no base class"):
        twin(Derived)


def test_the_request_path_types_still_validate() -> None:
    with pytest.raises(InvalidUsageError, match="input_tokens"):
        Usage(input_tokens=-1)
    with pytest.raises(ValueError, match="key"):
        ReserveItem("", 1)
    with pytest.raises(InvalidUsageError, match="event_id"):
        UsageEvent(event_id="", timestamp=datetime.now(UTC), provider="p", model="m", usage=Usage())
    ctx = RequestContext(provider="p", model="m", tags={"a": "b"})
    assert dict(ctx.tags) == {"a": "b"} and type(ctx) is RequestContext
    with pytest.raises(TypeError):
        ctx.tags["c"] = "d"  # type: ignore[index]
    assert CounterState(1, 2) == CounterState(spent=1, reserved=2, initialized=True)
    assert ReserveResult.__init__.__qualname__ == "ReserveResult.__init__"
    assert CommitResult.__init__.__qualname__ == "CommitResult.__init__"
    first, second = CommitResult(CounterStatus.OK, "h"), CommitResult(CounterStatus.OK, "h")
    assert first.spent == {} and first.spent is not second.spent  # default_factory: one dict each
    assert Authorization.__init__.__qualname__ == "Authorization.__init__"
    u = Usage(input_tokens=3, audio_seconds=Decimal("1.5"))
    assert u.audio_seconds == Decimal("1.5") and Usage(audio_seconds=2).audio_seconds == Decimal(2)  # type: ignore[arg-type]
