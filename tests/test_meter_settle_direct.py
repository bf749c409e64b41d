"""Settles and releases whose fields need no parsing build their event directly: the same event, errors
and cost as the general path (``parse_call``, ``price_usage``, ``build_event``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendgate import Meter, Settings, Usage
from spendgate.errors import InvalidUsageError
from spendgate.ledger import UsageEvent
from spendgate.meter import _budget_api
from spendgate.testing import FakeClock

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
IDS: dict[str, Any] = {"user_id": "ann", "team_id": "ml", "api_key_id": "k1", "session_id": "s1"}


def _pair(tmp_path: Path) -> tuple[Meter, Meter]:
    def meter(name: str) -> Meter:
        m = Meter(settings=Settings(database_url=f"sqlite:///{tmp_path / name}.db"), clock=FakeClock(T0))
        m.set_limit(scope="user", scope_id="ann", period="day", amount="5")
        return m

    return meter("direct"), meter("general")


def _general(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make settles and releases take the general path from now on."""
    monkeypatch.setattr(_budget_api, "_PASSED_FIELDS", frozenset())


def _events(meter: Meter) -> list[UsageEvent]:
    return list(meter.events())


@pytest.mark.parametrize(
    ("model", "tags", "fields"),
    [
        ("gpt-4o", None, {"latency_ms": 120}),
        ("gpt-4o-mini", {"feature": "chat"}, {"latency_ms": 5, "metadata": {"n": [1, 2]}, "request_type": "chat"}),
        ("gpt-4o", {"a": "b"}, {"success": True, "status_code": 200, "cache_savings": Decimal("0.01"), "cached": True}),
    ],
)
def test_direct_events_are_the_general_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, tags: dict[str, str] | None, fields: dict[str, Any]
) -> None:
    direct, general = _pair(tmp_path)
    with direct, general:
        results = []
        for meter in (direct, general):
            if meter is general:
                _general(monkeypatch)
            auth = meter.authorize(provider="openai", model=model, input_tokens=100, max_tokens=50, tags=tags,
                                   reservation_id="r1", **IDS)  # fmt: skip
            assert auth.allowed
            settled = meter.settle(auth, Usage(input_tokens=90, output_tokens=40), **fields)
            again = meter.settle(auth, Usage(input_tokens=90, output_tokens=40), **fields)
            failed = meter.authorize(provider="openai", model=model, input_tokens=10, reservation_id="r2", **IDS)
            released = meter.release(failed, partial_usage=Usage(input_tokens=3), error_kind="timeout", latency_ms=9)
            results.append((settled, again.duplicate, released, _events(meter)))
        assert results[0] == results[1]
        events = results[0][3]
        assert [e.event_id for e in events] == ["r1", "r2"] and events[0].tags == (tags or {})
        assert events[1].success is False and events[1].error_kind == "timeout"


@pytest.mark.parametrize(
    "fields",
    [{"latency_ms": -1}, {"latency_ms": True}, {"status_code": 99}, {"metadata": {"x": object()}}, {"user_agent": ""}],
)
def test_direct_settles_refuse_what_the_general_path_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any]
) -> None:
    direct, general = _pair(tmp_path)
    with direct, general:
        errors = []
        for meter in (direct, general):
            if meter is general:
                _general(monkeypatch)
            auth = meter.authorize(provider="openai", model="gpt-4o", input_tokens=100, reservation_id="r1", **IDS)
            with pytest.raises(InvalidUsageError) as caught:
                meter.settle(auth, Usage(input_tokens=1), **fields)
            errors.append((caught.value.field, caught.value.message))
            assert meter.budget_status(user_id="ann")[0].spent == 0  # nothing committed
        assert errors[0] == errors[1]


def test_other_fields_take_the_general_path(tmp_path: Path) -> None:
    direct, _ = _pair(tmp_path)
    with direct:
        auth = direct.authorize(provider="openai", model="gpt-4o", input_tokens=10, reservation_id="r1", **IDS)
        with pytest.raises(InvalidUsageError, match="not an event field"):
            direct.settle(auth, Usage(input_tokens=1), colour="red")
        when = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
        direct.settle(auth, Usage(input_tokens=1), tags={"override": "yes"}, timestamp=when)
        (event,) = _events(direct)
        assert event.tags == {"override": "yes"} and event.timestamp == when
