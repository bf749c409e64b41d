"""`Settings`: every knob, built once (from arguments, `SPENDGATE_*` variables or a file) and passed down.

Nothing in spendgate reads configuration from module globals; build a `Settings` and hand it to
:class:`~spendgate.Meter` (or let the Meter build one from its keyword arguments and the environment).
"""

from __future__ import annotations

import dataclasses
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

if TYPE_CHECKING:
    from spendgate.analytics import AnomalyConfig, RecommendationConfig

__all__ = ["Environment", "Settings", "Upstream"]

#: Deployment environments; each has its own retention preset (see docs/retention.md).
Environment = Literal["development", "production", "enterprise"]
_C = TypeVar("_C")


def _config_object(cls: type[_C], values: dict[str, Any], setting: str) -> _C:
    """``cls(**values)`` with JSON-ish values converted (strings to Decimal, lists to tuples...).

    Unknown keys and invalid values raise ValueError naming ``setting`` and the key.
    """
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{setting}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return TypeAdapter(cls).validate_python(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ValueError(f"{setting}: {problems}") from None


class Upstream(BaseModel):
    """One provider the gateway forwards to: any OpenAI-compatible server (Ollama, vLLM) can be one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(description="e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the provider's key.")
    wire: Literal["openai", "anthropic"] = Field(default="openai", description="The API's wire format.")
    models: list[str] = Field(default_factory=list, description="Model name prefixes routed to this provider.")
    timeout_s: float = Field(default=120.0, gt=0, description="Seconds before an upstream call times out.")


def _default_upstreams() -> dict[str, Upstream]:
    return {
        "openai": Upstream(
            base_url="https://api.openai.com/v1",
            api_key_env="OPENAI_API_KEY",
            models=["gpt-", "chatgpt-", "o1", "o3", "o4", "text-embedding-"],
        ),
        "anthropic": Upstream(
            base_url="https://api.anthropic.com", api_key_env="ANTHROPIC_API_KEY", wire="anthropic", models=["claude"]
        ),
    }


class Settings(BaseSettings):
    """spendgate's configuration.

    From, highest priority first: keyword arguments, ``SPENDGATE_*`` environment variables, the TOML or
    YAML file named by ``SPENDGATE_CONFIG`` (same field names), then the defaults.
    """

    model_config = SettingsConfigDict(env_prefix="SPENDGATE_", extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("SPENDGATE_CONFIG")
        if not path:
            return (init_settings, env_settings)
        if not Path(path).is_file():
            raise ValueError(f"SPENDGATE_CONFIG={path!r}: no such file")
        if path.endswith((".yaml", ".yml")):
            return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path))

    database_url: str = Field(
        default="sqlite:///spendgate.db",
        description="Ledger URL: sqlite:///path.db (embedded default) or postgresql+psycopg://user@host/db.",
    )
    durability: Literal["process", "power"] = Field(
        default="process",
        description="'process': a recorded event survives the process being killed; 'power': also a power loss "
        "(fsync on every SQLite commit).",
    )
    price_file: Path | None = Field(
        default=None, description="TOML or YAML file with price overrides, a fallback price and exchange rates."
    )
    chars_per_token: dict[str, float] = Field(
        default_factory=dict,
        description="Characters per token for providers without a public tokenizer, e.g. {'anthropic': 3.5}.",
    )
    token_cache_size: int = Field(default=4096, ge=0, description="Entries in the token-count LRU cache.")
    record_unpriced: bool = Field(
        default=True,
        description="Record usage of a model with no known price as unpriced (re-ratable later) instead of failing.",
    )
    exchange_rates: dict[str, Decimal] = Field(
        default_factory=dict, description="Units of each currency per 1 USD, e.g. {'EUR': '0.92'}."
    )
    journal_dir: Path | None = Field(
        default=None,
        description="Write-ahead journal for settles: acknowledged on append, written to the ledger in batches. "
        "Must be on storage that outlives the process. None: every settle commits to the ledger directly.",
    )
    journal_writer: Literal["process", "thread"] = Field(
        default="process",
        description="Who writes journaled settles to the ledger: 'process' (a separate writer process, so the "
        "ledger writes cost the serving process nothing) or 'thread' (a background thread; always used for an "
        "in-memory SQLite ledger, which another process cannot open).",
    )
    response_cache_url: str = Field(
        default="memory://",
        description="The gateway's response cache: memory:// (one per worker) or redis://host:6379/0[?prefix=...] "
        "(shared by every worker and replica).",
    )
    response_cache_ttl_s: int = Field(default=3600, ge=1, description="How long a cached answer is served.")
    response_cache_max_entries: int = Field(
        default=1024, ge=1, description="Answers kept by a memory:// response cache (least recently used dropped)."
    )
    counters_url: str = Field(
        default="memory://",
        description="Live budget counters: memory:// (one process) or redis://host:6379/0 (shared by replicas).",
    )
    hold_ttl_s: float = Field(
        default=600.0, gt=0, description="Seconds before a reservation that was never settled lapses."
    )
    output_token_cap: int = Field(
        default=4096,
        ge=1,
        description="Worst-case output tokens assumed when a request sets no max_tokens and the model's is unknown.",
    )
    max_output_tokens: dict[str, int] = Field(
        default_factory=dict,
        description="Most output tokens per model (by name prefix), correcting or extending spendgate's table; "
        "a request's worst case uses it when the request sets no max_tokens.",
    )
    policy_refresh_s: float = Field(
        default=1.0,
        ge=0,
        description="How often a Meter re-reads limits, grants and breakers stored by other processes.",
    )
    fail_open_levels: frozenset[Literal["hard", "soft", "adaptive"]] = Field(
        default=frozenset({"soft"}),
        description="Limit levels that allow requests (and log) when the counter store is unreachable; "
        "the others deny (fail closed).",
    )
    default_tier: str | None = Field(
        default=None,
        description="Tier of requesters that name none; its default limits then apply to them. None: no tier "
        "defaults for requesters without a tier.",
    )
    queue_enabled: bool = Field(default=False, description="Exhausted tier budgets QUEUE requests instead of DENY.")
    queue_priorities: dict[str, int] = Field(
        default_factory=lambda: {"enterprise": 2, "premium": 1, "free": 0},
        description="Deferred calls of higher-priority tiers run first.",
    )
    queue_max_age_s: float = Field(default=86_400.0, gt=0, description="Deferred calls older than this expire.")
    tier_table: dict[str, Any] | None = Field(
        default=None, description="The tier policy table (TierTable.to_dict() form); default: the seeds' table."
    )
    downgrade_chains: dict[str, list[str]] | None = Field(
        default=None, description="Model -> cheaper 'provider/model' alternatives; default: the seeds' chains."
    )

    environment: Environment = Field(
        default="production",
        description="development, production or enterprise: picks the retention preset (raw 7/30/90 days, "
        "aggregates 30/365 days/kept).",
    )
    retention_raw_days: int | None = Field(
        default=None, ge=1, description="Days raw usage events are kept; None: the environment's preset."
    )
    retention_aggregate_days: int | Literal["keep"] | None = Field(
        default=None,
        description="Days rollups, threshold crossings and anomalies are kept, or 'keep' (forever); None: the "
        "environment's preset. Never fewer than the raw days.",
    )
    retention_archive_dir: Path | None = Field(
        default=None,
        description="Archive raw events here (gzip JSON lines, one file per UTC day) before deleting them; "
        "None: delete without archiving.",
    )
    retention_interval_s: float = Field(
        default=86_400.0, ge=0, description="How often the service applies retention; 0 disables the job."
    )
    anomaly_interval_s: float = Field(
        default=3_600.0, ge=0, description="How often the service detects anomalies; 0 disables the job."
    )
    ledger_failure_hold_s: float = Field(
        default=5.0,
        ge=0,
        description="After a ledger write fails, refuse gateway calls for this long before forwarding them"
        " (503 ledger_unavailable) rather than serve them unmetered; 0 keeps forwarding.",
    )
    reconcile_interval_s: float = Field(
        default=300.0,
        ge=0,
        description="How often the service compares live budget counters with the ledger and corrects drift"
        " (Meter.reconcile); 0 disables the job.",
    )
    reconcile_grace_s: float = Field(
        default=2.0,
        ge=0,
        description="A counter ahead of the ledger is lowered only if it is still the same this much later (other"
        " workers' journaled settles reach the ledger meanwhile).",
    )
    anomaly_config: dict[str, Any] = Field(
        default_factory=dict, description="AnomalyConfig fields, e.g. {'cost_ratio': '2.5', 'min_requests': 50}."
    )
    recommendation_config: dict[str, Any] = Field(
        default_factory=dict, description="RecommendationConfig fields, e.g. {'min_savings': '10'}."
    )
    analytics_refresh_s: float = Field(
        default=10.0, ge=0, description="Seconds between moves of new events into the analytics cubes (0: never)."
    )
    alerting: dict[str, Any] = Field(
        default_factory=dict,
        description="AlertingConfig fields (channels, rules for a fresh install, interval_s, ...): see docs/alerts.md.",
    )
    analytics_exclude_pii: bool = Field(
        default=False,
        description="Usage and analytics answers name users by pseudonym and exports leave out client addresses,"
        " user agents and metadata, for every caller (per request: ?exclude_pii=true).",
    )
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics at GET /metrics.")
    metrics_public: bool = Field(
        default=False, description="Serve /metrics without an API key (otherwise an admin or viewer key)."
    )

    auth_failure_limit: int = Field(
        default=50, ge=0, description="Refused API keys from one client address that lock it out (0: never)."
    )
    auth_failure_window_s: float = Field(
        default=60.0, gt=0, description="The span in which auth_failure_limit refusals lock an address out."
    )
    auth_lockout_s: float = Field(
        default=300.0, ge=0, description="How long a locked-out address gets 429 on every request."
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys (SPENDGATE_ENCRYPTION_KEYS) that encrypt users' names and emails"
        " at rest; the first encrypts, all decrypt (rotation). `spendgate encryption new-key` makes one.",
    )
    master_key: SecretStr | None = Field(
        default=None, description="Bootstrap admin key for the service (SPENDGATE_MASTER_KEY); at least 16 characters."
    )
    max_request_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest request body the service accepts (bytes); larger ones get 413 naming `body`.",
    )
    host: str = Field(default="127.0.0.1", description="Address the service listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port the service listens on.")
    upstreams: dict[str, Upstream] = Field(
        default_factory=_default_upstreams, description="Providers the gateway forwards to, by provider id."
    )
    openai_base_url: str | None = Field(
        default=None, description="Shortcut for upstreams.openai.base_url (OpenAI's convention: ends in /v1)."
    )
    anthropic_base_url: str | None = Field(
        default=None, description="Shortcut for upstreams.anthropic.base_url (no /v1: spendgate adds /v1/messages)."
    )

    @model_validator(mode="after")
    def _base_url_shortcuts(self) -> Settings:
        upstreams = dict(self.upstreams)
        for provider, url in (("openai", self.openai_base_url), ("anthropic", self.anthropic_base_url)):
            if url is None:
                continue
            current = upstreams.get(provider) or _default_upstreams()[provider]
            upstreams[provider] = current.model_copy(update={"base_url": url.rstrip("/")})
        object.__setattr__(self, "upstreams", upstreams)
        return self

    @field_validator("encryption_keys")
    @classmethod
    def _encryption_keys_valid(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None  # set but empty: no encryption
        if value is not None:
            from spendgate._pii import FieldCipher
            from spendgate.errors import ConfigurationError

            try:
                FieldCipher.from_text(value.get_secret_value())
            except ConfigurationError as error:
                raise ValueError(str(error)) from None
        return value

    @field_validator("master_key")
    @classmethod
    def _master_key_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be a URL such as sqlite:///spendgate.db or postgresql+psycopg://user@host/db")
        return value

    @field_validator("exchange_rates")
    @classmethod
    def _rates_positive(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, rate in value.items():
            if not rate.is_finite() or rate <= 0:
                raise ValueError(f"rate for {currency} must be a positive number")
        return {k.upper(): v for k, v in value.items()}

    @field_validator("retention_aggregate_days")
    @classmethod
    def _aggregate_days_positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1 day, or 'keep'")
        return value

    @field_validator("anomaly_config")
    @classmethod
    def _anomaly_config_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        from spendgate.analytics import AnomalyConfig

        _config_object(AnomalyConfig, value, "anomaly_config")
        return value

    @field_validator("recommendation_config")
    @classmethod
    def _recommendation_config_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        from spendgate.analytics import RecommendationConfig

        _config_object(RecommendationConfig, value, "recommendation_config")
        return value

    @field_validator("alerting")
    @classmethod
    def _alerting_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        from pydantic import ValidationError as PydanticValidationError

        from spendgate.alerts import AlertingConfig

        try:
            AlertingConfig.model_validate(value)
        except PydanticValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg'].removeprefix('Value error, ')}"
                for err in exc.errors()
            )
            raise ValueError(f"alerting: {problems}") from None
        return value

    @model_validator(mode="after")
    def _retention_consistent(self) -> Settings:
        from spendgate.ledger import RetentionPolicy

        try:
            RetentionPolicy.from_settings(self)
        except ValueError as exc:
            raise ValueError(f"retention: {exc}") from None
        return self

    def anomaly(self) -> AnomalyConfig:
        """The :class:`~spendgate.analytics.AnomalyConfig` built from :attr:`anomaly_config`."""
        from spendgate.analytics import AnomalyConfig

        return _config_object(AnomalyConfig, self.anomaly_config, "anomaly_config")

    def recommendation(self) -> RecommendationConfig:
        """The :class:`~spendgate.analytics.RecommendationConfig` built from :attr:`recommendation_config`."""
        from spendgate.analytics import RecommendationConfig

        return _config_object(RecommendationConfig, self.recommendation_config, "recommendation_config")
