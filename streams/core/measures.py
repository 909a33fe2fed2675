"""What accepted events contribute to partition state, summed per batch (pure, no state).

Every contribution is an integer in a fixed-point unit (milli-TEU, grams, US cents,
bytes, milliseconds) so that sums are exact and independent of batch order. The measure
function of each family, and the series it feeds, are declared in
:mod:`streams.core.families`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, TypeVar

from schemas.common import BaseEvent
from schemas.families import EventFamily
from streams.core.registry import Registry
from streams.core.series import CounterSeries, HistogramSeries, Labels, WindowSeries

Event = TypeVar("Event", bound=BaseEvent)


def keep_latest(latest: dict[str, float], key: str, moment: float) -> None:
    """Record ``moment`` for ``key`` unless a later one is already there."""
    if moment > latest.get(key, float("-inf")):
        latest[key] = moment


@dataclass(slots=True)
class BatchContributions:
    """A batch's contributions, summed before any state is touched (keyed by series key)."""

    counters: dict[str, Counter[Labels]] = field(default_factory=dict)
    windows: dict[str, list[tuple[Labels, float, int]]] = field(default_factory=dict)
    observations: dict[str, list[tuple[Labels, int]]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)

    def count(self, series: CounterSeries, labels: Labels, value: int = 1) -> None:
        counter = self.counters.get(series.key)
        if counter is None:
            counter = self.counters[series.key] = Counter()
        counter[labels] += value

    def window(self, series: WindowSeries, labels: Labels, event_time: float, value: int) -> None:
        self.windows.setdefault(series.key, []).append((labels, event_time, value))

    def observe(self, series: HistogramSeries, labels: Labels, millis: int) -> None:
        self.observations.setdefault(series.key, []).append((labels, millis))

    def seen(self, key: str, event_time: float) -> None:
        keep_latest(self.last_seen, key, event_time)


@dataclass(frozen=True, slots=True)
class MeasureContext:
    """What the measure functions need besides the event."""

    registry: Registry
    fx_per_usd: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class FamilyMeasures(Generic[Event]):
    """How one event family is measured: its contract, measure function and metric series."""

    event: EventFamily
    #: Adds one accepted event's contributions and returns its freshness key (route, link...).
    measure: Callable[[Event, MeasureContext, BatchContributions], str]
    counters: tuple[CounterSeries, ...] = ()
    windows: tuple[WindowSeries, ...] = ()
    histograms: tuple[HistogramSeries, ...] = ()

    @property
    def name(self) -> str:
        return self.event.name
