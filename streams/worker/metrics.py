"""Every Prometheus metric of the worker, computed from partition state at scrape time.

Nothing on the hot path touches a Prometheus object: the worker only updates its
partition states, and :class:`CorridorCollector` reads them when Prometheus scrapes.
A worker exports only the partitions it owns, so sums across workers are the totals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from streams.core.clock import Clock, SystemClock
from streams.core.families import MEASURED
from streams.core.measures import FamilyMeasures, keep_latest
from streams.core.series import EVENTS_REJECTED, PIPELINE_COUNTERS, Labels
from streams.core.state import Histogram, PartitionState, merged_counter

STREAM_LABEL = "stream"


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
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip(histogram.bounds_ms, histogram.counts[:-1], strict=True):
        cumulative += count
        buckets.append((floatToGoString(bound / 1000), cumulative))
    buckets.append(("+Inf", cumulative + histogram.counts[-1]))
    return buckets


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
        self.families: tuple[FamilyMeasures[Any], ...] = tuple(MEASURED[name] for name in families)
        self.reasons = tuple(reasons)
        self.clock = clock or SystemClock()
        self.delays = delays
        self.lag = lag
        self.health = health

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now()
        states = {family.name: list(self.source.owned_states(family.name)) for family in self.families}
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
        for family in self.families:
            for series in family.counters:
                metric = CounterMetricFamily(series.name, series.help, labels=series.labels)
                for labels, value in sorted(merged_counter(states[family.name], series).items()):
                    metric.add_metric(labels, value / series.divisor)
                yield metric

    def _windows(self, states: Mapping[str, list[PartitionState]], now: float) -> Iterator[Metric]:
        for family in self.families:
            for series in family.windows:
                metric = GaugeMetricFamily(series.name, series.help, labels=(*series.labels, "window"))
                sums: Counter[tuple[str, ...]] = Counter()
                for state in states[family.name]:
                    windows = state.windows.get(series.key)
                    if windows is None:
                        continue
                    for labels, by_window in windows.values(now).items():
                        for window, value in by_window.items():
                            sums[(*labels, window)] += value
                for labels, value in sorted(sums.items()):
                    metric.add_metric(labels, value / series.divisor)
                yield metric

    def _histograms(self, states: Mapping[str, list[PartitionState]]) -> Iterator[Metric]:
        for family in self.families:
            for series in family.histograms:
                metric = HistogramMetricFamily(series.name, series.help, labels=series.labels)
                merged: dict[Labels, Histogram] = {}
                for state in states[family.name]:
                    for labels, histogram in state.histograms.get(series.key, {}).items():
                        total = merged.get(labels)
                        if total is None:
                            merged[labels] = histogram.copy()
                        else:
                            total.add(histogram)
                for labels, total in sorted(merged.items()):
                    metric.add_metric(list(labels), _histogram_buckets(total), total.sum_ms / 1000)
                yield metric

    def _freshness(self, states: Mapping[str, list[PartitionState]]) -> Iterator[Metric]:
        metric = GaugeMetricFamily(
            "corridor_last_event_timestamp_seconds",
            "Event time of the newest accepted event per stream and key.",
            labels=(STREAM_LABEL, "key"),
        )
        for family in self.families:
            newest: dict[str, float] = {}
            for state in states[family.name]:
                for key, event_time in state.last_seen.items():
                    keep_latest(newest, key, event_time)
            for key, event_time in sorted(newest.items()):
                metric.add_metric((family.name, key), event_time)
        yield metric

    def _pipeline(self, states: Mapping[str, list[PartitionState]]) -> Iterator[Metric]:
        names = [family.name for family in self.families]
        for series in PIPELINE_COUNTERS:
            metric = CounterMetricFamily(series.name, series.help, labels=(STREAM_LABEL,))
            for name in names:
                metric.add_metric((name,), merged_counter(states[name], series).get((), 0))
            yield metric
        rejected = CounterMetricFamily(
            EVENTS_REJECTED.name, EVENTS_REJECTED.help, labels=(STREAM_LABEL, *EVENTS_REJECTED.labels)
        )
        for name in names:
            counts = merged_counter(states[name], EVENTS_REJECTED)
            for reason in self.reasons:
                rejected.add_metric((name, reason), counts.get((reason,), 0))
        yield rejected
        if self.delays is not None:
            delay = HistogramMetricFamily(
                "corridor_event_delay_seconds", "Processing time minus event time of accepted events.",
                labels=(STREAM_LABEL,),
            )
            for name in names:
                histogram = self.delays.by_stream[name]
                delay.add_metric([name], _histogram_buckets(histogram), histogram.sum_ms / 1000)
            yield delay

    def _lag(self) -> Metric:
        metric = GaugeMetricFamily(
            "corridor_consumer_lag", "Records not yet consumed, per source topic and partition (never negative).",
            labels=("topic", "partition"),
        )
        lags = self.lag() if self.lag is not None else {}
        for (topic, partition), lag in sorted(lags.items()):
            metric.add_metric((topic, str(partition)), max(lag, 0))
        return metric


def build_registry(collector: CorridorCollector) -> CollectorRegistry:
    """A fresh registry holding only the corridor collector (tests build their own)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
