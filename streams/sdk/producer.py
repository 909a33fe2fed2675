"""The producer SDK: validate events, batch them into keyed envelopes, send them idempotently, report per event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from types import TracebackType
from typing import Any, Final, Literal

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)
from aiokafka.structs import RecordMetadata
from pydantic import BaseModel

from schemas.common import BaseEvent
from schemas.families import FAMILIES
from schemas.validation import RecordError, ValidationResult, ValidationRules, validate_object, validate_record
from streams.kafka.client import client_options
from streams.kafka.profile import BrokerProfile, broker_profile
from streams.sdk import aiokafka_compat
from streams.settings import Settings, get_settings

log = logging.getLogger(__name__)

DELIVERED: Final = "delivered"
INVALID: Final = "invalid"
UNDELIVERED: Final = "undelivered"
Status = Literal["delivered", "invalid", "undelivered"]

#: Events validated per record-sized chunk (about 400 KB of typical events).
VALIDATION_CHUNK_EVENTS = 1000
_RETRY_BACKOFF_S = 0.25
# The broker lost this producer's id or sequence (it restarted, memory storage), or a
# concurrent call gave the producer up: a fresh producer gets a new id, and resending
# is safe because workers deduplicate.
_STALE_PRODUCER_ERRORS = (
    UnknownProducerId,
    OutOfOrderSequenceNumber,
    InvalidProducerEpoch,
    ProducerFenced,
    ProducerClosed,
)


@dataclass(frozen=True, slots=True)
class EventOutcome:
    """What became of an input event (the events of one envelope share one outcome)."""

    status: Status  #: delivered, invalid (never sent) or undelivered (not acknowledged)
    partition: int | None = None  #: partition of the envelope that carried the event
    offset: int | None = None  #: offset of that envelope
    rejection: RecordError | None = None  #: why the event is invalid
    error: str | None = None  #: why delivery failed


@dataclass(slots=True)
class PublishReport:
    """The outcome of each event of one ``publish`` call: ``outcomes[i]`` is input event ``i``'s."""

    family: str
    topic: str
    outcomes: list[EventOutcome] = field(default_factory=list)

    def indices(self, status: Status) -> list[int]:
        """Input positions of the events with ``status``."""
        return [index for index, outcome in enumerate(self.outcomes) if outcome.status == status]

    @property
    def delivered(self) -> int:
        return sum(outcome.status == DELIVERED for outcome in self.outcomes)

    @property
    def invalid(self) -> int:
        return sum(outcome.status == INVALID for outcome in self.outcomes)

    @property
    def undelivered(self) -> int:
        return sum(outcome.status == UNDELIVERED for outcome in self.outcomes)

    @property
    def ok(self) -> bool:
        """True when every event was valid and delivered."""
        return all(outcome.status == DELIVERED for outcome in self.outcomes)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One Kafka message: a JSON array of events sharing a key."""

    key: bytes | None
    value: bytes
    indices: tuple[int, ...]  #: input positions of the events, in envelope order


def message_key(event: BaseModel, key_field: str) -> bytes:
    """The family's key field of ``event`` as message key bytes (an enum contributes its value)."""
    return _key_bytes(getattr(event, key_field))


def _key_bytes(value: object) -> bytes:
    return str(value.value if isinstance(value, Enum) else value).encode()


def build_envelopes(
    events: Sequence[BaseModel],
    indices: Sequence[int],
    key_field: str,
    max_events: int,
    max_bytes: int,
) -> list[Envelope]:
    """Group ``events`` by key into JSON-array envelopes of at most ``max_events`` events and ``max_bytes`` bytes.

    An event larger than ``max_bytes`` on its own travels alone. ``indices`` are the
    events' input positions, carried through for reporting.
    """
    if not events:
        return []
    # The model's own serializer: the bytes model_dump_json() would produce.
    to_json = events[0].__pydantic_serializer__.to_json
    by_key: dict[Any, list[tuple[int, bytes]]] = {}
    for index, event in zip(indices, events, strict=True):
        by_key.setdefault(getattr(event, key_field), []).append((index, to_json(event)))
    envelopes = []
    for key_value, items in by_key.items():
        key = _key_bytes(key_value)
        start = 0
        while start < len(items):
            size, end = 2 + len(items[start][1]), start + 1
            while end < len(items) and end - start < max_events and size + 1 + len(items[end][1]) <= max_bytes:
                size += 1 + len(items[end][1])
                end += 1
            chunk = items[start:end]
            value = b"[" + b",".join(data for _, data in chunk) + b"]"
            envelopes.append(Envelope(key, value, tuple(index for index, _ in chunk)))
            start = end
    return envelopes


def validate_events(
    family: str,
    events: Sequence[Mapping[str, Any] | BaseModel],
    rules: ValidationRules,
    reference_time: datetime | None = None,
) -> ValidationResult:
    """Validate any number of events (dicts or models) exactly as a worker validates a record.

    Events go through ``validate_record`` in chunks that fit one record; every error
    carries its event's input index, and valid events keep input order.
    """
    reference_time = reference_time or datetime.now(UTC)  # one "now" for every chunk
    valid: list[BaseEvent] = []
    errors: list[RecordError] = []
    step = min(rules.max_events_per_record, VALIDATION_CHUNK_EVENTS)
    for start in range(0, len(events), step):
        _validate_chunk(family, events[start : start + step], start, rules, reference_time, valid, errors)
    return ValidationResult(valid, errors, len(events))


def _validate_chunk(
    family: str,
    chunk: Sequence[Mapping[str, Any] | BaseModel],
    offset: int,
    rules: ValidationRules,
    reference_time: datetime,
    valid: list[BaseEvent],
    errors: list[RecordError],
) -> None:
    try:
        raw: bytes | None = orjson.dumps(chunk, default=_json_fragment)
    except TypeError:
        raw = None
    result = None
    if raw is not None and (len(raw) <= rules.max_record_bytes or len(chunk) == 1):
        result = validate_record(family, raw, rules, reference_time)
    elif raw is None and len(chunk) == 1:
        result = validate_object(family, list(chunk), rules, reference_time)  # says why it is not JSON
    # (result is None only for a chunk of several events.)
    if result is None or (len(chunk) > 1 and any(error.index is None for error in result.errors)):
        # A problem of the chunk as a whole: halve until each event is judged on its own.
        half = len(chunk) // 2
        _validate_chunk(family, chunk[:half], offset, rules, reference_time, valid, errors)
        _validate_chunk(family, chunk[half:], offset + half, rules, reference_time, valid, errors)
        return
    valid.extend(result.events)
    errors.extend(replace(error, index=offset + (error.index or 0)) for error in result.errors)


def _json_fragment(value: object) -> orjson.Fragment:
    """JSON for what orjson cannot write itself: event models (as model_dump_json) and decimals."""
    if isinstance(value, BaseModel):
        return orjson.Fragment(value.__pydantic_serializer__.to_json(value))
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class Publisher:
    """Publishes validated events to their family topics; ``async with Publisher() as p: await p.publish(...)``.

    The connection is made on first use and re-made after a broker outage; every send
    retries an unavailable broker for ``settings.publish_retry_timeout_s`` and then
    reports the events it could not deliver instead of raising.
    """

    def __init__(self, settings: Settings | None = None, rules: ValidationRules | None = None) -> None:
        self.settings = settings or get_settings()
        self.rules = rules or ValidationRules.from_settings(self.settings)
        self._producer: AIOKafkaProducer | None = None
        self._connecting = asyncio.Lock()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Flush what is in flight (for at most the retry timeout) and disconnect."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        stopping = asyncio.ensure_future(producer.stop())
        flushed, _ = await asyncio.wait({stopping}, timeout=self.settings.publish_retry_timeout_s)
        if not flushed:
            unacknowledged = KafkaConnectionError("publisher closed before the broker acknowledged")
            await aiokafka_compat.abandon_queue(producer, unacknowledged)
        await stopping

    async def publish(
        self,
        family: str,
        events: Iterable[Mapping[str, Any] | BaseModel],
        reference_time: datetime | None = None,
    ) -> PublishReport:
        """Validate ``events`` (dicts or models of ``family``), send the valid ones, report each one's outcome."""
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
        topic = FAMILIES[family].topic
        result = validate_events(family, list(events), self.rules, reference_time)
        # validate_events gives every rejection its input index; valid events keep input order,
        # so they fill the remaining slots.
        outcomes = {rejection.index: EventOutcome(INVALID, rejection=rejection) for rejection in result.errors}
        valid_indices = [index for index in range(result.total) if index not in outcomes]
        envelopes = build_envelopes(
            result.events,
            valid_indices,
            FAMILIES[family].key_field,
            # An envelope is a record: past the worker's limits it would be dead-lettered.
            min(self.settings.publish_batch_events, self.rules.max_events_per_record),
            min(self.settings.publish_batch_bytes, self.rules.max_record_bytes),
        )
        for envelope, delivery in zip(envelopes, await self._deliver(topic, envelopes), strict=True):
            if isinstance(delivery, RecordMetadata):
                outcome = EventOutcome(DELIVERED, delivery.partition, delivery.offset)
            else:
                outcome = EventOutcome(UNDELIVERED, error=_describe(delivery))
            for index in envelope.indices:
                outcomes[index] = outcome
        return PublishReport(family, topic, [outcomes[index] for index in range(result.total)])

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> RecordMetadata:
        """Send one message as is (no validation, no envelope); raises the delivery error."""
        (delivery,) = await self._deliver(topic, [Envelope(key, value, ())])
        if isinstance(delivery, BaseException):
            raise delivery
        return delivery

    async def _deliver(self, topic: str, envelopes: Sequence[Envelope]) -> list[RecordMetadata | BaseException]:
        """Send every envelope, retrying retriable failures until the retry deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.publish_retry_timeout_s
        results: list[RecordMetadata | BaseException] = [KafkaTimeoutError("not sent")] * len(envelopes)
        pending = list(range(len(envelopes)))
        while pending:
            try:
                producer = await self._connected(deadline)
            except (KafkaError, OSError, TimeoutError) as exc:
                for position in pending:
                    results[position] = exc
                break
            sent = await self._send_all(producer, topic, [envelopes[p] for p in pending], deadline)
            for position, delivery in zip(pending, sent, strict=True):
                results[position] = delivery
            pending = [p for p in pending if _worth_retrying(results[p])]
            if pending and loop.time() + _RETRY_BACKOFF_S < deadline:
                if any(isinstance(results[p], _STALE_PRODUCER_ERRORS) for p in pending):
                    await self._discard(producer, results[pending[0]])
                reason = _describe(results[pending[0]])
                log.warning("retrying %d of %d messages to %s: %s", len(pending), len(envelopes), topic, reason)
                await asyncio.sleep(_RETRY_BACKOFF_S)
            else:
                break
        return results

    async def _send_all(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        envelopes: Sequence[Envelope],
        deadline: float,
    ) -> list[RecordMetadata | BaseException]:
        """One attempt: queue every envelope, then wait for the acknowledgements until ``deadline``."""
        queued: list[RecordMetadata | BaseException | asyncio.Future[RecordMetadata]] = []
        try:
            async with asyncio.timeout_at(deadline):
                for envelope in envelopes:
                    try:
                        queued.append(await producer.send(topic, envelope.value, key=envelope.key))
                    except KafkaError as exc:
                        queued.append(exc)
                futures = [result for result in queued if isinstance(result, asyncio.Future)]
                if futures:
                    await asyncio.wait(futures)
        except TimeoutError:
            pass
        timed_out = KafkaTimeoutError(f"not acknowledged within {self.settings.publish_retry_timeout_s:g}s")
        deliveries: list[RecordMetadata | BaseException] = []
        for position in range(len(envelopes)):
            result = queued[position] if position < len(queued) else timed_out
            if isinstance(result, asyncio.Future):
                result = (result.exception() or result.result()) if result.done() else timed_out
            deliveries.append(result)
        if timed_out in deliveries:
            # An idempotent producer retries forever and would hang on stop: give its
            # queue up so the next attempt, or the caller, starts clean.
            await self._discard(producer, timed_out)
            for future in queued:
                if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
                    future.exception()  # seen: it is reported as timed out
        return deliveries

    async def _connected(self, deadline: float) -> AIOKafkaProducer:
        """The live producer, connecting (with retries until ``deadline``) when there is none."""
        loop = asyncio.get_running_loop()
        async with self._connecting:
            while self._producer is None:
                producer: AIOKafkaProducer | None = None
                try:
                    async with asyncio.timeout_at(deadline):
                        producer = self._new_producer(await broker_profile(self.settings))
                        await producer.start()
                    self._producer = producer
                except (KafkaError, OSError, TimeoutError) as exc:
                    if producer is not None:
                        await producer.stop()
                    retriable = isinstance(exc, OSError) or getattr(exc, "retriable", False)
                    if not retriable or loop.time() + _RETRY_BACKOFF_S >= deadline:
                        raise
                    log.warning("broker at %s unavailable, retrying: %s", self.settings.bootstrap, _describe(exc))
                    await asyncio.sleep(_RETRY_BACKOFF_S)
            return self._producer

    def _new_producer(self, profile: BrokerProfile) -> AIOKafkaProducer:
        envelope_room = self.settings.publish_batch_bytes + 64 * 1024
        # The embedded broker refuses aiokafka's InitProducerId v0, so an idempotent producer
        # could not start on it: the compat producer asks with v3 (streams/kafka/profile.py).
        producer_class = aiokafka_compat.Producer if profile.init_producer_id_v3 else AIOKafkaProducer
        return producer_class(
            **client_options(self.settings),
            client_id="corridor-publisher",
            enable_idempotence=True,
            linger_ms=self.settings.publish_linger_ms,
            max_batch_size=envelope_room,
            max_request_size=max(1_048_576, envelope_room),
            request_timeout_ms=int(min(40.0, self.settings.publish_retry_timeout_s) * 1000),
        )

    async def _discard(self, producer: AIOKafkaProducer, reason: BaseException) -> None:
        """Drop whatever ``producer`` still holds and close it; the next send connects afresh."""
        if self._producer is producer:
            self._producer = None
        await aiokafka_compat.abandon_queue(producer, KafkaConnectionError(f"abandoned: {_describe(reason)}"))
        await producer.stop()


def _worth_retrying(delivery: RecordMetadata | BaseException) -> bool:
    if isinstance(delivery, RecordMetadata):
        return False
    if isinstance(delivery, _STALE_PRODUCER_ERRORS):
        return True
    return isinstance(delivery, KafkaError) and delivery.retriable


def _describe(error: BaseException) -> str:
    name, text = type(error).__name__, str(error)
    # KafkaError's own str() already starts with the class name.
    return text if text.startswith(name) else f"{name}: {text}" if text else name

