"""What analytics queries return: totals, metric statistics, and their JSON forms.

Money (``cost``, ``cache_savings``, sums and averages of cost) is an exact ``Decimal``. Percentiles
come from sketches (within 1 %); the minimum and maximum of cost too (cost can change after
recording); standard deviations come from float sums of squares. Those approximate statistics of cost
are ``Decimal`` values rounded to 6 significant digits, never floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from spendgate.analytics._measures import COST, LATENCY, TOKENS, Agg
from spendgate.ledger._analytics_schema import MEASURE_COLUMNS, SUM_COLUMNS
from spendgate.ledger._money import from_units

__all__ = [
    "METRICS",
    "METRIC_MEASURES",
    "TOTALS_MEASURES",
    "Metric",
    "Stats",
    "Totals",
    "jsonable",
    "stats_of",
    "totals_of",
]

#: What a time series measures per bucket.
Metric = Literal["requests", "cost", "tokens", "latency"]
METRICS: tuple[Metric, ...] = get_args(Metric)
_I = {name: i for i, name in enumerate(MEASURE_COLUMNS)}
#: The measures :func:`totals_of` reads (a query returning totals sums only these from cubes).
TOTALS_MEASURES = SUM_COLUMNS
#: The measures :func:`stats_of` reads per metric.
METRIC_MEASURES: dict[Metric, tuple[str, ...]] = {
    "requests": ("requests",),
    "cost": ("requests", "unpriced_requests", "cost", "cost_sq"),
    "latency": ("latency_requests", "latency_sum", "latency_sq", "latency_min", "latency_max"),
    "tokens": ("requests", "input_tokens", "output_tokens", "tokens_sq", "tokens_min", "tokens_max"),
}
_QUANTILES = (0.5, 0.95, 0.99)
_MONEY = Decimal(1).scaleb(-12)


@dataclass(frozen=True, slots=True, kw_only=True)
class Totals:
    """Sums over a set of events. ``cost`` counts priced events; ``tokens`` is input + output."""

    requests: int
    successes: int
    failures: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: Decimal
    unpriced_requests: int
    estimated_requests: int
    cached_requests: int
    cache_savings: Decimal
    latency_requests: int
    avg_latency_ms: float | None

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def totals_of(values: list[Any]) -> Totals:
    """The totals of one measure vector."""
    n = values[_I["latency_requests"]]
    return Totals(
        **{name: values[_I[name]] for name in ("requests", "successes", "failures", "input_tokens", "output_tokens")},
        **{name: values[_I[name]] for name in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")},
        cost=from_units(values[_I["cost"]]),
        unpriced_requests=values[_I["unpriced_requests"]],
        estimated_requests=values[_I["estimated_requests"]],
        cached_requests=values[_I["cached_requests"]],
        cache_savings=from_units(values[_I["cache_savings"]]),
        latency_requests=n,
        avg_latency_ms=values[_I["latency_sum"]] / n if n else None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """One metric over a set of events: count, sum, avg, min, max, stddev, p50, p95, p99.

    ``count`` is how many events carry the metric (priced events for cost, events with a latency for
    latency). For ``requests`` only ``count`` and ``sum`` are set.
    """

    count: int
    sum: int | Decimal
    avg: float | Decimal | None = None
    min: float | Decimal | None = None
    max: float | Decimal | None = None
    stddev: float | Decimal | None = None
    p50: float | Decimal | None = None
    p95: float | Decimal | None = None
    p99: float | Decimal | None = None


def _stddev(n: int, total: float, squares: float) -> float | None:
    if n <= 0:
        return None
    mean = total / n
    return math.sqrt(max(0.0, squares / n - mean * mean))


def _approx(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(f"{value:.6g}")


def stats_of(agg: Agg, metric: Metric) -> Stats:
    """The statistics of ``metric`` in one aggregate (percentiles need one built with sketches)."""
    v = agg.values
    sketches = agg.sketches if {"cost": COST, "latency": LATENCY}.get(metric, TOKENS) in agg.slots else None
    if metric == "requests":
        return Stats(count=v[_I["requests"]], sum=v[_I["requests"]])
    if metric == "cost":
        n = v[_I["requests"]] - v[_I["unpriced_requests"]]
        total = from_units(v[_I["cost"]])
        quantiles = sketches[COST].quantiles(_QUANTILES) if sketches else [None] * 3
        return Stats(
            count=n,
            sum=total,
            avg=(total / n).quantize(_MONEY) if n else None,
            min=_approx(sketches[COST].extreme(False)) if sketches else None,
            max=_approx(sketches[COST].extreme(True)) if sketches else None,
            stddev=_approx(_stddev(n, v[_I["cost"]] / 1e12, v[_I["cost_sq"]])),
            p50=_approx(quantiles[0]),
            p95=_approx(quantiles[1]),
            p99=_approx(quantiles[2]),
        )
    if metric == "latency":
        n, total, squares, low, high, slot = (
            v[_I["latency_requests"]], v[_I["latency_sum"]], v[_I["latency_sq"]],
            v[_I["latency_min"]], v[_I["latency_max"]], LATENCY,
        )  # fmt: skip
    else:
        n, total, squares, low, high, slot = (
            v[_I["requests"]], v[_I["input_tokens"]] + v[_I["output_tokens"]], v[_I["tokens_sq"]],
            v[_I["tokens_min"]], v[_I["tokens_max"]], TOKENS,
        )  # fmt: skip
    quantiles = sketches[slot].quantiles(_QUANTILES) if sketches else [None] * 3
    return Stats(
        count=n,
        sum=total,
        avg=total / n if n else None,
        min=low,
        max=high,
        stddev=_stddev(n, float(total), squares),
        p50=_round(quantiles[0]),
        p95=_round(quantiles[1]),
        p99=_round(quantiles[2]),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def jsonable(value: Any) -> Any:
    """A result as JSON: dataclasses as objects, Decimals as exact strings, datetimes as ISO 8601."""
    if hasattr(value, "__dataclass_fields__"):
        out = {name: jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
        if isinstance(value, Totals):
            out["tokens"] = value.tokens
        return out
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
