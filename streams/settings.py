"""The one place that reads the environment: every setting has the ``CORRIDOR_`` prefix."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Currency units per US dollar. SGD 1.3668 is the rate behind the corridor's
#: published SGD 15.39 bn = USD 11.26 bn financing figure.
DEFAULT_FX_PER_USD: dict[str, Decimal] = {
    "USD": Decimal("1"),
    "SGD": Decimal("1.3668"),
    "CNY": Decimal("7.0"),
}

DEFAULT_WINDOWS: tuple[str, ...] = ("5m", "1h", "24h", "7d")


class Settings(BaseSettings):
    """Corridor Monitor settings, read from ``CORRIDOR_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CORRIDOR_", frozen=True, extra="ignore")

    # Kafka
    kafka_bootstrap: str | None = Field(
        None, description="host:port[,host:port]; unset means the embedded broker on 127.0.0.1:broker_port"
    )
    broker_port: int = Field(9092, ge=1, le=65535, description="port of the embedded broker")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    topic_partitions: int = Field(4, ge=1, le=1024, description="partitions of each corridor topic")
    topic_replication: int = Field(1, ge=1, le=16)
    # Short group timeouts: the embedded broker holds a new group's first join for the
    # whole rebalance timeout.
    rebalance_timeout_s: float = Field(3.0, gt=0)
    session_timeout_s: float = Field(10.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)

    # Worker
    app_id: str = Field("corridor-monitor", description="faust app id = consumer group")
    web_host: str = "0.0.0.0"  # noqa: S104 - Prometheus scrapes workers from other hosts
    web_port: int = Field(6066, ge=0, le=65535, description="port of the worker's /metrics endpoint")
    store: str = Field("memory://", description="memory:// or rocksdb://")
    state_dir: Path = Field(Path(".corridor-state"), description="RocksDB files and worker state")
    registry_file: Path | None = Field(None, description="routes, links and carriers; unset: built-in registry")
    checkpoint_interval_s: float = Field(0.5, gt=0, description="how often partition state is made durable")
    scrape_interval_s: float = Field(
        15.0, gt=0,
        description="Prometheus' scrape interval: a moved partition's first and last values are held twice as long",
    )

    # Semantics
    fx_per_usd: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_FX_PER_USD))
    windows: tuple[str, ...] = DEFAULT_WINDOWS
    dedup_horizon: timedelta = timedelta(days=7)
    future_tolerance: timedelta = Field(
        timedelta(minutes=5), description="how far past its record's timestamp an event_time may lie"
    )
    lateness_tolerance: timedelta = Field(
        timedelta(minutes=5), description="an event arriving later than this after its event_time counts as late"
    )
    standby_replicas: int = Field(0, ge=0, le=8, description="faust standby replicas of each state partition")
    max_record_bytes: int = Field(1_048_576, ge=1024, description="largest accepted message value")
    max_events_per_record: int = Field(10_000, ge=1)

    # Producer SDK
    publish_batch_events: int = Field(500, ge=1, description="events per batch envelope")
    publish_batch_bytes: int = Field(512 * 1024, ge=1024)
    publish_linger_ms: int = Field(5, ge=0)
    publish_retry_timeout_s: float = Field(30.0, gt=0, description="how long a send may retry an unavailable broker")

    # Prometheus tools (`corridor alerts evaluate`, the integration tests); unset or empty: the
    # project's ./.tools/bin, then PATH (streams/alerting/tools.py)
    prometheus_bin: str | None = Field(None, description="path of the prometheus binary")
    promtool_bin: str | None = Field(None, description="path of the promtool binary")
    alertmanager_bin: str | None = Field(None, description="path of the alertmanager binary")
    amtool_bin: str | None = Field(None, description="path of the amtool binary")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"

    @field_validator("fx_per_usd")
    @classmethod
    def _usd_is_one(cls, table: dict[str, Decimal]) -> dict[str, Decimal]:
        if any(rate <= 0 for rate in table.values()):
            raise ValueError("every FX rate must be > 0 (units of the currency per USD)")
        return {code.upper(): rate for code, rate in table.items()}

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.kafka_bootstrap is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
