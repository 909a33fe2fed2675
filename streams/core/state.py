"""Everything one source partition has applied, serialisable as one checkpoint.

A partition's state holds the offset of the last applied record together with the
aggregates and the dedup index it produced, so a checkpoint is self-consistent: replaying
the partition from any earlier offset skips what the checkpoint already holds.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.core.dedup import DedupIndex
from streams.core.journeys import JourneyBook, JourneyPlan, overdue_count
from streams.core.measures import BatchContributions
from streams.core.series import CounterSeries, Labels
from streams.core.windows import RollingWindows, WindowSpec

#: 2: dedup buckets stored as fixed-size chunks (streams/core/checkpoint.py).
HEAD_FORMAT = 2
_NEVER = float("-inf")


#: A JSON number of 20 digits or more: an integer orjson may read back as a float (past 2**64 - 1).
_LONG_NUMBER = re.compile(rb"[0-9]{20}")


def _dump_head(doc: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:
        # A total past 64 bits (three data-channel samples of 2**63 - 1 bytes are valid events):
        # the standard library writes any integer, and _load_head reads it back exactly.
        return json.dumps(doc, separators=(",", ":")).encode()


def _load_head(head: bytes) -> Any:
    # orjson reads integers past 64 bits as floats; only a head holding such a number needs the
    # standard library, several times slower on a big head.
    return json.loads(head) if _LONG_NUMBER.search(head) else orjson.loads(head)


@dataclass(slots=True)
class Histogram:
    """Cumulative-free bucket counts plus sum, in integer milliseconds."""

    bounds_ms: tuple[int, ...]
    counts: list[int]
    sum_ms: int = 0

    @classmethod
    def empty(cls, bounds_ms: tuple[int, ...]) -> Histogram:
        return cls(bounds_ms, [0] * (len(bounds_ms) + 1))

    def observe(self, millis: int) -> None:
        self.counts[bisect_left(self.bounds_ms, millis)] += 1
        self.sum_ms += millis

    def observe_many(self, millis: Sequence[int]) -> None:
        counts, bounds = self.counts, self.bounds_ms
        for value in millis:
            counts[bisect_left(bounds, value)] += 1
        self.sum_ms += sum(millis)

    @property
    def count(self) -> int:
        return sum(self.counts)

    def copy(self) -> Histogram:
        return Histogram(self.bounds_ms, list(self.counts), self.sum_ms)

    def add(self, other: Histogram) -> None:
        """Add another histogram with the same bounds (e.g. another partition's) to this one."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum_ms += other.sum_ms


@dataclass(frozen=True, slots=True)
class StateView:
    """A copy of what a partition's metrics are computed from, taken at one offset.

    The worker exports the view of a partition's last confirmed checkpoint, never its live
    state: whoever owns the partition next restores at least that much, so an exported
    counter never falls.
    """

    offset: int
    counters: dict[str, Counter[Labels]]
    windows: dict[str, RollingWindows]
    histograms: dict[str, dict[Labels, Histogram]]
    last_seen: dict[str, float]
    #: Shipments in transit by labels, and their deadlines (planned arrival + tolerance, ms), sorted, by labels.
    in_transit: dict[Labels, int] = field(default_factory=dict)
    deadlines: dict[Labels, list[int]] = field(default_factory=dict)

    def gauge(self, key: str, now: float) -> Mapping[Labels, int]:
        """A gauge series' values (``GaugeSeries.key``) at wall-clock ``now``."""
        if key == IN_TRANSIT:
            return self.in_transit
        if key == OVERDUE:
            return overdue_count(self.deadlines, now)
        raise KeyError(f"no gauge {key!r} in partition state")


#: Keys of the gauges partition state answers (streams/core/families.py declares their series).
IN_TRANSIT, OVERDUE = "in_transit", "overdue"


@dataclass(slots=True)
class PartitionState:
    """Aggregates, pipeline counts and dedup index of one source partition."""

    window_specs: tuple[WindowSpec, ...]
    histogram_bounds_ms: Mapping[str, tuple[int, ...]]
    dedup: DedupIndex
    offset: int = -1
    #: The Kafka cluster whose topic ``offset`` counts in (None: not known yet). A broker that keeps
    #: nothing across a restart comes back as another cluster, with topics that start again at 0.
    cluster: str | None = None
    #: The ``owner`` label the metrics show this state under, its checkpoints included (None: not exported yet).
    series: str | None = None
    watermark: float = 0.0
    counters: dict[str, Counter[Labels]] = field(default_factory=dict)
    windows: dict[str, RollingWindows] = field(default_factory=dict)
    histograms: dict[str, dict[Labels, Histogram]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    #: The shipments in flight (the shipments family only).
    journeys: JourneyBook | None = None

    def apply(self, batch: BatchContributions) -> None:
        """Fold a batch's summed contributions into the state."""
        for metric, counts in batch.counters.items():
            if not counts:
                continue
            counter = self.counters.get(metric)
            if counter is None:
                counter = self.counters[metric] = Counter()
            for labels, value in counts.items():
                counter[labels] += value
        for metric, sums in batch.windows.items():
            if not sums:
                continue
            windows = self.windows.get(metric)
            if windows is None:
                windows = self.windows[metric] = RollingWindows(self.window_specs)
            windows.add_summed(sums)
        for metric, observations in batch.observations.items():
            if not observations:
                continue
            by_labels = self.histograms.setdefault(metric, {})
            bounds = self.histogram_bounds_ms[metric]
            for labels, millis in observations.items():
                histogram = by_labels.get(labels)
                if histogram is None:
                    histogram = by_labels[labels] = Histogram.empty(bounds)
                histogram.observe_many(millis)
        last_seen = self.last_seen
        for key, event_time in batch.last_seen.items():
            if event_time > last_seen.get(key, _NEVER):
                last_seen[key] = event_time

    def view(self) -> StateView:
        """A copy of the aggregates as they are now (later records leave it alone)."""
        return StateView(
            offset=self.offset,
            counters={key: Counter(counts) for key, counts in self.counters.items()},
            windows={key: windows.copy() for key, windows in self.windows.items()},
            histograms={
                key: {labels: histogram.copy() for labels, histogram in by_labels.items()}
                for key, by_labels in self.histograms.items()
            },
            last_seen=dict(self.last_seen),
            in_transit={} if self.journeys is None else dict(self.journeys.in_transit),
            deadlines={} if self.journeys is None else self.journeys.deadline_view(),
        )

    def expire(self, now: float) -> None:
        """Forget window buckets no window can reach and dedup entries past the horizon."""
        for windows in self.windows.values():
            windows.expire(now)
        self.dedup.expire(self.watermark)

    def head_bytes(self, dedup_chunk_entries: int, journeys: JourneyPlan | None = None) -> bytes:
        """The checkpoint's head record: everything but the dedup buckets' and the journeys' contents.

        ``journeys`` is the plan of the book's pieces this checkpoint writes (what the head names).
        """
        book = self.journeys
        return _dump_head(
            {
                "format": HEAD_FORMAT,
                "dedup_chunk_entries": dedup_chunk_entries,
                "offset": self.offset,
                "cluster": self.cluster,
                "series": self.series,
                "watermark": self.watermark,
                "counters": {m: [[*k, v] for k, v in c.items()] for m, c in self.counters.items()},
                "windows": {m: w.to_state() for m, w in self.windows.items()},
                "histograms": {
                    m: [[list(k), h.counts, h.sum_ms] for k, h in by_labels.items()]
                    for m, by_labels in self.histograms.items()
                },
                "last_seen": self.last_seen,
                "dedup_sizes": {str(k): v for k, v in self.dedup.bucket_sizes().items()},
                "journeys": None if book is None else JourneyBook.head(journeys, book.next_piece),
            }
        )

    @staticmethod
    def dedup_layout_of(head: bytes) -> tuple[dict[int, int], int]:
        """The dedup buckets a head record names with their entry counts, and the entries per chunk."""
        doc = orjson.loads(head)
        if doc.get("format") != HEAD_FORMAT:
            raise ValueError(f"unknown checkpoint format {doc.get('format')!r}")
        return {int(k): int(v) for k, v in doc["dedup_sizes"].items()}, int(doc["dedup_chunk_entries"])

    @staticmethod
    def journey_chunks_of(head: bytes) -> list[tuple[int, int]]:
        """The ``(piece, chunk)`` records of the journey book a head record names (none without a book)."""
        journeys = orjson.loads(head).get("journeys")
        if not journeys:
            return []
        pieces, _ = JourneyBook.pieces_of(journeys)
        return [(piece.number, index) for piece in pieces for index in range(piece.chunks)]

    @classmethod
    def restore(
        cls,
        head: bytes,
        dedup_buckets: dict[int, bytes],
        *,
        window_specs: Sequence[WindowSpec],
        histogram_bounds_ms: Mapping[str, tuple[int, ...]],
        dedup_horizon: float,
        dedup_bucket_seconds: int,
        journey_chunks: Mapping[tuple[int, int], bytes] | None = None,
        new_book: Callable[[], JourneyBook] | None = None,
    ) -> PartitionState:
        """Rebuild a partition's state from its head record, dedup buckets and journey chunks.

        ``new_book`` makes the (empty) journey book of a family that keeps one: the book a head
        names is restored with its horizon and tolerances.
        """
        doc = _load_head(head)
        if doc.get("format") != HEAD_FORMAT:
            raise ValueError(f"unknown checkpoint format {doc.get('format')!r}")
        sizes = {int(k): int(v) for k, v in doc["dedup_sizes"].items()}
        state = cls(
            window_specs=tuple(window_specs),
            histogram_bounds_ms=histogram_bounds_ms,
            dedup=DedupIndex.restore(dedup_horizon, dedup_bucket_seconds, dedup_buckets, sizes),
            offset=doc["offset"],
            cluster=doc.get("cluster"),  # heads written before it was recorded have none
            series=doc.get("series"),  # likewise
            watermark=doc["watermark"],
        )
        for metric, rows in doc["counters"].items():
            state.counters[metric] = Counter({tuple(row[:-1]): row[-1] for row in rows})
        for metric, snapshot in doc["windows"].items():
            state.windows[metric] = RollingWindows.from_state(state.window_specs, snapshot)
        for metric, rows in doc["histograms"].items():
            bounds = histogram_bounds_ms[metric]
            state.histograms[metric] = {
                tuple(labels): Histogram(bounds, list(counts), sum_ms) for labels, counts, sum_ms in rows
            }
        state.last_seen = dict(doc["last_seen"])
        if new_book is not None:
            empty = new_book()
            named = doc.get("journeys")  # None: a head written before the family kept journeys
            state.journeys = empty if not named else JourneyBook.restore(
                empty.horizon, empty.tolerance, named, lambda number, index: (journey_chunks or {})[(number, index)]
            )
        return state


def merged_counter(states: Iterable[StateView | PartitionState], series: CounterSeries) -> Counter[Labels]:
    """One series' counts summed over several partitions."""
    total: Counter[Labels] = Counter()
    for state in states:
        counter = state.counters.get(series.key)
        if counter:
            total.update(counter)
    return total
