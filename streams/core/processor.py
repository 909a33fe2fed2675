"""Turns one Kafka record of a family into state updates and dead letters (no I/O).

The worker calls :meth:`FamilyProcessor.process` for every record it consumes. The
decision for a record depends only on the record (its bytes, offset and Kafka
timestamp) and the partition state before it, so replaying a partition gives the same
state: this is what makes restarts exact without Kafka transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.common import BaseEvent
from schemas.validation import FieldError, RejectReason, ValidationRules, validate_record
from streams.core.dedup import DedupIndex
from streams.core.families import HISTOGRAM_BOUNDS_MS, MEASURED
from streams.core.measures import BatchContributions, MeasureContext
from streams.core.registry import Registry
from streams.core.series import EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_LATE, EVENTS_RECEIVED, EVENTS_REJECTED
from streams.core.state import PartitionState
from streams.core.windows import WindowSpec, window_specs
from streams.settings import Settings

DEDUP_BUCKET_SECONDS = 3600

#: Reason code of a record the worker itself failed on (a bug, never the producer's fault).
PROCESSING_ERROR = "processing_error"


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
        self.context = MeasureContext(registry=registry, fx_per_usd=settings.fx_per_usd)
        self.measure = MEASURED[family].measure
        self.window_specs: tuple[WindowSpec, ...] = window_specs(settings.windows)
        self.dedup_horizon = settings.dedup_horizon.total_seconds()
        self.lateness_tolerance = settings.lateness_tolerance.total_seconds()

    def new_state(self) -> PartitionState:
        return PartitionState(
            window_specs=self.window_specs,
            histogram_bounds_ms=HISTOGRAM_BOUNDS_MS,
            dedup=DedupIndex(self.dedup_horizon, DEDUP_BUCKET_SECONDS),
        )

    def restore_state(self, head: bytes, dedup_buckets: dict[int, bytes]) -> PartitionState:
        return PartitionState.restore(
            head,
            dedup_buckets,
            window_specs=self.window_specs,
            histogram_bounds_ms=HISTOGRAM_BOUNDS_MS,
            dedup_horizon=self.dedup_horizon,
            dedup_bucket_seconds=DEDUP_BUCKET_SECONDS,
        )

    def process(
        self, state: PartitionState, partition: int, offset: int, timestamp: float, raw: bytes
    ) -> RecordOutcome:
        """Apply one record at ``offset`` unless the state already holds it."""
        if offset <= state.offset:
            return RecordOutcome(False, [], [])
        # The partition's clock: its newest record timestamp, this record's included. "Future"
        # and "older than the dedup horizon" are measured from it, so replays decide alike and
        # no event younger than the horizon can outlive its dedup entry.
        clock = max(timestamp, state.watermark)
        reference = datetime.fromtimestamp(clock, UTC)
        result = validate_record(self.family, raw, self.rules, reference_time=reference)
        dead_letters = [
            DeadLetter(partition, offset, e.index, str(e.reason), e.message, e.field_errors, e.raw)
            for e in result.errors
        ]
        batch = BatchContributions()
        received = max(result.total, 1) if result.errors else result.total
        batch.count(EVENTS_RECEIVED, (), received)

        for letter in dead_letters:
            batch.count(EVENTS_REJECTED, (letter.reason,))

        events = result.events
        event_times = [e.event_time.timestamp() for e in events]
        admitted = self._admit(state.dedup, events, event_times)
        accepted_times: list[float] = []
        late = 0
        measure, context = self.measure, self.context
        late_before = timestamp - self.lateness_tolerance
        for event, event_time, first in zip(events, event_times, admitted, strict=True):
            if not first:
                continue
            key = measure(event, context, batch)
            batch.seen(key, event_time)
            accepted_times.append(event_time)
            if event_time < late_before:
                late += 1
        duplicates = len(events) - len(accepted_times)
        if duplicates:
            batch.count(EVENTS_DUPLICATE, (), duplicates)
        if late:
            batch.count(EVENTS_LATE, (), late)
        if accepted_times:
            batch.count(EVENTS_ACCEPTED, (), len(accepted_times))

        state.apply(batch)
        state.offset = offset
        state.watermark = clock
        return RecordOutcome(True, accepted_times, dead_letters)

    def fail(self, state: PartitionState, partition: int, offset: int, raw: bytes, error: Exception) -> RecordOutcome:
        """Dead-letter a record the processor failed on, and move past it."""
        letter = DeadLetter(partition, offset, None, PROCESSING_ERROR,
                            f"the worker failed on this record ({type(error).__name__}: {error}); report it", (), raw)
        batch = BatchContributions()
        batch.count(EVENTS_RECEIVED, ())
        batch.count(EVENTS_REJECTED, (PROCESSING_ERROR,))
        state.apply(batch)
        state.offset = max(state.offset, offset)
        return RecordOutcome(True, [], [letter])

    @staticmethod
    def _admit(dedup: DedupIndex, events: Sequence[BaseEvent], event_times: list[float]) -> list[bool]:
        if not events:
            return []
        return list(dedup.admit([e.event_id for e in events], event_times))


def rejected_reasons() -> list[str]:
    """Every reason code a record can be rejected with (pre-created label values)."""
    return [str(r) for r in RejectReason] + [PROCESSING_ERROR]

