"""Record validation: the fast path, every reject reason, mixed envelopes and fuzzed input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from schemas import FinanceEvent, ShipmentEvent
from schemas.families import FAMILIES, FAMILY_NAMES
from schemas.samples import sample_event
from schemas.validation import (
    MAX_FIELD_ERRORS,
    FieldError,
    RecordError,
    RejectReason,
    ValidationResult,
    ValidationRules,
    validate_object,
    validate_record,
)
from streams.settings import Settings
from tests.strategies import EVENTS, FX_CURRENCIES, REFERENCE_TIME, family_events

RULES = ValidationRules(
    currencies=FX_CURRENCIES,
    future_tolerance=timedelta(minutes=5),
    max_record_bytes=64 * 1024,
    max_events_per_record=100,
    max_age=timedelta(days=7),
)
NOW = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def event(family: str, **overrides: Any) -> dict[str, Any]:
    return sample_event(family, **({"event_time": "2024-05-01T07:59:00Z"} | overrides))


def without(family: str, field: str) -> dict[str, Any]:
    return {name: value for name, value in event(family).items() if name != field}


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def check(family: str, raw: bytes, rules: ValidationRules = RULES) -> ValidationResult:
    return validate_record(family, raw, rules, reference_time=NOW)


def only_error(result: ValidationResult) -> RecordError:
    assert result.events == []
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_single_event_validates_into_its_model(family):
    result = check(family, encode(event(family)))
    assert result.errors == [] and result.total == 1
    assert [type(e) for e in result.events] == [FAMILIES[family].model]
    assert result.events[0].event_time == datetime(2024, 5, 1, 7, 59, tzinfo=UTC)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_batch_envelope_validates_in_order(family):
    batch = [event(family, event_id=f"e{i}") for i in range(5)]
    result = check(family, b"\n  " + encode(batch) + b"\n")
    assert result.errors == [] and result.total == 5
    assert [e.event_id for e in result.events] == [f"e{i}" for i in range(5)]


def test_offsets_are_normalised_to_utc():
    result = check("flights", encode(event("flights", scheduled_time="2024-05-01T15:30:00+08:00")))
    (flight,) = result.events
    assert flight.scheduled_time == datetime(2024, 5, 1, 7, 30, tzinfo=UTC)
    assert flight.scheduled_time.utcoffset() == timedelta(0)
    assert '"scheduled_time":"2024-05-01T07:30:00Z"' in flight.model_dump_json()


# One row per kind of bad record: the family, the record, the reason, the field named.
BAD_RECORDS = [
    ("invalid JSON", "shipments", b'{"event_id": "e1",', RejectReason.INVALID_JSON, None),
    ("invalid UTF-8", "shipments", b'{"source": "\xff\xfe"}', RejectReason.INVALID_UTF8, None),
    ("top-level scalar", "shipments", b"42", RejectReason.NOT_AN_EVENT, None),
    ("top-level string", "flights", b'"departed"', RejectReason.NOT_AN_EVENT, None),
    ("empty array", "shipments", b" [ ] ", RejectReason.EMPTY_BATCH, None),
    ("teu as a string", "shipments", encode(event("shipments", teu="3")), RejectReason.WRONG_TYPE, "teu"),
    ("passengers as a float", "flights", encode(event("flights", passengers=180.5)), RejectReason.WRONG_TYPE,
     "passengers"),
    ("bytes as a boolean", "datachannel", encode(event("datachannel", bytes=True)), RejectReason.WRONG_TYPE,
     "bytes"),
    ("amount as a string", "finance", encode(event("finance", amount="1000")), RejectReason.WRONG_TYPE, "amount"),
    ("event_time as a number", "datachannel", encode(event("datachannel", event_time=1714550400)),
     RejectReason.WRONG_TYPE, "event_time"),
    ("missing route", "shipments", encode(without("shipments", "route")), RejectReason.MISSING_FIELD, "route"),
    ("value without currency", "shipments", encode(without("shipments", "currency")), RejectReason.MISSING_FIELD,
     "currency"),
    ("unknown field", "finance", encode(event("finance", colour="red")), RejectReason.UNKNOWN_FIELD, "colour"),
    ("unknown enum value", "shipments", encode(event("shipments", mode="truck")), RejectReason.INVALID_VALUE,
     "mode"),
    ("lower-case UN/LOCODE", "shipments", encode(event("shipments", origin="cnckg")), RejectReason.INVALID_VALUE,
     "origin"),
    ("bad IATA route", "flights", encode(event("flights", route="CKG_SIN")), RejectReason.INVALID_VALUE, "route"),
    ("Unix time as a string", "finance", encode(event("finance", event_time="1714550400")),
     RejectReason.INVALID_VALUE, "event_time"),
    ("impossible date", "finance", encode(event("finance", event_time="2024-02-30T00:00:00Z")),
     RejectReason.INVALID_VALUE, "event_time"),
    ("negative TEU", "shipments", encode(event("shipments", teu=-3)), RejectReason.OUT_OF_RANGE, "teu"),
    ("zero amount", "finance", encode(event("finance", amount=0)), RejectReason.OUT_OF_RANGE, "amount"),
    ("loss ratio above 1", "datachannel", encode(event("datachannel", packet_loss_ratio=1.5)),
     RejectReason.OUT_OF_RANGE, "packet_loss_ratio"),
    ("zero interval", "datachannel", encode(event("datachannel", interval_seconds=0)), RejectReason.OUT_OF_RANGE,
     "interval_seconds"),
    ("NaN", "shipments", encode(event("shipments", teu=float("nan"))), RejectReason.NON_FINITE_NUMBER, "teu"),
    ("Infinity", "datachannel", encode(event("datachannel", latency_ms=float("inf"))),
     RejectReason.NON_FINITE_NUMBER, "latency_ms"),
    ("overflowing number", "finance", encode(event("finance")).replace(b"150000000.0", b"1e999"),
     RejectReason.NON_FINITE_NUMBER, "amount"),
    ("naive timestamp", "shipments", encode(event("shipments", event_time="2024-05-01T07:59:00")),
     RejectReason.NAIVE_TIMESTAMP, "event_time"),
    ("naive actual time", "flights", encode(event("flights", actual_time="2024-05-01T07:59:00")),
     RejectReason.NAIVE_TIMESTAMP, "actual_time"),
    ("far-future timestamp", "datachannel", encode(event("datachannel", event_time="2024-05-02T08:00:00Z")),
     RejectReason.FUTURE_EVENT_TIME, "event_time"),
    ("timestamp older than the dedup horizon", "shipments",
     encode(event("shipments", event_time="2024-04-20T08:00:00+08:00")), RejectReason.STALE_EVENT_TIME, "event_time"),
    ("unsupported currency", "finance", encode(event("finance", currency="EUR")),
     RejectReason.UNSUPPORTED_CURRENCY, "currency"),
    ("event of another family", "shipments", encode(event("flights")), RejectReason.WRONG_FAMILY, None),
]  # fmt: skip


@pytest.mark.parametrize(("family", "raw", "reason", "field"), [row[1:] for row in BAD_RECORDS],
                         ids=[row[0] for row in BAD_RECORDS])  # fmt: skip
def test_each_kind_of_bad_record_has_its_reason_and_names_the_field(family, raw, reason, field):
    result = check(family, raw)
    error = only_error(result)
    assert error.reason is reason
    assert error.index is None
    assert error.raw == raw
    assert "\n" not in error.message
    if field is not None:
        assert error.message.startswith(f"{field}: ")
        assert field in [f.field for f in error.field_errors]


def test_the_bad_record_kinds_cover_every_reason_but_the_limits_the_fallback_and_kafka_framing():
    covered = {row[3] for row in BAD_RECORDS}
    limits = {RejectReason.TOO_LARGE, RejectReason.TOO_MANY_EVENTS, RejectReason.SCHEMA}
    framing = {RejectReason.INVALID_WIRE_FORMAT, RejectReason.INVALID_CLOUDEVENT}  # tests/unit/core/test_wire.py
    assert covered | limits | framing == set(RejectReason)


def test_messages_say_what_to_fix():
    assert only_error(check("shipments", encode(event("shipments", teu=-3)))).message == "teu: must be >= 0 (got -3)"
    naive = only_error(check("shipments", encode(event("shipments", event_time="2024-05-01T07:59:00"))))
    assert naive.message.startswith("event_time: needs a UTC offset, e.g. 2024-05-01T08:00:00Z")
    currency = only_error(check("finance", encode(event("finance", currency="EUR"))))
    assert currency.message == "currency: EUR is not in the FX table; use one of CNY, SGD, USD"
    missing = only_error(check("shipments", encode(without("shipments", "currency"))))
    assert missing.message == "currency: is required when declared_value is given"


def test_a_record_over_the_size_limit_is_refused_before_parsing():
    rules = ValidationRules(FX_CURRENCIES, timedelta(minutes=5), max_record_bytes=1024, max_events_per_record=100)
    raw = encode([event("datachannel", event_id=f"e{i}") for i in range(20)])
    error = only_error(check("datachannel", raw, rules))
    assert error.reason is RejectReason.TOO_LARGE and error.raw == raw
    assert str(len(raw)) in error.message and "1024" in error.message


def test_a_batch_over_the_event_limit_is_refused_whole():
    rules = ValidationRules(FX_CURRENCIES, timedelta(minutes=5), max_record_bytes=1 << 20, max_events_per_record=3)
    result = check("datachannel", encode([event("datachannel") for _ in range(4)]), rules)
    assert only_error(result).reason is RejectReason.TOO_MANY_EVENTS
    assert result.total == 4
    assert check("datachannel", encode([event("datachannel") for _ in range(3)]), rules).errors == []


def test_event_time_may_lead_the_reference_by_the_tolerance_only():
    at_limit = check("finance", encode(event("finance", event_time="2024-05-01T08:05:00Z")))
    beyond = check("finance", encode(event("finance", event_time="2024-05-01T08:05:01Z")))
    assert at_limit.errors == [] and only_error(beyond).reason is RejectReason.FUTURE_EVENT_TIME


def test_future_is_measured_against_now_without_a_reference_time():
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert validate_record("flights", encode(event("flights", event_time=soon)), RULES).errors == []
    late = validate_record("flights", encode(event("flights", event_time=later)), RULES)
    assert only_error(late).reason is RejectReason.FUTURE_EVENT_TIME


def test_a_mixed_envelope_keeps_the_good_events_and_reports_the_bad_by_index():
    good = [event("shipments", event_id=f"good{i}") for i in range(3)]
    items = [good[0], event("shipments", teu=-1), good[1], 7, event("flights"), good[2],
             event("shipments", mode="truck", colour="red", teu="x")]  # fmt: skip
    result = check("shipments", encode(items))
    assert [e.event_id for e in result.events] == ["good0", "good1", "good2"]
    assert result.total == 7
    assert [(e.index, e.reason) for e in result.errors] == [
        (1, RejectReason.OUT_OF_RANGE),
        (3, RejectReason.NOT_AN_EVENT),
        (4, RejectReason.WRONG_FAMILY),
        (6, RejectReason.UNKNOWN_FIELD),
    ]
    assert [json.loads(e.raw) for e in result.errors] == [items[1], items[3], items[4], items[6]]
    several = result.errors[-1]
    assert [f.field for f in several.field_errors] == ["colour", "teu", "mode"]
    assert several.message.endswith("(and 2 more field errors)")
    assert "corridor.flights.v1" in result.errors[2].message


def test_item_bytes_are_the_items_own_text():
    raw = b'[ {"a": 1},\n  "x" ,[1, 2] ]'
    result = check("datachannel", raw)
    assert [e.raw for e in result.errors] == [b'{"a": 1}', b'"x"', b"[1, 2]"]
    assert [e.reason for e in result.errors] == [RejectReason.MISSING_FIELD, RejectReason.NOT_AN_EVENT,
                                                  RejectReason.NOT_AN_EVENT]  # fmt: skip


def test_a_rule_failure_inside_a_batch_is_reported_by_index():
    batch = [event("finance"), event("finance", currency="EUR"), event("finance", event_time="2030-01-01T00:00:00Z")]
    result = check("finance", encode(batch))
    assert len(result.events) == 1
    assert [(e.index, e.reason) for e in result.errors] == [
        (1, RejectReason.UNSUPPORTED_CURRENCY),
        (2, RejectReason.FUTURE_EVENT_TIME),
    ]


def test_shipment_currencies_need_not_be_in_the_fx_table():
    result = check("shipments", encode(event("shipments", currency="EUR", declared_value=1200.5)))
    (shipment,) = result.events
    assert shipment.currency == "EUR" and shipment.declared_value == Decimal("1200.5")


def test_several_errors_pick_the_reason_by_priority_and_list_every_field():
    result = check("shipments", encode(event("shipments", teu=-1, mode="truck", event_time="2024-05-01T07:00:00")))
    error = only_error(result)
    assert error.reason is RejectReason.NAIVE_TIMESTAMP
    assert sorted(f.field for f in error.field_errors) == ["event_time", "mode", "teu"]


def test_validate_object_takes_parsed_json_and_models():
    model = ShipmentEvent.model_validate_json(encode(event("shipments", event_id="as-model")))
    result = validate_object("shipments", [event("shipments", event_id="as-dict"), model, {"teu": 1}], RULES, NOW)
    assert [e.event_id for e in result.events] == ["as-dict", "as-model"]
    assert [(e.index, e.reason) for e in result.errors] == [(2, RejectReason.MISSING_FIELD)]
    assert validate_object("finance", event("finance"), RULES, NOW).total == 1


def test_validate_object_checks_events_not_record_limits():
    rules = ValidationRules(FX_CURRENCIES, timedelta(minutes=5), max_record_bytes=1024, max_events_per_record=2)
    result = validate_object("datachannel", [event("datachannel") for _ in range(10)], rules, NOW)
    assert len(result.events) == 10 and result.errors == []


def test_validate_object_reports_values_that_are_not_json():
    result = validate_object("finance", {"amount": Decimal("1.5")}, RULES, NOW)
    error = only_error(result)
    assert error.reason is RejectReason.NOT_AN_EVENT and "Decimal" in error.message
    nan = validate_object("datachannel", event("datachannel", latency_ms=float("nan")), RULES, NOW)
    assert only_error(nan).reason is RejectReason.NON_FINITE_NUMBER


def test_unknown_family_and_naive_reference_time_are_caller_errors():
    with pytest.raises(ValueError, match="unknown event family"):
        validate_record("trains", b"{}", RULES)
    with pytest.raises(ValueError, match="timezone-aware"):
        validate_record("finance", b"{}", RULES, reference_time=datetime(2024, 1, 1))


def test_rules_come_from_settings():
    settings = Settings(fx_per_usd={"usd": 1, "myr": 4.7}, max_record_bytes=4096, max_events_per_record=7)
    rules = ValidationRules.from_settings(settings)
    expected = ValidationRules(frozenset({"USD", "MYR"}), settings.future_tolerance, 4096, 7, settings.dedup_horizon)
    assert rules == expected


def test_field_errors_are_plain_values():
    error = only_error(check("shipments", encode(event("shipments", teu=-3))))
    assert error.field_errors == (FieldError("teu", "must be >= 0 (got -3)", "greater_than_equal"),)


# Property tests. Generated events all lie before REFERENCE_TIME.
PROPERTY_RULES = ValidationRules(FX_CURRENCIES, timedelta(0), 1 << 22, 1000)


@given(family_events)
def test_any_valid_event_round_trips_through_json(family_and_event):
    family, original = family_and_event
    result = validate_record(family, original.model_dump_json().encode(), PROPERTY_RULES, REFERENCE_TIME)
    assert result.errors == []
    assert result.events == [original]


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FAMILY_NAMES).flatmap(lambda f: st.tuples(st.just(f), st.lists(EVENTS[f], min_size=1, max_size=8))),
    st.data(),
)
def test_a_bad_item_anywhere_leaves_the_other_events_intact(family_and_events, data):
    family, originals = family_and_events
    raw_items = [event.model_dump_json() for event in originals]
    bad_at = data.draw(st.integers(0, len(raw_items)), label="bad_at")
    raw_items.insert(bad_at, '{"event_id": 1}')
    result = validate_record(family, f"[{','.join(raw_items)}]".encode(), PROPERTY_RULES, REFERENCE_TIME)
    assert result.events == originals
    assert [(e.index, e.reason) for e in result.errors] == [(bad_at, RejectReason.MISSING_FIELD)]
    assert result.total == len(originals) + 1


@given(st.sampled_from(FAMILY_NAMES), st.lists(st.sampled_from(FAMILY_NAMES), min_size=1, max_size=6), st.data())
def test_batches_validate_like_their_items(family, item_families, data):
    items = [data.draw(EVENTS[item_family]) for item_family in item_families]
    raw = TypeAdapter(list[Any]).dump_json(items)
    result = validate_record(family, raw, PROPERTY_RULES, REFERENCE_TIME)
    assert result.events == [item for item in items if item.family == family]
    assert {e.reason for e in result.errors} <= {RejectReason.WRONG_FAMILY}
    assert len(result.events) + len(result.errors) == result.total == len(items)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)


def assert_well_formed(result: ValidationResult) -> None:
    assert isinstance(result, ValidationResult)
    assert all(isinstance(e, RecordError) and isinstance(e.reason, RejectReason) for e in result.errors)
    assert all("\n" not in e.message for e in result.errors)
    if any(e.index is None for e in result.errors):
        assert result.events == [] and len(result.errors) == 1
    else:
        assert len(result.events) + len(result.errors) == result.total


@given(st.sampled_from(FAMILY_NAMES), st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(family, raw):
    assert_well_formed(validate_record(family, raw, RULES, NOW))


@given(st.sampled_from(FAMILY_NAMES), json_values | st.lists(json_values, max_size=4))
def test_arbitrary_json_never_raises(family, value):
    raw = json.dumps(value, allow_nan=True).encode()
    assert_well_formed(validate_record(family, raw, RULES, NOW))
    assert_well_formed(validate_object(family, value, RULES, NOW))


@given(st.sampled_from(FAMILY_NAMES), st.sampled_from(sorted(EVENTS)).flatmap(lambda f: EVENTS[f]), st.data())
def test_mutated_events_never_raise(family, original, data):
    fields = original.model_dump(mode="json")
    name = data.draw(st.sampled_from(sorted(fields)))
    fields[name] = data.draw(json_values)
    assert_well_formed(validate_record(family, json.dumps(fields, allow_nan=True).encode(), RULES, NOW))


def test_finance_amounts_keep_their_decimal_digits():
    (deal,) = check("finance", encode(event("finance", amount=11_260_000_000.37))).events
    assert isinstance(deal, FinanceEvent) and deal.amount == Decimal("11260000000.37")
    assert '"amount":11260000000.37' in deal.model_dump_json()


def test_an_invalid_event_of_another_family_is_not_called_misrouted():
    result = check("shipments", encode(event("flights", passengers=-1)))
    assert only_error(result).reason is RejectReason.MISSING_FIELD


def test_field_errors_are_capped_but_counted():
    flood = event("datachannel") | {f"extra{i:03}": i for i in range(50)}
    error = only_error(check("datachannel", encode(flood)))
    assert len(error.field_errors) == MAX_FIELD_ERRORS
    assert error.message.endswith("(and 49 more field errors)")


def test_text_that_only_python_reads_as_json_is_rejected_per_item():
    lone_surrogate = encode(event("datachannel", source="\ud800"))
    result = check("datachannel", b"[" + encode(event("datachannel")) + b"," + lone_surrogate + b"]")
    assert len(result.events) == 1
    assert [(e.index, e.reason) for e in result.errors] == [(1, RejectReason.INVALID_JSON)]
    assert result.errors[0].message.startswith("event: is not valid JSON")
