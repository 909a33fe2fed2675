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
