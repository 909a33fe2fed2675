"""The hostile-input corpus (tests/hostile.py) over HTTP, without a broker.

Every case with a body, posted to its family's endpoint with a valid token, gets the answer
tests/unit/ingest/hostile_answers.py works out from the corpus (413 past the body limit, 422
with each event's reason when nothing is valid, 202 with exact counts otherwise) and never a
5xx; the publisher is handed exactly the accepted events, each once; the refusals add up to
the corpus's rejections; and the ingest's /metrics counts what it answered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.families import FAMILY_NAMES
from schemas.validation import RejectReason
from streams.core.clock import ManualClock
from streams.ingest.metrics import STATUS_CODES
from tests.hostile import Case, http_bodies
from tests.unit.ingest.conftest import Ingest, ingest_settings
from tests.unit.ingest.hostile_answers import INGEST_MAX_BODY_BYTES, HttpAnswer, expected_answer

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BODIES = list(http_bodies(NOW))
# The rate limiter's clock stands still here: a burst the size of the corpus lets every request through.
SETTINGS = ingest_settings(ingest_max_body_bytes=INGEST_MAX_BODY_BYTES, ingest_burst=len(BODIES))

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Posted:
    """One case as sent, what the ingest had to answer, and what it did."""

    case: Case
    expected: HttpAnswer
    status: int
    answer: dict[str, Any]
    #: event_ids of the events the ingest handed to the publisher for this request.
    published: list[str]


@dataclass(frozen=True)
class CorpusRun:
    posted: dict[str, Posted]
    metrics: Samples
    healthz: int


def samples_of(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def corpus_run() -> CorpusRun:
    """The whole corpus posted once, in order, to one ingest judging events against ``NOW``."""
    ingest = Ingest(SETTINGS, clock=ManualClock(NOW.timestamp()))
    posted: dict[str, Posted] = {}
    with ingest.client:
        for case, body in BODIES:
            calls = len(ingest.publisher.given)
            answer = ingest.post(case.family, body)
            published = [event.event_id for _, events in ingest.publisher.given[calls:] for event in events]
            posted[case.name] = Posted(
                case, expected_answer(case, body), answer.status_code, answer.json(), published
            )
        metrics = samples_of(ingest.client.get("/metrics").text)
        healthz = ingest.client.get("/healthz").status_code
    return CorpusRun(posted, metrics, healthz)


def test_the_corpus_has_bodies_of_every_kind() -> None:
    statuses = Counter(expected_answer(case, body).status for case, body in BODIES)
    assert set(statuses) == {202, 413, 422}
    assert statuses[413] == 1


@pytest.mark.parametrize("name", [case.name for case, _ in BODIES])
def test_each_case_gets_the_answer_a_producer_expects(corpus_run: CorpusRun, name: str) -> None:
    posted = corpus_run.posted[name]
    expected = posted.expected
    assert posted.status < 500, posted.answer
    assert posted.status == expected.status, posted.answer
    assert posted.published == expected.accepted_ids
    if expected.status == 413:
        assert posted.answer == {
            "detail": f"request body is {len(posted.case.value or b'')} bytes, over the {INGEST_MAX_BODY_BYTES} "
            "byte limit: send smaller batches"
        }
        return
    report = posted.answer
    assert (report["accepted"], report["rejected"], report["undelivered"]) == (
        len(expected.accepted), expected.rejected, 0,
    )
    assert [(error["index"], error["reason"]) for error in report["errors"]] == list(expected.errors)
    assert all(error["message"] for error in report["errors"])
    # An event's error names the fields at fault; a body refused as a whole has no fields to name.
    assert all(error["field_errors"] for error in report["errors"] if error["index"] is not None)


def test_refusals_and_acceptances_add_up_to_the_corpus(corpus_run: CorpusRun) -> None:
    posted = list(corpus_run.posted.values())
    cases = [p.case for p in posted]
    # Refused over Kafka for its size as a record, one small event over HTTP (see hostile_answers.py).
    accepted_over_http_only = [p.case for p in posted if p.case.all_rejected and p.expected.status == 202]
    assert [case.name for case in accepted_over_http_only] == ["one_byte_over_the_limit"]

    refusals = sum(p.status == 413 for p in posted) + sum(len(p.answer.get("errors", ())) for p in posted)
    corpus_rejections = sum(len(case.rejected) for case in cases)
    assert refusals == corpus_rejections - sum(len(case.rejected) for case in accepted_over_http_only)

    reports = [p.answer for p in posted if p.status != 413]
    corpus_accepted = sum(len(case.accepted) for case in cases)
    assert sum(report["accepted"] for report in reports) == corpus_accepted + len(accepted_over_http_only)
    # Every item of a body that was read is accepted or rejected.
    assert sum(report["accepted"] + report["rejected"] for report in reports) == sum(
        p.case.received for p in posted if p.status != 413
    )

    published = Counter(event_id for p in posted for event_id in p.published)
    expected = Counter(event_id for p in posted for event_id in p.expected.accepted_ids)
    assert published == expected
    assert set(published.values()) == {1}
    print(f"{len(posted)} bodies: {refusals} refusals (413s and report errors), {sum(published.values())} accepted")


def test_the_ingests_metrics_count_every_answer_and_event(corpus_run: CorpusRun) -> None:
    posted = corpus_run.posted.values()
    requests = Counter((p.case.family, str(p.status)) for p in posted)
    accepted: Counter[str] = Counter()
    rejected: Counter[tuple[str, str]] = Counter()
    for p in posted:
        accepted[p.case.family] += len(p.expected.accepted)
        for reason, events in p.expected.rejected_by_reason().items():
            rejected[(p.case.family, reason)] += events
    metrics = corpus_run.metrics
    for family in FAMILY_NAMES:
        for code in map(str, STATUS_CODES):
            assert metrics[("corridor_ingest_requests_total", (("code", code), ("family", family)))] == requests[
                (family, code)
            ], (family, code)
        assert metrics[("corridor_ingest_events_accepted_total", (("family", family),))] == accepted[family]
        assert metrics[("corridor_ingest_events_undelivered_total", (("family", family),))] == 0
        for reason in RejectReason:
            assert metrics[
                ("corridor_ingest_events_rejected_total", (("family", family), ("reason", reason.value)))
            ] == rejected[(family, reason.value)], (family, reason.value)
        assert metrics[("corridor_ingest_request_duration_seconds_count", (("family", family),))] == sum(
            count for (f, _), count in requests.items() if f == family
        )


def test_the_ingest_still_answers_after_the_corpus(corpus_run: CorpusRun) -> None:
    assert corpus_run.healthz == 200
