"""Fuzzing the HTTP decode path: any body is answered 202, 422 or 413, never 5xx, with the reasons
``schemas.validation`` gives for the same bytes."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas.families import FAMILY_NAMES
from schemas.samples import sample_event
from schemas.validation import ValidationRules, validate_record
from streams.core.clock import ManualClock
from streams.ingest import create_app
from tests.unit.ingest.conftest import ALL_FAMILIES, RecordingPublisher, bearer, ingest_settings

SETTINGS = ingest_settings(ingest_max_body_bytes=4096)
CLOCK = ManualClock()  # set before each request, so the ingest and the reference judge against the same "now"
APP = create_app(SETTINGS, RecordingPublisher(SETTINGS), clock=CLOCK)
RULES = replace(ValidationRules.from_settings(SETTINGS), max_record_bytes=sys.maxsize)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def mutated_event(family: str, data: st.DataObject) -> dict[str, Any]:
    """A valid event with some fields replaced, dropped or added."""
    event = sample_event(family)
    for name in data.draw(st.lists(st.sampled_from(sorted(event)), max_size=3, unique=True)):
        if data.draw(st.booleans()):
            event[name] = data.draw(json_values)
        else:
            del event[name]
    if data.draw(st.booleans()):
        event[data.draw(st.text(min_size=1, max_size=8))] = data.draw(json_values)
    return event


def check(family: str, body: bytes) -> None:
    from fastapi.testclient import TestClient

    CLOCK.set(time.time())
    with TestClient(APP) as client:
        answer = client.post(f"/v1/events/{family}", content=body, headers=bearer(ALL_FAMILIES))
    assert answer.status_code in (202, 413, 422), answer.text
    if answer.status_code == 413:
        assert len(body) > SETTINGS.ingest_max_body_bytes
        return
    report = answer.json()
    expected = validate_record(family, body, RULES, datetime.fromtimestamp(CLOCK.now(), UTC))
    assert [error["reason"] for error in report["errors"]] == [error.reason.value for error in expected.errors]
    assert [len(error["field_errors"]) for error in report["errors"]] == [
        len(error.field_errors) for error in expected.errors
    ]
    assert report["accepted"] == len(expected.events)
    assert answer.status_code == (202 if expected.events else 422)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(FAMILY_NAMES), body=st.binary(max_size=5000))
@example(family="shipments", body=b"[" * 4000)
@example(family="flights", body=b'{"a":' * 800 + b"1" + b"}" * 800)
@example(family="finance", body=b"[1e999, -1e999, NaN, Infinity, 123456789012345678901234567890]")
@example(family="datachannel", body=b'{"event_id": "a", "event_id": "b"}')
@example(family="shipments", body=b"\xef\xbb\xbf[]")
def test_arbitrary_bytes(family: str, body: bytes) -> None:
    check(family, body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(FAMILY_NAMES), value=json_values)
def test_arbitrary_json(family: str, value: Any) -> None:
    check(family, json.dumps(value).encode())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(FAMILY_NAMES), data=st.data())
def test_batches_of_events_good_and_bad(family: str, data: st.DataObject) -> None:
    events = [
        sample_event(family) if data.draw(st.booleans()) else mutated_event(family, data)
        for _ in range(data.draw(st.integers(1, 6)))
    ]
    body = json.dumps(events[0] if len(events) == 1 and data.draw(st.booleans()) else events).encode()
    check(family, body)
