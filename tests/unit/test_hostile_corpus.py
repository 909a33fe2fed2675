"""The hostile-input corpus (tests/hostile.py) offline: each case gets its reasons from the validator and
from the worker's record decoder, mutations of it are judged (never raised), and totals that hostile but
valid events push past 64 bits survive a checkpoint."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.samples import sample_event
from schemas.validation import RejectReason, ValidationResult, ValidationRules, validate_record
from streams.core.checkpoint import plan_checkpoint, read_checkpoint
from streams.core.processor import PROCESSING_ERROR, DeadLetter, FamilyProcessor
from streams.core.registry import Registry
from streams.core.wire import validate_kafka_record
from streams.settings import Settings
from streams.worker.deadletter import dead_letter_headers, dead_letter_value
from tests.hostile import MAX_RECORD_BYTES, RECORD_SIZE_CASES, Case, corpus, http_bodies

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CASES = corpus(NOW)
#: The default settings' rules, whatever the environment says.
RULES = ValidationRules.from_settings(Settings.model_construct())


def outcome(case: Case, worker_path: bool = False) -> tuple[list[tuple[int | None, str]], list[str], int]:
    """Dead letters, accepted event ids and received count of ``validate_record``, or of the worker's
    record decoder in front of it (which a framed case needs)."""
    value = case.value or b""  # the worker hands a tombstone over as an empty value
    result: ValidationResult
    try:
        if worker_path or case.framed:
            result = validate_kafka_record(case.family, value, case.headers, RULES, reference_time=NOW)
        else:
            result = validate_record(case.family, value, RULES, reference_time=NOW)
    except Exception:  # the worker dead-letters a record it fails on, and counts it once
        return [(None, PROCESSING_ERROR)], [], 1
    errors = [(error.index, str(error.reason)) for error in result.errors]
    received = max(result.total, 1) if result.errors else result.total
    return errors, [event.event_id for event in result.events], received


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_case_gets_its_reasons_and_only_its_valid_events_count(case):
    errors, accepted, received = outcome(case)
    assert errors == list(case.rejected)
    assert accepted == [event["event_id"] for event in case.accepted]
    assert received == case.received


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_workers_record_decoder_changes_no_outcome(case):
    assert outcome(case, worker_path=True) == outcome(case)


def test_the_corpus_holds_at_least_40_distinct_records_under_distinct_names():
    assert len({case.name for case in CASES}) == len(CASES)
    assert len({(case.family, case.value, case.headers) for case in CASES}) == len(CASES) >= 40


def test_the_corpus_is_the_same_for_the_same_reference_time():
    assert corpus(NOW) == CASES


def test_every_reason_a_record_can_earn_on_its_own_is_in_the_corpus():
    seen = {reason for case in CASES for reason in case.reasons}
    assert {str(reason) for reason in RejectReason} - seen <= {"schema"}  # no contract rule maps to it yet


def test_every_family_gets_hostile_records_and_most_are_rejected_whole():
    by_family = Counter(case.family for case in CASES)
    assert set(by_family) == {"shipments", "flights", "finance", "datachannel"}
    assert min(by_family.values()) >= 10
    assert sum(case.all_rejected for case in CASES) > 0.8 * len(CASES)


def test_the_size_cases_straddle_the_record_limit():
    sizes = {case.name: len(case.value or b"") for case in CASES}
    assert sizes["ten_megabyte_string"] > 10 * 1024 * 1024
    assert sizes["long_string_under_the_limit"] == MAX_RECORD_BYTES - 1
    assert sizes["padded_to_the_limit"] == MAX_RECORD_BYTES
    assert sizes["one_byte_over_the_limit"] == MAX_RECORD_BYTES + 1
    assert set(sizes) >= RECORD_SIZE_CASES


def test_http_bodies_are_the_cases_that_have_a_body():
    bodies = {case.name: body for case, body in http_bodies(NOW)}
    assert "tombstone" not in bodies
    assert len(bodies) == sum(1 for case in CASES if not case.kafka_only)
    assert bodies["empty_value"] == b""


def test_a_number_too_long_to_read_is_named_as_such():
    case = next(case for case in CASES if case.name == "integer_of_5000_digits")
    [error] = validate_record(case.family, case.value or b"", RULES, reference_time=NOW).errors
    assert error.message == f"record is not JSON: a number has more than {sys.get_int_max_str_digits()} digits"


def test_totals_past_64_bits_survive_a_checkpoint_and_its_restore():
    # Samples of the largest byte count the schema allows are valid; three of them total more than 64 bits hold.
    processor = FamilyProcessor("datachannel", Settings.model_construct(), Registry.load(None))
    state = processor.new_state()
    biggest = 2**63 - 1
    at = (NOW - timedelta(minutes=1)).isoformat()
    events = [sample_event("datachannel", event_id=f"biggest-{n}", event_time=at, bytes=biggest) for n in range(3)]
    for offset, event in enumerate(events):
        processor.process(state, 0, offset, NOW.timestamp(), orjson.dumps(event))
    store: dict[bytes, bytes] = {}
    for key, value in plan_checkpoint(0, state, {}).records:
        assert value is not None
        store[key] = value
    restored = read_checkpoint(0, store.get, processor.restore_state)
    assert restored is not None
    assert restored.counters == state.counters
    assert sum(restored.counters["datachannel_bytes"].values()) == 3 * biggest


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Case, bytes]:
    """A corpus record cut, with a byte changed, or spliced with another case's bytes."""
    case = draw(st.sampled_from([case for case in CASES if len(case.value or b"") <= MAX_RECORD_BYTES]))
    value = case.value or b""
    at = draw(st.integers(0, len(value)))
    change = draw(st.sampled_from(["cut", "flip", "insert", "splice"]))
    if change == "cut":
        value = value[:at]
    elif change == "flip" and value:
        at = min(at, len(value) - 1)
        value = value[:at] + bytes([value[at] ^ draw(st.integers(1, 255))]) + value[at + 1:]
    elif change == "insert":
        value = value[:at] + draw(st.binary(min_size=1, max_size=8)) + value[at:]
    else:
        other = draw(st.sampled_from(CASES)).value or b""
        value = value[:at] + other[draw(st.integers(0, min(len(other), 4096))):][:4096]
    return case, value


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_corpus_records_are_judged_alike_every_time_and_make_sendable_dead_letters(mutation):
    case, value = mutation
    result = validate_kafka_record(case.family, value, case.headers, RULES, reference_time=NOW)
    assert result == validate_kafka_record(case.family, value, case.headers, RULES, reference_time=NOW)
    assert {str(error.reason) for error in result.errors} <= {str(reason) for reason in RejectReason}
    for error in result.errors:  # what the worker sends for each: any failure here would stop its stream
        letter = DeadLetter(0, 0, error.index, str(error.reason), error.message, error.field_errors, error.raw)
        dead_letter_value(letter)
        dead_letter_headers(case.topic, letter)
