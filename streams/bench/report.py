"""What one bench run measured: throughput per stage, the worker's memory, event-to-metric latency;
as one JSON object and as table rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Stages as ``--only`` and ``--skip`` name them.
STAGES = ("batched", "single", "aiokafka", "faust", "latency", "routes", "journeys")

#: Known shipment routes of the two workers the ``routes`` stage compares.
ROUTE_COUNTS = (10, 1000)

#: Throughput measurements, by their key in the JSON (``<key>_eps``), in table order.
PIPELINE_BATCHED = "pipeline_batched"
PIPELINE_SINGLE = "pipeline_single"
BASELINE_AIOKAFKA = "baseline_aiokafka"
BASELINE_AIOKAFKA_SINGLE = "baseline_aiokafka_single"
BASELINE_FAUST = "baseline_faust"
PIPELINE_ROUTES_FEW = f"pipeline_routes_{ROUTE_COUNTS[0]}"
PIPELINE_ROUTES_MANY = f"pipeline_routes_{ROUTE_COUNTS[1]}"
PIPELINE_JOURNEYS = "pipeline_journeys"
PIPELINE_NO_JOURNEYS = "pipeline_no_journeys"
LABELS = {
    PIPELINE_BATCHED: "corridor worker, envelopes of 500",
    PIPELINE_SINGLE: "corridor worker, single events",
    BASELINE_AIOKAFKA: "aiokafka + pydantic, envelopes",
    BASELINE_AIOKAFKA_SINGLE: "aiokafka + pydantic, single events",
    BASELINE_FAUST: "faust agent (counts), single events",
    PIPELINE_ROUTES_FEW: f"corridor worker, {ROUTE_COUNTS[0]:,} routes",
    PIPELINE_ROUTES_MANY: f"corridor worker, {ROUTE_COUNTS[1]:,} routes",
    PIPELINE_JOURNEYS: "corridor worker, departures",
    PIPELINE_NO_JOURNEYS: "corridor worker, customs clearances",
}
#: (measurement, the aiokafka loop it is compared with, the faust agent it is compared with)
_COMPARED = {
    PIPELINE_BATCHED: (BASELINE_AIOKAFKA, None),
    PIPELINE_SINGLE: (BASELINE_AIOKAFKA_SINGLE, BASELINE_FAUST),
}
ROUTES_RATIO = f"ratio_{ROUTE_COUNTS[1]}_to_{ROUTE_COUNTS[0]}_routes"
JOURNEYS_RATIO = "journeys_ratio"
#: Ratios in the JSON: name -> (measurement, baseline)
RATIOS = {
    "ratio_batched_to_aiokafka": (PIPELINE_BATCHED, BASELINE_AIOKAFKA),
    "ratio_single_to_faust": (PIPELINE_SINGLE, BASELINE_FAUST),
    "ratio_single_to_aiokafka_single": (PIPELINE_SINGLE, BASELINE_AIOKAFKA_SINGLE),
    ROUTES_RATIO: (PIPELINE_ROUTES_MANY, PIPELINE_ROUTES_FEW),
    JOURNEYS_RATIO: (PIPELINE_JOURNEYS, PIPELINE_NO_JOURNEYS),
}
#: Ratios also given per CPU second, as ``<name>_per_cpu``.
PER_CPU_RATIOS = (ROUTES_RATIO, JOURNEYS_RATIO)
#: How the notes name the broker kinds of ``streams.kafka.profile``.
BROKER_NAMES = {"kafka": "Apache Kafka", "embedded": "embedded"}
COLUMNS = ("measured", "events", "seconds", "events/s", "CPU s", "events/CPU s", "vs aiokafka loop", "vs faust agent")


@dataclass(frozen=True, slots=True)
class Memory:
    """Resident memory of a worker process: once started (state restored), its peak over the stage, and at its end."""

    startup_rss_bytes: int
    peak_rss_bytes: int
    events: int  # events the worker held in state at the peak
    end_rss_bytes: int | None = None  # resident when the stage ended (every event counted)

    @property
    def growth_bytes(self) -> int | None:
        """What the process gained from its start to the end of the stage."""
        return None if self.end_rss_bytes is None else self.end_rss_bytes - self.startup_rss_bytes

    @property
    def bytes_per_event(self) -> float:
        return (self.peak_rss_bytes - self.startup_rss_bytes) / self.events if self.events else 0.0


@dataclass(frozen=True, slots=True)
class Throughput:
    """Events counted between a start and an end mark, and whether they were exactly the events published."""

    events: int
    seconds: float
    start: str  # what marked the start
    expected: Mapping[str, int]  # events published per stream
    counted: Mapping[str, int]  # events counted per stream
    memory: Memory | None = None
    #: CPU time the measured process (all its threads) used between the marks: on a busy machine
    #: events per CPU second vary less than events per second.
    cpu_seconds: float | None = None

    @property
    def eps(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def eps_per_cpu(self) -> float | None:
        return self.events / self.cpu_seconds if self.cpu_seconds else None

    @property
    def verified(self) -> bool:
        streams = set(self.expected) | set(self.counted)
        return all(self.expected.get(stream, 0) == self.counted.get(stream, 0) for stream in streams)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events": self.events, "seconds": round(self.seconds, 4), "eps": round(self.eps, 1),
            "start": self.start, "expected": dict(self.expected), "counted": dict(self.counted),
            "verified": self.verified,
            "cpu_seconds": round(self.cpu_seconds, 3) if self.cpu_seconds is not None else None,
            "eps_per_cpu_second": round(self.eps_per_cpu, 1) if self.eps_per_cpu is not None else None,
        }
        if self.memory is not None:
            out |= _memory_json(self.memory) | {"end_rss_bytes": self.memory.end_rss_bytes}
        return out


@dataclass(frozen=True, slots=True)
class BrokerKind:
    """The broker a run measured on, as the worker tells it (``streams.kafka.profile``)."""

    flavor: str  #: ``kafka`` or ``embedded``
    nodes: int  #: brokers the cluster lists
    bootstrap: str | None  #: the cluster given with ``--bootstrap``; None: fresh embedded brokers
    partitions: int  #: of each corridor topic


@dataclass(frozen=True, slots=True)
class Latency:
    """Event-to-metric latency at a fixed rate: from an event's send to the first /metrics that counts it."""

    rate: float  # events per second offered
    seconds: float  # how long they were offered
    events: int
    p50: float
    p99: float
    max: float
    poll_s: float  # how often /metrics was read


@dataclass
class BenchReport:
    """Everything one run measured; a stage that did not run is absent."""

    events: int
    single_events: int
    seed: int
    route_events: int | None = None
    journey_shipments: int | None = None  # shipments of each worker of the journeys stage
    #: The journey records' bytes in the changelog of the worker holding them (newest value per key).
    journey_changelog_bytes: int | None = None
    event_json_bytes: float | None = None  # mean size of one event's JSON
    throughput: dict[str, Throughput] = field(default_factory=dict)
    latency: Latency | None = None
    broker: BrokerKind | None = None
    environment: dict[str, Any] = field(default_factory=dict)

    def eps(self, key: str) -> float | None:
        measured = self.throughput.get(key)
        return measured.eps if measured is not None else None

    def ratio(self, measurement: str, baseline: str) -> float | None:
        numerator, denominator = self.eps(measurement), self.eps(baseline)
        if numerator is None or not denominator:
            return None
        return numerator / denominator

    def cpu_ratio(self, measurement: str, baseline: str) -> float | None:
        """The ratio of events per CPU second: steadier than events per second on a shared machine."""
        numerator, denominator = (self.throughput[key].eps_per_cpu if key in self.throughput else None
                                  for key in (measurement, baseline))
        if numerator is None or not denominator:
            return None
        return numerator / denominator

    @property
    def memory(self) -> Memory | None:
        batched = self.throughput.get(PIPELINE_BATCHED)
        return batched.memory if batched is not None else None

    @property
    def journey_bytes_per_shipment(self) -> float | None:
        """Resident memory per shipment in flight: what the worker holding a journey per shipment gained from its
        start to its end, less what the worker holding none gained on the same shipments, per shipment."""
        gained = []
        for key in (PIPELINE_JOURNEYS, PIPELINE_NO_JOURNEYS):
            measured = self.throughput.get(key)
            growth = measured.memory.growth_bytes if measured is not None and measured.memory is not None else None
            if growth is None:
                return None
            gained.append(growth)
        if not self.journey_shipments:
            return None
        return (gained[0] - gained[1]) / self.journey_shipments

    @property
    def journey_changelog_bytes_per_shipment(self) -> float | None:
        if self.journey_changelog_bytes is None or not self.journey_shipments:
            return None
        return self.journey_changelog_bytes / self.journey_shipments

    @property
    def verified(self) -> bool:
        return all(measured.verified for measured in self.throughput.values())

    def to_json(self) -> dict[str, Any]:
        """One flat object of the headline numbers (null for what did not run), the stages in detail, the machine."""
        out: dict[str, Any] = {"events": self.events, "single_events": self.single_events,
                               "route_events": self.route_events, "journey_shipments": self.journey_shipments,
                               "seed": self.seed}
        for key in LABELS:
            eps = self.eps(key)
            out[f"{key}_eps"] = round(eps, 1) if eps is not None else None
        for name, (measurement, baseline) in RATIOS.items():
            ratio = self.ratio(measurement, baseline)
            out[name] = round(ratio, 3) if ratio is not None else None
        for name in PER_CPU_RATIOS:
            per_cpu = self.cpu_ratio(*RATIOS[name])
            out[f"{name}_per_cpu"] = round(per_cpu, 3) if per_cpu is not None else None
        for name, value in (("journey_bytes_per_shipment", self.journey_bytes_per_shipment),
                            ("journey_changelog_bytes_per_shipment", self.journey_changelog_bytes_per_shipment)):
            out[name] = round(value, 1) if value is not None else None
        memory = self.memory
        out |= _memory_json(memory) if memory is not None else dict.fromkeys(_MEMORY_KEYS)
        latency = self.latency
        out |= {
            "latency_p50_seconds": round(latency.p50, 4) if latency else None,
            "latency_p99_seconds": round(latency.p99, 4) if latency else None,
            "latency_max_seconds": round(latency.max, 4) if latency else None,
            "latency_rate_eps": latency.rate if latency else None,
            "latency_events": latency.events if latency else None,
            "event_json_bytes": round(self.event_json_bytes, 1) if self.event_json_bytes is not None else None,
            "broker": self.broker.flavor if self.broker else None,
            "broker_nodes": self.broker.nodes if self.broker else None,
            "bootstrap": self.broker.bootstrap if self.broker else None,
            "topic_partitions": self.broker.partitions if self.broker else None,
            "verified": self.verified,
            "stages": {key: measured.to_json() for key, measured in self.throughput.items()},
        }
        return out | self.environment

    def rows(self) -> list[tuple[str, ...]]:
        """The throughput table: one row per measurement that ran, cells as :data:`COLUMNS`."""
        rows: list[tuple[str, ...]] = []
        for key, label in LABELS.items():
            measured = self.throughput.get(key)
            if measured is None:
                continue
            aiokafka, faust = _COMPARED.get(key, (None, None))
            rows.append((
                label,
                f"{measured.events:,}",
                f"{measured.seconds:.2f}",
                f"{measured.eps:,.0f}",
                f"{measured.cpu_seconds:.2f}" if measured.cpu_seconds is not None else "",
                f"{measured.eps_per_cpu:,.0f}" if measured.eps_per_cpu is not None else "",
                _times(self.ratio(key, aiokafka) if aiokafka else None),
                _times(self.ratio(key, faust) if faust else None),
            ))
        return rows

    def notes(self) -> list[str]:
        """The broker, memory, latency and the machine, one line each."""
        lines = []
        broker = self.broker
        if broker is not None:
            name = BROKER_NAMES.get(broker.flavor, broker.flavor)
            nodes = f"{broker.nodes} node{'s' if broker.nodes != 1 else ''}"
            lines.append(
                f"broker: {name}, {nodes} at {broker.bootstrap}, the corridor topics ({broker.partitions} partitions) "
                "deleted and created again for each group of stages" if broker.bootstrap else
                f"broker: {name}, a fresh one on loopback for each group of stages ({broker.partitions} partitions)"
            )
        memory = self.memory
        if memory is not None:
            lines.append(
                f"worker memory: peak RSS {_mib(memory.peak_rss_bytes)}, {_mib(memory.startup_rss_bytes)} once "
                f"started: {memory.bytes_per_event:,.0f} bytes per event ({memory.events:,} events)"
            )
        if self.latency is not None:
            latency = self.latency
            lines.append(
                f"event-to-metric latency at {latency.rate:,.0f} events/s for {latency.seconds:g} s "
                f"({latency.events:,} events in envelopes): p50 {latency.p50:.3f} s, p99 {latency.p99:.3f} s, "
                f"max {latency.max:.3f} s (/metrics read every {latency.poll_s * 1000:.0f} ms)"
            )
        routes = self.ratio(PIPELINE_ROUTES_MANY, PIPELINE_ROUTES_FEW)
        if routes is not None:
            per_cpu = self.cpu_ratio(PIPELINE_ROUTES_MANY, PIPELINE_ROUTES_FEW)
            lines.append(f"shipments on {ROUTE_COUNTS[1]:,} known routes against {ROUTE_COUNTS[0]:,}: {_times(routes)} "
                         f"the events/s, {_times(per_cpu)} the events per CPU second ({self.route_events:,} shipments "
                         "each, envelopes keyed by route)")
        journeys = self.ratio(PIPELINE_JOURNEYS, PIPELINE_NO_JOURNEYS)
        if journeys is not None:
            per_shipment, changelog = self.journey_bytes_per_shipment, self.journey_changelog_bytes_per_shipment
            lines.append(
                f"shipments in flight: departures, each opening a journey, at {_times(journeys)} the events/s of the "
                f"same shipments clearing customs, {_times(self.cpu_ratio(PIPELINE_JOURNEYS, PIPELINE_NO_JOURNEYS))} "
                "the events per CPU second; "
                + (f"{per_shipment:,.0f} bytes of resident memory per shipment in flight" if per_shipment is not None
                   else "no resident memory read")
                + (f", {changelog:,.0f} bytes of changelog" if changelog is not None else "")
                + f" ({self.journey_shipments:,} shipments each)"
            )
        if self.event_json_bytes is not None:
            lines.append(f"events: {self.event_json_bytes:.0f} bytes of JSON on average, seed {self.seed}")
        environment = self.environment
        if environment:
            lines.append(
                f"machine: {environment.get('cpus')} CPUs, load {environment.get('load_before')} before and "
                f"{environment.get('load_after')} after; Python {environment.get('python')} on "
                f"{environment.get('platform')}"
            )
        return lines


_MEMORY_KEYS = ("peak_rss_bytes", "startup_rss_bytes", "bytes_per_event")


def _memory_json(memory: Memory) -> dict[str, Any]:
    return {
        "peak_rss_bytes": memory.peak_rss_bytes,
        "startup_rss_bytes": memory.startup_rss_bytes,
        "bytes_per_event": round(memory.bytes_per_event, 1),
    }


def _times(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"
