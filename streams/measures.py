"""What each accepted event contributes to the domain metrics (pure functions, no state).

Every contribution is an integer in a fixed-point unit (milli-TEU, grams, US cents,
bytes, milliseconds) so that sums are exact and independent of batch order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Mapping

from streams.fx import usd_cents
from streams.registry import Registry

MILLI = 1000

#: Upper bounds (seconds) of the domain histograms.
FLIGHT_DELAY_BUCKETS: tuple[float, ...] = (0, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400)
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)

Labels = tuple[str, ...]


@dataclass(slots=True)
class BatchContributions:
    """A batch's contributions, summed before any state is touched."""

    counters: dict[str, Counter[Labels]] = field(default_factory=dict)
    windows: dict[str, list[tuple[Labels, float, int]]] = field(default_factory=dict)
    observations: dict[str, list[tuple[Labels, int]]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)

    def count(self, metric: str, labels: Labels, value: int = 1) -> None:
        counter = self.counters.get(metric)
        if counter is None:
            counter = self.counters[metric] = Counter()
        counter[labels] += value

    def window(self, metric: str, labels: Labels, event_time: float, value: int) -> None:
        self.windows.setdefault(metric, []).append((labels, event_time, value))

    def observe(self, metric: str, labels: Labels, millis: int) -> None:
        self.observations.setdefault(metric, []).append((labels, millis))

    def seen(self, key: str, event_time: float) -> None:
        if event_time > self.last_seen.get(key, float("-inf")):
            self.last_seen[key] = event_time


@dataclass(frozen=True, slots=True)
class MeasureContext:
    """What the measure functions need besides the event."""

    registry: Registry
    fx_per_usd: Mapping[str, Decimal]


def _decimal_milli(value: Any) -> int:
    return int((Decimal(str(value)) * MILLI).to_integral_value())


def shipment_measures(event: Any, ctx: MeasureContext, out: BatchContributions) -> str:
    """Count the shipment by milestone; TEU and weight count on departure."""
    registry = ctx.registry
    route = registry.route(event.route)
    corridor = registry.corridor(event.corridor)
    mode = str(event.mode)
    milestone = str(event.milestone)
    out.count("shipments", (corridor, route, mode, milestone))
    if milestone == "departed":
        labels = (corridor, route, mode)
        teu = _decimal_milli(event.teu)
        out.count("shipment_teu", labels, teu)
        out.count("shipment_gross_weight", labels, _decimal_milli(event.gross_weight_kg))
        out.window("shipment_teu", labels, event.event_time.timestamp(), teu)
    return route


def flight_measures(event: Any, ctx: MeasureContext, out: BatchContributions) -> str:
    """Count the flight by status; a departure is an operated flight."""
    registry = ctx.registry
    route = registry.flight_route(event.route)
    carrier = registry.carrier(event.carrier)
    service = str(event.service)
    status = str(event.status)
    out.count("flights", (route, carrier, service, status))
    if status == "departed":
        out.window("flights_operated", (route, service), event.event_time.timestamp(), 1)
        if event.passengers is not None:
            out.count("flight_passengers", (route, carrier), int(event.passengers))
        if event.cargo_kg is not None:
            out.count("flight_cargo", (route, carrier), _decimal_milli(event.cargo_kg))
        if event.actual_time is not None:
            delay_ms = round((event.actual_time - event.scheduled_time).total_seconds() * MILLI)
            out.observe("flight_delay", (route, service), delay_ms)
    return route


def finance_measures(event: Any, ctx: MeasureContext, out: BatchContributions) -> str:
    """Signed financing counts, converted to US cents with the configured FX table."""
    instrument = str(event.instrument)
    if str(event.status) == "signed":
        cents = usd_cents(event.amount, event.currency, ctx.fx_per_usd)
        out.count("finance_usd", (instrument, event.lender_country, event.borrower_country), cents)
        out.window("finance_usd", (instrument,), event.event_time.timestamp(), cents)
    return instrument


def datachannel_measures(event: Any, ctx: MeasureContext, out: BatchContributions) -> str:
    """Bytes per link and direction on every sample; latency into a histogram."""
    link = ctx.registry.link(event.link_id)
    direction = str(event.direction)
    out.count("datachannel_bytes", (link, direction), int(event.bytes))
    out.window("datachannel_bytes", (link, direction), event.event_time.timestamp(), int(event.bytes))
    if event.latency_ms is not None:
        out.observe("datachannel_latency", (link,), round(Decimal(str(event.latency_ms))))
    return link


MEASURES: dict[str, Callable[[Any, MeasureContext, BatchContributions], str]] = {
    "shipments": shipment_measures,
    "flights": flight_measures,
    "finance": finance_measures,
    "datachannel": datachannel_measures,
}
