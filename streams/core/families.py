"""Each event family's measures and metric series, declared once.

A family's topic, key field, event model and example come from
:mod:`schemas.families`; here is what its accepted events contribute to partition state
and which Prometheus series they feed. The worker, the collector, the live view and
the tests read these declarations; nothing else names a family's series.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from schemas import DataChannelSample, FinanceEvent, FlightEvent, ShipmentEvent, families
from schemas.datachannel import Direction
from schemas.finance import FinanceStatus, Instrument
from schemas.flights import FlightService, FlightStatus
from schemas.shipments import Milestone, TransportMode
from streams.core.journeys import JourneyBook, Observer
from streams.core.measures import BatchContributions, FamilyMeasures, MeasureContext, fixed_point, keep_latest
from streams.core.registry import Registry
from streams.core.series import CounterSeries, GaugeSeries, HistogramSeries, Labels, WindowSeries
from streams.core.state import IN_TRANSIT, OVERDUE

MILLI = 1000
MICRO = 1_000_000
DAY = 86400
_NEVER = float("-inf")


def _record_latest(out: BatchContributions, keys: Iterable[str], times: Iterable[float],
                   label: Callable[[str], str]) -> None:
    """Freshness: the latest event time per key, recorded under the key's label."""
    latest: dict[str, float] = {}
    get = latest.get
    for key, moment in zip(keys, times, strict=True):
        if moment > get(key, _NEVER):
            latest[key] = moment
    for key, moment in latest.items():
        keep_latest(out.last_seen, label(key), moment)


# Shipments: counted by milestone; TEU and weight count on departure.
SHIPMENT_EVENTS = CounterSeries(
    "shipments", "corridor_shipments", "Shipment events by milestone.", ("corridor", "route", "mode", "milestone")
)
SHIPMENT_TEU = CounterSeries(
    "shipment_teu", "corridor_shipment_teu", "TEU of departed shipments.", ("corridor", "route", "mode"), MILLI
)
SHIPMENT_GROSS_WEIGHT = CounterSeries(  # state holds grams (milli-kilograms): Prometheus' base unit
    "shipment_gross_weight",
    "corridor_shipment_gross_weight_grams",
    "Gross weight of departed shipments, grams.",
    ("corridor", "route", "mode"),
)
SHIPMENT_TEU_WINDOW = WindowSeries(
    "shipment_teu",
    "corridor_shipment_teu_window",
    "TEU departed in the rolling event-time window.",
    ("corridor", "route", "mode"),
    MILLI,
)


# Time, from shipment contract version 2 (docs/semantics.md, "Transit, dwell and on time").
_TRANSIT_BUCKETS = tuple(float(days * DAY) for days in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 21, 28))
SHIPMENT_TRANSIT = HistogramSeries(
    "shipment_transit",
    "corridor_shipment_transit_seconds",
    "Transit time of arrived shipments: the first departure at the origin to the arrival at the destination.",
    ("corridor", "route", "mode"),
    _TRANSIT_BUCKETS,
)
SHIPMENT_LEG = HistogramSeries(
    "shipment_leg",
    "corridor_shipment_leg_seconds",
    "Time of a leg: a departure to the next arrival, by leg (FROM-TO, places next to each other on a registry "
    "route; else other).",
    ("corridor", "route", "leg"),
    _TRANSIT_BUCKETS,
)
SHIPMENT_DWELL = HistogramSeries(
    "shipment_dwell",
    "corridor_shipment_dwell_seconds",
    "Dwell at a location: an arrival there to the next departure from there.",
    ("corridor", "route", "location"),
    (6 * 3600.0, 12 * 3600.0, DAY, 1.5 * DAY, 2 * DAY, 3 * DAY, 4 * DAY, 5 * DAY, 7 * DAY, 10 * DAY),
)
SHIPMENT_PUNCTUALITY = CounterSeries(
    "shipment_punctuality",
    "corridor_shipment_punctuality",
    "Milestones against their planned_time: on_time within the mode's tolerance, else early or late.",
    ("corridor", "route", "mode", "milestone", "punctuality"),
)
SHIPMENTS_EVICTED = CounterSeries(
    "shipments_evicted",
    "corridor_shipments_evicted",
    "Shipments in flight dropped from the state after the horizon without arriving.",
    ("corridor", "route", "mode"),
)
SHIPMENTS_IN_TRANSIT = GaugeSeries(
    IN_TRANSIT,
    "corridor_shipments_in_transit",
    "Shipments departed from their origin and not arrived at their destination.",
    ("corridor", "route", "mode"),
)
SHIPMENTS_OVERDUE = GaugeSeries(
    OVERDUE,
    "corridor_shipments_overdue",
    "Shipments not arrived whose planned_arrival plus the mode's tolerance has passed (wall clock).",
    ("corridor", "route", "mode"),
)

_SHIPMENT_KEY = attrgetter("corridor", "route", "mode", "milestone")
_ShipmentKey = tuple[str, str, TransportMode, Milestone]
_PLANNED = attrgetter("planned_time")


def shipment_measures(
    events: Sequence[ShipmentEvent], times: Sequence[float], ctx: MeasureContext, out: BatchContributions
) -> None:
    registry = ctx.registry
    keys: list[_ShipmentKey] = list(map(_SHIPMENT_KEY, events))
    counts = out.counts(SHIPMENT_EVENTS)
    departures: dict[_ShipmentKey, Labels] = {}  # (corridor, route, mode) labels of departed events' keys
    for key, n in Counter(keys).items():
        corridor, route, mode, milestone = key
        labels = (registry.corridor(corridor), registry.route(route), str(mode))
        by_milestone = (*labels, str(milestone))
        counts[by_milestone] = counts.get(by_milestone, 0) + n
        if milestone == Milestone.DEPARTED:
            departures[key] = labels
    if departures:
        teu_counts, weights = out.counts(SHIPMENT_TEU), out.counts(SHIPMENT_GROSS_WEIGHT)
        window, base = out.window_sums(SHIPMENT_TEU_WINDOW), out.window_base
        for key, event, event_time in zip(keys, events, times, strict=True):
            departed = departures.get(key)
            if departed is None or (event.location is not None and event.location != event.origin):
                continue  # volume counts once per shipment: at its departure from the origin
            teu = fixed_point(event.teu, MILLI)
            teu_counts[departed] = teu_counts.get(departed, 0) + teu
            weights[departed] = weights.get(departed, 0) + fixed_point(event.gross_weight_kg, MILLI)
            bucket = (departed, event_time // base)
            window[bucket] = window.get(bucket, 0) + teu
    if any(map(_PLANNED, events)):
        _punctuality(keys, events, times, ctx, out)
    _record_latest(out, (key[1] for key in keys), times, registry.route)


def _punctuality(keys: Sequence[_ShipmentKey], events: Sequence[ShipmentEvent], times: Sequence[float],
                 ctx: MeasureContext, out: BatchContributions) -> None:
    registry, tolerance = ctx.registry, ctx.tolerance
    counts = out.counts(SHIPMENT_PUNCTUALITY)
    for (corridor, route, mode, milestone), event, event_time in zip(keys, events, times, strict=True):
        if event.planned_time is None:
            continue
        early = event_time - event.planned_time.timestamp()
        allowed = tolerance.get(mode, 0.0)
        verdict = "late" if early > allowed else "early" if early < -allowed else "on_time"
        labels = (registry.corridor(corridor), registry.route(route), str(mode), str(milestone), verdict)
        counts[labels] = counts.get(labels, 0) + 1


class _Observed(Observer):
    """What the journey book observes, as a batch's contributions (integer milliseconds)."""

    def __init__(self, registry: Registry, out: BatchContributions) -> None:
        self.registry, self.out = registry, out

    def transit(self, labels: Labels, millis: int) -> None:
        self.out.observe(SHIPMENT_TRANSIT, labels, millis)

    def leg(self, labels: Labels, start: str, end: str, millis: int) -> None:
        self.out.observe(SHIPMENT_LEG, (labels[0], labels[1], self.registry.leg(start, end)), millis)

    def dwell(self, labels: Labels, location: str, millis: int) -> None:
        self.out.observe(SHIPMENT_DWELL, (labels[0], labels[1], self.registry.location(location)), millis)

    def evicted(self, labels: Labels) -> None:
        self.out.count(SHIPMENTS_EVICTED, labels)


def shipment_journeys(
    book: JourneyBook, events: Sequence[ShipmentEvent], times: Sequence[float], clocks: Sequence[float],
    clock: float, ctx: MeasureContext, out: BatchContributions,
) -> None:
    """Apply accepted shipment events to the journeys, then evict those past the horizon at ``clock``
    (the partition's clock after the last record applied)."""
    registry = ctx.registry
    observed = _Observed(registry, out)
    if events:
        book.apply(events, times, clocks, lambda corridor, route, mode: (
            registry.corridor(corridor), registry.route(route), mode), observed)
    book.evict(clock, observed)


# Flights: counted by status; a departure is an operated flight, an arrival measures the delay and punctuality.
FLIGHT_EVENTS = CounterSeries(
    "flights", "corridor_flights", "Flight events by status.", ("route", "carrier", "service", "status")
)
FLIGHT_PASSENGERS = CounterSeries(
    "flight_passengers", "corridor_flight_passengers", "Passengers on operated flights.", ("route", "carrier")
)
FLIGHT_CARGO = CounterSeries(
    "flight_cargo", "corridor_flight_cargo_grams", "Cargo on operated flights, grams.", ("route", "carrier")
)
FLIGHTS_OPERATED_WINDOW = WindowSeries(
    "flights_operated",
    "corridor_flights_window",
    "Flights operated in the rolling event-time window.",
    ("route", "service"),
)
FLIGHT_DELAY = HistogramSeries(
    "flight_delay",
    "corridor_flight_delay_seconds",
    "Departure delay of operated flights.",
    ("route", "service"),
    (0, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)
FLIGHT_ARRIVAL_DELAY = HistogramSeries(
    "flight_arrival_delay",
    "corridor_flight_arrival_delay_seconds",
    "Arrival delay of arrived flights (actual minus scheduled arrival; early arrivals fall in the lowest bucket).",
    ("route", "service"),
    FLIGHT_DELAY.buckets,
)
# On time as OAG counts it: an arrival less than 15 minutes after its schedule (early included);
# a cancellation is not on time.
FLIGHT_PUNCTUALITY = CounterSeries(
    "flight_punctuality",
    "corridor_flight_punctuality",
    "Arrivals on time (less than 15 minutes late, as OAG counts) or late, and cancellations.",
    ("route", "service", "punctuality"),
)
ON_TIME_BELOW_MS = 15 * 60 * MILLI


_FLIGHT_KEY = attrgetter("route", "carrier", "service", "status")
_FlightKey = tuple[str, str, FlightService, FlightStatus]


def flight_measures(
    events: Sequence[FlightEvent], times: Sequence[float], ctx: MeasureContext, out: BatchContributions
) -> None:
    registry = ctx.registry
    keys: list[_FlightKey] = list(map(_FLIGHT_KEY, events))
    counts = out.counts(FLIGHT_EVENTS)
    # Departed events' keys -> (route, service) and (route, carrier) labels; arrived events' keys ->
    # (route, service) labels.
    departures: dict[_FlightKey, tuple[Labels, Labels]] = {}
    arrivals: dict[_FlightKey, Labels] = {}
    for key, n in Counter(keys).items():
        route, carrier, service, status = key
        labels = (registry.flight_route(route), registry.carrier(carrier), str(service), str(status))
        counts[labels] = counts.get(labels, 0) + n
        if status == FlightStatus.DEPARTED:
            departures[key] = ((labels[0], labels[2]), (labels[0], labels[1]))
        elif status == FlightStatus.ARRIVED:
            arrivals[key] = (labels[0], labels[2])
        elif status == FlightStatus.CANCELLED:
            out.count(FLIGHT_PUNCTUALITY, (labels[0], labels[2], "cancelled"), n)
    if departures:
        passengers, cargo = out.counts(FLIGHT_PASSENGERS), out.counts(FLIGHT_CARGO)
        window, base = out.window_sums(FLIGHTS_OPERATED_WINDOW), out.window_base
        delays = out.observed(FLIGHT_DELAY)
        for key, event, event_time in zip(keys, events, times, strict=True):
            departed = departures.get(key)
            if departed is None:
                continue
            by_service, by_carrier = departed
            bucket = (by_service, event_time // base)
            window[bucket] = window.get(bucket, 0) + 1
            if event.passengers is not None:
                passengers[by_carrier] = passengers.get(by_carrier, 0) + event.passengers
            if event.cargo_kg is not None:
                cargo[by_carrier] = cargo.get(by_carrier, 0) + fixed_point(event.cargo_kg, MILLI)
            if event.actual_time is not None:
                delay_ms = round((event.actual_time - event.scheduled_time).total_seconds() * MILLI)
                delays.setdefault(by_service, []).append(delay_ms)
    if arrivals:
        _arrivals(keys, events, arrivals, out)
    _record_latest(out, (key[0] for key in keys), times, registry.flight_route)


def _arrivals(keys: Sequence[_FlightKey], events: Sequence[FlightEvent], arrivals: Mapping[_FlightKey, Labels],
              out: BatchContributions) -> None:
    """Arrival delay and punctuality of the arrived events that carry their actual time."""
    delays, punctuality = out.observed(FLIGHT_ARRIVAL_DELAY), out.counts(FLIGHT_PUNCTUALITY)
    for key, event in zip(keys, events, strict=True):
        by_service = arrivals.get(key)
        if by_service is None or event.actual_time is None:
            continue
        delay_ms = round((event.actual_time - event.scheduled_time).total_seconds() * MILLI)
        delays.setdefault(by_service, []).append(delay_ms)
        labels = (*by_service, "on_time" if delay_ms < ON_TIME_BELOW_MS else "late")
        punctuality[labels] = punctuality.get(labels, 0) + 1


# Finance: signed financing, converted to US cents with the configured FX table.
FINANCE_USD = CounterSeries(
    "finance_usd",
    "corridor_finance_usd",
    "Signed cross-border financing in US dollars.",
    ("instrument", "lender_country", "borrower_country"),
    100,
)
FINANCE_USD_WINDOW = WindowSeries(
    "finance_usd", "corridor_finance_usd_window", "Financing signed in the rolling window, US dollars.",
    ("instrument",), 100,
)


_FINANCE_KEY = attrgetter("instrument", "status", "lender_country", "borrower_country")
_FinanceKey = tuple[Instrument, FinanceStatus, str, str]


def finance_measures(
    events: Sequence[FinanceEvent], times: Sequence[float], ctx: MeasureContext, out: BatchContributions
) -> None:
    registry, usd_cents = ctx.registry, ctx.fx.usd_cents
    keys: list[_FinanceKey] = list(map(_FINANCE_KEY, events))
    # Signed events' keys -> (instrument, lender, borrower) and (instrument,) labels.
    signed: dict[_FinanceKey, tuple[Labels, Labels]] = {
        key: ((instrument := str(key[0]), registry.country(key[2]), registry.country(key[3])), (instrument,))
        for key in dict.fromkeys(keys)
        if key[1] == FinanceStatus.SIGNED
    }
    if signed:
        amounts = out.counts(FINANCE_USD)
        window, base = out.window_sums(FINANCE_USD_WINDOW), out.window_base
        for key, event, event_time in zip(keys, events, times, strict=True):
            labels = signed.get(key)
            if labels is None:
                continue
            by_countries, by_instrument = labels
            cents = usd_cents(event.amount, event.currency)
            amounts[by_countries] = amounts.get(by_countries, 0) + cents
            bucket = (by_instrument, event_time // base)
            window[bucket] = window.get(bucket, 0) + cents
    _record_latest(out, (key[0] for key in keys), times, str)


# Data channel: bytes per link and direction on every sample; latency into a histogram.
DATACHANNEL_BYTES = CounterSeries(
    "datachannel_bytes", "corridor_datachannel_bytes", "Bytes carried by the data channel.", ("link", "direction")
)
DATACHANNEL_BYTES_WINDOW = WindowSeries(
    "datachannel_bytes", "corridor_datachannel_bytes_window", "Data-channel bytes in the rolling window.",
    ("link", "direction"),
)
DATACHANNEL_LATENCY = HistogramSeries(
    "datachannel_latency",
    "corridor_datachannel_latency_seconds",
    "Data-channel latency per sample.",
    ("link",),
    (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5),
)
# Packet loss as two counters whose rates divide into the time-weighted loss ratio: the
# sample intervals that reported a ratio, and the same intervals weighted by it.
DATACHANNEL_LOSS_MEASURED = CounterSeries(
    "datachannel_loss_measured",
    "corridor_datachannel_loss_measured_seconds",
    "Seconds of data-channel samples that reported a packet-loss ratio.",
    ("link", "direction"),
    MICRO,
)
DATACHANNEL_LOSS = CounterSeries(
    "datachannel_loss",
    "corridor_datachannel_loss_seconds",
    "Seconds of data-channel samples weighted by their packet-loss ratio (divide by the measured seconds).",
    ("link", "direction"),
    MICRO,
)


_DATACHANNEL_KEY = attrgetter("link_id", "direction")
_DATACHANNEL_VALUES = attrgetter("bytes", "latency_ms", "packet_loss_ratio", "interval_seconds")


def datachannel_measures(
    events: Sequence[DataChannelSample], times: Sequence[float], ctx: MeasureContext, out: BatchContributions
) -> None:
    registry = ctx.registry
    keys: list[tuple[str, Direction]] = list(map(_DATACHANNEL_KEY, events))
    # (link, direction) labels and (link,) histogram labels of each key.
    labels_of = {key: ((link := registry.link(key[0]), str(key[1])), (link,)) for key in dict.fromkeys(keys)}
    volume, measured, lost = out.counts(DATACHANNEL_BYTES), out.counts(DATACHANNEL_LOSS_MEASURED), out.counts(
        DATACHANNEL_LOSS
    )
    window, base = out.window_sums(DATACHANNEL_BYTES_WINDOW), out.window_base
    latencies = out.observed(DATACHANNEL_LATENCY)
    for key, (carried, latency_ms, loss_ratio, interval), event_time in zip(
        keys, map(_DATACHANNEL_VALUES, events), times, strict=True
    ):
        labels, by_link = labels_of[key]
        volume[labels] = volume.get(labels, 0) + carried
        bucket = (labels, event_time // base)
        window[bucket] = window.get(bucket, 0) + carried
        if latency_ms is not None:
            millis = fixed_point(latency_ms, 1)
            observed = latencies.get(by_link)
            if observed is None:
                latencies[by_link] = [millis]
            else:
                observed.append(millis)
        if loss_ratio is not None:
            measured_us = interval * MICRO
            measured[labels] = measured.get(labels, 0) + measured_us
            lost[labels] = lost.get(labels, 0) + fixed_point(loss_ratio, measured_us)
    _record_latest(out, (key[0] for key in keys), times, registry.link)


SHIPMENTS = FamilyMeasures(
    families.SHIPMENTS, shipment_measures,
    counters=(SHIPMENT_EVENTS, SHIPMENT_TEU, SHIPMENT_GROSS_WEIGHT, SHIPMENT_PUNCTUALITY, SHIPMENTS_EVICTED),
    windows=(SHIPMENT_TEU_WINDOW,),
    histograms=(SHIPMENT_TRANSIT, SHIPMENT_LEG, SHIPMENT_DWELL),
    gauges=(SHIPMENTS_IN_TRANSIT, SHIPMENTS_OVERDUE),
    track=shipment_journeys,
)
FLIGHTS = FamilyMeasures(
    families.FLIGHTS, flight_measures,
    counters=(FLIGHT_EVENTS, FLIGHT_PASSENGERS, FLIGHT_CARGO, FLIGHT_PUNCTUALITY), windows=(FLIGHTS_OPERATED_WINDOW,),
    histograms=(FLIGHT_DELAY, FLIGHT_ARRIVAL_DELAY),
)
FINANCE = FamilyMeasures(families.FINANCE, finance_measures, counters=(FINANCE_USD,), windows=(FINANCE_USD_WINDOW,))
DATACHANNEL = FamilyMeasures(
    families.DATACHANNEL, datachannel_measures,
    counters=(DATACHANNEL_BYTES, DATACHANNEL_LOSS_MEASURED, DATACHANNEL_LOSS), windows=(DATACHANNEL_BYTES_WINDOW,),
    histograms=(DATACHANNEL_LATENCY,),
)

#: Every family's measures by name, in the contract's order.
MEASURED: Mapping[str, FamilyMeasures[Any]] = MappingProxyType(
    {family.name: family for family in (SHIPMENTS, FLIGHTS, FINANCE, DATACHANNEL)}
)

#: Histogram bounds in integer milliseconds, by series key (what partition state needs to restore).
HISTOGRAM_BOUNDS_MS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {series.key: series.bounds_ms for family in MEASURED.values() for series in family.histograms}
)
