"""The query planner: which cube answers a query, which time segments come from which rows.

A query is a UTC period ``[since, until)``, equality filters and a grouping. The planner picks the
smallest cube whose key covers the filters and the grouping (sketch cubes only when percentiles are
needed), then cuts the period into segments: whole days from day rows, whole hours from hour rows,
whole minutes from minute rows (each only where the cube keeps it and the grouping allows it) and the
ragged rest from raw events. No covering cube: the whole period is a raw scan. Week and month buckets
are built from day rows (weeks start on Monday, ISO); buckets are UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from spendgate.ledger._analytics_schema import CUBES, VALUE_LIMIT, CubeSpec

__all__ = [
    "ENTITY_FILTERS",
    "PLAIN_FILTERS",
    "TIME_GROUPS",
    "Group",
    "Plan",
    "Query",
    "Segment",
    "bucket_key",
    "plan",
]

#: Filters that are columns of the main cube.
PLAIN_FILTERS = ("team_id", "provider", "model", "request_type", "currency")
#: Filters on entity values, and the entity dimension each selects.
ENTITY_FILTERS = {"user_id": "user", "api_key_id": "api_key", "tag": "tag"}
#: Time groupings: cube granularities plus week, month and hour of week (``how``).
TIME_GROUPS = ("minute", "hour", "day", "week", "month", "how")
_ORDER = ("day", "hour", "minute")
_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
# The finest cube granularity a time grouping may read (rows coarser than the output bucket cannot be split).
_COARSEST = {"minute": "minute", "hour": "hour", "how": "hour", "day": "day", "week": "day", "month": "day"}


@dataclass(frozen=True, slots=True)
class Group:
    """What to group by: plain columns, one entity dimension's values, and/or a time bucket."""

    columns: tuple[str, ...] = ()
    entity: str | None = None
    time: str | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """A planned question: period, filters (column -> value; entity ones by their filter name), grouping."""

    since: datetime
    until: datetime
    filters: Mapping[str, str] = field(default_factory=dict)
    group: Group = Group()
    sketches: bool = False
    #: Which sketches (0 latency, 1 cost, 2 tokens) to read from cubes when ``sketches`` is set.
    slots: tuple[int, ...] = (0, 1, 2)
    #: Which measures (``MEASURE_COLUMNS`` names) to sum from cubes; ``None``: all. The others are incomplete.
    measures: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """``[since, until)`` read from ``granularity`` rows of the plan's cube, or raw events (``None``)."""

    granularity: str | None
    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class Plan:
    """The cube (``None``: raw scan), its filters as cube columns, the grouping columns and the segments."""

    cube: CubeSpec | None
    cube_filters: Mapping[str, str]
    group_columns: tuple[str, ...]
    segments: tuple[Segment, ...]

    @property
    def source(self) -> str:
        """A short description, e.g. ``"analytics_main: day, hour + raw"``."""
        used = [s.granularity for s in self.segments if s.granularity is not None]
        raw = any(s.granularity is None for s in self.segments)
        if self.cube is None or not used:
            return "raw"
        grains = ", ".join(g for g in _ORDER if g in used)
        return f"{self.cube.name}: {grains}" + (" + raw" if raw else "")


def _floor(moment: datetime, granularity: str) -> datetime:
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil(moment: datetime, granularity: str) -> datetime:
    floored = _floor(moment, granularity)
    return floored if floored == moment else floored + _STEP[granularity]


def _segments(since: datetime, until: datetime, grains: tuple[str, ...]) -> list[Segment]:
    if since >= until:
        return []
    if not grains:
        return [Segment(None, since, until)]
    granularity, finer = grains[0], grains[1:]
    start, end = _ceil(since, granularity), _floor(until, granularity)
    if start >= end:
        return _segments(since, until, finer)
    return [*_segments(since, start, finer), Segment(granularity, start, end), *_segments(end, until, finer)]


def _entity(query: Query) -> tuple[str | None, bool]:
    """The entity dimension the query needs (``None``: none) and whether it can be answered from a cube."""
    wanted = {ENTITY_FILTERS[name] for name in query.filters if name in ENTITY_FILTERS}
    if query.group.entity is not None:
        wanted.add(query.group.entity)
    if len(wanted) > 1:
        return None, False
    tag = query.filters.get("tag")
    # Grouped by tag with a tag filter: an event's other tags count too, and cube rows hold one tag each.
    grouped_by_tag = tag is not None and query.group.entity == "tag"
    return (next(iter(wanted)) if wanted else None), tag is None or (len(tag) <= VALUE_LIMIT and not grouped_by_tag)


def plan(query: Query) -> Plan:
    """The cheapest way to answer ``query`` exactly."""
    entity, coverable = _entity(query)
    plain = {name: value for name, value in query.filters.items() if name in PLAIN_FILTERS}
    needed = set(plain) | set(query.group.columns)
    cube_filters: dict[str, str] = dict(plain)
    group_columns = list(query.group.columns)
    if entity is not None:
        needed |= {"dimension", "value"}
        cube_filters["dimension"] = entity
        value = next((v for name, v in query.filters.items() if ENTITY_FILTERS.get(name) == entity), None)
        if value is not None:
            cube_filters["value"] = value
    if query.group.entity is not None:
        group_columns.append("value")
    chosen = None
    if coverable:
        for spec in CUBES.values():
            entity_cube = "dimension" in spec.dims
            if (
                needed <= set(spec.dims)
                and (spec.sketches or not query.sketches)
                and entity_cube == (entity is not None)
            ):
                chosen = spec
                break
    if query.group.time is not None:
        group_columns.append("bucket_start")
    if chosen is None:
        return Plan(None, cube_filters, tuple(group_columns), (Segment(None, query.since, query.until),))
    limit = _ORDER.index(_COARSEST[query.group.time]) if query.group.time else 0
    grains = tuple(g for g in _ORDER[limit:] if g in chosen.granularities)
    return Plan(chosen, cube_filters, tuple(group_columns), tuple(_segments(query.since, query.until, grains)))


def bucket_key(time_group: str) -> Callable[[datetime], Any]:
    """Maps a (UTC) timestamp or bucket start to its output bucket: a datetime, or (weekday, hour) for ``how``."""
    if time_group == "how":
        return lambda moment: (moment.weekday(), moment.hour)
    if time_group == "week":
        return lambda moment: _floor(moment, "day") - timedelta(days=moment.weekday())
    if time_group == "month":
        return lambda moment: _floor(moment, "day").replace(day=1)
    return lambda moment: _floor(moment.astimezone(UTC), time_group)
