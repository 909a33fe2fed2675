"""The one place that reads the environment: every setting has the ``CORRIDOR_`` prefix."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.families import FAMILY_NAMES

#: Currency units per US dollar. SGD 1.3668 is the rate behind the corridor's
#: published SGD 15.39 bn = USD 11.26 bn financing figure.
DEFAULT_FX_PER_USD: dict[str, Decimal] = {
    "USD": Decimal("1"),
    "SGD": Decimal("1.3668"),
    "CNY": Decimal("7.0"),
}

DEFAULT_WINDOWS: tuple[str, ...] = ("5m", "1h", "24h", "7d")
#: How far from its plan a milestone is on time, by transport mode (docs/semantics.md, "On time"): a
#: vessel within a day of its schedule (Sea-Intelligence's schedule reliability), a flight within 15
#: minutes (OAG), a train within 6 hours, a truck within 2.
DEFAULT_PUNCTUALITY_TOLERANCE: dict[str, timedelta] = {
    "rail": timedelta(hours=6),
    "sea": timedelta(days=1),
    "rail_sea": timedelta(days=1),
    "road": timedelta(hours=2),
    "air": timedelta(minutes=15),
}


class Settings(BaseSettings):
    """Corridor Monitor settings, read from ``CORRIDOR_*`` environment variables."""

    # Errors name the setting and the problem, never the value: it may be a secret.
    model_config = SettingsConfigDict(env_prefix="CORRIDOR_", frozen=True, extra="ignore", hide_input_in_errors=True)

    # Kafka
    kafka_bootstrap: str | None = Field(
        None, description="host:port[,host:port]; unset means the embedded broker on 127.0.0.1:broker_port"
    )
    broker_port: int = Field(9092, ge=1, le=65535, description="port of the embedded broker")
    broker_flavor: Literal["auto", "kafka", "embedded"] = Field(
        "auto",
        description="which broker answers: its profile of producer batching, restore check and rebasing "
        "(streams/kafka/profile.py); auto asks the broker",
    )
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
    worker_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="this worker's stable name, one per scrape target (e.g. the StatefulSet pod name): its "
                    "static group membership and the owner label it keeps across restarts; unset: none",
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
    shipment_horizon: timedelta = Field(
        timedelta(days=45),
        description="a shipment in flight nothing was heard of for this long leaves the worker's state (counted in "
        "corridor_shipments_evicted_total); longer than booking to delivery",
    )
    punctuality_tolerance: dict[str, timedelta] = Field(
        default_factory=lambda: dict(DEFAULT_PUNCTUALITY_TOLERANCE),
        description="JSON object: transport mode -> how far from planned_time a milestone is still on time, and "
        "how long past planned_arrival a shipment may be before it is overdue (ISO 8601 durations or seconds)",
    )
    overdue_list_limit: int = Field(1000, ge=1, le=100_000, description="overdue shipments a worker lists at most")
    standby_replicas: int = Field(0, ge=0, le=8, description="faust standby replicas of each state partition")
    max_record_bytes: int = Field(1_048_576, ge=1024, description="largest accepted message value")
    max_events_per_record: int = Field(10_000, ge=1)

    # Producer SDK
    publish_batch_events: int = Field(500, ge=1, description="events per batch envelope")
    publish_batch_bytes: int = Field(512 * 1024, ge=1024)
    publish_linger_ms: int = Field(5, ge=0)
    publish_retry_timeout_s: float = Field(30.0, gt=0, description="how long a send may retry an unavailable broker")

    # HTTP ingest (`corridor ingest`, docs/ingest.md)
    ingest_tokens: SecretStr | None = Field(
        None,
        description='JSON object: bearer token, or "sha256:<hex digest of the token>", -> families it may publish '
        '(["*"] for all)',
    )
    ingest_host: str = Field("127.0.0.1", description="where the ingest listens; plain HTTP: put TLS in front")
    ingest_port: int = Field(6070, ge=0, le=65535, description="port of the HTTP ingest")
    ingest_max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest accepted request body")
    ingest_rate_per_second: float = Field(20.0, gt=0, description="requests per second each token may send")
    ingest_burst: int = Field(40, ge=1, description="requests a token may send at once before the rate applies")

    # Prometheus tools (`corridor alerts evaluate`, the integration tests); unset or empty: the
    # project's ./.tools/bin, then PATH (streams/evaluation/tools.py)
    prometheus_bin: str | None = Field(None, description="path of the prometheus binary")
    promtool_bin: str | None = Field(None, description="path of the promtool binary")
    alertmanager_bin: str | None = Field(None, description="path of the alertmanager binary")
    amtool_bin: str | None = Field(None, description="path of the amtool binary")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "text"

    @field_validator("punctuality_tolerance")
    @classmethod
    def _every_mode(cls, table: dict[str, timedelta]) -> dict[str, timedelta]:
        unknown = set(table) - set(DEFAULT_PUNCTUALITY_TOLERANCE)
        if unknown:
            known = sorted(DEFAULT_PUNCTUALITY_TOLERANCE)
            raise ValueError(f"unknown transport modes {sorted(unknown)}; known: {known}")
        if any(value < timedelta(0) for value in table.values()):
            raise ValueError("a tolerance cannot be negative")
        return DEFAULT_PUNCTUALITY_TOLERANCE | table

    @field_validator("fx_per_usd")
    @classmethod
    def _usd_is_one(cls, table: dict[str, Decimal]) -> dict[str, Decimal]:
        if any(rate <= 0 for rate in table.values()):
            raise ValueError("every FX rate must be > 0 (units of the currency per USD)")
        return {code.upper(): rate for code, rate in table.items()}

    @field_validator("ingest_tokens")
    @classmethod
    def _tokens_parse(cls, tokens: SecretStr | None) -> SecretStr | None:
        if tokens is not None:
            ingest_token_digests(tokens)
        return tokens

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.kafka_bootstrap is None


_INGEST_TOKENS_ENV = "CORRIDOR_INGEST_TOKENS"
_DIGEST_PREFIX = "sha256:"
# RFC 6750's b64token: what a bearer token in an Authorization header may hold.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_INGEST_EXAMPLE = """'{"sha256:<printf %s TOKEN | sha256sum>": ["shipments", "flights"], "sha256:<...>": ["*"]}'"""


def ingest_token_digests(tokens: SecretStr) -> dict[str, frozenset[str]]:
    """``CORRIDOR_INGEST_TOKENS`` as the SHA-256 hex digest of each token -> the families it may publish.

    Plain keys are hashed here, so nothing downstream holds a plaintext token. A bad value
    raises ValueError naming the variable and the fix; messages never quote a key.
    """
    fix = f"set {_INGEST_TOKENS_ENV} to a JSON object of token -> list of families, e.g. {_INGEST_EXAMPLE}"
    try:
        document = json.loads(tokens.get_secret_value(), object_pairs_hook=_pairs_without_repeats)
    except json.JSONDecodeError as exc:  # its message gives a position, never the text
        raise ValueError(f"{_INGEST_TOKENS_ENV} is not JSON ({exc.msg} at char {exc.pos}); {fix}") from None
    except ValueError as exc:
        raise ValueError(f"{_INGEST_TOKENS_ENV}: {exc}; {fix}") from None
    if not isinstance(document, dict) or not document:
        raise ValueError(f"{_INGEST_TOKENS_ENV}: expected a non-empty JSON object; {fix}")
    digests: dict[str, frozenset[str]] = {}
    for position, (key, families) in enumerate(document.items(), start=1):
        which = f"{_INGEST_TOKENS_ENV}: key {position}"
        if key.startswith(_DIGEST_PREFIX):
            digest = key[len(_DIGEST_PREFIX) :].lower()
            if not _SHA256_HEX.fullmatch(digest):
                raise ValueError(f"{which} starts with {_DIGEST_PREFIX} but is not followed by 64 hex digits; "
                                 f"make it with `printf %s \"$TOKEN\" | sha256sum`")
        elif _BEARER_TOKEN.fullmatch(key):
            digest = hashlib.sha256(key.encode()).hexdigest()
        else:
            raise ValueError(f"{which} is not a bearer token (letters, digits and -._~+/ then any '='); "
                             "generate one with `openssl rand -hex 32`")
        if digest in digests:
            raise ValueError(f"{which} is a token already listed (plain or as its sha256 digest); list it once")
        digests[digest] = _token_families(which, families)
    return digests


def _token_families(which: str, families: object) -> frozenset[str]:
    known = ", ".join(FAMILY_NAMES)
    if not isinstance(families, list) or not families or not all(isinstance(name, str) for name in families):
        raise ValueError(f'{which}: expected a non-empty list of family names ({known}) or ["*"]')
    unknown = sorted(set(families) - set(FAMILY_NAMES) - {"*"})
    if unknown:
        raise ValueError(f"{which}: unknown families {', '.join(map(repr, unknown))}; use {known} or *")
    return frozenset(FAMILY_NAMES) if "*" in families else frozenset(families)


def _pairs_without_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object as a dict, refusing a key named twice (json.loads would keep the last silently)."""
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("a key appears twice")
    return document


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
