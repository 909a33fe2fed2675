"""Each event family's measures and metric series, declared once.

A family's topic, key field, event model and example come from
:mod:`schemas.families`; here is what its accepted events contribute to partition state
and which Prometheus series they feed. The worker, the collector, the live view and
the tests read these declarations; nothing else names a family's series.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from schemas import DataChannelSample, FinanceEvent, FlightEvent, ShipmentEvent, families
from streams.core.fx import usd_cents
from streams.core.measures import BatchContributions, FamilyMeasures, MeasureContext
from streams.core.series import CounterSeries, HistogramSeries, WindowSeries

MILLI = 1000
MICRO = 1_000_000


def _milli(value: Decimal | float) -> int:
    return int((Decimal(str(value)) * MILLI).to_integral_value())


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


def shipment_measures(event: ShipmentEvent, ctx: MeasureContext, out: BatchContributions) -> str:
    registry = ctx.registry
    route = registry.route(event.route)
    corridor = registry.corridor(event.corridor)
    mode = str(event.mode)
    milestone = str(event.milestone)
    out.count(SHIPMENT_EVENTS, (corridor, route, mode, milestone))
    if milestone == "departed":
        labels = (corridor, route, mode)
        teu = _milli(event.teu)
        out.count(SHIPMENT_TEU, labels, teu)
        out.count(SHIPMENT_GROSS_WEIGHT, labels, _milli(event.gross_weight_kg))
        out.window(SHIPMENT_TEU_WINDOW, labels, event.event_time.timestamp(), teu)
    return route


# Flights: counted by status; a departure is an operated flight.
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


def flight_measures(event: FlightEvent, ctx: MeasureContext, out: BatchContributions) -> str:
    registry = ctx.registry
    route = registry.flight_route(event.route)
    carrier = registry.carrier(event.carrier)
    service = str(event.service)
    status = str(event.status)
    out.count(FLIGHT_EVENTS, (route, carrier, service, status))
    if status == "departed":
        out.window(FLIGHTS_OPERATED_WINDOW, (route, service), event.event_time.timestamp(), 1)
        if event.passengers is not None:
            out.count(FLIGHT_PASSENGERS, (route, carrier), int(event.passengers))
        if event.cargo_kg is not None:
            out.count(FLIGHT_CARGO, (route, carrier), _milli(event.cargo_kg))
        if event.actual_time is not None:
            delay_ms = round((event.actual_time - event.scheduled_time).total_seconds() * MILLI)
            out.observe(FLIGHT_DELAY, (route, service), delay_ms)
    return route


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


def finance_measures(event: FinanceEvent, ctx: MeasureContext, out: BatchContributions) -> str:
    instrument = str(event.instrument)
    if str(event.status) == "signed":
        cents = usd_cents(event.amount, event.currency, ctx.fx_per_usd)
        countries = (ctx.registry.country(event.lender_country), ctx.registry.country(event.borrower_country))
        out.count(FINANCE_USD, (instrument, *countries), cents)
        out.window(FINANCE_USD_WINDOW, (instrument,), event.event_time.timestamp(), cents)
    return instrument


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


def datachannel_measures(event: DataChannelSample, ctx: MeasureContext, out: BatchContributions) -> str:
    link = ctx.registry.link(event.link_id)
    direction = str(event.direction)
    out.count(DATACHANNEL_BYTES, (link, direction), int(event.bytes))
    out.window(DATACHANNEL_BYTES_WINDOW, (link, direction), event.event_time.timestamp(), int(event.bytes))
    if event.latency_ms is not None:
        out.observe(DATACHANNEL_LATENCY, (link,), round(Decimal(str(event.latency_ms))))
    if event.packet_loss_ratio is not None:
        measured_us = int(event.interval_seconds) * MICRO
        out.count(DATACHANNEL_LOSS_MEASURED, (link, direction), measured_us)
        out.count(DATACHANNEL_LOSS, (link, direction), round(measured_us * Decimal(str(event.packet_loss_ratio))))
    return link


SHIPMENTS = FamilyMeasures(
    families.SHIPMENTS, shipment_measures,
    counters=(SHIPMENT_EVENTS, SHIPMENT_TEU, SHIPMENT_GROSS_WEIGHT), windows=(SHIPMENT_TEU_WINDOW,),
)
FLIGHTS = FamilyMeasures(
    families.FLIGHTS, flight_measures,
    counters=(FLIGHT_EVENTS, FLIGHT_PASSENGERS, FLIGHT_CARGO), windows=(FLIGHTS_OPERATED_WINDOW,),
    histograms=(FLIGHT_DELAY,),
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
