"""Every Prometheus metric of the worker, computed at scrape time.

Nothing on the hot path touches a Prometheus object: the worker only updates its
partition states, and the collectors here read them when Prometheus scrapes.

Counters stay right when partitions move (docs/semantics.md, "Counters across partition
moves"): a worker exports each partition it owns under the labels ``partition`` and
``owner`` (one value per period of ownership; a named worker goes on with one of its own
where no other series counted anything since), and only as of the partition's last
confirmed checkpoint. A series therefore never falls (the next owner restores at least
that checkpoint) and never carries counts another series already showed (a new owner
starts a new series). ``sum(increase(...))`` over all series is the traffic.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_go_float

from streams.core.clock import Clock, SystemClock
from streams.core.families import MEASURED
from streams.core.measures import FamilyMeasures, keep_latest
from streams.core.series import (
    BUILD,
    CHECKPOINT_AGE,
    CHECKPOINT_FAILURES,
    COMMIT_LATENCY,
    CONSUMER_LAG,
    CONSUMER_LAG_SECONDS,
    EVENT_DELAY,
    EVENTS_REJECTED,
    LAST_EVENT_TIMESTAMP,
    PARTITIONS_RESTORING,
    PIPELINE_COUNTERS,
    REBALANCES,
    RESTORE_SECONDS,
    SEND_ERRORS,
    STATE_GAPS,
    Labels,
)
from streams.core.state import Histogram, StateView

STREAM_LABEL = "stream"
PARTITION_LABEL = "partition"
OWNER_LABEL = "owner"

#: A bound as Prometheus prints it (``1.0``, ``+Inf``); prometheus_client leaves it untyped.
_go_float: Callable[[float], str] = _untyped_go_float

#: Upper bounds (seconds) of the processing-delay histogram.
EVENT_DELAY_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 21600, 86400)
#: Upper bounds (seconds) of the commit-latency histogram.
COMMIT_LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

_NO_COUNTS: Counter[Labels] = Counter()
_NO_HISTOGRAMS: dict[Labels, Histogram] = {}


@dataclass(frozen=True, slots=True)
class ExportedPartition:
    """One owned partition as the metrics show it: the view of its last confirmed checkpoint."""

    partition: int
    owner: str  # one value per period of ownership, or a named worker's own going on (see the module docstring)
    view: StateView
    #: Revoked, shown a little longer so its counters end where the next owner's begin; its
    #: windows and freshness are the next owner's to show.
    revoked: bool = False


class StateSource(Protocol):
    """Where the collector finds what this worker exports of each family."""

    def exported(self, family: str) -> Sequence[ExportedPartition]: ...


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """The worker's own state at one scrape (process-local, not partition state)."""

    #: Records not yet consumed, by (topic, partition); partitions with an unknown end are absent.
    lag: Mapping[tuple[str, int], int]
    #: Partitions assigned but not yet restored, by stream.
    restoring: Mapping[str, int]
    #: Seconds the running restore has taken so far; 0 when none runs.
    restore_seconds: float
    #: Seconds the oldest applied record of each (stream, partition) has waited for a checkpoint.
    checkpoint_age: Mapping[tuple[str, int], float]
    #: The kind of broker the worker found (streams/kafka/profile.py); ``unknown`` until one answered.
    broker: str = "unknown"
    #: Age of the oldest record not yet applied (an upper bound), by (topic, partition): 0 without lag,
    #: absent while neither bound is known (see ``OwnedPartition.lag_seconds``).
    lag_seconds: Mapping[tuple[str, int], float] = field(default_factory=dict)


class StatusSource(Protocol):
    def status(self) -> WorkerStatus: ...


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
    """Process-local counts of what went wrong, and of the group's rebalances and commits."""

    def __init__(self, streams: Iterable[str], send_topics: Iterable[str] = ()) -> None:
        self.state_gaps = dict.fromkeys(streams, 0)
        self.checkpoint_failures = dict.fromkeys(self.state_gaps, 0)
        self.rebalances = 0
        #: Failed sends by topic; ``send_topics`` are pre-created at 0, so that ``increase()`` sees the first.
        self.send_errors: Counter[str] = Counter(dict.fromkeys(send_topics, 0))
        self.commit_latency = Histogram.empty(tuple(round(b * 1000) for b in COMMIT_LATENCY_BUCKETS))

    def metrics(self) -> Iterator[Metric]:
        gaps = CounterMetricFamily(
            STATE_GAPS.name, STATE_GAPS.help,
            labels=(STREAM_LABEL,),
        )
        failures = CounterMetricFamily(
            CHECKPOINT_FAILURES.name, CHECKPOINT_FAILURES.help,
            labels=(STREAM_LABEL,),
        )
        for stream in self.state_gaps:
            gaps.add_metric((stream,), self.state_gaps[stream])
            failures.add_metric((stream,), self.checkpoint_failures[stream])
        yield gaps
        yield failures
        yield CounterMetricFamily(
            REBALANCES.name, REBALANCES.help, value=self.rebalances
        )
        send_errors = CounterMetricFamily(SEND_ERRORS.name, SEND_ERRORS.help, labels=("topic",))
        for topic, count in sorted(self.send_errors.items()):
            send_errors.add_metric((topic,), count)
        yield send_errors
        commits = HistogramMetricFamily(COMMIT_LATENCY.name, COMMIT_LATENCY.help)
        commits.add_metric([], _histogram_buckets(self.commit_latency), self.commit_latency.sum_ms / 1000)
        yield commits


def _histogram_buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Cumulative Prometheus buckets, bounds converted from milliseconds to seconds."""
    buckets: list[tuple[str, float]] = []
    cumulative = 0
    for bound, count in zip(histogram.bounds_ms, histogram.counts[:-1], strict=True):
        cumulative += count
        buckets.append((_go_float(bound / 1000), cumulative))
    buckets.append(("+Inf", cumulative + histogram.counts[-1]))
    return buckets


class CorridorCollector(Collector):
    """Every domain and pipeline series, from the partition views the source exports."""

    def __init__(
        self,
        source: StateSource,
        families: Sequence[str],
        reasons: Sequence[str],
        *,
        clock: Clock | None = None,
    ) -> None:
        self.source = source
        self.families: tuple[FamilyMeasures[Any], ...] = tuple(MEASURED[name] for name in families)
        self.reasons = tuple(reasons)
        self.clock = clock or SystemClock()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        now = self.clock.now()
        exported = {family.name: list(self.source.exported(family.name)) for family in self.families}
        yield from self._domain_counters(exported)
        yield from self._windows(exported, now)
        yield from self._gauges(exported, now)
        yield from self._histograms(exported)
        yield from self._freshness(exported)
        yield from self._pipeline(exported)

    def _domain_counters(self, exported: Mapping[str, list[ExportedPartition]]) -> Iterator[Metric]:
        for family in self.families:
            for series in family.counters:
                metric = CounterMetricFamily(
                    series.name, series.help, labels=(*series.labels, PARTITION_LABEL, OWNER_LABEL)
                )
                for part in exported[family.name]:
                    ownership = (str(part.partition), part.owner)
                    for labels, value in sorted(part.view.counters.get(series.key, _NO_COUNTS).items()):
                        metric.add_metric((*labels, *ownership), value / series.divisor)
                yield metric

    def _windows(self, exported: Mapping[str, list[ExportedPartition]], now: float) -> Iterator[Metric]:
        # Gauges: summed over the partitions this worker owns (a move may dip or lift them briefly).
        for family in self.families:
            for series in family.windows:
                metric = GaugeMetricFamily(series.name, series.help, labels=(*series.labels, "window"))
                sums: Counter[tuple[str, ...]] = Counter()
                for part in exported[family.name]:
                    windows = None if part.revoked else part.view.windows.get(series.key)
                    if windows is None:
                        continue
                    for labels, by_window in windows.values(now).items():
                        for window, value in by_window.items():
                            sums[(*labels, window)] += value
                for labels, value in sorted(sums.items()):
                    metric.add_metric(labels, value / series.divisor)
                yield metric

    def _gauges(self, exported: Mapping[str, list[ExportedPartition]], now: float) -> Iterator[Metric]:
        # Counts of what the state holds now, summed over the partitions this worker owns, like windows.
        for family in self.families:
            for series in family.gauges:
                metric = GaugeMetricFamily(series.name, series.help, labels=series.labels)
                sums: Counter[Labels] = Counter()
                for part in exported[family.name]:
                    if not part.revoked:
                        sums.update(part.view.gauge(series.key, now))
                for labels, value in sorted(sums.items()):
                    metric.add_metric(labels, value)
                yield metric

    def _histograms(self, exported: Mapping[str, list[ExportedPartition]]) -> Iterator[Metric]:
        for family in self.families:
            for series in family.histograms:
                metric = HistogramMetricFamily(
                    series.name, series.help, labels=(*series.labels, PARTITION_LABEL, OWNER_LABEL)
                )
                for part in exported[family.name]:
                    ownership = (str(part.partition), part.owner)
                    for labels, histogram in sorted(part.view.histograms.get(series.key, _NO_HISTOGRAMS).items()):
                        metric.add_metric(
                            [*labels, *ownership], _histogram_buckets(histogram), histogram.sum_ms / 1000
                        )
                yield metric

    def _freshness(self, exported: Mapping[str, list[ExportedPartition]]) -> Iterator[Metric]:
        metric = GaugeMetricFamily(
            LAST_EVENT_TIMESTAMP.name, LAST_EVENT_TIMESTAMP.help,
            labels=(STREAM_LABEL, "key"),
        )
        for family in self.families:
            newest: dict[str, float] = {}
            for part in exported[family.name]:
                if part.revoked:
                    continue
                for key, event_time in part.view.last_seen.items():
                    keep_latest(newest, key, event_time)
            for key, event_time in sorted(newest.items()):
                metric.add_metric((family.name, key), event_time)
        yield metric

    def _pipeline(self, exported: Mapping[str, list[ExportedPartition]]) -> Iterator[Metric]:
        for series in PIPELINE_COUNTERS:
            metric = CounterMetricFamily(
                series.name, series.help, labels=(STREAM_LABEL, PARTITION_LABEL, OWNER_LABEL)
            )
            for name, parts in exported.items():
                for part in parts:
                    value = part.view.counters.get(series.key, _NO_COUNTS).get((), 0)
                    metric.add_metric((name, str(part.partition), part.owner), value)
            yield metric
        rejected = CounterMetricFamily(
            EVENTS_REJECTED.name, EVENTS_REJECTED.help,
            labels=(STREAM_LABEL, *EVENTS_REJECTED.labels, PARTITION_LABEL, OWNER_LABEL),
        )
        for name, parts in exported.items():
            for part in parts:
                counts = part.view.counters.get(EVENTS_REJECTED.key, _NO_COUNTS)
                for reason in self.reasons:  # known reasons are pre-created, at zero
                    rejected.add_metric((name, reason, str(part.partition), part.owner), counts.get((reason,), 0))
        yield rejected


class WorkerCollector(Collector):
    """This worker process: build, health, group membership, restore progress, lag."""

    def __init__(
        self, status: StatusSource, delays: EventDelays, health: WorkerHealth, *, clock: Clock | None = None
    ) -> None:
        self.status_source = status
        self.delays = delays
        self.health = health
        self.clock = clock or SystemClock()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        status = self.status_source.status()
        build = InfoMetricFamily(BUILD.name, BUILD.help)
        build.add_metric([], {"version": _version(), "python": platform.python_version(), "broker": status.broker})
        yield build
        delay = HistogramMetricFamily(
            EVENT_DELAY.name, EVENT_DELAY.help, labels=(STREAM_LABEL,),
        )
        for stream, histogram in self.delays.by_stream.items():
            delay.add_metric([stream], _histogram_buckets(histogram), histogram.sum_ms / 1000)
        yield delay
        yield from self.health.metrics()
        lag = GaugeMetricFamily(
            CONSUMER_LAG.name, CONSUMER_LAG.help,
            labels=("topic", PARTITION_LABEL),
        )
        for (topic, partition), records in sorted(status.lag.items()):
            lag.add_metric((topic, str(partition)), max(records, 0))
        yield lag
        lag_seconds = GaugeMetricFamily(
            CONSUMER_LAG_SECONDS.name, CONSUMER_LAG_SECONDS.help,
            labels=("topic", PARTITION_LABEL),
        )
        for (topic, partition), seconds in sorted(status.lag_seconds.items()):
            lag_seconds.add_metric((topic, str(partition)), seconds)
        yield lag_seconds
        restoring = GaugeMetricFamily(
            PARTITIONS_RESTORING.name, PARTITIONS_RESTORING.help, labels=(STREAM_LABEL,),
        )
        for stream, count in sorted(status.restoring.items()):
            restoring.add_metric((stream,), count)
        yield restoring
        yield GaugeMetricFamily(
            RESTORE_SECONDS.name, RESTORE_SECONDS.help, value=status.restore_seconds,
        )
        age = GaugeMetricFamily(
            CHECKPOINT_AGE.name, CHECKPOINT_AGE.help,
            labels=(STREAM_LABEL, PARTITION_LABEL),
        )
        for (stream, partition), seconds in sorted(status.checkpoint_age.items()):
            age.add_metric((stream, str(partition)), seconds)
        yield age


@cache
def _version() -> str:
    """The installed package's version, read once: it cannot change while the worker runs."""
    try:
        return metadata.version("corridor-monitor")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_registry(*collectors: Collector, process: bool = False) -> CollectorRegistry:
    """A fresh registry with ``collectors`` (tests build their own); ``process`` adds the
    process, platform and garbage-collector collectors of prometheus_client."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry
