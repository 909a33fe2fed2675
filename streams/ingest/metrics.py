"""The ingest's own /metrics: requests, events and latency per family, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from schemas.families import FAMILY_NAMES
from schemas.validation import RejectReason

#: Every status code the events endpoint answers with; each one's series exists from the start.
STATUS_CODES = (202, 401, 403, 413, 422, 429, 503)
#: Request latency buckets: validation alone is milliseconds, the broker's acknowledgement up to its retry timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class IngestMetrics:
    """The ingest's series, built against ``registry`` (tests pass a fresh one), every label value pre-created."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "corridor_ingest_requests", "Requests to POST /v1/events/{family} by family and HTTP status code",
            ["family", "code"], registry=self.registry,
        )
        self.accepted = Counter(
            "corridor_ingest_events_accepted", "Events the broker confirmed, by family",
            ["family"], registry=self.registry,
        )
        self.rejected = Counter(
            "corridor_ingest_events_rejected", "Invalid events refused (never sent), by family and reject reason",
            ["family", "reason"], registry=self.registry,
        )
        self.undelivered = Counter(
            "corridor_ingest_events_undelivered", "Valid events the broker did not confirm in time (answered 503)",
            ["family"], registry=self.registry,
        )
        self.latency = Histogram(
            "corridor_ingest_request_duration_seconds", "Time from a request's arrival to its answer, by family",
            ["family"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        for family in FAMILY_NAMES:
            for code in STATUS_CODES:
                self.requests.labels(family, str(code))
            for reason in RejectReason:
                self.rejected.labels(family, reason.value)
            self.accepted.labels(family)
            self.undelivered.labels(family)
            self.latency.labels(family)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)


__all__ = ["LATENCY_BUCKETS", "STATUS_CODES", "IngestMetrics"]
