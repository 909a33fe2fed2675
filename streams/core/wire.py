"""Kafka record values as producers frame them, turned into the plain JSON the validator reads (no I/O).

Every family topic accepts three forms (docs/interop.md):

- plain JSON, one event or an array of events: validated as it is (the hot path: one byte is looked at);
- Confluent's wire format: the magic byte 0x00 and a 4-byte big-endian schema id before the JSON,
  as Confluent's JSON Schema serializer writes it (the schema id is not looked up anywhere);
- CloudEvents 1.0 in the Kafka protocol binding: binary mode (``ce_*`` headers, the value is the
  event's data) and structured mode (a JSON CloudEvent, or a JSON array of them: a batch), whose
  ``id``, ``source`` and ``time`` become the event's ``event_id``, ``source`` and ``event_time``.

What a record decodes to depends only on its value and headers, so a replay decides exactly as
the first reading did (the processor's exactness rests on it). The event data's JSON text is
kept byte for byte, the attributes written in before its first member, so numbers reach the
validator as the producer wrote them. Rejections carry the record's own bytes, or the batch
item's own JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from schemas.validation import (
    FieldError,
    RecordError,
    RejectReason,
    ValidationResult,
    ValidationRules,
    array_item_texts,
    json_kind,
    object_member_texts,
    validate_record,
)

#: Kafka record headers as a consumer hands them over: (name, value) pairs; a name may repeat.
Headers = Sequence[tuple[str, bytes | None]]

#: The first byte of Confluent's wire format, then a 4-byte big-endian schema id.
CONFLUENT_MAGIC_BYTE = 0x00
CONFLUENT_HEADER_BYTES = 5

SPECVERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
#: CloudEvents attributes and the event fields they become.
ATTRIBUTE_FIELDS = {"id": "event_id", "source": "source", "time": "event_time"}
_MEMBER_NAMES = {name: f"{json.dumps(name)}:" for name in ATTRIBUTE_FIELDS.values()}
#: Attributes every CloudEvent has (the CloudEvents 1.0 spec's required ones).
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")

_PLAIN_OPENERS = frozenset({b"{", b"["})
_MAGIC = bytes([CONFLUENT_MAGIC_BYTE])
_SPECVERSION_MEMBER = b'"specversion"'
_JSON_WHITESPACE = b" \t\n\r"
_TEXT_WHITESPACE = " \t\n\r"
_CE_PREFIX = "ce_"
_CONTENT_TYPE = "content-type"


@dataclass(frozen=True, slots=True)
class DecodedItem:
    """One event of a decoded CloudEvents batch."""

    index: int  # its position in the record's array
    raw: bytes  # its JSON text as the record holds it
    origins: Mapping[str, str]  # event field -> the CloudEvent attribute it was taken from


@dataclass(frozen=True, slots=True)
class Decoded:
    """A record value as plain JSON for ``validate_record``, and how that maps back onto the record."""

    value: bytes | None  # one event object or an array of events; None when decoding rejected all of it
    errors: tuple[RecordError, ...] = ()  # rejected while decoding: the record (index None) or batch items
    schema_id: int | None = None  # the Confluent wire format's schema id
    origins: Mapping[str, str] = field(default_factory=dict)  # one CloudEvent: event field -> its attribute
    items: tuple[DecodedItem, ...] | None = None  # a CloudEvents batch: the events of ``value``, in order
    total: int | None = None  # a CloudEvents batch: the items the record holds


def validate_kafka_record(
    family: str, value: bytes, headers: Headers | None, rules: ValidationRules, reference_time: datetime | None = None
) -> ValidationResult:
    """Validate a Kafka record value of ``family`` in any accepted form, as ``validate_record`` does plain JSON.

    Never raises for any ``value`` and ``headers``.
    """
    if value[:1] in _PLAIN_OPENERS and not (headers and _names_cloudevent(headers)):
        result = validate_record(family, value, rules, reference_time)
        # A valid event has no specversion member (the schemas forbid unknown fields):
        # only a rejected plain value may turn out to be a structured CloudEvent.
        if not result.errors or _SPECVERSION_MEMBER not in value:
            return result
    if len(value) > rules.max_record_bytes:
        return validate_record(family, value, rules, reference_time)
    decoded = decode(value, headers)
    if decoded.total is not None and decoded.total > rules.max_events_per_record:
        return _as_record(validate_record(family, _payload(value), rules, reference_time), value, decoded)
    if decoded.value is None:
        return ValidationResult([], list(decoded.errors), decoded.total or 0)
    if decoded.items is not None or decoded.origins:
        rules = _without_size_limit(rules)
    result = validate_record(family, decoded.value, rules, reference_time)
    errors = list(decoded.errors) + [_traced(error, value, decoded) for error in result.errors]
    if decoded.errors:
        errors.sort(key=lambda error: -1 if error.index is None else error.index)
    return ValidationResult(result.events, errors, result.total if decoded.total is None else decoded.total)


@lru_cache(maxsize=8)
def _without_size_limit(rules: ValidationRules) -> ValidationRules:
    # The record was within the size limit; the attributes written into it do not count.
    # Cached: a worker's rules do not change, and this runs for every CloudEvent record.
    return rules.without_size_limit()


def decode(value: bytes, headers: Headers | None = None) -> Decoded:
    """The plain JSON a record value (and its headers) stands for, or why it cannot be read."""
    body, schema_id = value, None
    if value[:1] == _MAGIC:
        if len(value) < CONFLUENT_HEADER_BYTES:
            return _rejected(
                RejectReason.INVALID_WIRE_FORMAT,
                f"record starts with Confluent's magic byte 0x00 but is {len(value)} byte(s), shorter than the "
                "5-byte wire format header (magic byte, 4-byte schema id): check the producer's serializer",
                value,
            )
        schema_id, body = int.from_bytes(value[1:CONFLUENT_HEADER_BYTES], "big"), value[CONFLUENT_HEADER_BYTES:]
    elif value and _is_control(value[0]):
        return _rejected(
            RejectReason.INVALID_WIRE_FORMAT,
            f"record starts with byte 0x{value[0]:02x}, which starts neither JSON nor Confluent's wire format "
            f"(magic byte 0x{CONFLUENT_MAGIC_BYTE:02x}): send UTF-8 JSON, or use Confluent's JSON Schema serializer",
            value,
        )
    plain = Decoded(body, schema_id=schema_id)
    declared = _declared(headers) if headers else _Declared()
    if declared.problem is not None:
        return _rejected(RejectReason.INVALID_CLOUDEVENT, f"CloudEvent {declared.problem}", value, schema_id)
    if declared.mode is None and _SPECVERSION_MEMBER not in body:
        return plain
    text, document = _parse(body)
    if text is None:
        return plain  # not JSON: the validator says what is wrong with it
    if declared.mode == "binary":
        problem = _attribute_problem(declared.attributes, _header, declared.content_type)
        if problem is None and not isinstance(document, dict):
            problem = "data", _not_an_object(document)
        mapped = problem or _with_attributes(text.strip(_TEXT_WHITESPACE), document, declared.attributes, _header)
    elif declared.mode == "batch" or (declared.mode is None and isinstance(document, list)):
        if not isinstance(document, list):
            message = (f"a CloudEvents batch ({BATCH_CONTENT_TYPE}) must be a JSON array; "
                       f"got a JSON {json_kind(document)}")
            return _rejected(RejectReason.INVALID_CLOUDEVENT, message, value, schema_id)
        if declared.mode is None and not any(map(_is_cloudevent, document)):
            return plain
        if not document:
            return plain  # the validator's empty_batch
        return _batch(document, text, schema_id, every_item_is_a_cloudevent=declared.mode == "batch")
    elif not isinstance(document, dict):
        message = (f"a structured CloudEvent ({STRUCTURED_CONTENT_TYPE}) must be a JSON object; "
                   f"got a JSON {json_kind(document)}")
        return _rejected(RejectReason.INVALID_CLOUDEVENT, message, value, schema_id)
    elif declared.mode is None and "specversion" not in document:
        return plain
    else:
        mapped = _structured(document, text.strip(_TEXT_WHITESPACE))
    if isinstance(mapped, tuple):
        return Decoded(None, (_cloudevent_error(None, mapped, value),), schema_id)
    return Decoded(mapped.text.encode(), schema_id=schema_id, origins=mapped.origins)


@dataclass(slots=True)
class _Declared:
    """What a record's headers say about its value."""

    mode: str | None = None  # "binary", "structured", "batch"; None: the value alone tells
    attributes: dict[str, Any] = field(default_factory=dict)  # binary mode: attribute -> header value
    content_type: str | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class _Mapped:
    text: str
    origins: Mapping[str, str]


_Problem = tuple[str, str]  # (where: an attribute or header, what is wrong and the fix)
_Place = Callable[[str], str]  # where a CloudEvents attribute sits in the record


def _names_cloudevent(headers: Headers) -> bool:
    for name, value in headers:
        lowered = name.lower()
        if lowered.startswith(_CE_PREFIX) or (
            lowered == _CONTENT_TYPE and value is not None and value.lower().startswith(b"application/cloudevents")
        ):
            return True
    return False


def _declared(headers: Headers) -> _Declared:
    found: dict[str, list[bytes | None]] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered.startswith(_CE_PREFIX) or lowered == _CONTENT_TYPE:
            found.setdefault(lowered, []).append(value)
    declared = _Declared()
    texts: dict[str, str] = {}
    for name, values in found.items():
        if len(values) > 1:
            declared.problem = f"header {name} appears {len(values)} times: send it once"
            return declared
        raw = values[0]
        if raw is None:
            declared.problem = f"header {name} has no value"
            return declared
        try:
            texts[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            declared.problem = f"header {name} is not UTF-8"
            return declared
    declared.content_type = texts.pop(_CONTENT_TYPE, None)
    media = _media_type(declared.content_type)
    if media == STRUCTURED_CONTENT_TYPE:
        declared.mode = "structured"
    elif media == BATCH_CONTENT_TYPE:
        declared.mode = "batch"
    elif texts:
        declared.mode = "binary"
        declared.attributes = {name[len(_CE_PREFIX) :]: text for name, text in texts.items()}
    return declared


def _media_type(content_type: str | None) -> str | None:
    return None if content_type is None else content_type.split(";", 1)[0].strip().lower()


def _is_json_media(content_type: str) -> bool:
    media = _media_type(content_type) or ""
    return media in ("application/json", "text/json") or media.endswith("+json")


def _is_control(byte: int) -> bool:
    return (byte < 0x20 and byte not in _JSON_WHITESPACE) or byte == 0x7F


def _parse(body: bytes) -> tuple[str | None, Any]:
    try:
        text = body.decode("utf-8")
        return text, json.loads(text)
    except (ValueError, RecursionError):
        return None, None


def _header(attribute: str) -> str:
    """Binary mode: the header an attribute is read from."""
    return _CONTENT_TYPE if attribute == "datacontenttype" else f"{_CE_PREFIX}{attribute}"


def _member(attribute: str) -> str:
    """Structured mode: the attribute is a member of the CloudEvent's JSON object."""
    return attribute


def _is_cloudevent(item: Any) -> bool:
    return isinstance(item, dict) and "specversion" in item


def _attribute_problem(attributes: Mapping[str, Any], where: _Place, content_type: Any) -> _Problem | None:
    """What makes these CloudEvents attributes unreadable, if anything (``where`` names an attribute's place)."""
    version = attributes.get("specversion")
    if version is None:
        return where("specversion"), f"is missing: set it to {SPECVERSION}"
    if version != SPECVERSION:
        return where("specversion"), f"is {_shown(version)}; only CloudEvents {SPECVERSION} is read"
    for name in REQUIRED_ATTRIBUTES[1:]:
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            found = "is missing" if value is None else f"must be a non-empty string (got {_shown(value)})"
            use = f"; it becomes the event's {ATTRIBUTE_FIELDS[name]}" if name in ATTRIBUTE_FIELDS else ""
            return where(name), f"{found}{use}"
    if content_type is not None and not (isinstance(content_type, str) and _is_json_media(content_type)):
        return where("datacontenttype"), (
            f"is {_shown(content_type)}: only JSON event data is read (application/json)"
        )
    return None


def _with_attributes(data_text: str, data: dict[str, Any], attributes: Mapping[str, Any],
                     where: _Place) -> _Mapped | _Problem:
    """``data_text`` (a JSON object) with the mapped attributes written in, and where each came from.

    An attribute the data also carries must hold the same value: when they differ, neither is
    taken for the other.
    """
    added: list[str] = []
    origins: dict[str, str] = {}
    for attribute, name in ATTRIBUTE_FIELDS.items():
        value = attributes.get(attribute)
        if value is None:
            continue
        if name in data:
            if data[name] != value:
                return where(attribute), (
                    f"is {_shown(value)} but the data's {name} is {_shown(data[name])}: "
                    f"leave {name} out of the data or make them equal"
                )
            continue
        # ASCII escapes: a lone surrogate from a \u escape stays an escape the validator judges.
        added.append(_MEMBER_NAMES[name] + json.dumps(value))
        origins[name] = where(attribute)
    if not added:
        return _Mapped(data_text, origins)
    members = ",".join(added) + ("," if data else "")
    return _Mapped("{" + members + data_text[1:], origins)


def _structured(document: dict[str, Any], text: str) -> _Mapped | _Problem:
    """A structured-mode CloudEvent (``text``, its JSON, parsed as ``document``) as its event's JSON."""
    problem = _attribute_problem(document, _member, document.get("datacontenttype"))
    if problem is not None:
        return problem
    if "data_base64" in document:
        return "data_base64", "is not read: send the event as JSON in data"
    if "data" not in document:
        return "data", "is missing: put the event's fields in data"
    data = document["data"]
    if not isinstance(data, dict):
        return "data", _not_an_object(data)
    return _with_attributes(object_member_texts(text)["data"], data, document, _member)


def _batch(document: list[Any], text: str, schema_id: int | None, every_item_is_a_cloudevent: bool) -> Decoded:
    """A JSON array whose CloudEvents become their events (without the batch content type, other items stay)."""
    texts = array_item_texts(text)
    kept: list[str] = []
    items: list[DecodedItem] = []
    errors: list[RecordError] = []
    for index, (item, item_text) in enumerate(zip(document, texts, strict=True)):
        raw = item_text.encode()
        if isinstance(item, dict) and (every_item_is_a_cloudevent or _is_cloudevent(item)):
            outcome = _structured(item, item_text)
            if isinstance(outcome, tuple):
                errors.append(_cloudevent_error(index, outcome, raw))
                continue
            kept.append(outcome.text)
            items.append(DecodedItem(index, raw, outcome.origins))
        elif every_item_is_a_cloudevent:
            problem = (f"[{index}]", f"is a JSON {json_kind(item)}; a CloudEvents batch holds CloudEvent objects")
            errors.append(_cloudevent_error(index, problem, raw))
        else:
            kept.append(item_text)
            items.append(DecodedItem(index, raw, {}))
    joined = ("[" + ",".join(kept) + "]").encode() if kept else None
    return Decoded(joined, tuple(errors), schema_id, items=tuple(items), total=len(document))


def _traced(error: RecordError, value: bytes, decoded: Decoded) -> RecordError:
    """A validator's error about decoded JSON, told about the record: its bytes, its index, where fields came from."""
    if decoded.items is not None and error.index is not None:
        item = decoded.items[error.index]
        return _attributed(replace(error, index=item.index, raw=item.raw), item.origins)
    if error.index is not None:
        return error  # an event of a plain envelope: its JSON text is the record's own
    return _attributed(_as_record_error(error, value, decoded.schema_id), decoded.origins)


def _attributed(error: RecordError, origins: Mapping[str, str]) -> RecordError:
    if not origins or not any(problem.field in origins for problem in error.field_errors):
        return error
    fields = tuple(
        replace(problem, message=f"{problem.message} (from the CloudEvent's {origins[problem.field]})")
        if problem.field in origins else problem
        for problem in error.field_errors
    )
    message, first = error.message, error.field_errors[0].field
    if first in origins and message.startswith(f"{first}: "):
        message = f"{first} (from the CloudEvent's {origins[first]}): {message[len(first) + 2 :]}"
    return replace(error, message=message, field_errors=fields)


def _as_record(result: ValidationResult, value: bytes, decoded: Decoded) -> ValidationResult:
    errors = [_as_record_error(error, value, decoded.schema_id) for error in result.errors]
    return replace(result, errors=errors)


def _as_record_error(error: RecordError, value: bytes, schema_id: int | None) -> RecordError:
    if schema_id is None:
        return replace(error, raw=value)
    note = f"Confluent wire format, schema id {schema_id}"
    if error.reason in (RejectReason.INVALID_UTF8, RejectReason.INVALID_JSON):
        note += ": only JSON payloads are read, not Avro or Protobuf"
    return replace(error, message=f"{error.message} ({note})", raw=value)


def _payload(value: bytes) -> bytes:
    return value[CONFLUENT_HEADER_BYTES:] if value[:1] == _MAGIC else value


def _rejected(reason: RejectReason, message: str, value: bytes, schema_id: int | None = None) -> Decoded:
    return Decoded(None, (RecordError(None, reason, message, (), value),), schema_id)


def _cloudevent_error(index: int | None, problem: _Problem, raw: bytes) -> RecordError:
    where, message = problem
    return RecordError(index, RejectReason.INVALID_CLOUDEVENT, f"CloudEvent {where}: {message}",
                       (FieldError(where, message, str(RejectReason.INVALID_CLOUDEVENT)),), raw)


def _not_an_object(data: Any) -> str:
    return (f"is a JSON {json_kind(data)}; expected one event object (one event per CloudEvent; "
            f"send several as a {BATCH_CONTENT_TYPE} array)")


def _shown(value: Any) -> str:
    shown = json.dumps(value)  # ASCII: messages travel as UTF-8 headers, which a lone surrogate cannot
    return shown if len(shown) <= 60 else f"{shown[:57]}..."
