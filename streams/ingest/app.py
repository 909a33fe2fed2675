"""The HTTP ingest application: ``POST /v1/events/{family}`` through the SDK's publisher, probes and /metrics.

Validation is the worker's own (``schemas.validation``): an event the ingest accepts is one
a worker counts, and an event it refuses carries the reason a worker would dead-letter it
for. A 202 is sent only once the broker confirmed every accepted event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response, Security
from fastapi.exceptions import HTTPException
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, SecretStr
from pydantic.json_schema import models_json_schema

from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.validation import ValidationRules, validate_record
from streams.core.clock import Clock, SystemClock
from streams.ingest.auth import TokenGrant, TokenTable
from streams.ingest.limits import BodyTooLarge, RateLimiter, read_body, retry_after
from streams.ingest.metrics import IngestMetrics, RequestMetrics
from streams.ingest.models import UNDELIVERED, EventProblem, IngestReport, Problem
from streams.kafka.admin import BrokerProbe
from streams.sdk.producer import DELIVERED, INVALID, Publisher, PublishReport
from streams.settings import Settings, ingest_token_digests

log = logging.getLogger("corridor.ingest")

API_TITLE = "Corridor Monitor HTTP ingest"
API_VERSION = "1"


class EventPublisher(Protocol):
    """What the ingest needs of ``streams.sdk.Publisher``; tests pass their own."""

    async def publish(
        self, family: str, events: Iterable[Mapping[str, Any] | BaseModel], reference_time: datetime | None = None
    ) -> PublishReport: ...

    async def close(self) -> None: ...


class NoTokens(ValueError):
    """The ingest has no token configured: it would refuse every request."""


class IngestService:
    """The request handling behind the routes: authorization, limits, validation, publishing, metrics."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenTable,
        limiter: RateLimiter,
        metrics: IngestMetrics,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.limiter = limiter
        self.metrics = metrics
        self.clock = clock
        # A body is split into records by the publisher, so the record size limit applies to
        # each event (the publisher checks it), not to the body; the event count still bounds
        # the work one request can ask for.
        self.body_rules = ValidationRules.from_settings(settings).without_size_limit()
        self.publisher: EventPublisher | None = None

    async def ingest(self, family: str, request: Request, credentials: HTTPAuthorizationCredentials | None) -> Response:
        started = time.perf_counter()
        grant: TokenGrant | None = None
        report: IngestReport | None = None
        try:
            grant = self._authenticate(credentials)
            self._authorize(grant, family)
            self._limit_rate(grant)
            try:
                body = await read_body(request, self.settings.ingest_max_body_bytes)
            except BodyTooLarge as exc:
                raise HTTPException(413, str(exc)) from None
            report = await self._publish(family, body)
            status = 503 if report.undelivered else 202 if report.accepted else 422
            response: Response = JSONResponse(report.model_dump(mode="json"), status_code=status)
        except HTTPException as exc:
            status = exc.status_code
            response = JSONResponse({"detail": exc.detail}, status_code=status, headers=exc.headers)
        # Requests and latency are counted by RequestMetrics, which also sees the answers raised past here.
        self._log(family, status, grant, report, time.perf_counter() - started, request)
        return response

    def _authenticate(self, credentials: HTTPAuthorizationCredentials | None) -> TokenGrant:
        if credentials is None:
            raise HTTPException(
                401, "send the header 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
            )
        grant = self.tokens.authorize(credentials.credentials)
        if grant is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return grant

    @staticmethod
    def _authorize(grant: TokenGrant, family: str) -> None:
        if family not in grant.families:
            allowed = ", ".join(name for name in FAMILY_NAMES if name in grant.families)
            raise HTTPException(403, f"this token may not publish {family} events (only {allowed})")

    def _limit_rate(self, grant: TokenGrant) -> None:
        wait_s = self.limiter.acquire(grant.position)
        if wait_s > 0:
            seconds = retry_after(wait_s)
            raise HTTPException(
                429,
                f"over the rate limit of {self.limiter.rate:g} requests/s (burst {self.limiter.burst}) for this "
                f"token: retry after {seconds} s, or send more events per request",
                headers={"Retry-After": seconds},
            )

    async def _publish(self, family: str, body: bytes) -> IngestReport:
        """Validate ``body`` as a worker validates a record; send the valid events; report each event."""
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        result = validate_record(family, body, self.body_rules, now)
        problems = []
        rejected = 0
        for error in result.errors:
            index = error.index
            events = 1
            if index is None:
                # A body that is one event is that event; otherwise the body as a whole was refused.
                index = 0 if result.total == 1 else None
                events = max(result.total, 1)
            rejected += events
            problems.append(EventProblem.rejected(error, index))
            self.metrics.rejected.labels(family, error.reason.value).inc(events)
        refused = {problem.index for problem in problems}
        positions = [index for index in range(result.total) if index not in refused] if result.events else []
        accepted = 0
        undelivered: list[EventProblem] = []
        if result.events:
            publisher = self.publisher
            if publisher is None:
                raise RuntimeError("the ingest is not started: its publisher is created at startup")
            report = await publisher.publish(family, result.events, reference_time=now)
            for index, outcome in zip(positions, report.outcomes, strict=True):
                if outcome.status == DELIVERED:
                    accepted += 1
                elif outcome.status == INVALID and outcome.rejection is not None:
                    # Valid in the body, too large for a record of its own: the worker's limit.
                    rejected += 1
                    problems.append(EventProblem.rejected(outcome.rejection, index))
                    self.metrics.rejected.labels(family, outcome.rejection.reason.value).inc()
                else:
                    message = f"not confirmed by the broker: {outcome.error}; send it again (events are deduplicated)"
                    undelivered.append(EventProblem(index=index, reason=UNDELIVERED, message=message, field_errors=[]))
        self.metrics.accepted.labels(family).inc(accepted)
        self.metrics.undelivered.labels(family).inc(len(undelivered))
        problems.sort(key=lambda problem: -1 if problem.index is None else problem.index)
        return IngestReport(accepted=accepted, rejected=rejected, undelivered=len(undelivered),
                            errors=problems + undelivered)

    def _log(
        self,
        family: str,
        status: int,
        grant: TokenGrant | None,
        report: IngestReport | None,
        elapsed: float,
        request: Request,
    ) -> None:
        level = logging.DEBUG if status == 202 else logging.WARNING if status >= 500 else logging.INFO
        if not log.isEnabledFor(level):
            return
        fields: dict[str, object] = {
            "family": family,
            "status": status,
            "token": grant.position if grant else None,  # its place in CORRIDOR_INGEST_TOKENS, never its value
            "client": request.client.host if request.client else None,
            "seconds": round(elapsed, 4),
        }
        summary = ""
        if report is not None:
            fields |= {"accepted": report.accepted, "rejected": report.rejected, "undelivered": report.undelivered}
            summary = f": {report.accepted} accepted, {report.rejected} rejected, {report.undelivered} undelivered"
            if report.errors:
                fields["first_error"] = report.errors[0].message
        log.log(level, "POST /v1/events/%s %d%s", family, status, summary, extra=fields)


_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No bearer token, or one that is not configured"},
    403: {"model": Problem, "description": "The token may not publish this family"},
    413: {"model": Problem, "description": "The body is over CORRIDOR_INGEST_MAX_BODY_BYTES"},
    422: {"model": IngestReport, "description": "No event is valid: every one with its reason and field errors"},
    429: {"model": Problem, "description": "Over the token's rate limit; the Retry-After header says when to retry"},
    503: {"model": IngestReport, "description": "The broker did not confirm some valid events in time: "
          "they are listed with reason undelivered; send the request again"},
}


class IngestApp(FastAPI):
    """The FastAPI application, whose OpenAPI document also defines each family's event model."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            document = get_openapi(
                title=self.title, version=self.version, description=self.description, routes=self.routes
            )
            _, definitions = models_json_schema(
                [(family.model, "validation") for family in FAMILIES.values()],
                ref_template="#/components/schemas/{model}",
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(definitions.get("$defs", {}))
            self.openapi_schema = document
        return self.openapi_schema


def create_app(
    settings: Settings,
    publisher: EventPublisher | None = None,
    *,
    limiter: RateLimiter | None = None,
    clock: Clock | None = None,
    broker_probe: Callable[[], Awaitable[bool]] | None = None,
    metrics: IngestMetrics | None = None,
) -> FastAPI:
    """The ingest application for ``settings`` (``CORRIDOR_INGEST_TOKENS`` must hold at least one token).

    Without ``publisher`` it creates one ``streams.sdk.Publisher`` at startup and closes it
    at shutdown; a ``publisher`` passed in belongs to the caller. ``limiter``, ``clock``,
    ``broker_probe`` and ``metrics`` replace what the settings would build (tests).
    """
    if settings.ingest_tokens is None:
        raise NoTokens(
            "CORRIDOR_INGEST_TOKENS is not set, so every request would be refused: set it to a JSON object of "
            """token -> families, e.g. '{"sha256:<printf %s TOKEN | sha256sum>": ["*"]}' (docs/ingest.md)"""
        )
    service = IngestService(
        settings,
        TokenTable(ingest_token_digests(settings.ingest_tokens)),
        limiter or RateLimiter(settings.ingest_rate_per_second, settings.ingest_burst),
        metrics or IngestMetrics(),
        clock or SystemClock(),
    )
    probe = broker_probe or BrokerProbe(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        owned = publisher is None
        service.publisher = Publisher(settings) if publisher is None else publisher
        log.info("ingest ready", extra={"tokens": len(service.tokens), "bootstrap": settings.bootstrap})
        try:
            yield
        finally:
            if owned:
                await service.publisher.close()
            service.publisher = None

    app = IngestApp(
        title=API_TITLE,
        version=API_VERSION,
        description="Publish corridor events over HTTP: each request's events are validated exactly as the "
        "stream workers validate them, and the valid ones are published to the family's Kafka topic.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(RequestMetrics, metrics=service.metrics)
    bearer = HTTPBearer(auto_error=False, description="A token listed in CORRIDOR_INGEST_TOKENS")

    for family in FAMILY_NAMES:
        app.add_api_route(
            f"/v1/events/{family}",
            _events_endpoint(service, family, bearer),
            methods=["POST"],
            status_code=202,
            response_model=IngestReport,
            response_description="The broker confirmed every accepted event; the rejected ones are in errors",
            responses=_REFUSALS,
            summary=f"Publish {family} events",
            description=f"One {family} event, or a JSON array of them, published to {FAMILIES[family].topic} "
            "once validated. 202: the broker confirmed every accepted event; invalid ones are listed in "
            "errors with their reasons.",
            operation_id=f"publish_{family}",
            tags=["events"],
            openapi_extra={"requestBody": _request_body(family)},
        )

    @app.post("/v1/events/{family}", include_in_schema=False)
    async def unknown_family(family: str) -> Response:
        known = ", ".join(FAMILY_NAMES)
        return JSONResponse({"detail": f"unknown event family {family!r}: use one of {known}"}, status_code=404)

    @app.get("/healthz", response_class=PlainTextResponse, tags=["probes"], summary="Liveness")
    async def healthz() -> str:
        return "ok\n"  # answering at all shows the event loop is alive

    @app.get("/readyz", response_class=PlainTextResponse, tags=["probes"], summary="Readiness: the broker answers",
             responses={503: {"description": "No Kafka broker answers", "content": {"text/plain": {}}}})
    async def readyz() -> Response:
        if await probe():
            return PlainTextResponse("ready\n")
        return PlainTextResponse(f"no Kafka broker answers at {settings.bootstrap}\n", status_code=503)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["probes"], summary="Prometheus metrics")
    async def metrics_page() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _events_endpoint(
    service: IngestService, family: str, bearer: HTTPBearer
) -> Callable[..., Awaitable[Response]]:
    async def publish_events(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)  # noqa: B008
    ) -> Response:
        return await service.ingest(family, request, credentials)

    publish_events.__name__ = f"publish_{family}"
    return publish_events


def _request_body(family: str) -> dict[str, Any]:
    reference = {"$ref": f"#/components/schemas/{FAMILIES[family].model.__name__}"}
    schema = {"anyOf": [reference, {"type": "array", "minItems": 1, "items": reference}]}
    return {
        "required": True,
        "description": f"One {family} event, or a non-empty JSON array of them",
        "content": {"application/json": {"schema": schema}},
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the ingest serves at /openapi.json (the same whatever the settings)."""
    placeholder = SecretStr('{"sha256:' + "0" * 64 + '": ["*"]}')
    return create_app(Settings(ingest_tokens=placeholder)).openapi()


__all__ = ["BrokerProbe", "EventPublisher", "IngestService", "NoTokens", "create_app", "openapi_document"]
