"""Turns one Kafka record of a family into state updates and dead letters (no I/O).

The worker calls :meth:`FamilyProcessor.process` for every record it consumes. The
decision for a record depends only on the record (its bytes, headers, offset and Kafka
timestamp) and the partition state before it, so replaying a partition gives the same
state: this is what makes restarts exact without Kafka transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import compress
from operator import attrgetter

from schemas.common import BaseEvent
from schemas.validation import FieldError, RejectReason, ValidationRules
from streams.core.dedup import DedupIndex
from streams.core.families import HISTOGRAM_BOUNDS_MS, MEASURED
from streams.core.journeys import JourneyBook
from streams.core.measures import BatchContributions, MeasureContext
from streams.core.registry import Registry
from streams.core.series import (
    EVENTS_ACCEPTED,
    EVENTS_DUPLICATE,
    EVENTS_LATE,
    EVENTS_RECEIVED,
    EVENTS_REJECTED,
    Labels,
)
from streams.core.state import PartitionState
from streams.core.windows import WindowSpec, base_width, window_specs
from streams.core.wire import Headers, validate_kafka_record
from streams.settings import Settings

DEDUP_BUCKET_SECONDS = 3600

#: Reason code of a record the worker itself failed on (a bug, never the producer's fault).
PROCESSING_ERROR = "processing_error"

_EVENT_ID = attrgetter("event_id")
_EVENT_TIME = attrgetter("event_time")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record (or one rejected event of an envelope) and why."""

    partition: int
    offset: int
    index: int | None
    reason: str
    message: str
    field_errors: tuple[FieldError, ...]
    raw: bytes


@dataclass(slots=True)
class RecordOutcome:
    """What one record did, for logs and process-local metrics."""

    applied: bool
    accepted_event_times: list[float]
    dead_letters: list[DeadLetter]


class FamilyProcessor:
    """Validation, deduplication and aggregation of one event family."""

    def __init__(self, family: str, settings: Settings, registry: Registry) -> None:
        self.family = family
        self.rules = ValidationRules.from_settings(settings)
        self.context = MeasureContext.of(
            registry, settings.fx_per_usd,
            {mode: tolerance.total_seconds() for mode, tolerance in settings.punctuality_tolerance.items()},
        )
        self.measure = MEASURED[family].measure
        self.track = MEASURED[family].track
        self.shipment_horizon = settings.shipment_horizon.total_seconds()
        self.window_specs: tuple[WindowSpec, ...] = window_specs(settings.windows)
        self.window_base = base_width(self.window_specs)
        self.dedup_horizon = settings.dedup_horizon.total_seconds()
        self.lateness_tolerance = settings.lateness_tolerance.total_seconds()

    def new_book(self) -> JourneyBook:
        return JourneyBook(self.shipment_horizon, self.context.tolerance)

    def new_state(self) -> PartitionState:
        return PartitionState(
            window_specs=self.window_specs,
            histogram_bounds_ms=HISTOGRAM_BOUNDS_MS,
            dedup=DedupIndex(self.dedup_horizon, DEDUP_BUCKET_SECONDS),
            journeys=None if self.track is None else self.new_book(),
        )

    def restore_state(self, head: bytes, dedup_buckets: dict[int, bytes],
                      journey_chunks: dict[tuple[int, int], bytes] | None = None) -> PartitionState:
        return PartitionState.restore(
            head,
            dedup_buckets,
            window_specs=self.window_specs,
            histogram_bounds_ms=HISTOGRAM_BOUNDS_MS,
            dedup_horizon=self.dedup_horizon,
            dedup_bucket_seconds=DEDUP_BUCKET_SECONDS,
            journey_chunks=journey_chunks,
            new_book=None if self.track is None else self.new_book,
        )

    def process(
        self, state: PartitionState, partition: int, offset: int, timestamp: float, raw: bytes,
        headers: Headers | None = None,
    ) -> RecordOutcome:
        """Apply one record at ``offset`` unless the state already holds it."""
        by_offset = {offset: headers} if headers else None
        return self.process_many(state, partition, ((offset, timestamp, raw),), by_offset)[0]

    def process_many(
        self, state: PartitionState, partition: int, records: Iterable[tuple[int, float, bytes]],
        headers: Mapping[int, Headers] | None = None,
    ) -> list[RecordOutcome]:
        """Apply ``(offset, timestamp, value)`` records in order, exactly as ``process`` on each in turn would.

        ``headers`` holds the headers of the records that carry any, by offset: they tell how a
        value is framed (streams/core/wire.py).

        A record whose offset the state, or an earlier record of the batch, already holds is
        skipped. The records' events are deduplicated with one lookup and their contributions
        summed before the state is touched once, so a batch of single-event records costs
        little more per record than one envelope of them. Should measuring raise (a bug, never
        the producer's doing), the state is left as it was: apply the records one at a time to
        find the one at fault.
        """
        outcomes: list[RecordOutcome] = []
        events: list[BaseEvent] = []
        # For each record with valid events: its outcome, how many events it holds, its lateness cut-off
        # and the partition's clock at it.
        spans: list[tuple[RecordOutcome, int, float, float]] = []
        received = 0
        rejected: dict[Labels, int] = {}
        offset, watermark = state.offset, state.watermark
        family, rules, tolerance = self.family, self.rules, self.lateness_tolerance
        for record_offset, timestamp, raw in records:
            if record_offset <= offset:
                outcomes.append(RecordOutcome(False, [], []))
                continue
            # The partition's clock: its newest record timestamp, this record's included. "Future"
            # and "older than the dedup horizon" are measured from it, so replays decide alike and
            # no event younger than the horizon can outlive its dedup entry.
            clock = max(timestamp, watermark)
            result = validate_kafka_record(family, raw, headers.get(record_offset) if headers else None, rules,
                                           reference_time=datetime.fromtimestamp(clock, UTC))
            dead_letters: list[DeadLetter] = []
            if result.errors:
                received += max(result.total, 1)
                for e in result.errors:
                    dead_letters.append(
                        DeadLetter(partition, record_offset, e.index, str(e.reason), e.message, e.field_errors, e.raw)
                    )
                    reason = (str(e.reason),)
                    rejected[reason] = rejected.get(reason, 0) + 1
            else:
                received += result.total
            outcome = RecordOutcome(True, [], dead_letters)
            outcomes.append(outcome)
            if result.events:
                events += result.events
                spans.append((outcome, len(result.events), timestamp - tolerance, clock))
            offset, watermark = record_offset, clock
        if offset == state.offset:
            return outcomes

        batch = BatchContributions(self.window_base)
        counters = batch.counters
        counters[EVENTS_RECEIVED.key] = {(): received}
        if rejected:
            counters[EVENTS_REJECTED.key] = rejected
        admission = None
        accepted: list[BaseEvent] = []
        accepted_times: list[float] = []
        accepted_clocks: list[float] = []
        if events:
            event_times = list(map(datetime.timestamp, map(_EVENT_TIME, events)))
            admission = state.dedup.lookup(list(map(_EVENT_ID, events)), event_times)
            first = admission.first
            if all(first):
                accepted, accepted_times = events, event_times
            else:
                accepted, accepted_times = list(compress(events, first)), list(compress(event_times, first))
            late = 0
            track = self.track is not None
            if len(spans) == 1:
                outcome, _, late_before, record_clock = spans[0]
                outcome.accepted_event_times = accepted_times
                late = sum(map(late_before.__gt__, accepted_times))  # accepted events older than late_before
                if track:
                    accepted_clocks = [record_clock] * len(accepted_times)
            else:
                start = 0
                for outcome, count, late_before, record_clock in spans:
                    end = start + count
                    outcome.accepted_event_times = list(compress(event_times[start:end], first[start:end]))
                    late += sum(map(late_before.__gt__, outcome.accepted_event_times))
                    if track:
                        accepted_clocks += [record_clock] * len(outcome.accepted_event_times)
                    start = end
            if accepted:
                self.measure(accepted, accepted_times, self.context, batch)
                counters[EVENTS_ACCEPTED.key] = {(): len(accepted)}
                if late:
                    counters[EVENTS_LATE.key] = {(): late}
            if len(accepted) < len(events):
                counters[EVENTS_DUPLICATE.key] = {(): len(events) - len(accepted)}
            state.dedup.remember(admission)
        if self.track is not None and state.journeys is not None:
            # Accepted events in order, each at its record's clock; then what the last record's clock evicts.
            self.track(state.journeys, accepted, accepted_times, accepted_clocks, watermark, self.context, batch)

        state.apply(batch)
        state.offset, state.watermark = offset, watermark
        return outcomes

    def fail(self, state: PartitionState, partition: int, offset: int, raw: bytes, error: Exception) -> RecordOutcome:
        """Dead-letter a record the processor failed on, and move past it."""
        letter = DeadLetter(partition, offset, None, PROCESSING_ERROR,
                            f"the worker failed on this record ({type(error).__name__}: {error}); report it", (), raw)
        batch = BatchContributions(self.window_base)
        batch.count(EVENTS_RECEIVED, ())
        batch.count(EVENTS_REJECTED, (PROCESSING_ERROR,))
        state.apply(batch)
        state.offset = max(state.offset, offset)
        return RecordOutcome(True, [], [letter])


def rejected_reasons() -> list[str]:
    """Every reason code a record can be rejected with (pre-created label values)."""
    return [str(r) for r in RejectReason] + [PROCESSING_ERROR]

