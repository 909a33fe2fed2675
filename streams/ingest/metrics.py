"""The ingest's own /metrics: requests, events and latency per family, in a registry of its own.

Requests and latency are counted by ``RequestMetrics``, a pure ASGI middleware around the
whole application: it sees the status of every answer of the events API, including the 500
of an exception no handler caught, and counts each request exactly once. Label values are
bounded: ``family`` is one of the four families, or ``other`` for any other path of the events
API; ``code`` one of ``STATUS_CODES``. Requests outside the events API (probes, /metrics,
/openapi.json, unknown paths) are not producer traffic and are not counted (docs/ingest.md).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas.families import FAMILY_NAMES
from schemas.validation import RejectReason
from streams.core.series import (
    INGEST_DURATION,
    INGEST_EVENTS_ACCEPTED,
    INGEST_EVENTS_REJECTED,
    INGEST_EVENTS_UNDELIVERED,
    INGEST_REQUESTS,
    IngestSeries,
)

#: The prefix of the events API: requests under it are counted, every other path is not.
EVENTS_PATH = "/v1/events"
#: The ``family`` label of a request to the events API that names no family (404, 405).
OTHER_FAMILY = "other"
#: Every status code the events API answers with; each one's series exists from the start. 499 is a
#: client that went away before its answer (nginx's code): the client's doing, not a server error.
STATUS_CODES = (202, 401, 403, 404, 405, 413, 422, 429, 499, 500, 503)
#: Request latency buckets: validation alone is milliseconds, the broker's acknowledgement up to its retry timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: The code of a client that disconnected before its answer was sent.
CLIENT_CLOSED = 499
#: The code counted for an exception no handler caught (Starlette's ServerErrorMiddleware answers it).
SERVER_ERROR = 500


def _counter(series: IngestSeries, registry: CollectorRegistry) -> Counter:
    return Counter(series.name, series.help, series.labels, registry=registry)


class IngestMetrics:
    """The ingest's series, built against ``registry`` (tests pass a fresh one), every label value pre-created."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = _counter(INGEST_REQUESTS, self.registry)
        self.accepted = _counter(INGEST_EVENTS_ACCEPTED, self.registry)
        self.rejected = _counter(INGEST_EVENTS_REJECTED, self.registry)
        self.undelivered = _counter(INGEST_EVENTS_UNDELIVERED, self.registry)
        self.latency = Histogram(
            INGEST_DURATION.name, INGEST_DURATION.help, INGEST_DURATION.labels, buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for family in (*FAMILY_NAMES, OTHER_FAMILY):
            for code in STATUS_CODES:
                self.requests.labels(family, str(code))
            self.latency.labels(family)
        for family in FAMILY_NAMES:
            for reason in RejectReason:
                self.rejected.labels(family, reason.value)
            self.accepted.labels(family)
            self.undelivered.labels(family)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def answered(self, family: str, code: int, seconds: float) -> None:
        """Count one answer of the events API."""
        self.requests.labels(family, str(code)).inc()
        self.latency.labels(family).observe(seconds)


def family_of(path: str) -> str | None:
    """The ``family`` label of a request to ``path``: its family, ``other`` for any other path of the
    events API, None outside it (not counted)."""
    if path != EVENTS_PATH and not path.startswith(EVENTS_PATH + "/"):
        return None
    name = path[len(EVENTS_PATH) + 1:]
    return name if name in FAMILY_NAMES else OTHER_FAMILY


class RequestMetrics:
    """Pure ASGI middleware counting every answer of the events API once, with its latency.

    Starlette puts it inside its ServerErrorMiddleware: an exception no handler caught passes
    through here (counted as 500, unless the answer had already started: then as the status the
    client was sent) on its way to the 500 that ServerErrorMiddleware answers. A client that
    disconnected while its body was read is counted as 499. Latency runs from the request's
    arrival to the end of its answer.
    """

    def __init__(self, app: ASGIApp, metrics: IngestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        family = family_of(scope["path"]) if scope["type"] == "http" else None
        if family is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent: dict[str, Any] = {}

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            await send(message)

        disconnected = False
        try:
            await self.app(scope, receive, send_counted)
        except ClientDisconnect:
            disconnected = True
            raise
        finally:
            status = sent.get("status", CLIENT_CLOSED if disconnected else SERVER_ERROR)
            self.metrics.answered(family, status, time.perf_counter() - started)


__all__ = ["LATENCY_BUCKETS", "OTHER_FAMILY", "STATUS_CODES", "IngestMetrics", "RequestMetrics", "family_of"]
