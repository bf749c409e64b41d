"""Where the money goes next: month-end forecasts, anomaly detection and cost recommendations.

Read from the ledger's rollups and events (see ``docs/insights.md``). The dashboard queries (summaries,
breakdowns, time series with percentiles) are still the admin API's usage routes; richer ones come next.
"""

from spendgate.analytics._analytics import (
    Analytics,
    Breakdown,
    BreakdownRow,
    Efficiency,
    EfficiencyRow,
    Filters,
    Heatmap,
    Summary,
    TimePoint,
    TimeSeries,
)
from spendgate.analytics._anomaly import (
    Anomaly,
    AnomalyConfig,
    detect_anomalies,
    list_anomalies,
    prune_anomalies,
    record_anomalies,
)
from spendgate.analytics._forecast import Forecast, ForecastConfig, forecast_month, limit_run_outs, run_out_at
from spendgate.analytics._recommend import (
    Recommendation,
    RecommendationConfig,
    RecommendationReport,
    Recommender,
    recommend,
)
from spendgate.analytics._refresh import Pending, RefreshJob, pending, prune_cubes, refresh
from spendgate.analytics._results import Stats, Totals
from spendgate.analytics._retention_hooks import retention_hooks
from spendgate.analytics._sketch import RELATIVE_ERROR

__all__ = [
    "RELATIVE_ERROR",
    "Analytics",
    "Anomaly",
    "AnomalyConfig",
    "Breakdown",
    "BreakdownRow",
    "Efficiency",
    "EfficiencyRow",
    "Filters",
    "Forecast",
    "ForecastConfig",
    "Heatmap",
    "Pending",
    "Recommendation",
    "RecommendationConfig",
    "RecommendationReport",
    "Recommender",
    "RefreshJob",
    "Stats",
    "Summary",
    "TimePoint",
    "TimeSeries",
    "Totals",
    "detect_anomalies",
    "forecast_month",
    "limit_run_outs",
    "list_anomalies",
    "pending",
    "prune_cubes",
    "prune_anomalies",
    "record_anomalies",
    "recommend",
    "refresh",
    "retention_hooks",
    "run_out_at",
]
