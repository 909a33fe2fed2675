"""Kafka record framing: plain JSON, Confluent's wire format and CloudEvents, each mapping and each rejection."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.export import family_json_schema
from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.validation import RejectReason, ValidationResult, ValidationRules, validate_record
from streams.core import wire
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.core.wire import decode, validate_kafka_record
from streams.settings import Settings
from tests.strategies import EVENTS, FX_CURRENCIES, REFERENCE_TIME

NOW = datetime(2026, 11, 26, 12, 0, 7, tzinfo=UTC)
RULES = ValidationRules(FX_CURRENCIES, timedelta(minutes=5), 1 << 20, 1000, timedelta(days=7))
MAPPED = ("event_id", "source", "event_time")


EXAMPLES = {family: FAMILIES[family].example(NOW - timedelta(minutes=1)) for family in FAMILY_NAMES}


def event(family: str = "shipments", **overrides) -> dict:
    fields = {"event_id": "evt-1", "event_time": "2026-11-26T11:59:00Z", "source": "cq-rail-ops"}
    return EXAMPLES[family] | fields | overrides


def data_of(fields: dict) -> dict:
    return {name: value for name, value in fields.items() if name not in MAPPED}


def structured(fields: dict, **attributes) -> dict:
    """The event as a structured-mode CloudEvent: id, source and time carry the mapped fields."""
    cloudevent = {"specversion": "1.0", "id": fields["event_id"], "source": fields["source"],
                  "type": "org.corridor.shipment", "time": fields["event_time"], "datacontenttype": "application/json",
                  "data": data_of(fields)}
    return {name: value for name, value in (cloudevent | attributes).items() if value is not ...}


def binary_headers(fields: dict, **overrides) -> list[tuple[str, bytes | None]]:
    headers = {"ce_specversion": b"1.0", "ce_id": fields["event_id"].encode(), "ce_source": fields["source"].encode(),
               "ce_type": b"org.corridor.shipment", "ce_time": fields["event_time"].encode(),
               "content-type": b"application/json"} | overrides
    return [(name, value) for name, value in headers.items() if value is not ...]


def framed(payload: bytes, schema_id: int = 7) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def check(value: bytes, headers=None, family: str = "shipments") -> ValidationResult:
    result = validate_kafka_record(family, value, headers, RULES, NOW)
    assert_well_formed(result, value)
    return result


def assert_well_formed(result: ValidationResult, value: bytes) -> None:
    assert all(isinstance(error.reason, RejectReason) for error in result.errors)
    assert all("\n" not in error.message for error in result.errors)
    for error in result.errors:  # dead-letter headers carry them as UTF-8
        error.message.encode()
        [problem.message.encode() for problem in error.field_errors]
    # Dead letters carry what the record holds: all of it, or one batch item's own JSON text.
    assert all(error.raw in value for error in result.errors)
    if any(error.index is None for error in result.errors):
        assert result.events == [] and len(result.errors) == 1
    else:
        assert len(result.events) + len(result.errors) == result.total


def plain_events(fields: dict | list, family: str = "shipments"):
    result = validate_record(family, orjson.dumps(fields), RULES, NOW)
    assert result.errors == []
    return result.events


def only_error(result: ValidationResult):
    assert result.events == []
    (error,) = result.errors
    return error


# Plain JSON: the hot path.

def test_plain_json_is_validated_without_being_decoded(monkeypatch):
    def no_decoding(*_):
        raise AssertionError("plain JSON was decoded")

    monkeypatch.setattr(wire, "decode", no_decoding)
    for value in (orjson.dumps(event()), orjson.dumps([event(), event(event_id="evt-2")])):
        assert check(value).events == plain_events(orjson.loads(value))
        assert check(value, [("traceparent", b"00-abc"), ("content-type", b"application/json")]).events


def test_plain_json_keeps_every_reason_and_its_bytes():
    for value, reason in ((b"{not json", RejectReason.INVALID_JSON), (b"\xff\xfe", RejectReason.INVALID_UTF8),
                          (b"", RejectReason.INVALID_JSON), (b"[]", RejectReason.EMPTY_BATCH),
                          (b"  42", RejectReason.NOT_AN_EVENT)):
        error = only_error(check(value))
        assert (error.reason, error.raw) == (reason, value)
    assert check(b"\n\t " + orjson.dumps(event())).events == plain_events(event())


def test_a_valid_plain_event_is_never_read_as_a_cloudevent():
    fields = event(source="specversion-probe", shipment_id='"specversion"')
    assert check(orjson.dumps(fields)).events == plain_events(fields)


# Confluent's wire format.

def test_confluent_framed_json_decodes_to_the_payload():
    for payload in (orjson.dumps(event()), orjson.dumps([event(), event(event_id="evt-2")])):
        decoded = decode(framed(payload, 258))
        assert (decoded.value, decoded.schema_id, decoded.errors) == (payload, 258, ())
        assert check(framed(payload)).events == plain_events(orjson.loads(payload))


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_records_of_confluents_json_serializer_count_like_plain_json(family):
    registry = SchemaRegistryClient.new_client({"url": "mock://corridor"})
    serialize = JSONSerializer(json.dumps(family_json_schema(family)), registry)
    topic = FAMILIES[family].topic
    single = event(family)
    batch = [event(family, event_id=f"evt-{n}") for n in range(3)]
    for value in (single, batch):
        record = serialize(value, SerializationContext(topic, MessageField.VALUE))
        assert record[:1] == b"\x00"
        assert check(record, family=family).events == plain_events(value, family)
    (subject,) = registry.get_subjects()
    assert subject == f"{topic}-value"


def test_a_bad_event_in_a_framed_batch_is_dead_lettered_with_its_own_json():
    payload = orjson.dumps([event(), event(event_id="evt-2", teu=-1)])
    result = check(framed(payload))
    (error,) = result.errors
    bad = orjson.dumps(event(event_id="evt-2", teu=-1))
    assert (error.index, error.reason, error.raw) == (1, RejectReason.OUT_OF_RANGE, bad)
    assert len(result.events) == 1 and result.total == 2


def test_a_framed_payload_that_is_not_json_names_the_format_and_keeps_the_record():
    value = framed(b"\x02\x10avro-bytes", 42)
    error = only_error(check(value))
    assert error.reason is RejectReason.INVALID_JSON and error.raw == value
    assert "Confluent wire format, schema id 42" in error.message and "Avro" in error.message
    assert only_error(check(framed(b""))).reason is RejectReason.INVALID_JSON


@pytest.mark.parametrize("value", [b"\x01\x00\x00\x00\x07{}", b"\x02", b"\x1b[0m{}", b"\x7f{}"])
def test_another_control_byte_first_is_an_invalid_wire_format(value):
    error = only_error(check(value))
    assert (error.reason, error.raw) == (RejectReason.INVALID_WIRE_FORMAT, value)
    assert f"byte 0x{value[0]:02x}" in error.message and "0x00" in error.message


@pytest.mark.parametrize("value", [b"\x00", b"\x00\x00\x00\x07"])
def test_a_magic_byte_without_a_whole_schema_id_is_an_invalid_wire_format(value):
    error = only_error(check(value))
    assert (error.reason, error.raw) == (RejectReason.INVALID_WIRE_FORMAT, value)
    assert f"{len(value)} byte(s)" in error.message and "5-byte" in error.message


# CloudEvents, binary mode.

def test_a_binary_mode_cloudevent_maps_id_source_and_time():
    fields = event(event_id="ce-42", source="/corridor/rail/cq", event_time="2026-11-26T19:59:00+08:00")
    data = orjson.dumps(data_of(fields))
    decoded = decode(data, binary_headers(fields))
    assert dict(decoded.origins) == {"event_id": "ce_id", "source": "ce_source", "event_time": "ce_time"}
    assert check(data, binary_headers(fields)).events == plain_events(fields)
    assert check(framed(data), binary_headers(fields)).events == plain_events(fields)


def test_binary_mode_data_keeps_its_number_text():
    fields = event("finance", amount=1)
    data = orjson.dumps(data_of(fields)).replace(b'"amount":1', b'"amount":2500000.550000000000000001')
    plain = orjson.dumps(fields).replace(b'"amount":1', b'"amount":2500000.550000000000000001')
    assert check(data, binary_headers(fields), family="finance").events == check(plain, family="finance").events


def test_binary_mode_data_may_repeat_a_mapped_field_with_the_same_value():
    fields = event()
    assert check(orjson.dumps(fields), binary_headers(fields)).events == plain_events(fields)


def test_binary_mode_without_time_takes_event_time_from_the_data():
    fields = event()
    assert check(orjson.dumps(data_of(fields) | {"event_time": fields["event_time"]}),
                 binary_headers(fields, ce_time=...)).events == plain_events(fields)


def test_binary_mode_without_a_content_type_is_read_as_json():
    fields = event()
    assert check(orjson.dumps(data_of(fields)), binary_headers(fields, **{"content-type": ...})).events


@pytest.mark.parametrize(("overrides", "where", "says"), [
    ({"ce_specversion": ...}, "ce_specversion", "is missing: set it to 1.0"),
    ({"ce_specversion": b"0.3"}, "ce_specversion", "only CloudEvents 1.0"),
    ({"ce_id": ...}, "ce_id", "event_id"),
    ({"ce_id": b""}, "ce_id", "non-empty"),
    ({"ce_source": ...}, "ce_source", "is missing"),
    ({"ce_type": ...}, "ce_type", "is missing"),
    ({"content-type": b"application/avro"}, "content-type", "only JSON event data"),
    ({"content-type": b"text/plain; charset=utf-8"}, "content-type", "only JSON event data"),
])  # fmt: skip
def test_a_bad_binary_mode_cloudevent_is_an_invalid_cloudevent(overrides, where, says):
    fields = event()
    value = orjson.dumps(data_of(fields))
    error = only_error(check(value, binary_headers(fields, **overrides)))
    assert (error.reason, error.index, error.raw) == (RejectReason.INVALID_CLOUDEVENT, None, value)
    assert error.message.startswith(f"CloudEvent {where}: ") and says in error.message
    assert error.field_errors[0].field == where


@pytest.mark.parametrize(("headers", "says"), [
    ([("ce_id", b"a"), ("ce_id", b"b")], "header ce_id appears 2 times"),
    ([("ce_id", None)], "header ce_id has no value"),
    ([("ce_source", b"\xff")], "header ce_source is not UTF-8"),
])  # fmt: skip
def test_unreadable_cloudevent_headers_are_an_invalid_cloudevent(headers, says):
    fields = event()
    error = only_error(check(orjson.dumps(data_of(fields)), binary_headers(fields, ce_id=..., ce_source=...) + headers))
    assert error.reason is RejectReason.INVALID_CLOUDEVENT and says in error.message


def test_binary_mode_data_must_be_one_event_object():
    fields = event()
    value = orjson.dumps([data_of(fields)])
    error = only_error(check(value, binary_headers(fields)))
    assert error.reason is RejectReason.INVALID_CLOUDEVENT and "CloudEvent data: is a JSON array" in error.message
    assert only_error(check(b"{oops", binary_headers(fields))).reason is RejectReason.INVALID_JSON


@pytest.mark.parametrize("name", ["ce_id", "ce_source", "ce_time"])
def test_a_mapped_field_the_data_gives_another_value_is_rejected_not_guessed(name):
    fields = event()
    field = {"ce_id": "event_id", "ce_source": "source", "ce_time": "event_time"}[name]
    value = orjson.dumps(data_of(fields) | {field: "2026-11-26T11:00:00Z"})
    error = only_error(check(value, binary_headers(fields)))
    assert error.reason is RejectReason.INVALID_CLOUDEVENT
    assert error.message.startswith(f"CloudEvent {name}: ") and f"the data's {field}" in error.message


@pytest.mark.parametrize(("time", "reason"), [
    ("yesterday", RejectReason.INVALID_VALUE),
    ("2026-11-26T11:59:00", RejectReason.NAIVE_TIMESTAMP),
    ("2026-11-27T11:59:00Z", RejectReason.FUTURE_EVENT_TIME),
    ("2026-10-01T00:00:00Z", RejectReason.STALE_EVENT_TIME),
])  # fmt: skip
def test_a_bad_cloudevent_time_has_the_reason_of_a_bad_event_time_and_says_where_it_came_from(time, reason):
    fields = event(event_time=time)
    plain = only_error(check(orjson.dumps(fields)))
    binary = only_error(check(orjson.dumps(data_of(fields)), binary_headers(fields)))
    as_structured = only_error(check(orjson.dumps(structured(fields))))
    assert plain.reason is binary.reason is as_structured.reason is reason
    assert binary.message.startswith("event_time (from the CloudEvent's ce_time): ")
    assert as_structured.message.startswith("event_time (from the CloudEvent's time): ")
    assert binary.message.split(": ", 1)[1] == plain.message.split(": ", 1)[1]
    assert binary.field_errors[0].field == "event_time"
    assert binary.field_errors[0].message.endswith("(from the CloudEvent's ce_time)")


def test_a_bad_cloudevent_id_says_where_it_came_from():
    fields = event(event_id="x" * 300)
    error = only_error(check(orjson.dumps(structured(fields))))
    assert error.reason is RejectReason.INVALID_VALUE
    assert error.message.startswith("event_id (from the CloudEvent's id): ")


# CloudEvents, structured mode.

def test_a_structured_cloudevent_maps_onto_its_data_with_or_without_a_content_type():
    fields = event(source="urn:corridor:qinzhou-port")
    value = orjson.dumps(structured(fields, subject="CNQZH", dataschema="https://example.org/s.json"))
    assert check(value).events == plain_events(fields)
    header = [("content-type", b"application/cloudevents+json; charset=utf-8")]
    assert check(value, header).events == plain_events(fields)
    assert check(framed(value)).events == plain_events(fields)
    assert check(b"\n " + value).events == plain_events(fields)


def test_a_structured_cloudevent_takes_a_missing_or_null_time_from_its_data():
    fields = event()
    for cloudevent in (structured(fields, time=...), structured(fields, time=None)):
        cloudevent["data"]["event_time"] = fields["event_time"]
        assert check(orjson.dumps(cloudevent)).events == plain_events(fields)


@pytest.mark.parametrize(("attributes", "where", "says"), [
    ({"specversion": "0.3"}, "specversion", "only CloudEvents 1.0"),
    ({"specversion": 1.0}, "specversion", "only CloudEvents 1.0"),
    ({"id": ...}, "id", "is missing; it becomes the event's event_id"),
    ({"id": 42}, "id", "must be a non-empty string (got 42)"),
    ({"source": ""}, "source", "non-empty string"),
    ({"type": ...}, "type", "is missing"),
    ({"datacontenttype": "application/xml"}, "datacontenttype", "only JSON event data"),
    ({"data": ...}, "data", "is missing"),
    ({"data": [1]}, "data", "is a JSON array; expected one event object"),
    ({"data": "text"}, "data", "is a JSON string"),
    ({"data": ..., "data_base64": "e30="}, "data_base64", "send the event as JSON in data"),
    ({"id": "other-id", "data": {"event_id": "evt-1"}}, "id", "the data's event_id"),
])  # fmt: skip
def test_a_bad_structured_cloudevent_is_an_invalid_cloudevent(attributes, where, says):
    fields = event()
    value = orjson.dumps(structured(fields, **attributes))
    error = only_error(check(value))
    assert (error.reason, error.raw) == (RejectReason.INVALID_CLOUDEVENT, value)
    assert error.message.startswith(f"CloudEvent {where}: ") and says in error.message


def test_a_structured_content_type_needs_a_cloudevent_object():
    fields = event()
    header = [("content-type", b"application/cloudevents+json")]
    assert "specversion: is missing" in only_error(check(orjson.dumps(fields), header)).message
    error = only_error(check(orjson.dumps([structured(fields)]), header))
    assert error.reason is RejectReason.INVALID_CLOUDEVENT and "must be a JSON object" in error.message
    assert only_error(check(b"{", header)).reason is RejectReason.INVALID_JSON


def test_structured_mode_ignores_ce_headers():
    fields = event()
    headers = [("content-type", b"application/cloudevents+json"), ("ce_id", b"ignored")]
    assert check(orjson.dumps(structured(fields)), headers).events == plain_events(fields)


# CloudEvents batches.

def test_a_cloudevents_batch_maps_each_cloudevent():
    events = [event(event_id=f"evt-{n}", source=f"/port/{n}") for n in range(4)]
    value = orjson.dumps([structured(fields) for fields in events])
    assert check(value).events == plain_events(events)
    assert check(value, [("content-type", b"application/cloudevents-batch+json")]).events == plain_events(events)


def test_a_bad_cloudevent_in_a_batch_is_rejected_alone_with_its_own_json():
    good, bad_time, bad_version = event(event_id="a"), event(event_id="b", event_time="soon"), event(event_id="c")
    items = [structured(good), structured(bad_time), structured(bad_version, specversion="2.0"), event(event_id="d")]
    value = orjson.dumps(items)
    result = check(value)
    assert result.events == plain_events([good, event(event_id="d")])
    assert [(e.index, e.reason) for e in result.errors] == [
        (1, RejectReason.INVALID_VALUE), (2, RejectReason.INVALID_CLOUDEVENT)]
    assert [e.raw for e in result.errors] == [orjson.dumps(items[1]), orjson.dumps(items[2])]
    assert result.errors[0].message.startswith("event_time (from the CloudEvent's time): ")
    assert result.total == 4


def test_a_declared_batch_holds_only_cloudevents():
    header = [("content-type", b"application/cloudevents-batch+json")]
    fields = event()
    result = check(orjson.dumps([structured(fields), event(event_id="plain"), 7]), header)
    assert result.events == plain_events(fields)
    assert [(e.index, e.reason) for e in result.errors] == [
        (1, RejectReason.INVALID_CLOUDEVENT), (2, RejectReason.INVALID_CLOUDEVENT)]
    assert "is a JSON number" in result.errors[1].message
    error = only_error(check(orjson.dumps(structured(fields)), header))
    assert error.reason is RejectReason.INVALID_CLOUDEVENT and "must be a JSON array" in error.message
    assert only_error(check(b"[]", header)).reason is RejectReason.EMPTY_BATCH


def test_a_batch_of_rejected_cloudevents_counts_each_one():
    value = orjson.dumps([structured(event(), id=...)] * 3)
    result = check(value)
    assert result.events == [] and result.total == 3
    assert [(e.index, e.reason) for e in result.errors] == [(i, RejectReason.INVALID_CLOUDEVENT) for i in range(3)]


def test_limits_apply_to_the_record_as_sent():
    fields = event()
    many = orjson.dumps([structured(fields)] * 3)
    small = ValidationRules(FX_CURRENCIES, timedelta(minutes=5), 1 << 20, 2, timedelta(days=7))
    error = only_error(validate_kafka_record("shipments", framed(many), None, small, NOW))
    assert (error.reason, error.raw) == (RejectReason.TOO_MANY_EVENTS, framed(many))
    value = orjson.dumps(structured(fields))
    tight = ValidationRules(FX_CURRENCIES, timedelta(minutes=5), len(value), 10, timedelta(days=7))
    assert validate_kafka_record("shipments", value, None, tight, NOW).events  # the attributes written in are free
    error = only_error(validate_kafka_record("shipments", framed(value), None, tight, NOW))
    assert error.reason is RejectReason.TOO_LARGE


# The processor: headers by offset, dead letters with the record's own bytes.

def test_the_processor_counts_every_form_like_plain_json():
    processor = FamilyProcessor("shipments", Settings(), Registry.load(None))
    state = processor.new_state()
    forms = []
    for n in range(5):
        fields = event(event_id=f"evt-{n}")
        forms.append([
            (orjson.dumps(fields), None),
            (framed(orjson.dumps(fields)), None),
            (orjson.dumps(data_of(fields)), binary_headers(fields)),
            (orjson.dumps(structured(fields)), None),
            (orjson.dumps([structured(fields)]), [("content-type", b"application/cloudevents-batch+json")]),
        ][n])
    records = [(offset, NOW.timestamp(), value) for offset, (value, _) in enumerate(forms)]
    headers = {offset: header for offset, (_, header) in enumerate(forms) if header}
    outcomes = processor.process_many(state, 0, records, headers)
    assert all(outcome.dead_letters == [] for outcome in outcomes)
    assert state.counters["events_accepted"][()] == 5 and state.counters["events_received"][()] == 5


def test_the_processor_dead_letters_the_records_own_bytes():
    processor = FamilyProcessor("shipments", Settings(), Registry.load(None))
    state = processor.new_state()
    fields = event()
    value = orjson.dumps(data_of(fields))
    outcome = processor.process(state, 0, 1, NOW.timestamp(), value, binary_headers(fields, ce_specversion=b"9"))
    (letter,) = outcome.dead_letters
    assert (letter.reason, letter.raw, letter.offset) == ("invalid_cloudevent", value, 1)
    outcome = processor.process(state, 0, 2, NOW.timestamp(), b"\x01\x00\x00\x00\x01{}")
    assert [letter.reason for letter in outcome.dead_letters] == ["invalid_wire_format"]
    assert state.counters["events_rejected"] == {("invalid_cloudevent",): 1, ("invalid_wire_format",): 1}


# Fuzzing: arbitrary bytes and headers never raise, and decide alike every time.

header_names = st.sampled_from(["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject",
                                "content-type", "CE_ID", "Content-Type", "traceparent"]) | st.text(max_size=12)
header_values = st.none() | st.binary(max_size=24) | st.sampled_from([
    b"1.0", b"0.3", b"", b"evt-1", b"/port", b"2026-11-26T11:59:00Z", b"yesterday", b"application/json",
    b"application/cloudevents+json", b"application/cloudevents-batch+json", b"application/avro"])
binary_mode_headers = st.lists(
    st.sampled_from(["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"]), unique=True
).flatmap(lambda names: st.tuples(*[st.tuples(st.just(name), header_values) for name in names]).map(list))
headers = st.none() | st.lists(st.tuples(header_names, header_values), max_size=6) | binary_mode_headers
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20)
    | st.text(st.characters(categories=["Cs", "Lo"]), max_size=4),  # lone surrogates: JSON \u escapes
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)


@st.composite
def cloudevent_values(draw: st.DrawFn) -> bytes:
    """Valid events as structured CloudEvents, one attribute perhaps replaced, perhaps in a batch, perhaps framed."""
    family = draw(st.sampled_from(sorted(EVENTS)))
    fields = draw(EVENTS[family]).model_dump(mode="json")
    cloudevent = structured(fields)
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(cloudevent)))
        cloudevent[name] = draw(json_values)
    value = json.dumps([cloudevent] if draw(st.booleans()) else cloudevent).encode()
    return framed(value) if draw(st.booleans()) else value


event_data = st.sampled_from(sorted(EVENTS)).flatmap(lambda family: EVENTS[family]).map(
    lambda model: orjson.dumps(data_of(model.model_dump(mode="json"))))
kafka_values = (st.binary(max_size=256) | st.binary(max_size=64).map(framed) | cloudevent_values() | event_data
                | json_values.map(lambda value: json.dumps(value).encode()))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FAMILY_NAMES), kafka_values, headers)
def test_any_record_and_headers_decode_and_validate_without_raising_and_alike_every_time(family, value, record_headers):
    decoded = decode(value, record_headers)
    assert decoded == decode(value, record_headers)
    if decoded.value is not None:
        validate_record(family, decoded.value, RULES, REFERENCE_TIME)
    result = validate_kafka_record(family, value, record_headers, RULES, REFERENCE_TIME)
    assert_well_formed(result, value)
    assert result == validate_kafka_record(family, value, record_headers, RULES, REFERENCE_TIME)


def test_attributes_with_lone_surrogate_escapes_are_judged_not_raised():
    fields = event()
    for attribute in ("id", "source", "time", "type", "specversion"):
        value = orjson.dumps(structured(fields, **{attribute: "SURROGATE"})).replace(b"SURROGATE", b"\\ud800")
        result = check(value)
        assert len(result.errors) == (attribute != "type")  # the type is not used
        for error in result.errors:  # dead-letter headers carry messages as UTF-8
            assert error.message.encode() and all(problem.message.encode() for problem in error.field_errors)
