"""The ingest's answers: authorization, limits, per-event reports, probes, metrics and logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from schemas.families import FAMILY_NAMES
from schemas.samples import sample_event
from streams.ingest import NoTokens, create_app
from streams.settings import Settings
from tests.unit.ingest.conftest import ALL_FAMILIES, HASHED, SHIPMENTS_ONLY, Ingest, bearer, ingest_settings

GUESSED = "guessed-by-a-caller"


def test_no_token_is_401_with_a_bearer_challenge(ingest: Ingest) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        answer = ingest.client.post("/v1/events/shipments", content=b"[]", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in answer.json()["detail"]
    assert ingest.publisher.given == []


def test_an_unknown_token_is_401(ingest: Ingest) -> None:
    answer = ingest.post("shipments", [sample_event("shipments")], token=GUESSED)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert answer.json() == {"detail": "unknown token"}


def test_a_sha256_key_is_matched_by_its_plain_token(ingest: Ingest) -> None:
    assert ingest.post("flights", [sample_event("flights")], token=HASHED).status_code == 202
    assert ingest.post("finance", [sample_event("finance")], token=HASHED).status_code == 202


def test_a_token_is_refused_the_families_it_does_not_list(ingest: Ingest) -> None:
    answer = ingest.post("flights", [sample_event("flights")], token=SHIPMENTS_ONLY)
    assert answer.status_code == 403
    assert answer.json() == {"detail": "this token may not publish flights events (only shipments)"}
    assert ingest.post("shipments", [sample_event("shipments")], token=SHIPMENTS_ONLY).status_code == 202
    assert ingest.post("datachannel", [sample_event("datachannel")], token=HASHED).status_code == 403
    assert ingest.publisher.given == [("shipments", ingest.publisher.given[0][1])]


def test_an_unknown_family_is_404_naming_the_families(ingest: Ingest) -> None:
    answer = ingest.post("ships", [sample_event("shipments")])
    assert answer.status_code == 404
    assert answer.json() == {"detail": "unknown event family 'ships': use one of " + ", ".join(FAMILY_NAMES)}


def test_a_mixed_batch_is_202_with_each_rejected_event_and_only_valid_ones_published(ingest: Ingest) -> None:
    good = [sample_event("shipments") for _ in range(3)]
    body = [good[0], sample_event("shipments", teu=-3), good[1], {"event_id": "x"}, good[2]]
    answer = ingest.post("shipments", body)
    assert answer.status_code == 202
    report = answer.json()
    assert (report["accepted"], report["rejected"], report["undelivered"]) == (3, 2, 0)
    assert [(error["index"], error["reason"]) for error in report["errors"]] == [
        (1, "out_of_range"), (3, "missing_field"),
    ]
    assert report["errors"][0] == {
        "index": 1,
        "reason": "out_of_range",
        "message": "teu: must be >= 0 (got -3)",
        "field_errors": [{"field": "teu", "message": "must be >= 0 (got -3)", "type": "greater_than_equal"}],
    }
    ((family, events),) = ingest.publisher.given
    assert family == "shipments"
    assert [event.event_id for event in events] == [event["event_id"] for event in good]


def test_one_event_as_the_body_is_index_0(ingest: Ingest) -> None:
    assert ingest.post("flights", sample_event("flights")).json() == {
        "accepted": 1, "rejected": 0, "undelivered": 0, "errors": [],
    }
    report = ingest.post("flights", sample_event("flights", carrier="Scoot")).json()
    assert [(error["index"], error["reason"]) for error in report["errors"]] == [(0, "invalid_value")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"event_id": ', "invalid_json"),
        (b'["\xff"]', "invalid_utf8"),
        (b"42", "not_an_event"),
        (b"[]", "empty_batch"),
        (b"", "invalid_json"),
    ],
)
def test_a_body_that_holds_no_event_is_422_with_index_null(ingest: Ingest, body: bytes, reason: str) -> None:
    answer = ingest.post("datachannel", body)
    assert answer.status_code == 422
    report = answer.json()
    assert (report["accepted"], report["rejected"], report["undelivered"]) == (0, 1, 0)
    assert [(error["index"], error["reason"]) for error in report["errors"]] == [(None, reason)]
    assert ingest.publisher.given == []


def test_nothing_valid_is_422_with_the_field_errors_of_each_event(ingest: Ingest) -> None:
    body = [sample_event("finance", currency="XXX"), sample_event("finance", amount=-1, status="lost")]
    answer = ingest.post("finance", body)
    assert answer.status_code == 422
    report = answer.json()
    assert (report["accepted"], report["rejected"]) == (0, 2)
    assert report["errors"][0]["reason"] == "unsupported_currency"
    assert {problem["field"] for problem in report["errors"][1]["field_errors"]} == {"amount", "status"}
    assert ingest.publisher.given == []


def test_too_many_events_in_one_body_are_refused_as_a_worker_refuses_a_record() -> None:
    service = Ingest(ingest_settings(max_events_per_record=3))
    with service.client:
        report = service.post("flights", [sample_event("flights") for _ in range(4)]).json()
    assert (report["accepted"], report["rejected"]) == (0, 4)
    assert [(error["index"], error["reason"]) for error in report["errors"]] == [(None, "too_many_events")]


def test_an_event_too_large_for_a_record_is_rejected_as_the_worker_would() -> None:
    service = Ingest(ingest_settings(max_record_bytes=1024))
    with service.client:
        # Every field at its longest, four bytes to a character where a field allows it: over 1 KiB.
        largest = sample_event("shipments", event_id="e" * 128, shipment_id="i" * 128, source="\U0001f6a2" * 64,
                               carrier="\U0001f6a2" * 64, route="-".join(["CNCKG"] * 10))
        body = [sample_event("shipments"), largest]
        report = service.post("shipments", body).json()
    assert (report["accepted"], report["rejected"]) == (1, 1)
    assert [(error["index"], error["reason"]) for error in report["errors"]] == [(1, "too_large")]


def test_undelivered_events_are_503_naming_each_one(ingest: Ingest) -> None:
    ingest.publisher.broker_away = True
    body = [sample_event("datachannel"), sample_event("datachannel", bytes=-1), sample_event("datachannel")]
    answer = ingest.post("datachannel", body)
    assert answer.status_code == 503
    report = answer.json()
    assert (report["accepted"], report["rejected"], report["undelivered"]) == (0, 1, 2)
    assert [(error["index"], error["reason"]) for error in report["errors"]] == [
        (1, "out_of_range"), (0, "undelivered"), (2, "undelivered"),
    ]
    assert "broker away" in report["errors"][1]["message"]


def test_a_body_over_the_limit_is_413_by_its_content_length_before_reading() -> None:
    service = Ingest(ingest_settings(ingest_max_body_bytes=2048))
    with service.client:
        small = service.post("shipments", [sample_event("shipments")])
        large = service.post("shipments", [sample_event("shipments") for _ in range(10)])
    assert small.status_code == 202
    assert large.status_code == 413
    assert "over the 2048 byte limit" in large.json()["detail"]
    assert len(service.publisher.given) == 1


def test_a_streamed_body_over_the_limit_is_413_once_it_passes_it() -> None:
    service = Ingest(ingest_settings(ingest_max_body_bytes=2048))

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent in chunks
        for _ in range(100):
            yield b" " * 512

    with service.client:
        answer = service.client.post("/v1/events/shipments", content=chunks(), headers=bearer(ALL_FAMILIES))
    assert answer.status_code == 413
    assert answer.json()["detail"] == (
        "request body is more than 2048 bytes, over the 2048 byte limit: send smaller batches"
    )


def test_over_the_rate_is_429_with_retry_after_until_the_bucket_refills() -> None:
    service = Ingest(ingest_settings(ingest_rate_per_second=0.5, ingest_burst=2))
    with service.client:
        assert [service.post("flights", [sample_event("flights")]).status_code for _ in range(2)] == [202, 202]
        refused = service.post("flights", [sample_event("flights")])
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "2"
        assert "0.5 requests/s (burst 2)" in refused.json()["detail"]
        assert service.post("shipments", [sample_event("shipments")], token=SHIPMENTS_ONLY).status_code == 202
        service.monotonic.advance(2.0)
        assert service.post("flights", [sample_event("flights")]).status_code == 202
    assert len(service.publisher.given) == 4


def test_metrics_count_requests_events_and_latency(ingest: Ingest) -> None:
    assert ingest.sample("corridor_ingest_requests_total", family="finance", code="429") == 0
    assert ingest.sample("corridor_ingest_events_rejected_total", family="finance", reason="too_large") == 0
    ingest.post("shipments", [sample_event("shipments"), sample_event("shipments", teu=-1)])
    ingest.post("shipments", b"[]")
    ingest.post("shipments", [sample_event("shipments")], token=None)
    assert ingest.sample("corridor_ingest_requests_total", family="shipments", code="202") == 1
    assert ingest.sample("corridor_ingest_requests_total", family="shipments", code="422") == 1
    assert ingest.sample("corridor_ingest_requests_total", family="shipments", code="401") == 1
    assert ingest.sample("corridor_ingest_events_accepted_total", family="shipments") == 1
    assert ingest.sample("corridor_ingest_events_rejected_total", family="shipments", reason="out_of_range") == 1
    assert ingest.sample("corridor_ingest_events_rejected_total", family="shipments", reason="empty_batch") == 1
    assert ingest.sample("corridor_ingest_request_duration_seconds_count", family="shipments") == 3
    page = ingest.client.get("/metrics")
    assert page.status_code == 200
    assert 'corridor_ingest_requests_total{code="202",family="shipments"} 1.0' in page.text
    assert "process_cpu_seconds_total" in page.text


def test_healthz_is_live_and_readyz_follows_the_broker(ingest: Ingest) -> None:
    assert (ingest.client.get("/healthz").status_code, ingest.client.get("/readyz").status_code) == (200, 200)
    ingest.ready = False
    answer = ingest.client.get("/readyz")
    assert answer.status_code == 503
    assert ingest.settings.bootstrap in answer.text
    assert ingest.client.get("/healthz").status_code == 200


def test_logs_name_the_token_by_position_never_by_value(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="corridor.ingest")
    ingest.post("flights", [sample_event("flights")], token=SHIPMENTS_ONLY)
    ingest.post("flights", [sample_event("flights")], token=HASHED)
    ingest.post("flights", [sample_event("flights")], token=GUESSED)
    records = [record for record in caplog.records if record.name == "corridor.ingest" and hasattr(record, "status")]
    assert [(record.status, record.token) for record in records] == [(403, 2), (202, 3), (401, None)]
    text = caplog.text + json.dumps([vars(record) for record in records], default=str)
    for token in (SHIPMENTS_ONLY, HASHED, GUESSED, ALL_FAMILIES):
        assert token not in text


def test_the_publisher_passed_in_belongs_to_the_caller(ingest: Ingest) -> None:
    ingest.client.__exit__(None, None, None)
    assert not ingest.publisher.closed


def test_without_tokens_the_app_is_not_built() -> None:
    with pytest.raises(NoTokens, match="CORRIDOR_INGEST_TOKENS is not set"):
        create_app(Settings())
