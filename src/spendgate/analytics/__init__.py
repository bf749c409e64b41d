"""Where the money goes next: month-end forecasts, anomaly detection and cost recommendations.

Read from the ledger's rollups and events (see ``docs/insights.md``). The dashboard queries (summaries,
breakdowns, time series with percentiles) are still the admin API's usage routes; richer ones come next.
"""

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

__all__ = [
    "Anomaly",
    "AnomalyConfig",
    "Forecast",
    "ForecastConfig",
    "Recommendation",
    "RecommendationConfig",
    "RecommendationReport",
    "Recommender",
    "detect_anomalies",
    "forecast_month",
    "limit_run_outs",
    "list_anomalies",
    "prune_anomalies",
    "record_anomalies",
    "recommend",
    "run_out_at",
]
