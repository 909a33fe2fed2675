"""What accepted events contribute to partition state, summed per batch (pure, no state).

Every contribution is an integer in a fixed-point unit (milli-TEU, grams, US cents,
bytes, milliseconds) so that sums are exact and independent of batch order. The measure
function of each family, and the series it feeds, are declared in
:mod:`streams.core.families`; it takes a whole batch of accepted events at once and sums
their contributions in plain dicts, so that partition state is touched once per label set
and bucket, not once per event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Generic, TypeVar

from schemas.common import BaseEvent
from schemas.families import EventFamily
from streams.core.fx import FxTable
from streams.core.journeys import JourneyBook
from streams.core.registry import Registry
from streams.core.series import CounterSeries, GaugeSeries, HistogramSeries, Labels, WindowSeries

Event = TypeVar("Event", bound=BaseEvent)

#: A window contribution's key: its labels and its base bucket, ``event_time // window_base``.
WindowKey = tuple[Labels, float]

#: Below this magnitude a scaled float is within 2**-12 of the exact scaled decimal (see ``fixed_point``).
_FLOAT_EXACT_BELOW = 2.0**40
#: A scaled float nearer than this to an integer rounds like the exact scaled decimal.
_UNAMBIGUOUS = 0.499


def fixed_point(value: float, scale: int) -> int:
    """The number ``value`` as written (its shortest decimal form), times ``scale``, rounded half to even.

    The same integer as ``round(Decimal(str(value)) * scale)``, at the cost of a float product
    for all but the values that lie within 0.001 of a half-integer once scaled. The decimal ``d``
    that ``str`` writes rounds to ``value``, so ``|d - value| <= |value| 2**-53``, and the float
    product is within ``|value * scale| 2**-53`` of the exact one: below 2**40, ``d * scale`` is
    within 2**-12 of the float product. When that lies nearer than 0.499 to an integer,
    ``d * scale`` lies nearer than 0.5 to it, and rounds to it whatever the tie rule.
    """
    scaled = value * scale
    if -_FLOAT_EXACT_BELOW < scaled < _FLOAT_EXACT_BELOW:
        nearest = round(scaled)
        if -_UNAMBIGUOUS < scaled - nearest < _UNAMBIGUOUS:
            return nearest
    return round(Decimal(str(value)) * scale)


def keep_latest(latest: dict[str, float], key: str, moment: float) -> None:
    """Record ``moment`` for ``key`` unless a later one is already there."""
    if moment > latest.get(key, float("-inf")):
        latest[key] = moment


@dataclass(slots=True)
class BatchContributions:
    """A batch's contributions, summed before any state is touched (keyed by series key).

    Window contributions are summed per labels and base bucket (``event_time // window_base``,
    the finest bucket width every window's buckets are made of), histogram observations are
    listed per labels.
    """

    window_base: int = 1
    counters: dict[str, dict[Labels, int]] = field(default_factory=dict)
    windows: dict[str, dict[WindowKey, int]] = field(default_factory=dict)
    observations: dict[str, dict[Labels, list[int]]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)

    def count(self, series: CounterSeries, labels: Labels, value: int = 1) -> None:
        counter = self.counters.get(series.key)
        if counter is None:
            self.counters[series.key] = {labels: value}
        else:
            counter[labels] = counter.get(labels, 0) + value

    def counts(self, series: CounterSeries) -> dict[Labels, int]:
        """The batch's sums of ``series`` by labels, to add to."""
        return self.counters.setdefault(series.key, {})

    def window_sums(self, series: WindowSeries) -> dict[WindowKey, int]:
        """The batch's sums of ``series`` by (labels, base bucket), to add to."""
        return self.windows.setdefault(series.key, {})

    def window(self, series: WindowSeries, labels: Labels, event_time: float, value: int) -> None:
        sums = self.window_sums(series)
        key = (labels, event_time // self.window_base)
        sums[key] = sums.get(key, 0) + value

    def observed(self, series: HistogramSeries) -> dict[Labels, list[int]]:
        """The batch's observations of ``series`` (integer milliseconds) by labels, to append to."""
        return self.observations.setdefault(series.key, {})

    def observe(self, series: HistogramSeries, labels: Labels, millis: int) -> None:
        self.observed(series).setdefault(labels, []).append(millis)

    def seen(self, key: str, event_time: float) -> None:
        keep_latest(self.last_seen, key, event_time)


@dataclass(frozen=True, slots=True)
class MeasureContext:
    """What the measure functions need besides the events."""

    registry: Registry
    fx: FxTable
    #: Seconds from planned_time a milestone is still on time, by transport mode.
    tolerance: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, registry: Registry, fx_per_usd: Mapping[str, Decimal],
           tolerance: Mapping[str, float] | None = None) -> MeasureContext:
        return cls(registry, FxTable(fx_per_usd), dict(tolerance or {}))


#: Adds the contributions of a batch of accepted events (with their event times, epoch seconds).
Measure = Callable[[Sequence[Event], Sequence[float], MeasureContext, BatchContributions], None]
#: Applies a batch of accepted events to the partition's journey book, in order (with their event
#: times and the partition's clock at each one's record), then what the partition's clock after the
#: batch's last record evicts, adding what it observes.
Track = Callable[
    [JourneyBook, Sequence[Event], Sequence[float], Sequence[float], float, MeasureContext, BatchContributions], None
]


@dataclass(frozen=True, slots=True)
class FamilyMeasures(Generic[Event]):
    """How one event family is measured: its contract, measure function and metric series."""

    event: EventFamily
    #: Adds a batch of accepted events' contributions, their freshness (route, link...) included.
    measure: Measure[Event]
    counters: tuple[CounterSeries, ...] = ()
    windows: tuple[WindowSeries, ...] = ()
    histograms: tuple[HistogramSeries, ...] = ()
    gauges: tuple[GaugeSeries, ...] = ()
    #: The family's state per key in flight (shipments: their journeys), None when it keeps none.
    track: Track[Event] | None = None

    @property
    def name(self) -> str:
        return self.event.name
