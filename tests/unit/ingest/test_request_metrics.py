"""Every answer of the events API is counted once, by the middleware that sees them all: an
exception no handler caught as 500, a client gone before its answer as 499; other paths not at all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.requests import ClientDisconnect
from starlette.types import Message

from schemas.families import FAMILY_NAMES
from schemas.samples import sample_event
from streams.ingest.metrics import OTHER_FAMILY, STATUS_CODES, family_of
from tests.unit.ingest.conftest import ALL_FAMILIES, Ingest, bearer, ingest_settings

REQUESTS = "corridor_ingest_requests_total"
LATENCY_COUNT = "corridor_ingest_request_duration_seconds_count"


def counts(service: Ingest) -> dict[tuple[str, str], float]:
    """Every (family, code) with a non-zero request count."""
    found = {}
    for family in (*FAMILY_NAMES, OTHER_FAMILY):
        for code in map(str, STATUS_CODES):
            value = service.sample(REQUESTS, family=family, code=code)
            if value:
                found[(family, code)] = value
    return found


def observed(service: Ingest) -> dict[str, float]:
    """Latency observations by family, where there are any."""
    found = {}
    for family in (*FAMILY_NAMES, OTHER_FAMILY):
        value = service.sample(LATENCY_COUNT, family=family)
        if value:
            found[family] = value
    return found


@pytest.fixture
def lenient() -> Iterator[Ingest]:
    """An ingest whose test client answers a server error as the server would (a 500), not by raising it."""
    service = Ingest(ingest_settings(ingest_rate_per_second=0.001, ingest_burst=3))
    service.client = TestClient(service.app, raise_server_exceptions=False)
    with service.client:
        yield service


def test_an_exception_no_handler_caught_is_counted_as_500(lenient: Ingest) -> None:
    lenient.publisher.failure = RuntimeError("a bug behind the handler")
    answer = lenient.post("flights", [sample_event("flights")])
    assert answer.status_code == 500
    assert counts(lenient) == {("flights", "500"): 1}
    assert observed(lenient) == {"flights": 1}


def test_202_422_429_and_503_are_counted_once_each(lenient: Ingest) -> None:
    expected: dict[tuple[str, str], float] = {}
    lenient.publisher.broker_away = True
    answers = [("datachannel", [sample_event("datachannel")], 503)]
    answers.append(("shipments", [sample_event("shipments")], 202))
    answers.append(("shipments", [sample_event("shipments", teu=-1)], 422))
    answers.append(("finance", [sample_event("finance")], 429))  # the bucket of 3 is used up
    for family, body, status in answers:
        lenient.publisher.broker_away = status == 503
        assert lenient.post(family, body).status_code == status
        expected[(family, str(status))] = 1
        assert counts(lenient) == expected, f"after the {status}"
    assert observed(lenient) == {"datachannel": 1, "shipments": 2, "finance": 1}


def test_refusals_and_paths_naming_no_family_are_counted_under_other(lenient: Ingest) -> None:
    assert lenient.post("flights", [sample_event("flights")], token=None).status_code == 401
    assert lenient.client.post("/v1/events/ferries", headers=bearer(ALL_FAMILIES), content=b"[]").status_code == 404
    assert lenient.client.post("/v1/events/flights/extra", content=b"[]").status_code == 404
    assert lenient.client.get("/v1/events/flights").status_code == 405
    assert counts(lenient) == {("flights", "401"): 1, ("flights", "405"): 1, (OTHER_FAMILY, "404"): 2}


def test_probes_metrics_and_unknown_paths_are_not_counted(lenient: Ingest) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/nothing-here", "/v1/eventsx"):
        lenient.client.get(path)
    assert counts(lenient) == {}
    assert observed(lenient) == {}


def test_a_client_gone_before_its_answer_is_counted_as_499(lenient: Ingest) -> None:
    """The body is never sent: the server reads a disconnect, and no answer reaches anyone."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/events/shipments", "raw_path": b"/v1/events/shipments", "query_string": b"", "root_path": "",
        "headers": [(b"authorization", f"Bearer {ALL_FAMILIES}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 6070),
    }

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    with pytest.raises(ClientDisconnect):  # Starlette re-raises what its ServerErrorMiddleware saw
        asyncio.run(lenient.app(scope, receive, send))
    assert counts(lenient) == {("shipments", "499"): 1}


@pytest.mark.parametrize(("path", "family"), [
    ("/v1/events/shipments", "shipments"), ("/v1/events/ferries", OTHER_FAMILY), ("/v1/events", OTHER_FAMILY),
    ("/v1/events/", OTHER_FAMILY), ("/v1/events/flights/1", OTHER_FAMILY), ("/v1/eventsx", None),
    ("/metrics", None), ("/", None),
])
def test_the_family_label_is_bounded(path: str, family: str | None) -> None:
    assert family_of(path) == family


def test_the_metrics_page_shows_every_code_of_every_family_from_the_start(lenient: Ingest) -> None:
    text = lenient.client.get("/metrics").text
    for family in (*FAMILY_NAMES, OTHER_FAMILY):
        for code in STATUS_CODES:
            assert f'{REQUESTS}{{code="{code}",family="{family}"}} 0.0' in text
    assert counts(lenient) == {}
