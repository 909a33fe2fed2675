"""The metric series the pipeline keeps in partition state, declared as objects.

Measure functions, partition state, the collector and the live view all refer to a
series by its object, so a misspelt series is an ``AttributeError``, never a silently
empty metric. ``key`` names the series inside partition state and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

Labels = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CounterSeries:
    """A monotonic count in partition state, exported as the Prometheus counter ``name``."""

    key: str
    name: str
    help: str
    labels: Labels
    divisor: int = 1  # state holds fixed-point integers: value / divisor is the base unit


@dataclass(frozen=True, slots=True)
class WindowSeries:
    """A rolling event-time sum, exported as the gauge ``name`` with an extra ``window`` label."""

    key: str
    name: str
    help: str
    labels: Labels
    divisor: int = 1


@dataclass(frozen=True, slots=True)
class GaugeSeries:
    """A count the state holds as it is now (shipments in transit, overdue), exported as the gauge ``name``.

    Summed over the partitions a worker owns, like a window: a partition move may dip or lift it briefly.
    """

    key: str
    name: str
    help: str
    labels: Labels


@dataclass(frozen=True, slots=True)
class HistogramSeries:
    """A histogram of integer milliseconds, exported in seconds with ``buckets`` as upper bounds."""

    key: str
    name: str
    help: str
    labels: Labels
    buckets: tuple[float, ...]  # upper bounds in seconds

    @property
    def bounds_ms(self) -> tuple[int, ...]:
        return tuple(round(bound * 1000) for bound in self.buckets)


# Pipeline counts every family keeps; the collector adds the ``stream`` label.
EVENTS_RECEIVED = CounterSeries(
    "events_received", "corridor_events_received", "Events received (a record that cannot be parsed counts once).", ()
)
EVENTS_ACCEPTED = CounterSeries("events_accepted", "corridor_events_accepted", "Events applied to the aggregates.", ())
EVENTS_DUPLICATE = CounterSeries(
    "events_duplicate", "corridor_events_duplicate", "Events dropped as duplicates of an event_id.", ()
)
EVENTS_LATE = CounterSeries(
    "events_late", "corridor_events_late", "Accepted events that arrived later than the lateness tolerance.", ()
)
EVENTS_REJECTED = CounterSeries(
    "events_rejected",
    "corridor_events_rejected",
    "Events rejected, by reason code (each is in the dead-letter topic).",
    ("reason",),
)
PIPELINE_COUNTERS: tuple[CounterSeries, ...] = (EVENTS_RECEIVED, EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_LATE)


@dataclass(frozen=True, slots=True)
class WorkerSeries:
    """A series the worker process reads from its own state at scrape time (not from partition state)."""

    name: str
    help: str


# What a worker process exports about itself: its health, group membership, restore progress and lag.
BUILD = WorkerSeries("corridor_build", "Version of the corridor worker and what it runs on.")
EVENT_DELAY = WorkerSeries("corridor_event_delay_seconds", "Processing time minus event time of accepted events.")
STATE_GAPS = WorkerSeries(
    "corridor_state_gaps",
    "Committed offset ranges no checkpoint holds and the topic no longer has (missing from the totals).",
)
CHECKPOINT_FAILURES = WorkerSeries(
    "corridor_checkpoint_failures", "Checkpoint writes the changelog refused (retried at the next interval)."
)
REBALANCES = WorkerSeries("corridor_rebalances", "Consumer group rebalances this worker took part in.")
SEND_ERRORS = WorkerSeries(
    "corridor_send_errors",
    "Records the worker's producer failed to send, by topic (the dead-letter topic, the changelogs).",
)
COMMIT_LATENCY = WorkerSeries("corridor_commit_latency_seconds", "Time to commit consumer offsets.")
LAST_EVENT_TIMESTAMP = WorkerSeries(
    "corridor_last_event_timestamp_seconds", "Event time of the newest accepted event per stream and key."
)
CONSUMER_LAG = WorkerSeries(
    "corridor_consumer_lag",
    "Records not yet consumed, per source topic and partition (absent while the end offset is unknown).",
)
CONSUMER_LAG_SECONDS = WorkerSeries(
    "corridor_consumer_lag_seconds",
    "Age of the oldest record not yet applied, per source topic and partition (an upper bound; 0 with no lag).",
)
PARTITIONS_RESTORING = WorkerSeries(
    "corridor_partitions_restoring", "Partitions assigned to this worker whose state is not restored yet."
)
RESTORE_SECONDS = WorkerSeries(
    "corridor_restore_seconds", "How long the running state restore has taken so far (0: none runs)."
)
CHECKPOINT_AGE = WorkerSeries(
    "corridor_checkpoint_age_seconds",
    "How long the oldest applied record of a partition has waited for a confirmed checkpoint (0: none).",
)
WORKER_SERIES: tuple[WorkerSeries, ...] = (
    BUILD, EVENT_DELAY, STATE_GAPS, CHECKPOINT_FAILURES, REBALANCES, SEND_ERRORS, COMMIT_LATENCY,
    LAST_EVENT_TIMESTAMP, CONSUMER_LAG, PARTITIONS_RESTORING, RESTORE_SECONDS, CHECKPOINT_AGE,
    CONSUMER_LAG_SECONDS,
)


@dataclass(frozen=True, slots=True)
class IngestSeries:
    """A series the HTTP ingest process exports (its own registry: ``streams/ingest/metrics.py``)."""

    name: str
    help: str
    labels: Labels


# What the HTTP ingest exports: every answer of its events API, and what became of the events.
INGEST_REQUESTS = IngestSeries(
    "corridor_ingest_requests",
    "Answers of the events API (/v1/events/...) by family (other: a path naming none) and HTTP status code.",
    ("family", "code"),
)
INGEST_EVENTS_ACCEPTED = IngestSeries(
    "corridor_ingest_events_accepted", "Events the broker confirmed, by family.", ("family",)
)
INGEST_EVENTS_REJECTED = IngestSeries(
    "corridor_ingest_events_rejected", "Invalid events refused (never sent), by family and reject reason.",
    ("family", "reason"),
)
INGEST_EVENTS_UNDELIVERED = IngestSeries(
    "corridor_ingest_events_undelivered", "Valid events the broker did not confirm in time (answered 503).", ("family",)
)
INGEST_DURATION = IngestSeries(
    "corridor_ingest_request_duration_seconds",
    "Time from a request's arrival at the events API to the end of its answer, by family.",
    ("family",),
)
INGEST_SERIES: tuple[IngestSeries, ...] = (
    INGEST_REQUESTS, INGEST_EVENTS_ACCEPTED, INGEST_EVENTS_REJECTED, INGEST_EVENTS_UNDELIVERED, INGEST_DURATION,
)
