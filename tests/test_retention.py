"""Retention: presets, archive before delete, crash safety, exact rollups, restore (SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ledger_fixtures import FixedClock, make_event
from spendgate.errors import LedgerError
from spendgate.ledger import (
    CostAdjustment,
    RetentionPolicy,
    RollupRow,
    UsageStore,
    apply_retention,
    read_watermark,
    restore_archive,
)
from spendgate.ledger import _retention_apply as apply_module
from spendgate.settings import Settings

NOW = datetime(2024, 6, 15, 10, 30, tzinfo=UTC)
DAY = timedelta(days=1)


def _seed(store: UsageStore) -> list[str]:
    """Events on 3 old days (40, 39 and 35 days ago) and 2 recent ones; returns the old ids."""
    old: list[str] = []
    for days_ago, count in ((40, 3), (39, 2), (35, 4)):
        for i in range(count):
            event = make_event(timestamp=NOW - days_ago * DAY + timedelta(minutes=7 * i), cost=Decimal(f"0.00{i + 1}"))
            store.record(event)
            old.append(event.event_id)
    for days_ago in (2, 0):
        store.record(make_event(timestamp=NOW - days_ago * DAY - timedelta(hours=1)))
    return old


def _all_rollups(store: UsageStore) -> tuple[list[RollupRow], list[RollupRow]]:
    return store.rollups("hour"), store.rollups("day")


# -- policies and presets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "raw", "aggregate"),
    [("development", 7, 30), ("production", 30, 365), ("enterprise", 90, None)],
)
def test_presets_are_the_seeds_table(environment: str, raw: int, aggregate: int | None) -> None:
    policy = RetentionPolicy.preset(environment)
    assert (policy.raw_days, policy.aggregate_days) == (raw, aggregate)
    settings_policy = RetentionPolicy.from_settings(Settings(environment=environment))  # type: ignore[arg-type]
    assert settings_policy == policy


def test_settings_override_the_preset(tmp_path: Path) -> None:
    settings = Settings(environment="development", retention_raw_days=10, retention_aggregate_days="keep",
                        retention_archive_dir=tmp_path)  # fmt: skip
    policy = RetentionPolicy.from_settings(settings)
    assert (policy.raw_days, policy.aggregate_days, policy.archive_dir) == (10, None, tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retention_raw_days": 0}, "greater than or equal to 1"),
        ({"retention_aggregate_days": 0}, "at least 1 day, or 'keep'"),
        ({"retention_aggregate_days": "forever"}, "keep"),
        ({"retention_raw_days": 60, "retention_aggregate_days": 30}, "aggregate_days (30) must be at least raw_days"),
        (
            {"environment": "development", "retention_raw_days": 31},
            "aggregate_days (30) must be at least raw_days (31)",
        ),
        ({"environment": "staging"}, "development"),
        ({"retention_interval_s": -1}, "greater than or equal to 0"),
        ({"anomaly_config": {"cost_ratio": "0.5"}}, "cost_ratio: must be above 1"),
        ({"anomaly_config": {"nope": 1}}, "unknown key(s) nope"),
        ({"recommendation_config": {"min_confidence": 2}}, "min_confidence: must be from 0 to 1"),
    ],
)
def test_bad_settings_are_refused_clearly(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:  # noqa: PT011  # the message is checked below, as plain text
        Settings(**kwargs)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_settings_build_the_analytics_configs() -> None:
    settings = Settings(anomaly_config={"cost_ratio": "2.5", "scopes": ["global", "team"]},
                        recommendation_config={"min_savings": "10"})  # fmt: skip
    assert settings.anomaly().cost_ratio == Decimal("2.5")
    assert settings.anomaly().scopes == ("global", "team")
    assert settings.recommendation().min_savings == Decimal(10)


def test_cutoffs_are_utc_midnights() -> None:
    policy = RetentionPolicy(raw_days=30, aggregate_days=365)
    assert policy.raw_cutoff(NOW) == datetime(2024, 5, 16, tzinfo=UTC)
    assert policy.aggregate_cutoff(NOW) == datetime(2023, 6, 16, tzinfo=UTC)
    assert RetentionPolicy(raw_days=1, aggregate_days=None).aggregate_cutoff(NOW) is None
    with pytest.raises(ValueError, match="rollups must outlive"):
        RetentionPolicy(raw_days=30, aggregate_days=7)
    with pytest.raises(ValueError, match="naive"):
        policy.raw_cutoff(NOW.replace(tzinfo=None))


# -- applying -----------------------------------------------------------------------------------------


def test_dry_run_counts_and_changes_nothing(ledger_store: UsageStore, tmp_path: Path) -> None:
    _seed(ledger_store)
    policy = RetentionPolicy(raw_days=30, aggregate_days=36, archive_dir=tmp_path / "archive")
    report = apply_retention(ledger_store, policy, NOW, dry_run=True)
    assert (report.events_deleted, report.dry_run) == (9, True)
    assert report.rollups_deleted == 4  # days 40 and 39 (before the 36-day cutoff): one hourly and one daily row each
    assert ledger_store.count() == 11
    assert not (tmp_path / "archive").exists()


def test_raw_deletion_keeps_rollups_exact(ledger_store: UsageStore) -> None:
    old = _seed(ledger_store)
    before = _all_rollups(ledger_store)
    summary_before = ledger_store.summary()
    report = apply_retention(ledger_store, RetentionPolicy(raw_days=30, aggregate_days=None), NOW)
    assert report.events_deleted == len(old) == 9
    assert report.archive_files == []
    assert ledger_store.count() == 2
    assert all(ledger_store.get(event_id) is None for event_id in old)
    assert _all_rollups(ledger_store) == before  # summaries from rollups are unchanged
    day_costs = sum((row.cost for row in ledger_store.rollups("day")), Decimal(0))
    assert day_costs == summary_before.cost
    assert read_watermark(ledger_store.control) == (NOW.replace(hour=0, minute=0) - 30 * DAY, None)


def test_rollup_check_and_rebuild_leave_rollups_of_deleted_days_alone(ledger_store: UsageStore) -> None:
    _seed(ledger_store)
    apply_retention(ledger_store, RetentionPolicy(raw_days=30, aggregate_days=None), NOW)
    before = _all_rollups(ledger_store)
    assert ledger_store.check_rollups() == []  # the 3 deleted days' rollups are not "rows without events"
    assert ledger_store.rebuild_rollups() == 4  # only the kept days' rows: 2 events, an hour and a day each
    assert _all_rollups(ledger_store) == before
    recent = ledger_store.rollups("day", since=NOW - 3 * DAY)
    assert len(recent) == 2 and sum(row.requests for row in recent) == 2


def test_archive_round_trip_restores_the_same_events(ledger_store: UsageStore, tmp_path: Path) -> None:
    old = _seed(ledger_store)
    stored_before = {event_id: ledger_store.get_stored(event_id) for event_id in old}
    rollups_before = _all_rollups(ledger_store)
    policy = RetentionPolicy(raw_days=30, aggregate_days=None, archive_dir=tmp_path, batch_size=2)
    report = apply_retention(ledger_store, policy, NOW)
    assert (report.events_archived, report.events_deleted) == (9, 9)
    assert [p.name for p in report.archive_files] == [
        "usage-2024-05-06.jsonl.gz", "usage-2024-05-07.jsonl.gz", "usage-2024-05-11.jsonl.gz"
    ]  # fmt: skip
    with gzip.open(report.archive_files[0], "rt") as fh:
        assert len(fh.read().splitlines()) == 3
    assert ledger_store.count() == 2
    for path in report.archive_files:
        result = restore_archive(ledger_store, path)
        assert result.duplicates == 0 and result.rollups_added == 0
    assert {event_id: ledger_store.get_stored(event_id) for event_id in old} == stored_before
    assert _all_rollups(ledger_store) == rollups_before  # the rollups still counted them: nothing added twice
    assert ledger_store.check_rollups() == []
    again = restore_archive(ledger_store, report.archive_files[0])
    assert (again.restored, again.duplicates) == (0, 3)


def test_adjustments_are_archived_and_restored(ledger_store: UsageStore, tmp_path: Path) -> None:
    old = _seed(ledger_store)
    first = ledger_store.get(old[0])
    assert first is not None and first.cost is not None
    ledger_store.apply_adjustments([CostAdjustment(event_id=old[0], old_cost=first.cost, new_cost=Decimal("0.5"),
                                                   old_price_version=None, new_price_version="v2")])  # fmt: skip
    stored = ledger_store.get_stored(old[0])
    report = apply_retention(ledger_store, RetentionPolicy(raw_days=30, aggregate_days=None, archive_dir=tmp_path), NOW)
    assert report.adjustments_deleted == 1
    assert ledger_store.adjustments(old[0]) == []
    restore_archive(ledger_store, report.archive_files[0])
    assert ledger_store.get_stored(old[0]) == stored
    restored = ledger_store.adjustments(old[0])
    assert [(a.old_cost, a.new_cost, a.new_price_version) for a in restored] == [(first.cost, Decimal("0.5"), "v2")]


def test_crash_between_archive_and_delete_is_idempotent(
    ledger_store: UsageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _seed(ledger_store)
    archive = tmp_path / "archive"
    policy = RetentionPolicy(raw_days=30, aggregate_days=None, archive_dir=archive)
    real_delete = apply_module._delete_events

    def crash(*args: object, **kwargs: object) -> tuple[int, int]:
        raise LedgerError("simulated crash before the delete")

    monkeypatch.setattr(apply_module, "_delete_events", crash)
    with pytest.raises(LedgerError, match="simulated crash"):
        apply_retention(ledger_store, policy, NOW)
    assert ledger_store.count() == 11  # archived the first day, deleted nothing
    monkeypatch.setattr(apply_module, "_delete_events", real_delete)
    report = apply_retention(ledger_store, policy, NOW)
    assert report.events_deleted == 9
    lines = [line for path in sorted(archive.glob("*.gz")) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert len(lines) == 9  # the first day archived twice, its events written once
    assert sorted(archive.glob("usage-*")) == sorted(report.archive_files)
    assert list(archive.glob("*.tmp")) == []  # no temporary files left
    assert apply_retention(ledger_store, policy, NOW).events_deleted == 0  # a third run finds nothing
    for path in report.archive_files:
        restore_archive(ledger_store, path)
    assert {e.event_id for e in ledger_store.iter_events()} >= set(old)


def test_late_events_for_an_archived_day_are_merged(ledger_store: UsageStore, tmp_path: Path) -> None:
    _seed(ledger_store)
    policy = RetentionPolicy(raw_days=30, aggregate_days=None, archive_dir=tmp_path)
    first = apply_retention(ledger_store, policy, NOW)
    late = make_event(timestamp=NOW - 40 * DAY + timedelta(hours=5))
    ledger_store.record(late)
    second = apply_retention(ledger_store, policy, NOW)
    assert (second.events_archived, second.events_deleted) == (1, 1)
    assert second.archive_files == [first.archive_files[0]]
    assert len(gzip.decompress(first.archive_files[0].read_bytes()).splitlines()) == 4


def test_aggregates_crossings_and_hooks(ledger_store: UsageStore, tmp_path: Path) -> None:
    _seed(ledger_store)
    ledger_store.control.record_crossing("lim", "w-old", "80", NOW - 50 * DAY, {})
    ledger_store.control.record_crossing("lim", "w-new", "80", NOW - 1 * DAY, {})
    calls: list[object] = []

    def prune(cutoff: datetime) -> int:
        calls.append(cutoff)
        return 7

    policy = RetentionPolicy(raw_days=30, aggregate_days=36, archive_dir=tmp_path)
    report = apply_retention(ledger_store, policy, NOW, before_delete=lambda: calls.append("before"),
                             prune_aggregates=prune)  # fmt: skip
    cutoff = NOW.replace(hour=0, minute=0) - 36 * DAY
    assert calls == ["before", cutoff]
    assert (report.crossings_deleted, report.hook_pruned, report.rollups_deleted) == (1, 7, 4)
    assert [c.window_key for c in ledger_store.control.crossings()] == ["w-new"]
    assert min(row.bucket_start for row in ledger_store.rollups("hour")) >= cutoff
    assert read_watermark(ledger_store.control) == (NOW.replace(hour=0, minute=0) - 30 * DAY, cutoff)
    # Restoring a day whose rollups were pruned adds them back, exactly once.
    restored = restore_archive(ledger_store, report.archive_files[0])
    assert restored.rollups_added == 3
    day = ledger_store.rollups("day", since=NOW - 41 * DAY, until=NOW - 39 * DAY)
    assert [(row.requests, row.cost) for row in day] == [(3, Decimal("0.006"))]


def test_retention_refuses_a_store_it_cannot_reach(ledger_clock: FixedClock) -> None:
    with pytest.raises(LedgerError, match="SQL ledger"):
        apply_retention(object(), RetentionPolicy(raw_days=1, aggregate_days=None), NOW)  # type: ignore[arg-type]


def test_a_damaged_archive_is_reported(ledger_store: UsageStore, tmp_path: Path) -> None:
    path = tmp_path / "usage-2024-01-01.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"not": "an event"}\n'))
    with pytest.raises(LedgerError, match="line 1"):
        restore_archive(ledger_store, path)
    path.write_bytes(b"not gzip")
    with pytest.raises(LedgerError, match="cannot read archive"):
        restore_archive(ledger_store, path)


def test_a_failed_archive_write_deletes_nothing_and_keeps_the_old_file(
    ledger_store: UsageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(ledger_store)
    policy = RetentionPolicy(raw_days=30, aggregate_days=None, archive_dir=tmp_path)
    first = apply_retention(ledger_store, policy, NOW).archive_files[0]
    content = first.read_bytes()
    ledger_store.record(make_event(timestamp=NOW - 40 * DAY + timedelta(hours=2)))

    def disk_full(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(LedgerError, match=r"cannot write archive .*No space left"):
        apply_retention(ledger_store, policy, NOW)
    assert first.read_bytes() == content
    assert list(tmp_path.glob("*.tmp")) == list(tmp_path.glob(".*.tmp")) == []
    assert ledger_store.count() == 3  # the late event is still there, with the 2 recent ones


def test_the_watermark_moves_only_after_the_deletes(ledger_store: UsageStore) -> None:
    _seed(ledger_store)

    def broken(cutoff: datetime) -> int:
        raise LedgerError("hook failed")

    policy = RetentionPolicy(raw_days=30, aggregate_days=36)
    with pytest.raises(LedgerError, match="hook failed"):
        apply_retention(ledger_store, policy, NOW, prune_aggregates=broken)
    assert read_watermark(ledger_store.control) == (None, None)  # a restore will not re-add rollups yet
    apply_retention(ledger_store, policy, NOW)
    assert read_watermark(ledger_store.control)[1] == NOW.replace(hour=0, minute=0) - 36 * DAY
