"""Weeks of what a worker would export, computed offline: simulator events through the pure core.

The simulator's events (with drops spliced in from its ``drop`` scenario) go through the
same :class:`~streams.core.processor.FamilyProcessor` a worker runs, one partition per
family, and every ``interval`` seconds of simulated time the worker's own
:class:`~streams.worker.metrics.CorridorCollector` is read, as if Prometheus scraped it.
The samples are written as OpenMetrics with timestamps, which ``promtool tsdb
create-blocks-from openmetrics`` turns into a Prometheus TSDB.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO, Any

import orjson

from schemas.validation import RejectReason
from streams.core.clock import ManualClock
from streams.core.families import MEASURED
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.core.state import PartitionState, StateView
from streams.settings import Settings
from streams.sim.simulator import Scenario, SimulationConfig, generate
from streams.worker.metrics import CorridorCollector, ExportedPartition

#: The owner label of the one simulated worker's partitions (counters carry it; see docs/semantics.md).
OWNER = "simulated-1"
#: Metric types written as they are. A histogram's points would need grouping per scrape to be written as
#: one; each of its samples (``_bucket``, ``_count``, ``_sum``) is written as a metric family of its own, of
#: type unknown instead: the series and their values are the same to PromQL.
WRITTEN_TYPES = ("gauge", "counter")
UNTYPED = "unknown"

Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Drop:
    """A cut of one shipment route, taken from the simulator's ``drop`` scenario: from ``at``
    (after the simulation's start) for ``lasting``, ``route`` departs ``1 - fraction`` of its TEU."""

    route: str
    fraction: float
    at: timedelta
    lasting: timedelta

    @property
    def end(self) -> timedelta:
        return self.at + self.lasting


def simulated_events(config: SimulationConfig, duration: timedelta, drops: Sequence[Drop] = ()) -> Iterator[Event]:
    """The simulation's events in event-time order, each drop's route replaced during the drop by the
    ``drop`` scenario's events (same seed, so the same traffic up to the cut; the route recovers after)."""
    origin = config.start

    def seconds(event: dict[str, Any]) -> float:
        return (datetime.fromisoformat(event["event_time"]) - origin).total_seconds()

    def replaced(family: str, event: dict[str, Any], moment: float) -> bool:
        return family == "shipments" and any(
            drop.route == event["route"] and drop.at.total_seconds() <= moment < drop.end.total_seconds()
            for drop in drops
        )

    # Sorted by (event time, source, number): a source's own order breaks ties, never the events.
    def kept() -> Iterator[tuple[float, int, int, Event]]:
        for number, (family, event) in enumerate(generate(config, duration)):
            moment = seconds(event)
            if not replaced(family, event, moment):
                yield moment, 0, number, (family, event)

    def cut(source: int, drop: Drop) -> Iterator[tuple[float, int, int, Event]]:
        scenario = replace(config, scenario=Scenario.DROP, drop_route=drop.route, drop_fraction=drop.fraction,
                           drop_after=drop.at, drop_for=drop.lasting, families=("shipments",))
        for number, (family, event) in enumerate(generate(scenario, min(drop.end, duration))):
            moment = seconds(event)
            if event["route"] == drop.route and moment >= drop.at.total_seconds():
                yield moment, source, number, (family, event)

    for *_, event in heapq.merge(kept(), *(cut(source, drop) for source, drop in enumerate(drops, 1))):
        yield event


class SimulatedWorker:
    """One worker owning partition 0 of every family, run by hand: its states and its collector."""

    def __init__(self, families: Sequence[str], settings: Settings | None = None) -> None:
        settings = settings or Settings()
        registry = Registry.load(settings.registry_file)
        self.processors = {family: FamilyProcessor(family, settings, registry) for family in families}
        self.states: dict[str, PartitionState] = {family: p.new_state() for family, p in self.processors.items()}
        self.clock = ManualClock()
        self.collector = CorridorCollector(self, tuple(families), tuple(RejectReason), clock=self.clock)

    def exported(self, family: str) -> Sequence[ExportedPartition]:
        state = self.states[family]
        # What state.view() copies, without the copy: nothing changes the state while collecting.
        book = state.journeys
        view = StateView(state.offset, state.counters, state.windows, state.histograms, state.last_seen,
                         {} if book is None else book.in_transit, {} if book is None else book.deadline_view())
        return [ExportedPartition(0, OWNER, view)]

    def apply(self, family: str, events: list[dict[str, Any]], at: float) -> None:
        """One record holding ``events`` (a batch envelope), consumed at ``at``; rejections are a bug here."""
        state = self.states[family]
        outcome = self.processors[family].process(state, 0, state.offset + 1, at, orjson.dumps(events))
        if outcome.dead_letters:
            letter = outcome.dead_letters[0]
            raise ValueError(f"the core rejected a simulated {family} event: {letter.reason} {letter.message}")

    def scrape(self, at: float) -> Iterator[tuple[str, str, str, dict[str, str], float]]:
        """(family name, type, sample name, labels, value) of every sample exported at ``at``."""
        self.clock.set(at)
        for state in self.states.values():
            state.expire(at)
        for metric in self.collector.collect():
            for sample in metric.samples:
                yield metric.name, metric.type, sample.name, sample.labels, sample.value


@dataclass
class Series:
    """One series' samples: Unix seconds and values."""

    family: str
    type: str
    name: str
    labels: tuple[tuple[str, str], ...]
    times: array[float]
    values: array[float]


class History:
    """Samples of the wanted metric families, by series, in time order."""

    def __init__(self, wanted: Collection[str]) -> None:
        self.wanted = frozenset(wanted)
        self.series: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
        self.samples = 0

    def record(self, at: float, samples: Iterable[tuple[str, str, str, dict[str, str], float]]) -> None:
        for family, kind, name, labels, value in samples:
            if family not in self.wanted and name not in self.wanted:
                continue
            if kind == "histogram":
                family, kind = name, UNTYPED
            elif kind not in WRITTEN_TYPES:
                raise ValueError(f"{family}: {kind} metrics cannot be written as OpenMetrics history here")
            key = (name, tuple(sorted(labels.items())))
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = Series(family, kind, name, key[1], array("d"), array("d"))
            series.times.append(at)
            series.values.append(value)
            self.samples += 1

    @property
    def span(self) -> tuple[float, float]:
        """The first and the last sample's time."""
        times = [t for series in self.series.values() for t in (series.times[0], series.times[-1])]
        return (min(times), max(times)) if times else (0.0, 0.0)

    def write_openmetrics(
        self, out: IO[str], start: float = -math.inf, end: float = math.inf, target: Mapping[str, str] | None = None
    ) -> None:
        """The samples in [start, end), a metric family and a series at a time (as OpenMetrics wants), then
        ``# EOF``; every series also carries the ``target`` labels (a scrape's job, ...)."""
        added = [f'{k}="{_escaped(v)}"' for k, v in sorted((target or {}).items())]
        by_family: dict[str, list[Series]] = {}
        for series in self.series.values():
            by_family.setdefault(series.family, []).append(series)
        for family, members in sorted(by_family.items()):
            out.write(f"# TYPE {family} {members[0].type}\n")
            for series in sorted(members, key=lambda s: (s.name, s.labels)):
                labels = ",".join([*added, *(f'{k}="{_escaped(v)}"' for k, v in series.labels)])
                head = f"{series.name}{{{labels}}} " if labels else f"{series.name} "
                first, last = bisect_left(series.times, start), bisect_left(series.times, end)
                points = zip(series.times[first:last], series.values[first:last], strict=True)
                out.writelines(f"{head}{_number(value)} {moment:.3f}\n" for moment, value in points)
        out.write("# EOF\n")


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def exported_history(
    config: SimulationConfig,
    duration: timedelta,
    interval: int,
    wanted: Collection[str],
    drops: Sequence[Drop] = (),
    progress: Callable[[float], None] | None = None,
) -> History:
    """Scrape a simulated worker every ``interval`` seconds for ``duration`` from ``config.start``.

    The events between two scrapes reach the worker as one record per family at the
    scrape's time (nothing dated after it). ``progress`` gets the simulated seconds done.
    """
    worker = SimulatedWorker(config.families)
    history = History(wanted)
    start = config.start.timestamp()
    end = start + duration.total_seconds()
    scrape_at = start + interval
    pending: dict[str, list[dict[str, Any]]] = {}

    def scrape_until(moment: float) -> None:
        nonlocal scrape_at
        while scrape_at < moment:
            for family, events in pending.items():
                worker.apply(family, events, scrape_at)
            pending.clear()
            history.record(scrape_at, worker.scrape(scrape_at))
            if progress is not None:
                progress(scrape_at - start)
            scrape_at += interval

    for family, event in simulated_events(config, duration, drops):
        scrape_until(datetime.fromisoformat(event["event_time"]).timestamp())
        pending.setdefault(family, []).append(event)
    scrape_until(end + 1)
    return history


def metric_names() -> frozenset[str]:
    """Every domain metric family the collector exports (what alert expressions may name)."""
    names: set[str] = set()
    for family in MEASURED.values():
        names.update(series.name for series in family.counters)
        names.update(series.name for series in family.windows)
        names.update(series.name for series in family.histograms)
        names.update(series.name for series in family.gauges)
    return frozenset(names)
