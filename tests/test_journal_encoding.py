"""The journal's line format: the same JSON object as the plain encoding, read back into the same event."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from spendgate import Usage
from spendgate.ledger import UsageEvent
from spendgate.ledger import _journal as journal
from spendgate.ledger._journal import event_from_json, event_to_json

_SPECIAL = {"usage", "timestamp", "tags", "metadata", "cost", "cache_savings"}


def reference(event: UsageEvent) -> dict[str, Any]:
    """What a line must hold: every field not at its default, Decimals and counts as strings."""
    out: dict[str, Any] = {
        f.name: getattr(event, f.name)
        for f in fields(UsageEvent)
        if f.name not in _SPECIAL and getattr(event, f.name) != f.default
    }
    out["usage"] = {f.name: str(getattr(event.usage, f.name)) for f in fields(Usage) if getattr(event.usage, f.name)}
    out["timestamp"] = event.timestamp.isoformat()
    for name in ("cost", "cache_savings"):
        if getattr(event, name) is not None:
            out[name] = str(getattr(event, name))
    if event.tags:
        out["tags"] = dict(event.tags)
    if event.metadata:
        out["metadata"] = dict(event.metadata)
    return out


TEXT = st.text(min_size=1, max_size=12)
OPTIONAL = st.none() | TEXT
EVENTS = st.builds(
    UsageEvent,
    event_id=TEXT,
    timestamp=st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2090, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
    ),
    provider=TEXT,
    model=TEXT,
    usage=st.builds(
        Usage,
        input_tokens=st.integers(0, 10**12),
        output_tokens=st.integers(0, 10**6),
        audio_seconds=st.decimals(min_value=0, max_value=10**6, places=3),
    ),
    cost=st.none() | st.decimals(min_value=0, max_value=10**6, places=12),
    cache_savings=st.none() | st.decimals(min_value=0, max_value=10, places=7),
    user_id=OPTIONAL,
    team_id=OPTIONAL,
    prompt_hash=OPTIONAL,
    user_agent=OPTIONAL,
    action=st.none() | st.sampled_from(["allow", "warn"]),
    latency_ms=st.none() | st.integers(0, 10**9),
    request_bytes=st.none() | st.integers(0, 10**9),
    response_bytes=st.none() | st.integers(0, 10**9),
    status_code=st.none() | st.integers(100, 599),
    success=st.booleans(),
    cached=st.booleans(),
    tags=st.dictionaries(TEXT, TEXT, max_size=2),
    metadata=st.dictionaries(TEXT, st.integers() | st.lists(st.booleans(), max_size=2), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_a_line_is_the_plain_json_of_the_event_and_reads_back(event: UsageEvent) -> None:
    line = event_to_json(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    assert json.loads(line) == reference(event)
    assert event_from_json(line) == event
    assert event_to_json(event) == line  # the remembered parts give the same line again


def test_the_remembered_parts_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(journal, "_FRAGMENTS_MAX", 3)
    monkeypatch.setattr(journal, "_fragments", {})
    start = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    for i in range(10):
        event = UsageEvent(event_id=f"e{i}", timestamp=start + timedelta(seconds=i, microseconds=i),
                           provider="openai", model="gpt-4o", usage=Usage(input_tokens=i), user_id=f"u{i}")  # fmt: skip
        assert event_from_json(event_to_json(event)) == event
        assert len(journal._fragments) <= 3
        assert journal._second == [(start + timedelta(seconds=i), start + timedelta(seconds=i + 1),
                                    f"2026-03-10T12:00:{i:02d}")]  # only the last second is remembered  # fmt: skip


def test_whole_seconds_and_other_zones() -> None:
    plain = datetime(2026, 3, 10, 12, 0, 5, tzinfo=UTC)
    for when in (plain, plain.replace(microsecond=7), plain.astimezone(timezone(timedelta(hours=9)))):
        event = UsageEvent(event_id="x", timestamp=when, provider="p", model="m", usage=Usage(), cost=Decimal("1E-12"))
        assert json.loads(event_to_json(event))["timestamp"] == event.timestamp.isoformat()
        assert event_from_json(event_to_json(event)).timestamp == when
