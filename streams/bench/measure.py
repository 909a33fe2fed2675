"""What the bench reads off a worker: pipeline counts and gauges from /metrics, memory from /proc, the start from
its log, the size of its journey records in its changelog; and the arithmetic on them (latencies, percentiles)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

RECEIVED = "corridor_events_received_total"
ACCEPTED = "corridor_events_accepted_total"
#: In the key of every changelog record of a journey book's pieces (``streams.core.checkpoint.journey_key``).
JOURNEY_RECORDS = b":journeys:"
#: The worker's log line (JSON format) that ends its start: the assigned partitions' state is
#: restored and the consumer starts fetching.
RESTORED_MESSAGE = "state restored"

#: (stream, partition)
Slot = tuple[str, int]

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class PipelineCounts:
    """Events received and accepted per stream and partition, as one scrape of /metrics showed them."""

    received: Mapping[Slot, int] = field(default_factory=dict)
    accepted: Mapping[Slot, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> PipelineCounts:
        """Read the two pipeline counters from a /metrics text, summed over owners (a partition
        may show under two owners while it moves)."""
        # Not streams.process.parse_metrics: the bench reads these two counters up to 20 times a second
        # while it measures, and prometheus_client's parser of the whole text costs about 30 times this.
        counts: dict[str, dict[Slot, int]] = {RECEIVED: {}, ACCEPTED: {}}
        for line in text.splitlines():
            name, brace, rest = line.partition("{")
            if not brace or name not in counts:
                continue
            labels_text, _, value = rest.rpartition("}")
            labels = dict(_LABEL.findall(labels_text))
            slot = (labels.get("stream", ""), int(labels.get("partition", "-1")))
            target = counts[name]
            target[slot] = target.get(slot, 0) + int(float(value.split()[0]))
        return cls(counts[RECEIVED], counts[ACCEPTED])

    def received_by_stream(self) -> dict[str, int]:
        return _by_stream(self.received)

    def accepted_by_stream(self) -> dict[str, int]:
        return _by_stream(self.accepted)

    @property
    def total_received(self) -> int:
        return sum(self.received.values())


def gauge_total(text: str, name: str) -> float:
    """The sum of every sample of the gauge ``name`` in a /metrics text (0 when it has none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            total += float(line.rpartition("}")[2].split()[0] if "{" in line else line.split()[1])
    return total


class NewestValues:
    """The bytes a compacted changelog keeps of the keys holding ``marker``: the newest value of each, none of a
    key whose newest value is a deletion. Records are added in the order a partition of the changelog holds them."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self._sizes: dict[bytes, int] = {}

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if key is not None and self.marker in key:
            self._sizes[key] = 0 if value is None else len(value)

    @property
    def total(self) -> int:
        return sum(self._sizes.values())


def _by_stream(counts: Mapping[Slot, int]) -> dict[str, int]:
    streams: dict[str, int] = {}
    for (stream, _), value in counts.items():
        streams[stream] = streams.get(stream, 0) + value
    return streams


def restored_at(log_lines: Iterable[str]) -> float | None:
    """When (Unix seconds) the first "state restored" line of a JSON-format worker log was written."""
    for line in log_lines:
        if RESTORED_MESSAGE not in line:
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("message") == RESTORED_MESSAGE and "ts" in entry:
            return datetime.fromisoformat(entry["ts"]).timestamp()
    return None


def parse_proc_status(text: str) -> tuple[int, int] | None:
    """(resident, peak resident) bytes from a /proc/<pid>/status text (VmRSS, VmHWM)."""
    sizes = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            sizes[name] = int(value.split()[0]) * 1024  # kB
    if len(sizes) < 2:
        return None
    return sizes["VmRSS"], sizes["VmHWM"]


def memory_of(pid: int) -> tuple[int, int] | None:
    """(resident, peak resident) bytes of a live process; None where /proc does not tell (not Linux, gone)."""
    try:
        return parse_proc_status(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None


def parse_proc_stat(text: str, ticks_per_second: float) -> float:
    """CPU seconds (user and system, all threads) from a /proc/<pid>/stat text."""
    fields = text.rpartition(")")[2].split()  # the command name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / ticks_per_second  # utime, stime: fields 14 and 15


def cpu_seconds_of(pid: int) -> float | None:
    """CPU seconds a live process has used so far; None where /proc does not tell."""
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True, slots=True)
class Sent:
    """A record the latency stage published: where it landed, when it was handed to the producer, its events."""

    stream: str
    partition: int
    offset: int
    sent_at: float
    events: int


def visibility_latencies(
    sent: Sequence[Sent],
    before: Mapping[Slot, int],
    scrapes: Sequence[tuple[float, Mapping[Slot, int]]],
) -> list[tuple[float, int]]:
    """(latency, events) of each sent record: from its send to the first scrape counting it.

    A partition's records are applied in offset order, so a record is counted once its
    partition's accepted count reaches ``before`` (the count when the stage began) plus the
    events of every record up to it. Scrapes are (time, accepted per slot), in time order.
    ValueError when some record is in no scrape.
    """
    by_slot: dict[Slot, list[Sent]] = {}
    for record in sent:
        by_slot.setdefault((record.stream, record.partition), []).append(record)
    latencies = []
    for slot, records in by_slot.items():
        records.sort(key=lambda record: record.offset)
        needed = before.get(slot, 0)
        scrape = 0
        for record in records:
            needed += record.events
            while scrape < len(scrapes) and scrapes[scrape][1].get(slot, 0) < needed:
                scrape += 1
            if scrape == len(scrapes):
                raise ValueError(f"{slot[0]} partition {slot[1]}: offset {record.offset} was never counted")
            latencies.append((scrapes[scrape][0] - record.sent_at, record.events))
    return latencies


def weighted_percentile(samples: Sequence[tuple[float, int]], fraction: float) -> float:
    """The smallest value at or below which ``fraction`` (0..1) of the total weight lies (nearest rank)."""
    if not samples:
        raise ValueError("no samples")
    if not 0 <= fraction <= 1:
        raise ValueError("fraction must be within 0..1")
    ordered = sorted(samples)
    total = sum(weight for _, weight in ordered)
    wanted = fraction * total
    cumulative = 0
    for value, weight in ordered:
        cumulative += weight
        if cumulative >= wanted and cumulative > 0:
            return value
    return ordered[-1][0]
