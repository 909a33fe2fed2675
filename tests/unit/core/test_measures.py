"""Batch measures: the same integers as measuring each event on its own with exact decimals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas import BaseEvent, FinanceStatus, FlightEvent, FlightStatus, Milestone
from schemas.common import utc_iso
from schemas.samples import sample_event
from streams.core import families
from streams.core.families import MEASURED, MICRO, MILLI
from streams.core.fx import usd_cents
from streams.core.measures import BatchContributions, MeasureContext, fixed_point
from streams.core.registry import Registry
from streams.settings import DEFAULT_FX_PER_USD
from tests.strategies import (
    FX_CURRENCIES,
    datachannel_samples,
    finance_events,
    flight_events,
    shipment_events,
)

REGISTRY = Registry.load(None)
BASE = 10  # the default windows' base bucket width


def decimal_scaled(value: float, scale: int) -> int:
    """What the measures computed before integer arithmetic: the value as written, scaled, half-even."""
    return round(Decimal(str(value)) * scale)


#: Numbers as producers write them: few decimals, so that many land exactly on a half once scaled.
written = st.builds(lambda digits, places: float(f"{digits}e-{places}"), st.integers(0, 10**15), st.integers(0, 12))


@settings(max_examples=3000, deadline=None)
@given(value=written | st.floats(0, 1e9, allow_nan=False) | st.floats(allow_nan=False, allow_infinity=False),
       scale=st.sampled_from([1, MILLI, MICRO, 60 * MICRO, 3600 * MICRO]))
@example(value=2.0005, scale=MILLI)
@example(value=2.0015, scale=MILLI)
@example(value=0.0005, scale=MILLI)
@example(value=24500.5, scale=1)
@example(value=1.5e-06, scale=MICRO)
@example(value=0.00045, scale=60 * MICRO)
@example(value=2.0**40 + 0.5, scale=1)
@example(value=1e300, scale=MILLI)
def test_fixed_point_is_the_decimal_as_written(value, scale):
    assert fixed_point(value, scale) == decimal_scaled(value, scale)


def test_fixed_point_rounds_exact_halves_to_even():
    assert [fixed_point(v, MILLI) for v in (0.0005, 0.0015, 0.0025, 2.0005, 2.0015)] == [0, 2, 2, 2000, 2002]
    assert [fixed_point(v, 1) for v in (0.5, 1.5, 2.5, 42.5)] == [0, 2, 2, 42]


def reference(family: str, events: Sequence[BaseEvent], times: Sequence[float]) -> BatchContributions:
    """One event at a time, with decimals: the measures as they were before they worked on batches."""
    out = BatchContributions(BASE)
    for event, t in zip(events, times, strict=True):
        key = _REFERENCE[family](event, t, out)
        out.seen(key, t)
    return out


def _shipment(event: Any, t: float, out: BatchContributions) -> str:
    route, corridor = REGISTRY.route(event.route), REGISTRY.corridor(event.corridor)
    mode, milestone = str(event.mode), str(event.milestone)
    out.count(families.SHIPMENT_EVENTS, (corridor, route, mode, milestone))
    if milestone == "departed":
        labels = (corridor, route, mode)
        teu = int((Decimal(str(event.teu)) * MILLI).to_integral_value())
        out.count(families.SHIPMENT_TEU, labels, teu)
        out.count(families.SHIPMENT_GROSS_WEIGHT, labels,
                  int((Decimal(str(event.gross_weight_kg)) * MILLI).to_integral_value()))
        out.window(families.SHIPMENT_TEU_WINDOW, labels, t, teu)
    return route


def _flight(event: Any, t: float, out: BatchContributions) -> str:
    route, carrier = REGISTRY.flight_route(event.route), REGISTRY.carrier(event.carrier)
    service, status = str(event.service), str(event.status)
    out.count(families.FLIGHT_EVENTS, (route, carrier, service, status))
    if status == "departed":
        out.window(families.FLIGHTS_OPERATED_WINDOW, (route, service), t, 1)
        if event.passengers is not None:
            out.count(families.FLIGHT_PASSENGERS, (route, carrier), int(event.passengers))
        if event.cargo_kg is not None:
            out.count(families.FLIGHT_CARGO, (route, carrier),
                      int((Decimal(str(event.cargo_kg)) * MILLI).to_integral_value()))
        if event.actual_time is not None:
            delay_ms = round((event.actual_time - event.scheduled_time).total_seconds() * MILLI)
            out.observe(families.FLIGHT_DELAY, (route, service), delay_ms)
    elif status == "arrived" and event.actual_time is not None:
        delay_ms = round((event.actual_time - event.scheduled_time).total_seconds() * MILLI)
        out.observe(families.FLIGHT_ARRIVAL_DELAY, (route, service), delay_ms)
        # OAG: on time within 14 minutes 59 seconds of the schedule, to the millisecond the delay is kept in.
        out.count(families.FLIGHT_PUNCTUALITY,
                  (route, service, "on_time" if delay_ms <= 14 * 60_000 + 59_999 else "late"))
    elif status == "cancelled":
        out.count(families.FLIGHT_PUNCTUALITY, (route, service, "cancelled"))
    return route


def _finance(event: Any, t: float, out: BatchContributions) -> str:
    instrument = str(event.instrument)
    if str(event.status) == "signed":
        cents = usd_cents(event.amount, event.currency, DEFAULT_FX_PER_USD)
        countries = (REGISTRY.country(event.lender_country), REGISTRY.country(event.borrower_country))
        out.count(families.FINANCE_USD, (instrument, *countries), cents)
        out.window(families.FINANCE_USD_WINDOW, (instrument,), t, cents)
    return instrument


def _datachannel(event: Any, t: float, out: BatchContributions) -> str:
    link, direction = REGISTRY.link(event.link_id), str(event.direction)
    out.count(families.DATACHANNEL_BYTES, (link, direction), int(event.bytes))
    out.window(families.DATACHANNEL_BYTES_WINDOW, (link, direction), t, int(event.bytes))
    if event.latency_ms is not None:
        out.observe(families.DATACHANNEL_LATENCY, (link,), round(Decimal(str(event.latency_ms))))
    if event.packet_loss_ratio is not None:
        measured_us = int(event.interval_seconds) * MICRO
        out.count(families.DATACHANNEL_LOSS_MEASURED, (link, direction), measured_us)
        out.count(families.DATACHANNEL_LOSS, (link, direction),
                  round(measured_us * Decimal(str(event.packet_loss_ratio))))
    return link


_REFERENCE = {"shipments": _shipment, "flights": _flight, "finance": _finance, "datachannel": _datachannel}


def _known(events: st.SearchStrategy[BaseEvent], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[BaseEvent]:
    """Events with some fields drawn from registry values, so that both known labels and ``other`` occur."""
    return st.tuples(events, st.fixed_dictionaries(fields)).map(
        lambda pair: pair[0].model_copy(update={k: v for k, v in pair[1].items() if v is not None})
    )


#: Delays around OAG's 15-minute line (and early), in microseconds: 899.9995 s rounds to 900 s, late.
_DELAYS_US = (-600_000_000, 0, 899_000_000, 899_999_000, 899_999_499, 899_999_500, 900_000_000, 3_600_000_000)


def _delayed(event: Any) -> st.SearchStrategy[Any]:
    """``event``, or ``event`` with an actual time a delay near the on-time line after its scheduled time."""
    return st.just(event) | st.sampled_from(_DELAYS_US).map(
        lambda us: event.model_copy(update={"actual_time": event.scheduled_time + timedelta(microseconds=us)})
    )


_EVENTS = {
    "shipments": _known(
        shipment_events(),
        route=st.none() | st.sampled_from(sorted(REGISTRY.shipment_routes)),
        corridor=st.none() | st.just("ILSTC"),
        milestone=st.sampled_from([Milestone.DEPARTED, Milestone.BOOKED]),
        teu=st.none() | st.sampled_from([0.25, 2.5, 0.0005, 0.0015, 20.0]),
    ),
    "flights": _known(
        flight_events(),
        route=st.none() | st.just("CKG-SIN"),
        carrier=st.none() | st.sampled_from(["TR", "3U", "SQ"]),
        status=st.sampled_from(FlightStatus),
    ).flatmap(_delayed),
    "finance": _known(
        finance_events(),
        currency=st.sampled_from(sorted(FX_CURRENCIES)),
        status=st.sampled_from([FinanceStatus.SIGNED, FinanceStatus.SETTLED]),
        lender_country=st.none() | st.sampled_from(["SG", "CN"]),
    ),
    "datachannel": _known(
        datachannel_samples(),
        link_id=st.none() | st.sampled_from(["CQ-SG-1", "CQ-SG-2"]),
        latency_ms=st.none() | st.sampled_from([42.5, 0.5, 1.5, 120.7]),
    ),
}


def _as_dicts(batch: BatchContributions) -> dict[str, Any]:
    return {
        "counters": {key: counts for key, counts in batch.counters.items() if counts},
        "windows": {key: sums for key, sums in batch.windows.items() if sums},
        "observations": {
            key: {labels: sorted(millis) for labels, millis in by_labels.items()}
            for key, by_labels in batch.observations.items() if by_labels
        },
        "last_seen": batch.last_seen,
    }


@pytest.mark.parametrize("family", list(MEASURED))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_batch_measures_as_its_events_one_by_one(family, data):
    events = data.draw(st.lists(_EVENTS[family], min_size=1, max_size=40))
    times = [event.event_time.timestamp() for event in events]
    batch = BatchContributions(BASE)
    MEASURED[family].measure(events, times, MeasureContext.of(REGISTRY, DEFAULT_FX_PER_USD), batch)
    assert _as_dicts(batch) == _as_dicts(reference(family, events, times))


def test_arrivals_are_on_time_as_oag_counts_them_and_cancellations_are_not():
    def arrived(delay: timedelta | None, service: str = "passenger", status: str = "arrived") -> FlightEvent:
        scheduled = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
        actual = None if delay is None else utc_iso(scheduled + delay)
        return FlightEvent.model_validate_json(orjson.dumps(sample_event(
            "flights", at=scheduled, status=status, service=service, scheduled_time=utc_iso(scheduled),
            actual_time=actual)))

    events = [
        arrived(timedelta(minutes=-20)),  # early: on time
        arrived(timedelta(minutes=14, seconds=59, milliseconds=999)),
        arrived(timedelta(minutes=15)),  # 15 minutes late is late
        arrived(timedelta(hours=2), service="cargo"),
        arrived(None),  # no actual time: neither delay nor punctuality
        arrived(None, status="cancelled"),
        arrived(timedelta(hours=1), status="cancelled", service="cargo"),
        arrived(timedelta(minutes=30), status="departed"),  # a departure's delay is not the arrival's
    ]
    out = BatchContributions(BASE)
    MEASURED["flights"].measure(events, [e.event_time.timestamp() for e in events],
                                MeasureContext.of(REGISTRY, DEFAULT_FX_PER_USD), out)
    assert out.counts(families.FLIGHT_PUNCTUALITY) == {
        ("CKG-SIN", "passenger", "on_time"): 2, ("CKG-SIN", "passenger", "late"): 1,
        ("CKG-SIN", "cargo", "late"): 1, ("CKG-SIN", "passenger", "cancelled"): 1,
        ("CKG-SIN", "cargo", "cancelled"): 1,
    }
    assert out.observed(families.FLIGHT_ARRIVAL_DELAY) == {
        ("CKG-SIN", "passenger"): [-1_200_000, 899_999, 900_000], ("CKG-SIN", "cargo"): [7_200_000],
    }
    assert out.observed(families.FLIGHT_DELAY) == {("CKG-SIN", "passenger"): [1_800_000]}
