"""Validation of Kafka record values (one event or a batch envelope) with stable reject reasons."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from operator import attrgetter
from typing import Annotated, Any, Protocol

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from schemas.common import AWARE_BRANCH, UTC_BRANCH, BaseEvent
from schemas.families import FAMILIES, event_family


class RejectReason(StrEnum):
    """Why a record or one of its events was rejected; declaration order is the priority."""

    INVALID_WIRE_FORMAT = "invalid_wire_format"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    INVALID_CLOUDEVENT = "invalid_cloudevent"
    TOO_LARGE = "too_large"
    EMPTY_BATCH = "empty_batch"
    TOO_MANY_EVENTS = "too_many_events"
    NOT_AN_EVENT = "not_an_event"
    WRONG_FAMILY = "wrong_family"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE_NUMBER = "non_finite_number"
    NAIVE_TIMESTAMP = "naive_timestamp"
    INVALID_VALUE = "invalid_value"
    OUT_OF_RANGE = "out_of_range"
    SCHEMA = "schema"
    FUTURE_EVENT_TIME = "future_event_time"
    STALE_EVENT_TIME = "stale_event_time"
    UNSUPPORTED_CURRENCY = "unsupported_currency"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of an event."""

    field: str  # dotted field path, e.g. "teu"; "" for the event as a whole
    message: str  # what is wrong and how to fix it, e.g. "must be >= 0 (got -3)"
    type: str  # pydantic error type, or the rule that failed (e.g. "future_event_time")


@dataclass(frozen=True, slots=True)
class RecordError:
    """A rejected record, or one rejected event of a batch envelope."""

    index: int | None  # position in the batch envelope; None: the record itself
    reason: RejectReason
    message: str  # one line naming the field and the fix, e.g. "teu: must be >= 0 (got -3)"
    field_errors: tuple[FieldError, ...]
    raw: bytes  # the rejected event's own JSON (index set) or the whole record


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The valid events of a record and what was wrong with the rest."""

    events: list[BaseEvent]  # valid events, in envelope order
    errors: list[RecordError]
    total: int  # items the record held: 1 for one object, the array length for a batch, else 0


class _RuleSettings(Protocol):
    @property
    def fx_per_usd(self) -> Mapping[str, Any]: ...
    @property
    def future_tolerance(self) -> timedelta: ...
    @property
    def dedup_horizon(self) -> timedelta: ...
    @property
    def max_record_bytes(self) -> int: ...
    @property
    def max_events_per_record(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ValidationRules:
    """Limits and reference data that validation checks beyond the schema."""

    currencies: frozenset[str]  # currencies of the FX table
    future_tolerance: timedelta  # how far event_time may be ahead of the reference time
    max_record_bytes: int
    max_events_per_record: int
    # Events older than this before the reference time could not be deduplicated; None: no limit.
    max_age: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: _RuleSettings) -> ValidationRules:
        """The rules configured in ``streams.settings.Settings``."""
        return cls(
            currencies=frozenset(settings.fx_per_usd),
            future_tolerance=settings.future_tolerance,
            max_record_bytes=settings.max_record_bytes,
            max_events_per_record=settings.max_events_per_record,
            max_age=settings.dedup_horizon,
        )

    def without_size_limit(self) -> ValidationRules:
        """The same rules for JSON that is not a record as it arrived (a request body, a decoded
        CloudEvent), whose size was checked where it arrived."""
        return replace(self, max_record_bytes=sys.maxsize)


#: Field errors kept for one event; its message still counts the others.
MAX_FIELD_ERRORS = 20

# Fail fast: on any error the record is validated again item by item, so the first
# error is all the fast path needs, and a flood of bad items costs no error objects.
_MODELS = {name: family.model for name, family in FAMILIES.items()}
_BATCH_ADAPTERS: dict[str, TypeAdapter[list[Any]]] = {
    family: TypeAdapter(Annotated[list[model], Field(fail_fast=True)])  # type: ignore[valid-type, arg-type]
    for family, model in _MODELS.items()
}
_FIELDS = {family: frozenset(model.model_fields) for family, model in _MODELS.items()}
_REQUIRED_FIELDS = {
    family: frozenset(name for name, field in model.model_fields.items() if field.is_required())
    for family, model in _MODELS.items()
}
_EVENT_TIME = attrgetter("event_time")
_PRIORITY = {reason: rank for rank, reason in enumerate(RejectReason)}
_JSON_WHITESPACE = b" \t\n\r"
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_Problem = tuple[RejectReason, FieldError]

_REASON_BY_ERROR_TYPE: dict[str, RejectReason] = {
    "missing": RejectReason.MISSING_FIELD,
    "extra_forbidden": RejectReason.UNKNOWN_FIELD,
    "finite_number": RejectReason.NON_FINITE_NUMBER,
    "timezone_aware": RejectReason.NAIVE_TIMESTAMP,
    "greater_than": RejectReason.OUT_OF_RANGE,
    "greater_than_equal": RejectReason.OUT_OF_RANGE,
    "less_than": RejectReason.OUT_OF_RANGE,
    "less_than_equal": RejectReason.OUT_OF_RANGE,
    "enum": RejectReason.INVALID_VALUE,
    "literal_error": RejectReason.INVALID_VALUE,
    "string_pattern_mismatch": RejectReason.INVALID_VALUE,
    "string_too_short": RejectReason.INVALID_VALUE,
    "string_too_long": RejectReason.INVALID_VALUE,
    "timestamp_format": RejectReason.INVALID_VALUE,
    "datetime_parsing": RejectReason.INVALID_VALUE,
    "datetime_from_date_parsing": RejectReason.INVALID_VALUE,
    "json_invalid": RejectReason.INVALID_JSON,
    "check_digit": RejectReason.INVALID_VALUE,
    "planned_arrival_milestone": RejectReason.INVALID_VALUE,
}
_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def validate_record(
    family: str, raw: bytes, rules: ValidationRules, reference_time: datetime | None = None
) -> ValidationResult:
    """Validate a record value: one event object or a JSON array of ``family`` events.

    ``reference_time`` (timezone-aware, default now) is what ``future_event_time`` is
    measured against; the worker passes the Kafka timestamp so replays are deterministic.
    Never raises for any ``raw``.
    """
    model = _model(family)
    if len(raw) > rules.max_record_bytes:
        return _whole_record_error(
            RejectReason.TOO_LARGE,
            f"record is {len(raw)} bytes, over the {rules.max_record_bytes} byte limit: send smaller batches",
            raw,
        )
    latest = _latest_event_time(rules, reference_time)
    head = raw.lstrip(_JSON_WHITESPACE)[:1]
    # Fast path: the whole envelope in one pydantic-core call. Anything wrong, and the
    # record is taken apart item by item to tell the good events from the bad.
    try:
        if head == b"[":
            events: list[BaseEvent] = _BATCH_ADAPTERS[family].validate_json(raw)
        elif head == b"{":
            events = [model.model_validate_json(raw)]
        else:
            events = []
    except ValidationError:
        events = []
    if 0 < len(events) <= rules.max_events_per_record and _obey_rules(model, events, rules, latest):
        return ValidationResult(events, [], len(events))
    return _validate_items(family, raw, rules, latest)


def validate_object(
    family: str, obj: Any, rules: ValidationRules, reference_time: datetime | None = None
) -> ValidationResult:
    """Validate an already-parsed JSON value (an event dict or model, or a list of them) like a record.

    It checks events, not a Kafka record, so the record size and event count limits do not apply.
    """
    _model(family)
    try:
        raw = json.dumps(obj, ensure_ascii=False, allow_nan=True, separators=(",", ":"), default=_jsonable).encode()
    except (TypeError, ValueError, RecursionError) as error:
        return _whole_record_error(
            RejectReason.NOT_AN_EVENT,
            f"value cannot be written as JSON: {error}",
            repr(obj).encode("utf-8", "backslashreplace")[: rules.max_record_bytes],
        )
    unlimited = replace(rules, max_record_bytes=sys.maxsize, max_events_per_record=sys.maxsize)
    return validate_record(family, raw, unlimited, reference_time)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseEvent):
        return value.model_dump(mode="json")
    raise TypeError(f"a {type(value).__name__} is not JSON data")


def _model(family: str) -> type[BaseEvent]:
    return event_family(family).model


def _latest_event_time(rules: ValidationRules, reference_time: datetime | None) -> datetime:
    if reference_time is None:
        reference_time = datetime.now(UTC)
    elif reference_time.tzinfo is None:
        raise ValueError("reference_time must be timezone-aware")
    return reference_time + rules.future_tolerance


def _obey_rules(model: type[BaseEvent], events: list[BaseEvent], rules: ValidationRules, latest: datetime) -> bool:
    if len(events) == 1:  # single-event records are common: no list of times for them
        newest = oldest = events[0].event_time
    else:
        times = list(map(_EVENT_TIME, events))
        newest, oldest = max(times), min(times)
    if newest > latest:
        return False
    if rules.max_age is not None and oldest < _earliest_event_time(rules.max_age, rules, latest):
        return False
    fields = model.fx_currency_fields
    return not fields or all({getattr(event, name) for event in events} <= rules.currencies for name in fields)


def _validate_items(family: str, raw: bytes, rules: ValidationRules, latest: datetime) -> ValidationResult:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return _whole_record_error(
            RejectReason.INVALID_UTF8,
            f"record is not UTF-8: byte 0x{raw[error.start]:02x} at offset {error.start} ({error.reason})",
            raw,
        )
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        return _whole_record_error(RejectReason.INVALID_JSON, f"record is not JSON: {_json_problem(error)}", raw)
    if isinstance(document, dict):
        outcome = _validate_item(family, document, raw, None, rules, latest)
        if isinstance(outcome, RecordError):
            return ValidationResult([], [outcome], 1)
        return ValidationResult([outcome], [], 1)
    if not isinstance(document, list):
        return _whole_record_error(
            RejectReason.NOT_AN_EVENT,
            f"record is a JSON {json_kind(document)}; expected an event object or an array of events",
            raw,
        )
    if not document:
        return _whole_record_error(RejectReason.EMPTY_BATCH, "record is an empty array: send at least one event", raw)
    if len(document) > rules.max_events_per_record:
        return _whole_record_error(
            RejectReason.TOO_MANY_EVENTS,
            f"record holds {len(document)} events, over the limit of {rules.max_events_per_record}: "
            "send smaller batches",
            raw,
            total=len(document),
        )
    events: list[BaseEvent] = []
    errors: list[RecordError] = []
    for index, (item, item_text) in enumerate(zip(document, array_item_texts(text), strict=True)):
        outcome = _validate_item(family, item, item_text.encode(), index, rules, latest)
        if isinstance(outcome, RecordError):
            errors.append(outcome)
        else:
            events.append(outcome)
    return ValidationResult(events, errors, len(document))


def _validate_item(
    family: str, item: Any, raw: bytes, index: int | None, rules: ValidationRules, latest: datetime
) -> BaseEvent | RecordError:
    if not isinstance(item, dict):
        problem = FieldError("", f"is a JSON {json_kind(item)}; expected an event object", "model_type")
        return _item_error(index, [(RejectReason.NOT_AN_EVENT, problem)], 1, raw)
    try:
        event = _MODELS[family].model_validate_json(raw)
    except ValidationError as error:
        problems, count = _schema_problems(family, error)
        other = _other_family(family, item, raw)
        if other is None:
            return _item_error(index, problems, count, raw)
        message = f"event is a {other} event, not {family}: publish it to {FAMILIES[other].topic}"
        return RecordError(index, RejectReason.WRONG_FAMILY, message, tuple(p for _, p in problems), raw)
    problems = _rule_problems(event, rules, latest)
    return _item_error(index, problems, len(problems), raw) if problems else event


def _earliest_event_time(max_age: timedelta, rules: ValidationRules, latest: datetime) -> datetime:
    return latest - rules.future_tolerance - max_age


def _rule_problems(event: BaseEvent, rules: ValidationRules, latest: datetime) -> list[_Problem]:
    problems: list[_Problem] = []
    if rules.max_age is not None and event.event_time < _earliest_event_time(rules.max_age, rules, latest):
        message = (
            f"is more than {rules.max_age} before the reference time "
            f"{(latest - rules.future_tolerance).isoformat(timespec='seconds')}, older than the dedup horizon: "
            "such an event could be counted twice; resend it with its real, recent event_time"
        )
        problems.append((RejectReason.STALE_EVENT_TIME, FieldError("event_time", message, "stale_event_time")))
    if event.event_time > latest:
        reference = latest - rules.future_tolerance
        ahead = timedelta(seconds=round((event.event_time - reference).total_seconds()))
        message = (
            f"is {ahead} ahead of the reference time {reference.isoformat(timespec='seconds')}, "
            f"more than the {rules.future_tolerance} allowed: check the producer's clock"
        )
        problems.append((RejectReason.FUTURE_EVENT_TIME, FieldError("event_time", message, "future_event_time")))
    for name in event.fx_currency_fields:
        currency = getattr(event, name)
        if currency not in rules.currencies:
            message = f"{currency} is not in the FX table; use one of {', '.join(sorted(rules.currencies))}"
            problems.append((RejectReason.UNSUPPORTED_CURRENCY, FieldError(name, message, "unsupported_currency")))
    return problems


def _schema_problems(family: str, error: ValidationError) -> tuple[list[_Problem], int]:
    """The first MAX_FIELD_ERRORS problems by priority, and how many there are in all."""
    ranked = [
        (_reason(detail), detail) for detail in error.errors(include_url=False) if detail["loc"][-1:] != (UTC_BRANCH,)
    ]
    ranked.sort(key=lambda pair: _PRIORITY[pair[0]])
    return [(reason, _field_error(family, detail)) for reason, detail in ranked[:MAX_FIELD_ERRORS]], len(ranked)


def _field_error(family: str, detail: ErrorDetails) -> FieldError:
    loc = detail["loc"][:-1] if detail["loc"][-1:] == (AWARE_BRANCH,) else detail["loc"]
    field = str((detail.get("ctx") or {}).get("field") or ".".join(map(str, loc)))
    return FieldError(field, _describe(family, detail), detail["type"])


def _reason(detail: ErrorDetails) -> RejectReason:
    value = detail.get("input")
    if isinstance(value, float) and not math.isfinite(value):
        return RejectReason.NON_FINITE_NUMBER
    error_type = detail["type"]
    if error_type in _REASON_BY_ERROR_TYPE:
        return _REASON_BY_ERROR_TYPE[error_type]
    return RejectReason.WRONG_TYPE if error_type.endswith("_type") else RejectReason.SCHEMA


def _describe(family: str, detail: ErrorDetails) -> str:
    error_type, text = detail["type"], detail["msg"]
    if error_type == "missing":
        return text.replace("Field required", "is required", 1)
    if error_type == "extra_forbidden":
        return f"is not a field of {family} events: remove it or check its spelling"
    if error_type == "json_invalid":
        return f"is not valid JSON: {(detail.get('ctx') or {}).get('error', text)}"
    if error_type in _BOUNDS:
        name, symbol = _BOUNDS[error_type]
        text = f"must be {symbol} {_show((detail.get('ctx') or {})[name])}"
    elif error_type == "timezone_aware":
        text = "needs a UTC offset, e.g. 2024-05-01T08:00:00Z or 2024-05-01T16:00:00+08:00"
    else:
        for prefix in ("Input should", "String should", "Value should"):
            if text.startswith(prefix):
                text = "must" + text[len(prefix) :]
                break
    return f"{text} (got {_show(detail.get('input'))})"


def _other_family(family: str, item: dict[str, Any], raw: bytes) -> str | None:
    """The family ``item`` is a valid event of, when it has the fields of another family."""
    keys = set(item)
    for other, model in _MODELS.items():
        if other != family and _REQUIRED_FIELDS[other] <= keys <= _FIELDS[other]:
            try:
                model.model_validate_json(raw)
            except ValidationError:
                return None
            return other
    return None


def _item_error(index: int | None, problems: list[_Problem], count: int, raw: bytes) -> RecordError:
    problems = sorted(problems, key=lambda problem: _PRIORITY[problem[0]])
    reason, first = problems[0]
    message = f"{first.field or 'event'}: {first.message}"
    if count > 1:
        message += f" (and {count - 1} more field error{'s' if count > 2 else ''})"
    return RecordError(index, reason, message, tuple(problem for _, problem in problems), raw)


def _whole_record_error(reason: RejectReason, message: str, raw: bytes, total: int = 0) -> ValidationResult:
    return ValidationResult([], [RecordError(None, reason, message, (), raw)], total)


def array_item_texts(text: str) -> list[str]:
    """The JSON text of each item of ``text``, a JSON array already known to parse."""
    items: list[str] = []
    position = _skip_whitespace(text, _skip_whitespace(text, 0) + 1)
    while text[position] != "]":
        _, end = _DECODER.raw_decode(text, position)
        items.append(text[position:end])
        position = _skip_whitespace(text, end)
        if text[position] == ",":
            position = _skip_whitespace(text, position + 1)
    return items


def object_member_texts(text: str) -> dict[str, str]:
    """The JSON text of each member's value of ``text``, a JSON object already known to parse.

    A name given twice keeps its last value, as ``json.loads`` does.
    """
    members: dict[str, str] = {}
    position = _skip_whitespace(text, _skip_whitespace(text, 0) + 1)
    while text[position] != "}":
        name, end = _DECODER.raw_decode(text, position)
        position = _skip_whitespace(text, _skip_whitespace(text, end) + 1)  # past the colon
        _, end = _DECODER.raw_decode(text, position)
        members[name] = text[position:end]
        position = _skip_whitespace(text, end)
        if text[position] == ",":
            position = _skip_whitespace(text, position + 1)
    return members


def _skip_whitespace(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)  # always matches: the pattern accepts nothing
    return match.end() if match else position


def _json_problem(error: ValueError | RecursionError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    # The only other ValueError json.loads raises: an integer longer than int() converts. Its own
    # message advises a Python setting, which is no help to a producer.
    return f"a number has more than {sys.get_int_max_str_digits()} digits"


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, as a message names it: null, boolean, string, array, object or number."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "number"


def _show(value: Any) -> str:
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        value = int(value)
    shown = json.dumps(value, ensure_ascii=False, allow_nan=True, default=str)
    return shown if len(shown) <= 60 else f"{shown[:57]}..."
