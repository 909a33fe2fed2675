"""Shipment contract version 2 is backward compatible with version 1, and its new fields are checked.

Version 1's JSON Schema is kept as it was published (tests/schema_compatibility.py names it). The
version 2 schema passes Confluent's BACKWARD check against it; every shipment record of the test
corpora (the samples, the model's example, the hostile corpus, the replay data, the examples of
docs/interop.md) that carries no version 2 field gets the same verdict from both schemas, and
the processor counts version 1 events exactly as version 2 events that spell out the documented
defaults. The new fields are refused with the reason and field named when they are wrong.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.export import family_json_schema
from schemas.samples import sample_event
from schemas.shipments import Milestone, ShipmentEvent, TransportMode, example
from schemas.validation import ValidationRules, validate_record
from streams.core.families import SHIPMENT_EVENTS, SHIPMENT_GROSS_WEIGHT, SHIPMENT_TEU
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.core.state import IN_TRANSIT, OVERDUE, PartitionState
from streams.settings import Settings
from tests.hostile import corpus
from tests.replay import Record, ReplayData, partition_of, rejections
from tests.schema_compatibility import SHIPMENT_CONTRACT_1, backward_incompatibilities

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
#: Version 2's fields: all optional.
V2_FIELDS = frozenset({"location", "planned_time", "planned_time_classifier", "planned_arrival", "equipment_id",
                       "equipment_size_type", "empty", "transport_id"})
VERSION_1 = json.loads(SHIPMENT_CONTRACT_1.read_text())
VERSION_2 = family_json_schema("shipments")
V1_READER = jsonschema.Draft202012Validator(VERSION_1)
V2_READER = jsonschema.Draft202012Validator(VERSION_2)
#: The default settings' rules and limits, whatever the environment says.
SETTINGS = Settings.model_construct()
RULES = ValidationRules.from_settings(SETTINGS)
INTEROP = Path(__file__).resolve().parents[3] / "docs" / "interop.md"


def event_model(document: dict[str, Any]) -> dict[str, Any]:
    return document["properties"]["value"]["$defs"]["ShipmentEvent"]


# The schemas side by side.

def test_the_published_version_1_schema_is_kept_unchanged():
    digest = hashlib.sha256(SHIPMENT_CONTRACT_1.read_bytes()).hexdigest()
    assert digest == "eddb12afe803af81d30f2f19e00eac0423c4970910ab497d3d2e104911d4e316"


def test_version_2_adds_only_optional_properties_to_the_closed_event_model():
    old, new = event_model(VERSION_1), event_model(VERSION_2)
    assert set(new["properties"]) - set(old["properties"]) == V2_FIELDS
    assert set(old["properties"]) <= set(new["properties"])
    assert new["required"] == old["required"]
    assert old["additionalProperties"] is False and new["additionalProperties"] is False
    assert (new["if"], new["then"]) == (old["if"], old["then"])
    assert VERSION_2["$id"] == VERSION_1["$id"] and VERSION_2["title"] == VERSION_1["title"] == "corridor.shipments.v1"


def test_version_2_passes_confluents_backward_check_against_version_1():
    assert backward_incompatibilities(VERSION_1, VERSION_2) == []
    value_1, value_2 = VERSION_1["properties"]["value"], VERSION_2["properties"]["value"]
    assert backward_incompatibilities(value_1, value_2) == []  # the value schema alone, as Tansu reads it


def test_a_version_1_reader_cannot_read_version_2_so_forward_is_refused():
    problems = backward_incompatibilities(VERSION_2, VERSION_1)  # FORWARD: the old schema reading new data
    removed = {re.sub(r".*/properties/(\w+): removed$", r"\1", problem) for problem in problems}
    assert removed == V2_FIELDS


def _mutated(change: str) -> dict[str, Any]:
    """The version 2 document with one change Confluent's BACKWARD check refuses, or accepts."""
    document = copy.deepcopy(VERSION_2)
    event = event_model(document)
    properties = event["properties"]
    if change == "remove a version 1 property":
        del properties["commodity_hs"]
    elif change == "make a version 2 property required":
        event["required"].append("location")
    elif change == "make a version 1 optional property required":
        event["required"].append("commodity_hs")
    elif change == "lower a maximum":
        properties["teu"]["maximum"] = 1000
    elif change == "raise a minimum length":
        properties["carrier"]["minLength"] = 3
    elif change == "change a pattern":
        properties["origin"]["pattern"] = "^CN[A-Z]{3}$"
    elif change == "drop an enum value":
        document["properties"]["value"]["$defs"]["Milestone"]["enum"].remove("transshipped")
    elif change == "narrow number to integer":
        properties["teu"]["type"] = "integer"
    elif change == "drop the batch form":
        document["properties"]["value"]["anyOf"].pop()
    elif change == "raise minItems of a batch":
        document["properties"]["value"]["anyOf"][1]["minItems"] = 2
    elif change == "change the currency rule":
        event["then"]["required"].append("commodity_hs")
    elif change == "raise a maximum":
        properties["teu"]["maximum"] = 50_000
    elif change == "add an enum value":
        document["properties"]["value"]["$defs"]["TransportMode"]["enum"].append("barge")
    elif change == "add one more optional property":
        properties["seal_number"] = {"type": "string"}
    elif change == "change descriptions":
        event["description"] = "Another description."
        properties["teu"]["description"] = "TEU."
    return document


REFUSED = ["remove a version 1 property", "make a version 2 property required",
           "make a version 1 optional property required", "lower a maximum", "raise a minimum length",
           "change a pattern", "drop an enum value", "narrow number to integer", "drop the batch form",
           "raise minItems of a batch", "change the currency rule"]
ACCEPTED = ["raise a maximum", "add an enum value", "add one more optional property", "change descriptions"]


@pytest.mark.parametrize("change", REFUSED)
def test_the_check_refuses_what_confluent_refuses(change):
    assert backward_incompatibilities(VERSION_1, _mutated(change)) != []


@pytest.mark.parametrize("change", ACCEPTED)
def test_the_check_accepts_what_confluent_accepts(change):
    assert backward_incompatibilities(VERSION_1, _mutated(change)) == []


def test_a_property_added_to_an_open_content_model_is_refused():
    opened = copy.deepcopy(VERSION_1)
    del event_model(opened)["additionalProperties"]
    problems = backward_incompatibilities(opened, VERSION_2)
    assert any("location: added to an open content model" in problem for problem in problems)


# Every shipment record of the corpora: the same verdict from both schemas.

REPLAY = [record for record in ReplayData(NOW.timestamp(), seed=24).build(8_000) if record.family == "shipments"]


def interop_examples() -> list[dict[str, Any]]:
    """The JSON events of docs/interop.md's "Shipment contract version 2" section."""
    section = INTEROP.read_text().split("## Shipment contract version 2", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.DOTALL)]


def shipment_records() -> Iterator[tuple[str, bytes]]:
    """(name, record value) of every shipment record the tests hold."""
    at = NOW - timedelta(minutes=1)
    yield "sample", orjson.dumps(sample_event("shipments", at=at))
    for number, (milestone, mode) in enumerate(zip(Milestone, list(TransportMode) * 2, strict=False)):
        sample = sample_event("shipments", at=at, milestone=milestone, mode=mode)
        yield f"sample_{milestone}_{mode}", orjson.dumps(sample)
        fields = {"event_id": f"example-{number}", "event_time": at.isoformat()} | example(at)
        yield f"example_{milestone}", orjson.dumps(fields | {"milestone": milestone})
    for case in corpus(NOW):
        if case.family == "shipments" and case.value is not None:
            yield f"hostile_{case.name}", case.value
    for number, record in enumerate(REPLAY):
        yield f"replay_{number}", record.value
    for number, event in enumerate(interop_examples()):
        yield f"docs_interop_{number}", orjson.dumps(event)


RECORDS = list(shipment_records())
_NOT_JSON = object()


def parsed(value: bytes) -> Any:
    try:
        return json.loads(value.decode("utf-8"))
    except (ValueError, RecursionError):
        return _NOT_JSON


def carries_v2_fields(document: Any) -> bool:
    items = document if isinstance(document, list) else [document]
    return any(isinstance(item, dict) and V2_FIELDS & set(item) for item in items)


def test_the_corpora_hold_version_1_and_version_2_records_valid_and_not():
    documents = [parsed(value) for _, value in RECORDS]
    versions = [carries_v2_fields(document) for document in documents]
    verdicts = [document is not _NOT_JSON and V2_READER.is_valid(document) for document in documents]
    assert len(RECORDS) > 300 and sum(len(record.events) for record in REPLAY) > 1_500
    assert {(version, verdict) for version, verdict in zip(versions, verdicts)} == {
        (False, True), (False, False), (True, True), (True, False)}
    assert len(interop_examples()) >= 5


@pytest.mark.parametrize(("name", "value"), RECORDS, ids=[name for name, _ in RECORDS])
def test_every_record_without_version_2_fields_gets_the_same_verdict_from_both_schemas(name, value):
    document = parsed(value)
    if document is _NOT_JSON:
        return  # no schema reads it
    if carries_v2_fields(document):
        # The closed content model: a reader holding version 1 refuses what version 1 did not declare.
        assert not V1_READER.is_valid(document)
    else:
        assert V1_READER.is_valid(document) == V2_READER.is_valid(document)


def processed(records: list[Record]) -> tuple[dict[int, PartitionState], list[list[tuple[int | None, str]]]]:
    """The records through a fresh shipments processor, partition by partition as a worker applies them:
    each partition's state, and each record's dead letters as (index, reason)."""
    processor = FamilyProcessor("shipments", SETTINGS, Registry.load(None))
    states: dict[int, PartitionState] = defaultdict(processor.new_state)
    offsets: dict[int, int] = defaultdict(int)
    letters = []
    for record in records:
        partition = partition_of(record.key or b"")
        outcome = processor.process(states[partition], partition, offsets[partition], record.timestamp, record.value)
        offsets[partition] += 1
        letters.append([(letter.index, letter.reason) for letter in outcome.dead_letters])
    return dict(states), letters


def test_the_processor_rejects_exactly_the_replays_bad_events_with_their_reasons():
    _, letters = processed(REPLAY)
    assert letters == rejections(REPLAY)
    assert any(letters) and not all(letters)


def test_what_the_processor_accepts_both_schemas_read_unless_it_carries_version_2_fields():
    _, letters = processed(REPLAY)
    accepted = [record for record, dead in zip(REPLAY, letters, strict=True) if not dead]
    for record in accepted:
        document = parsed(record.value)
        assert V2_READER.is_valid(document)
        assert V1_READER.is_valid(document) is not carries_v2_fields(document)


@pytest.mark.parametrize("event", interop_examples(), ids=lambda event: event["event_id"])
def test_the_docs_examples_are_accepted_events(event):
    reference = datetime.fromisoformat(event["event_time"]) + timedelta(minutes=1)
    result = validate_record("shipments", orjson.dumps(event), RULES, reference_time=reference)
    assert result.errors == [] and len(result.events) == 1
    assert V2_READER.is_valid(event) and V1_READER.is_valid(event) is not carries_v2_fields(event)


# Version 1 events count the same: exactly as version 2 events stating the defaults.

#: Where a milestone without ``location`` happened (docs/interop.md): the origin, the destination, or no place.
DEFAULT_PLACE = {"booked": "origin", "departed": "origin", "arrived": "destination", "customs_cleared": "destination",
                 "delivered": "destination"}


def with_default_locations(record: Record) -> Record:
    """``record`` with every event that names no location naming its default one."""
    document = parsed(record.value)
    if document is _NOT_JSON or not isinstance(document, (dict, list)):
        return record
    items = document if isinstance(document, list) else [document]
    for item in items:
        if isinstance(item, dict) and "location" not in item and item.get("milestone") in DEFAULT_PLACE:
            place = item.get(DEFAULT_PLACE[item["milestone"]])
            if isinstance(place, str):
                item["location"] = place
    return Record(record.family, record.key, orjson.dumps(document), record.timestamp, record.events, record.invalid)


def exported(states: dict[int, PartitionState]) -> dict[int, tuple[Any, ...]]:
    """What each partition's metrics are made of: counters, window sums, histograms and gauges."""
    now = NOW.timestamp()
    views = {partition: state.view() for partition, state in states.items()}
    return {
        partition: (
            view.counters,
            {metric: windows.values(now) for metric, windows in view.windows.items()},
            view.histograms,
            dict(view.gauge(IN_TRANSIT, now)),
            dict(view.gauge(OVERDUE, now)),
        )
        for partition, view in views.items()
    }


def test_version_1_events_count_as_version_2_events_that_state_the_defaults():
    spelled_out = [with_default_locations(record) for record in REPLAY]
    assert sum(a.value != b.value for a, b in zip(REPLAY, spelled_out)) > 100
    states, letters = processed(REPLAY)
    states_spelled_out, letters_spelled_out = processed(spelled_out)
    assert letters_spelled_out == letters
    assert exported(states_spelled_out) == exported(states)
    histograms = [histograms for _, _, histograms, _, _ in exported(states).values()]
    assert any(histograms)  # transit times among them: version 1 departures and arrivals already give them


def test_teu_counts_on_departed_at_the_origin_and_version_1_departures_as_before():
    at = NOW - timedelta(hours=1)

    def departed(name: str, shipment: str, **fields: Any) -> dict[str, Any]:
        return sample_event("shipments", at=at, event_id=name, shipment_id=shipment, teu=2, gross_weight_kg=20_000,
                            **fields)

    version_2 = [departed("v2-cnckg", "S-V2", location="CNCKG"), departed("v2-cnqzh", "S-V2", location="CNQZH")]
    version_1 = [departed("v1-first", "S-V1"), departed("v1-hub", "S-V1")]
    key = b"CNCKG-CNQZH-SGSIN"
    states, letters = processed([Record("shipments", key, orjson.dumps(version_2 + version_1), NOW.timestamp())])
    (state,) = states.values()
    assert letters == [[]]
    labels = ("ILSTC", "CNCKG-CNQZH-SGSIN", "rail_sea")
    assert state.counters[SHIPMENT_EVENTS.key][(*labels, "departed")] == 4
    assert state.counters[SHIPMENT_TEU.key][labels] == 3 * 2_000  # milli-TEU: not the departure from Qinzhou
    assert state.counters[SHIPMENT_GROSS_WEIGHT.key][labels] == 3 * 20_000_000  # grams


# The version 2 fields are checked.

def refusal(**fields: Any) -> tuple[str, str] | None:
    """(reason, field) of a sample shipment with ``fields``, None when it is accepted."""
    event = sample_event("shipments", at=NOW - timedelta(minutes=1), **fields)
    result = validate_record("shipments", orjson.dumps(event), RULES, reference_time=NOW)
    if not result.errors:
        return None
    (error,) = result.errors
    (field_error,) = error.field_errors
    return str(error.reason), field_error.field


#: ISO 6346 letter values, as the standard's table gives them (the multiples of 11 skipped).
LETTER_VALUES = {"A": 10, "B": 12, "C": 13, "D": 14, "E": 15, "F": 16, "G": 17, "H": 18, "I": 19, "J": 20,
                 "K": 21, "L": 23, "M": 24, "N": 25, "O": 26, "P": 27, "Q": 28, "R": 29, "S": 30, "T": 31,
                 "U": 32, "V": 34, "W": 35, "X": 36, "Y": 37, "Z": 38}  # fmt: skip


def check_digit(first_ten: str) -> int:
    total = sum((LETTER_VALUES[char] if char.isalpha() else int(char)) * 2**position
                for position, char in enumerate(first_ten))
    return total % 11 % 10


@pytest.mark.parametrize("number", ["CSQU3054383", "BICU1234565"])
def test_published_container_numbers_are_accepted(number):
    assert refusal(equipment_id=number) is None


@pytest.mark.parametrize("number", ["CSQU3054384", "BICU1234566", "csqu3054383", "CSQX3054383", "CSQU305438",
                                    "CSQU 305438 3"])
def test_wrong_container_numbers_are_refused_naming_the_field(number):
    assert refusal(equipment_id=number) == ("invalid_value", "equipment_id")


@given(owner=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3), category=st.sampled_from("UJZ"),
       serial=st.integers(0, 999_999))
def test_exactly_one_check_digit_is_accepted_for_each_container(owner, category, serial):
    first_ten = f"{owner}{category}{serial:06d}"
    accepted = [digit for digit in range(10) if refusal(equipment_id=f"{first_ten}{digit}") is None]
    assert accepted == [check_digit(first_ten)]


@pytest.mark.parametrize("code", ["22G1", "42G1", "45G1", "45R1", "22U1", "22T0", "L5G1"])
def test_iso_6346_size_and_type_codes_are_accepted(code):
    assert refusal(equipment_size_type=code) is None


@pytest.mark.parametrize("code", ["40ft", "45g1", "4501", "95G1", "45G", "45G1 ", ""])
def test_other_size_and_type_codes_are_refused_naming_the_field(code):
    assert refusal(equipment_size_type=code) == ("invalid_value", "equipment_size_type")


@pytest.mark.parametrize("milestone", list(Milestone))
def test_planned_arrival_is_carried_by_booked_and_departed_only(milestone):
    verdict = refusal(milestone=milestone, planned_arrival="2026-12-05T00:00:00Z")
    if milestone in (Milestone.BOOKED, Milestone.DEPARTED):
        assert verdict is None
    else:
        assert verdict == ("invalid_value", "planned_arrival")


@pytest.mark.parametrize("field", ["planned_time", "planned_arrival"])
def test_planned_times_need_a_utc_offset_and_are_kept_in_utc(field):
    assert refusal(**{field: "2026-12-01T08:00:00"}) == ("naive_timestamp", field)
    event = sample_event("shipments", at=NOW, **{field: "2026-12-01T08:00:00+08:00"})
    assert getattr(ShipmentEvent.model_validate_json(orjson.dumps(event)), field) == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", [True, False, None])
def test_empty_takes_a_json_boolean(value):
    assert refusal(empty=value) is None


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "yes"])
def test_empty_refuses_anything_but_a_json_boolean(value):
    assert refusal(empty=value) == ("wrong_type", "empty")


@pytest.mark.parametrize(("fields", "expected"), [
    ({"planned_time_classifier": "PLN"}, None),
    ({"planned_time_classifier": "EST"}, None),
    ({"planned_time_classifier": "ACT"}, ("invalid_value", "planned_time_classifier")),
    ({"planned_time_classifier": "pln"}, ("invalid_value", "planned_time_classifier")),
    ({"location": "CNQZH"}, None),
    ({"location": "cnqzh"}, ("invalid_value", "location")),
    ({"location": "Qinzhou"}, ("invalid_value", "location")),
    ({"transport_id": "IMO9795610/021S"}, None),
    ({"transport_id": " X8001"}, ("invalid_value", "transport_id")),
    ({"transport_id": "X" * 65}, ("invalid_value", "transport_id")),
])
def test_the_other_version_2_fields(fields, expected):
    assert refusal(**fields) == expected


@pytest.mark.parametrize("fields", [
    {"equipment_id": "csqu3054383"}, {"equipment_size_type": "40ft"}, {"planned_time": "2026-12-01T08:00:00"},
    {"empty": "false"}, {"planned_time_classifier": "ACT"}, {"location": "cnqzh"},
])
def test_the_version_2_schema_refuses_what_it_can_express(fields):
    event = json.loads(orjson.dumps(sample_event("shipments", at=NOW, **fields)))
    assert not V2_READER.is_valid(event)
