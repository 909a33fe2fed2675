"""Hostile record values, each with what the monitor must do with it.

A case is one Kafka record value sent to a family's topic (or one HTTP request body for
the ingest service): broken bytes, broken JSON, JSON that is no event, events that break
the contract one field at a time, limits exceeded by one, batches mixing good and bad
events. Its expectation comes from the contract (docs/semantics.md, docs/ingest.md and
the reason codes of ``schemas.validation.RejectReason``), not from what the code happens
to do: every rejected record or event is one dead letter with the reason named here, and
exactly the events in ``accepted`` are counted.

Cases are built against a reference time ``now`` (event times are relative to it, so the
partition's clock must be ``now``: publish the records with that timestamp) and the
default limits of ``streams.settings.Settings``. Nothing here is random: two calls with
the same ``now`` give the same bytes.

Reuse: ``corpus(now)`` gives every case; ``http_bodies(now)`` the (case, body) pairs an
HTTP client can send (a Kafka record's own features, a tombstone, headers or Confluent
framing, have no HTTP form). ``Case.all_rejected`` tells a 4xx case from a 202 one, except
for the cases in ``RECORD_SIZE_CASES``, whose outcome is the Kafka record limit's.

Cases framed for Kafka (``Case.framed``: Confluent's wire format, CloudEvents) need the
worker's record decoder, ``streams.core.wire``, in front of the validator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.common import utc_iso
from schemas.families import FAMILIES
from schemas.samples import sample_event
from streams.settings import Settings

#: Limits the corpus is built against: the settings' defaults, whatever the environment says.
MAX_RECORD_BYTES: int = Settings.model_fields["max_record_bytes"].default
MAX_EVENTS_PER_RECORD: int = Settings.model_fields["max_events_per_record"].default
FUTURE_TOLERANCE: timedelta = Settings.model_fields["future_tolerance"].default
DEDUP_HORIZON: timedelta = Settings.model_fields["dedup_horizon"].default

#: Nesting far beyond any JSON parser's depth limit (RFC 8259, section 9, allows one).
DEEP = 100_000

#: Judged by the Kafka record limit (``CORRIDOR_MAX_RECORD_BYTES``). The ingest has a body limit
#: of its own (``CORRIDOR_INGEST_MAX_BODY_BYTES``, 413 past it) and splits a body into records,
#: so over HTTP the 10 MB body is a 413 and the padded one an accepted event.
RECORD_SIZE_CASES = frozenset({"ten_megabyte_string", "one_byte_over_the_limit"})

Rejection = tuple[int | None, str]  # (index in the envelope, None for the record; reason code)
Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Case:
    """One hostile record value and what the monitor must do with it."""

    name: str
    family: str
    value: bytes | None  # None: a tombstone (a Kafka record without a value)
    #: One dead letter per entry, in envelope order.
    rejected: tuple[Rejection, ...]
    #: The events of the record that must be counted, as sent (valid events of a mixed batch).
    accepted: tuple[dict[str, Any], ...] = ()
    #: What ``corridor_events_received_total`` counts for it: the items of a parsed array, else 1.
    received: int = 1
    headers: Headers = ()
    #: Only a Kafka record can carry it (a tombstone, headers, Confluent framing): no HTTP body form.
    kafka_only: bool = False
    #: Framed for Kafka (Confluent's wire format, CloudEvents headers): only the worker's record
    #: decoder (``streams.core.wire``) reads it, not ``validate_record`` alone.
    framed: bool = False

    @property
    def topic(self) -> str:
        return FAMILIES[self.family].topic

    @property
    def key(self) -> bytes:
        """The message key: an accepted event's key field, as its producer would send it (so its series
        stay on one partition), else one of the case's own; the same partition every run."""
        if self.accepted:
            return str(self.accepted[0][FAMILIES[self.family].key_field]).encode()
        return f"hostile/{self.name}".encode()

    @property
    def all_rejected(self) -> bool:
        return not self.accepted

    @property
    def reasons(self) -> list[str]:
        return [reason for _, reason in self.rejected]


def dumps(value: Any) -> bytes:
    """Compact JSON, NaN and Infinity written as the literals some producers emit."""
    return json.dumps(value, separators=(",", ":"), allow_nan=True).encode()


class _Builder:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.cases: list[Case] = []

    def event(self, family: str, name: str, number: int = 0, **overrides: Any) -> dict[str, Any]:
        """A valid event of ``family`` a minute before ``now``, with a deterministic event_id."""
        at = self.now - timedelta(minutes=1)
        # Dated ``at``, never by the wall clock: the corpus is the same for the same ``now``.
        fields: dict[str, Any] = {"event_id": f"hostile-{name}-{number}"}
        if family == "shipments":
            fields["shipment_id"] = f"ILSTC-{name}"
        if family == "finance":
            fields["transaction_id"] = f"FIN-{name}"
        return sample_event(family, at=at, **(fields | overrides))

    def add(self, name: str, family: str, value: bytes | None, *rejected: Rejection,
            accepted: tuple[dict[str, Any], ...] = (), received: int = 1, headers: Headers = (),
            kafka_only: bool = False, framed: bool = False) -> None:
        self.cases.append(
            Case(name, family, value, tuple(rejected), accepted, received, headers, kafka_only, framed)
        )

    def record(self, name: str, family: str, value: bytes | None, reason: str, **kwargs: Any) -> None:
        """A record rejected as a whole."""
        self.add(name, family, value, (None, reason), **kwargs)

    def field(self, name: str, family: str, reason: str, **overrides: Any) -> None:
        """A single-event record with ``overrides`` applied to a valid event, rejected as a whole."""
        self.record(name, family, dumps(self.event(family, name, **overrides)), reason)

    def without(self, name: str, family: str, reason: str, *fields: str) -> None:
        event = {k: v for k, v in self.event(family, name).items() if k not in fields}
        self.record(name, family, dumps(event), reason)

    def valid(self, name: str, family: str, value: bytes, event: dict[str, Any]) -> None:
        self.add(name, family, value, accepted=(event,))


def _with_raw_field(event: dict[str, Any], name: str, literal: bytes) -> bytes:
    """``event`` as JSON with field ``name`` written as ``literal`` (JSON that json.dumps cannot write)."""
    marker = "\x00marker\x00"
    text = dumps({**event, name: marker})
    return text.replace(json.dumps(marker).encode(), literal)


def _padded(raw: bytes, size: int) -> bytes:
    """``raw`` followed by JSON whitespace up to ``size`` bytes."""
    return raw + b" " * (size - len(raw))


def corpus(now: datetime) -> list[Case]:
    """Every hostile case, built against the reference time ``now`` (timezone-aware)."""
    b = _Builder(now)
    _bytes_and_syntax(b)
    _not_events(b)
    _sizes_and_limits(b)
    _numbers(b)
    _fields_and_types(b)
    _timestamps(b, now)
    _strings(b)
    _shipment_contract_v2(b, now)
    _batches(b)
    _kafka_framing(b)
    return b.cases


def _bytes_and_syntax(b: _Builder) -> None:
    valid = dumps(b.event("shipments", "truncated_json"))
    b.record("truncated_json", "shipments", valid[: len(valid) // 2], "invalid_json")
    batch = dumps([b.event("flights", "truncated_batch", n) for n in range(2)])
    # The first event is whole, but a record that is not JSON is rejected as a whole: nothing counts.
    b.record("valid_event_inside_truncated_batch", "flights", batch[:-30], "invalid_json")
    b.record("invalid_utf8_byte", "datachannel",
             _with_raw_field(b.event("datachannel", "invalid_utf8_byte"), "source", b'"probe-\xff-1"'),
             "invalid_utf8")
    b.record("overlong_utf8_encoding", "finance",
             _with_raw_field(b.event("finance", "overlong_utf8"), "source", b'"bank\xc0\xaf"'), "invalid_utf8")
    b.record("utf8_encoded_surrogate", "shipments",
             _with_raw_field(b.event("shipments", "utf8_surrogate"), "carrier", b'"COSCO \xed\xa0\x80"'),
             "invalid_utf8")
    b.record("latin1_text", "flights",
             _with_raw_field(b.event("flights", "latin1"), "source", '"Café ops"'.encode("latin-1")),
             "invalid_utf8")
    b.record("utf8_byte_order_mark", "shipments", b"\xef\xbb\xbf" + dumps(b.event("shipments", "bom")),
             "invalid_json")
    b.record("utf16_encoded", "datachannel", json.dumps(b.event("datachannel", "utf16")).encode("utf-16"),
             "invalid_utf8")
    b.record("whitespace_only", "flights", b" \t\r\n ", "invalid_json")
    b.record("empty_value", "finance", b"", "invalid_json")
    # A tombstone carries no event: unparseable, like an empty value.
    b.record("tombstone", "datachannel", None, "invalid_json", kafka_only=True)
    b.record("trailing_garbage", "flights", dumps(b.event("flights", "trailing_garbage")) + b" x", "invalid_json")
    two = dumps(b.event("finance", "concatenated", 0)) + dumps(b.event("finance", "concatenated", 1))
    b.record("two_concatenated_objects", "finance", two, "invalid_json")
    lines = dumps(b.event("datachannel", "json_lines", 0)) + b"\n" + dumps(b.event("datachannel", "json_lines", 1))
    b.record("json_lines", "datachannel", lines, "invalid_json")
    b.record("trailing_comma", "shipments", b"[" + dumps(b.event("shipments", "trailing_comma")) + b",]",
             "invalid_json")
    single_quoted = dumps(b.event("flights", "single_quotes")).replace(b'"', b"'")
    b.record("single_quoted_json", "flights", single_quoted, "invalid_json")
    b.record("leading_zero_number", "shipments",
             _with_raw_field(b.event("shipments", "leading_zero"), "teu", b"02"), "invalid_json")
    b.record("hex_number", "datachannel",
             _with_raw_field(b.event("datachannel", "hex_number"), "bytes", b"0x10"), "invalid_json")
    b.record("raw_control_character_in_string", "finance",
             _with_raw_field(b.event("finance", "raw_control"), "source", b'"bank\x01feed"'), "invalid_json")
    # Well-formed, but nested beyond the parser's depth limit.
    b.record("deep_nesting_100k_arrays", "shipments", b"[" * DEEP + b"]" * DEEP, "invalid_json")
    b.record("deep_nesting_unclosed", "datachannel", b"[" * DEEP, "invalid_json")
    b.record("deep_nesting_in_a_field", "flights",
             _with_raw_field(b.event("flights", "deep_field"), "source", b"[" * DEEP + b"]" * DEEP),
             "invalid_json")
    b.record("deep_objects", "finance", b'{"a":' * DEEP + b"1" + b"}" * DEEP, "invalid_json")


def _not_events(b: _Builder) -> None:
    b.record("json_null", "shipments", b"null", "not_an_event")
    b.record("bare_string", "flights", b'"departed"', "not_an_event")
    b.record("bare_number", "finance", b"42", "not_an_event")
    b.record("bare_boolean", "datachannel", b"true", "not_an_event")
    b.record("empty_array", "shipments", b"[]", "empty_batch")
    b.record("empty_array_with_whitespace", "flights", b" [ \n ] ", "empty_batch")
    b.record("wrong_family_single_event", "datachannel", dumps(b.event("finance", "wrong_family")), "wrong_family")


def _sizes_and_limits(b: _Builder) -> None:
    big = b.event("shipments", "ten_megabytes", source="x" * (10 * 1024 * 1024))
    b.record("ten_megabyte_string", "shipments", dumps(big), "too_large")
    # Just under the record limit: small enough to be read, far too long for its field.
    event = b.event("flights", "long_string_under_limit", source="")
    room = MAX_RECORD_BYTES - 1 - len(dumps(event))
    b.record("long_string_under_the_limit", "flights", dumps({**event, "source": "y" * room}), "invalid_value")
    at_limit = b.event("datachannel", "padded_to_the_limit")
    b.valid("padded_to_the_limit", "datachannel", _padded(dumps(at_limit), MAX_RECORD_BYTES), at_limit)
    over = _padded(dumps(b.event("datachannel", "one_byte_over")), MAX_RECORD_BYTES + 1)
    b.record("one_byte_over_the_limit", "datachannel", over, "too_large")
    items = MAX_EVENTS_PER_RECORD + 1
    b.record("over_max_events_per_record", "datachannel", b"[" + b",".join([b"{}"] * items) + b"]",
             "too_many_events", received=items)


def _numbers(b: _Builder) -> None:
    # A number field reads JSON numbers as 64-bit floats: one beyond their range is as infinite as
    # the Infinity literal (the validator's own tests say so for 1e999). An integer field reads any
    # integer, and 10**400 is out of its range.
    b.record("huge_float_exponent", "shipments",
             _with_raw_field(b.event("shipments", "huge_float"), "teu", b"1e400"), "non_finite_number")
    b.record("huge_integer_literal", "datachannel",
             _with_raw_field(b.event("datachannel", "huge_integer"), "bytes", str(10**400).encode()), "out_of_range")
    # Well-formed, but longer than the parser's number limit (RFC 8259, section 9, allows one), as
    # nesting beyond its depth limit is: the record cannot be read.
    b.record("integer_of_5000_digits", "datachannel",
             _with_raw_field(b.event("datachannel", "5000_digits"), "bytes", b"9" * 5000), "invalid_json")
    b.record("huge_integer_for_a_number_field", "finance",
             _with_raw_field(b.event("finance", "huge_amount"), "amount", str(10**400).encode()), "non_finite_number")
    b.record("huge_integer_for_an_int_field", "flights",
             _with_raw_field(b.event("flights", "huge_passengers"), "passengers", str(10**400).encode()),
             "out_of_range")
    b.record("nan_literal", "shipments", _with_raw_field(b.event("shipments", "nan"), "teu", b"NaN"),
             "non_finite_number")
    b.record("infinity_literal", "flights",
             _with_raw_field(b.event("flights", "infinity"), "cargo_kg", b"Infinity"), "non_finite_number")
    b.record("negative_infinity_literal", "finance",
             _with_raw_field(b.event("finance", "negative_infinity"), "amount", b"-Infinity"), "non_finite_number")
    b.field("negative_teu", "shipments", "out_of_range", teu=-1)
    b.field("zero_amount", "finance", "out_of_range", amount=0)
    b.field("amount_over_the_maximum", "finance", "out_of_range", amount=1e16)
    b.field("packet_loss_ratio_above_one", "datachannel", "out_of_range", packet_loss_ratio=1.5)
    b.field("zero_interval", "datachannel", "out_of_range", interval_seconds=0)
    b.field("negative_passengers", "flights", "out_of_range", passengers=-3)


def _fields_and_types(b: _Builder) -> None:
    b.field("unknown_field", "flights", "unknown_field", colour="red")
    b.field("proto_key", "flights", "unknown_field", __proto__={"admin": True})
    b.field("nested_unknown_field", "finance", "unknown_field", extra=json.loads("[" * 20 + "]" * 20))
    b.without("missing_currency", "finance", "missing_field", "currency")
    b.record("empty_object", "datachannel", b"{}", "missing_field")
    b.field("declared_value_without_currency", "shipments", "missing_field", currency=None)
    # Duplicate keys: the last one wins, as in most JSON parsers, so every reader sees the same event.
    last_valid = b.event("datachannel", "duplicate_keys_last_valid", bytes=100)
    raw = dumps(last_valid).replace(b'"bytes":100', b'"bytes":-5,"bytes":100')
    b.valid("duplicate_keys_last_valid", "datachannel", raw, last_valid)
    last_bad = dumps(b.event("shipments", "duplicate_keys_last_bad", teu=2)).replace(b'"teu":2', b'"teu":2,"teu":-1')
    b.record("duplicate_keys_last_invalid", "shipments", last_bad, "out_of_range")
    b.field("teu_as_string", "shipments", "wrong_type", teu="2")
    b.field("passengers_as_string", "flights", "wrong_type", passengers="186")
    b.field("passengers_as_fraction", "flights", "wrong_type", passengers=1.5)
    b.field("amount_as_string", "finance", "wrong_type", amount="1000")
    b.field("bytes_as_boolean", "datachannel", "wrong_type", bytes=True)
    b.field("interval_as_fraction", "datachannel", "wrong_type", interval_seconds=60.5)
    b.field("event_time_as_number", "shipments", "wrong_type", event_time=1764540000)
    b.field("event_id_as_number", "finance", "wrong_type", event_id=12345)
    b.field("source_null", "datachannel", "wrong_type", source=None)
    b.field("route_as_array", "flights", "wrong_type", route=["CKG", "SIN"])
    b.field("unknown_milestone", "shipments", "invalid_value", milestone="teleported")
    b.field("unknown_service", "flights", "invalid_value", service="charter")
    b.field("unknown_instrument", "finance", "invalid_value", instrument="crypto")
    b.field("unknown_direction", "datachannel", "invalid_value", direction="both")
    b.field("enum_in_upper_case", "shipments", "invalid_value", mode="RAIL")
    b.field("unsupported_currency", "finance", "unsupported_currency", currency="EUR")
    b.field("lower_case_currency", "finance", "invalid_value", currency="sgd")
    # Only financing amounts are converted: a shipment may declare its value in any ISO currency.
    declared = b.event("shipments", "declared_in_eur", currency="EUR")
    b.valid("shipment_declared_in_eur", "shipments", dumps(declared), declared)


def _timestamps(b: _Builder, now: datetime) -> None:
    minute_ago = (now - timedelta(minutes=1)).replace(tzinfo=None)
    b.field("naive_event_time", "shipments", "naive_timestamp", event_time=minute_ago.isoformat())
    b.field("naive_scheduled_time", "flights", "naive_timestamp", scheduled_time=minute_ago.isoformat())
    b.field("year_9999", "finance", "future_event_time", event_time="9999-12-31T23:59:59Z")
    b.field("year_0001", "datachannel", "stale_event_time", event_time="0001-01-01T00:00:00Z")
    # Valid local times whose UTC instant lies outside years 1-9999.
    b.field("year_9999_west_of_utc", "shipments", "invalid_value", event_time="9999-12-31T23:00:00-05:00")
    b.field("year_0001_east_of_utc", "flights", "invalid_value", event_time="0001-01-01T00:00:00+05:00")
    b.field("event_time_not_a_time", "finance", "invalid_value", event_time="yesterday")
    b.field("impossible_date", "datachannel", "invalid_value", event_time=f"{now.year}-02-30T00:00:00Z")
    b.field("leap_second", "shipments", "invalid_value", event_time=f"{now.year - 1}-12-31T23:59:60Z")
    b.field("unix_seconds_as_string", "flights", "invalid_value", event_time=str(int(now.timestamp())))
    b.field("future_beyond_tolerance", "flights", "future_event_time",
            event_time=utc_iso(now + FUTURE_TOLERANCE + timedelta(days=1)))
    b.field("older_than_dedup_horizon", "datachannel", "stale_event_time",
            event_time=utc_iso(now - DEDUP_HORIZON - timedelta(days=1)))
    ahead = b.event("finance", "future_within_tolerance", event_time=utc_iso(now + FUTURE_TOLERANCE / 2))
    b.valid("future_within_tolerance", "finance", dumps(ahead), ahead)


def _strings(b: _Builder) -> None:
    b.field("escaped_nul_in_source", "shipments", "invalid_value", source="cq\x00rail")
    b.field("tab_in_event_id", "flights", "invalid_value", event_id="hostile\tid")
    b.field("empty_event_id", "finance", "invalid_value", event_id="")
    b.field("event_id_too_long", "datachannel", "invalid_value", event_id="e" * 129)
    b.field("source_with_leading_space", "shipments", "invalid_value", source=" cq-rail")
    # "\ud800" is JSON syntax for no Unicode character at all: the text does not decode to a string.
    b.record("lone_surrogate_escape", "flights",
             _with_raw_field(b.event("flights", "lone_surrogate"), "source", b'"ops\\ud800"'), "invalid_json")
    rocket = b.event("shipments", "surrogate_pair", carrier="Rocket \U0001f680 Freight")
    raw = dumps(rocket)  # json.dumps escapes the emoji as the pair \ud83d\ude80
    assert b"\\ud83d\\ude80" in raw
    b.valid("escaped_surrogate_pair", "shipments", raw, rocket)
    long_key = b.event("datachannel", "long_key")
    long_key["k" * 4096] = 1
    b.record("four_kilobyte_key", "datachannel", dumps(long_key), "unknown_field")


def _shipment_contract_v2(b: _Builder, now: datetime) -> None:
    """The optional fields of shipment contract version 2 (docs/interop.md), broken one at a time."""
    b.field("container_number_with_a_wrong_check_digit", "shipments", "invalid_value", equipment_id="CSQU3054384")
    b.field("container_number_in_lower_case", "shipments", "invalid_value", equipment_id="csqu3054383")
    b.field("size_type_in_feet", "shipments", "invalid_value", equipment_size_type="40ft")
    b.field("planned_arrival_on_an_arrival", "shipments", "invalid_value", milestone="arrived",
            planned_arrival=utc_iso(now + timedelta(days=2)))
    b.field("naive_planned_time", "shipments", "naive_timestamp",
            planned_time=(now - timedelta(hours=1)).replace(tzinfo=None).isoformat())
    b.field("empty_as_a_string", "shipments", "wrong_type", empty="false")
    b.field("actual_time_classifier", "shipments", "invalid_value", planned_time_classifier="ACT")
    every_field = b.event("shipments", "contract_v2", location="CNCKG", planned_time=utc_iso(now - timedelta(hours=1)),
                          planned_time_classifier="EST", planned_arrival=utc_iso(now + timedelta(days=7)),
                          equipment_id="CSQU3054383", equipment_size_type="45G1", empty=False, transport_id="X8001")
    b.valid("shipment_contract_v2_every_field", "shipments", dumps(every_field), every_field)


def _batches(b: _Builder) -> None:
    good = b.event("shipments", "mixed_batch", 0)
    b.add("mixed_batch_valid_and_invalid", "shipments",
          dumps([good, b.event("shipments", "mixed_batch", 1, teu=-2)]), (1, "out_of_range"),
          accepted=(good,), received=2)
    shipment = b.event("shipments", "mixed_families", 0)
    b.add("array_mixing_families", "shipments", dumps([shipment, b.event("flights", "mixed_families", 1)]),
          (1, "wrong_family"), accepted=(shipment,), received=2)
    b.add("nested_batch", "flights", dumps([[b.event("flights", "nested_batch")]]), (0, "not_an_event"))
    signed = b.event("finance", "batch_with_null", 0)
    b.add("batch_with_null_and_number", "finance", dumps([signed, None, 7]),
          (1, "not_an_event"), (2, "not_an_event"), accepted=(signed,), received=3)
    b.add("batch_all_invalid", "datachannel",
          dumps([b.event("datachannel", "all_invalid", 0, bytes=-1), b.event("datachannel", "all_invalid", 1, x=1)]),
          (0, "out_of_range"), (1, "unknown_field"), received=2)
    b.add("batch_of_empty_objects", "flights", b"[{},{}]", (0, "missing_field"), (1, "missing_field"), received=2)


def _kafka_framing(b: _Builder) -> None:
    """Records framed for Kafka (docs/interop.md): Confluent's wire format and CloudEvents."""
    schema_id = (7).to_bytes(4, "big")
    b.record("wrong_confluent_magic_byte", "shipments",
             b"\x01" + schema_id + dumps(b.event("shipments", "wrong_magic")), "invalid_wire_format",
             kafka_only=True, framed=True)
    # Binary mode: the attributes in ce_* headers, the value is the event's data alone. A bad
    # ce_time is a bad event_time, rejected as one.
    event = b.event("flights", "cloudevent_bad_time")
    data = {name: value for name, value in event.items() if name not in ("event_id", "source", "event_time")}
    headers = (("ce_specversion", b"1.0"), ("ce_id", b"hostile-cloudevent_bad_time-0"),
               ("ce_source", b"/scoot/ops"), ("ce_type", b"corridor.flight"), ("ce_time", b"not-a-time"))
    b.add("cloudevent_with_a_bad_time", "flights", dumps(data), (None, "invalid_value"), headers=headers,
          kafka_only=True, framed=True)
    untyped = tuple(header for header in headers if header[0] != "ce_type")
    b.add("cloudevent_without_a_type", "flights", dumps(data), (None, "invalid_cloudevent"), headers=untyped,
          kafka_only=True, framed=True)
    b.record("confluent_frame_cut_short", "datachannel", b"\x00\x00\x01", "invalid_wire_format",
             kafka_only=True, framed=True)
    # Structured mode: the CloudEvent is the value. Its id escapes no Unicode character, like
    # lone_surrogate_escape's source: the text does not decode to a string.
    structured = dumps({"specversion": "1.0", "id": "\ud800", "source": "/scoot/ops", "type": "corridor.flight",
                        "time": event["event_time"], "data": data})
    b.add("cloudevent_with_a_lone_surrogate_id", "flights", structured, (None, "invalid_json"),
          headers=(("content-type", b"application/cloudevents+json"),), kafka_only=True, framed=True)


def http_bodies(now: datetime) -> Iterator[tuple[Case, bytes]]:
    """The cases an HTTP client can send, with their request bodies (``POST /v1/events/{case.family}``)."""
    for case in corpus(now):
        if not case.kafka_only and case.value is not None:
            yield case, case.value
