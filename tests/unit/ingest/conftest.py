"""The ingest application around a publisher that records what it is given: no broker in unit tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, SecretStr

from schemas.validation import ValidationRules
from streams.core.clock import Clock, ManualClock
from streams.ingest import create_app
from streams.ingest.limits import RateLimiter
from streams.ingest.metrics import IngestMetrics
from streams.sdk.producer import DELIVERED, INVALID, UNDELIVERED, EventOutcome, PublishReport, validate_events
from streams.settings import Settings

#: Plain-text tokens the tests send; the settings hold some of them only as sha256 keys.
ALL_FAMILIES = "all-families-token"
SHIPMENTS_ONLY = "shipments-only-token"
HASHED = "hashed-flights-and-finance"
TOKENS = {
    ALL_FAMILIES: ["*"],
    SHIPMENTS_ONLY: ["shipments"],
    f"sha256:{hashlib.sha256(HASHED.encode()).hexdigest()}": ["flights", "finance"],
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class RecordingPublisher:
    """Stands in for streams.sdk.Publisher: judges events with the SDK's own validation and
    reports the valid ones delivered, or undelivered when told the broker is away."""

    def __init__(self, settings: Settings) -> None:
        self.rules = ValidationRules.from_settings(settings)
        self.given: list[tuple[str, list[Any]]] = []  # (family, events) of each call
        self.broker_away = False
        self.failure: Exception | None = None  # raised by publish(): a bug behind the handler
        self.closed = False

    async def publish(
        self, family: str, events: Iterable[Mapping[str, Any] | BaseModel], reference_time: datetime | None = None
    ) -> PublishReport:
        events = list(events)
        self.given.append((family, events))
        if self.failure is not None:
            raise self.failure
        rejected = {error.index: error for error in validate_events(family, events, self.rules, reference_time).errors}
        outcomes = []
        for index in range(len(events)):
            if index in rejected:
                outcomes.append(EventOutcome(INVALID, rejection=rejected[index]))
            elif self.broker_away:
                outcomes.append(EventOutcome(UNDELIVERED, error="KafkaConnectionError: broker away"))
            else:
                outcomes.append(EventOutcome(DELIVERED, 0, index))
        return PublishReport(family, "topic", outcomes)

    async def close(self) -> None:
        self.closed = True


class Ingest:
    """A test client of the ingest with the publisher, clock, rate limiter and metrics it was built with.

    ``clock`` is the reference time events are judged against (default: the wall clock).
    """

    def __init__(self, settings: Settings, ready: bool = True, clock: Clock | None = None) -> None:
        self.settings = settings
        self.publisher = RecordingPublisher(settings)
        self.monotonic = ManualClock(1000.0)
        self.limiter = RateLimiter(settings.ingest_rate_per_second, settings.ingest_burst, clock=self.monotonic.now)
        self.metrics = IngestMetrics(CollectorRegistry())
        self.ready = ready

        async def probe() -> bool:
            return self.ready

        self.app = create_app(
            settings, self.publisher, limiter=self.limiter, clock=clock, metrics=self.metrics, broker_probe=probe
        )
        self.client = TestClient(self.app)

    def post(self, family: str, body: Any, token: str | None = ALL_FAMILIES, **kwargs: Any) -> Any:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = bearer(token) if token is not None else {}
        return self.client.post(f"/v1/events/{family}", content=content, headers=headers, **kwargs)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def ingest_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"ingest_tokens": SecretStr(json.dumps(TOKENS)), "ingest_burst": 1000} | overrides
    return Settings(**values)


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    service = Ingest(ingest_settings())
    with service.client:
        yield service
