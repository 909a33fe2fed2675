"""Every Prometheus metric of the worker, computed from partition state at scrape time.

Nothing on the hot path touches a Prometheus object: the worker only updates its
partition states, and :class:`CorridorCollector` reads them when Prometheus scrapes.
A worker exports only the partitions it owns, so sums across workers are the totals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from streams.clock import Clock, SystemClock
from streams.state import Histogram, PartitionState, merged_counter

STREAM_LABEL = "stream"


@dataclass(frozen=True, slots=True)
class SeriesSpec:
    """A domain metric and where its values live in a family's partition state."""

    name: str
    help: str
    family: str
    state_metric: str
    labels: tuple[str, ...]
    divisor: int = 1  # state holds fixed-point integers: value / divisor is the base unit


COUNTERS: tuple[SeriesSpec, ...] = (
    SeriesSpec("corridor_shipments", "Shipment events by milestone.", "shipments", "shipments",
               ("corridor", "route", "mode", "milestone")),
    SeriesSpec("corridor_shipment_teu", "TEU of departed shipments.", "shipments", "shipment_teu",
               ("corridor", "route", "mode"), 1000),
    SeriesSpec("corridor_shipment_gross_weight_kilograms", "Gross weight of departed shipments.", "shipments",
               "shipment_gross_weight", ("corridor", "route", "mode"), 1000),
    SeriesSpec("corridor_flights", "Flight events by status.", "flights", "flights",
               ("route", "carrier", "service", "status")),
    SeriesSpec("corridor_flight_passengers", "Passengers on operated flights.", "flights", "flight_passengers",
               ("route", "carrier")),
    SeriesSpec("corridor_flight_cargo_kilograms", "Cargo on operated flights.", "flights", "flight_cargo",
               ("route", "carrier"), 1000),
    SeriesSpec("corridor_finance_usd", "Signed cross-border financing in US dollars.", "finance", "finance_usd",
               ("instrument", "lender_country", "borrower_country"), 100),
    SeriesSpec("corridor_datachannel_bytes", "Bytes carried by the data channel.", "datachannel",
               "datachannel_bytes", ("link", "direction")),
)

WINDOWS: tuple[SeriesSpec, ...] = (
    SeriesSpec("corridor_shipment_teu_window", "TEU departed in the rolling event-time window.", "shipments",
               "shipment_teu", ("corridor", "route", "mode"), 1000),
    SeriesSpec("corridor_flights_window", "Flights operated in the rolling event-time window.", "flights",
               "flights_operated", ("route", "service")),
    SeriesSpec("corridor_finance_usd_window", "Financing signed in the rolling window, US dollars.", "finance",
               "finance_usd", ("instrument",), 100),
    SeriesSpec("corridor_datachannel_bytes_window", "Data-channel bytes in the rolling window.", "datachannel",
               "datachannel_bytes", ("link", "direction")),
)

HISTOGRAMS: tuple[SeriesSpec, ...] = (
    SeriesSpec("corridor_flight_delay_seconds", "Departure delay of operated flights.", "flights",
               "flight_delay", ("route", "service")),
    SeriesSpec("corridor_datachannel_latency_seconds", "Data-channel latency per sample.", "datachannel",
               "datachannel_latency", ("link",)),
)

PIPELINE_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("corridor_events_received", "events_received", "Events received (a record that cannot be parsed counts once)."),
    ("corridor_events_accepted", "events_accepted", "Events applied to the aggregates."),
    ("corridor_events_duplicate", "events_duplicate", "Events dropped as duplicates of an event_id."),
    ("corridor_events_late", "events_late", "Accepted events that arrived later than the lateness tolerance."),
)

#: Upper bounds (seconds) of the processing-delay histogram.
EVENT_DELAY_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 21600, 86400)


class StateSource(Protocol):
    """Where the collector finds the partition states this worker owns."""

    def owned_states(self, family: str) -> Sequence[PartitionState]: ...


class EventDelays:
    """Process-local histogram of processing time minus event time, per stream."""

    def __init__(self, streams: Iterable[str]) -> None:
        bounds = tuple(round(b * 1000) for b in EVENT_DELAY_BUCKETS)
        self.by_stream = {stream: Histogram.empty(bounds) for stream in streams}

    def observe_many(self, stream: str, now: float, event_times: Iterable[float]) -> None:
        histogram = self.by_stream[stream]
        for event_time in event_times:
            histogram.observe(round((now - event_time) * 1000))


class WorkerHealth:
    """Process-local counts of what went wrong with this worker's state, per stream."""

    def __init__(self, streams: Iterable[str]) -> None:
        self.state_gaps = dict.fromkeys(streams, 0)
        self.checkpoint_failures = dict.fromkeys(streams, 0)

    def metrics(self) -> Iterator[Metric]:
        gaps = CounterMetricFamily(
            "corridor_state_gaps",
            "Committed offset ranges no checkpoint holds and the topic no longer has (missing from the totals).",
            labels=(STREAM_LABEL,),
        )
        failures = CounterMetricFamily(
            "corridor_checkpoint_failures", "Checkpoint writes the changelog refused (retried at the next interval).",
            labels=(STREAM_LABEL,),
        )
        for stream in self.state_gaps:
            gaps.add_metric((stream,), self.state_gaps[stream])
            failures.add_metric((stream,), self.checkpoint_failures[stream])
        yield gaps
        yield failures


def _histogram_buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets, bounds converted from milliseconds to seconds."""
    buckets = []
    cumulative = 0
    for bound, count in zip(histogram.bounds_ms, histogram.counts):
        cumulative += count
        buckets.append((floatToGoString(bound / 1000), cumulative))
    buckets.append(("+Inf", cumulative + histogram.counts[-1]))
    return buckets


def _merge_histograms(states: Iterable[PartitionState], metric: str) -> dict[tuple[str, ...], Histogram]:
    merged: dict[tuple[str, ...], Histogram] = {}
    for state in states:
        for labels, histogram in state.histograms.get(metric, {}).items():
            total = merged.get(labels)
            if total is None:
                merged[labels] = Histogram(histogram.bounds_ms, list(histogram.counts), histogram.sum_ms)
            else:
                total.counts = [a + b for a, b in zip(total.counts, histogram.counts)]
                total.sum_ms += histogram.sum_ms
    return merged


class CorridorCollector(Collector):
    """Reads the owned partition states and yields every corridor metric."""

    def __init__(
        self,
        source: StateSource,
        families: Sequence[str],
        reasons: Sequence[str],
        *,
        clock: Clock | None = None,
        delays: EventDelays | None = None,
        lag: Callable[[], Mapping[tuple[str, int], int]] | None = None,
        health: WorkerHealth | None = None,
    ) -> None:
        self.source = source
        self.families = tuple(families)
        self.reasons = tuple(reasons)
        self.clock = clock or SystemClock()
        self.delays = delays
        self.lag = lag
        self.health = health

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now()
        states = {family: list(self.source.owned_states(family)) for family in self.families}
        yield from self._domain_counters(states)
        yield from self._windows(states, now)
        yield from self._histograms(states)
        yield from self._freshness(states)
        yield from self._pipeline(states)
        if self.lag is not None:
            yield self._lag()
        if self.health is not None:
            yield from self.health.metrics()

    def _domain_counters(self, states: Mapping[str, list[PartitionState]]) -> Iterator[Metric]:
        for spec in COUNTERS:
            metric = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, value in sorted(merged_counter(states.get(spec.family, ()), spec.state_metric).items()):
                metric.add_metric(labels, value / spec.divisor)
            yield metric

    def _windows(self, states: Mapping[str, list[PartitionState]], now: float) -> Iterator[Metric]:
        for spec in WINDOWS:
            metric = GaugeMetricFamily(spec.name, spec.help, labels=(*spec.labels, "window"))
            sums: Counter[tuple[str, ...]] = Counter()
            for state in states.get(spec.family, ()):
                windows = state.windows.get(spec.state_metric)
                if windows is None:
                    continue
                for series, by_window in windows.values(now).items():
                    for window, value in by_window.items():
                        sums[(*series, window)] += value
            for labels, value in sorted(sums.items()):
                metric.add_metric(labels, value / spec.divisor)
            yield metric

    def _histograms(self, states: Mapping[str, list[PartitionState]]) -> Iterator[Metric]:
        for spec in HISTOGRAMS:
            metric = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, histogram in sorted(_merge_histograms(states.get(spec.family, ()), spec.state_metric).items()):
                metric.add_metric(
                    list(labels), _histogram_buckets(histogram), histogram.sum_ms / 1000
                )
            yield metric

    def _freshness(self, states: Mapping[str, list[PartitionState]]) -> Iterator[Metric]:
        metric = GaugeMetricFamily(
            "corridor_last_event_timestamp_seconds",
            "Event time of the newest accepted event per stream and key.",
            labels=(STREAM_LABEL, "key"),
        )
        for family in self.families:
            newest: dict[str, float] = {}
            for state in states[family]:
                for key, event_time in state.last_seen.items():
                    if event_time > newest.get(key, float("-inf")):
                        newest[key] = event_time
            for key, event_time in sorted(newest.items()):
                metric.add_metric((family, key), event_time)
        yield metric

    def _pipeline(self, states: Mapping[str, list[PartitionState]]) -> Iterator[Metric]:
        for name, state_metric, help_text in PIPELINE_COUNTERS:
            metric = CounterMetricFamily(name, help_text, labels=(STREAM_LABEL,))
            for family in self.families:
                metric.add_metric((family,), merged_counter(states[family], state_metric).get((), 0))
            yield metric
        rejected = CounterMetricFamily(
            "corridor_events_rejected", "Events rejected, by reason code (each is in the dead-letter topic).",
            labels=(STREAM_LABEL, "reason"),
        )
        for family in self.families:
            counts = merged_counter(states[family], "events_rejected")
            for reason in self.reasons:
                rejected.add_metric((family, reason), counts.get((reason,), 0))
        yield rejected
        if self.delays is not None:
            delay = HistogramMetricFamily(
                "corridor_event_delay_seconds", "Processing time minus event time of accepted events.",
                labels=(STREAM_LABEL,),
            )
            for family in self.families:
                histogram = self.delays.by_stream[family]
                delay.add_metric([family], _histogram_buckets(histogram), histogram.sum_ms / 1000)
            yield delay

    def _lag(self) -> Metric:
        metric = GaugeMetricFamily(
            "corridor_consumer_lag", "Records not yet consumed, per source topic and partition (never negative).",
            labels=("topic", "partition"),
        )
        for (topic, partition), lag in sorted(self.lag().items()):
            metric.add_metric((topic, str(partition)), max(lag, 0))
        return metric


def build_registry(collector: CorridorCollector) -> CollectorRegistry:
    """A fresh registry holding only the corridor collector (tests build their own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
