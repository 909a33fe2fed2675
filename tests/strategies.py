"""Hypothesis strategies for valid events of every family, shared by the test suites."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

from schemas import (
    BaseEvent,
    DataChannelSample,
    Direction,
    FinanceEvent,
    FinanceStatus,
    FlightEvent,
    FlightService,
    FlightStatus,
    Instrument,
    Milestone,
    ShipmentEvent,
    TransportMode,
)

#: Currencies of the default FX table; finance events draw from these.
FX_CURRENCIES = frozenset({"USD", "SGD", "CNY"})

#: Every generated event_time lies before this instant (pass it as reference_time).
REFERENCE_TIME = datetime(2031, 1, 1, tzinfo=UTC)

identifiers = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128)
labels = (
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=64)
    .map(str.strip)
    .filter(bool)
)
utc_offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
#: Timezone-aware datetimes with any whole-minute UTC offset, 2000 to 2030.
timestamps = st.datetimes(datetime(2000, 1, 1), datetime(2030, 12, 30), timezones=utc_offsets)
locodes = st.from_regex(r"[A-Z]{2}[A-Z0-9]{3}", fullmatch=True)
locode_routes = st.lists(locodes, min_size=2, max_size=10).map("-".join)
iata_routes = st.lists(st.from_regex(r"[A-Z]{3}", fullmatch=True), min_size=2, max_size=6).map("-".join)
currencies = st.from_regex(r"[A-Z]{3}", fullmatch=True)
countries = st.from_regex(r"[A-Z]{2}", fullmatch=True)
#: Money amounts with at most 14 significant digits, which JSON numbers carry exactly.
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999999999.99"), places=2)


def _number(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def shipment_events(draw: st.DrawFn) -> ShipmentEvent:
    """Valid shipment events; currency is always present when declared_value is."""
    declared_value = draw(st.none() | amounts | st.just(Decimal(0)))
    currency = draw(currencies if declared_value is not None else st.none() | currencies)
    return ShipmentEvent(
        event_id=draw(identifiers),
        event_time=draw(timestamps),
        source=draw(labels),
        shipment_id=draw(identifiers),
        corridor=draw(st.from_regex(r"[A-Z][A-Z0-9_-]{1,15}", fullmatch=True)),
        route=draw(locode_routes),
        mode=draw(st.sampled_from(TransportMode)),
        milestone=draw(st.sampled_from(Milestone)),
        teu=draw(_number(0, 30_000)),
        gross_weight_kg=draw(_number(0, 500_000_000)),
        origin=draw(locodes),
        destination=draw(locodes),
        carrier=draw(labels),
        currency=currency,
        declared_value=declared_value,
        commodity_hs=draw(st.none() | st.from_regex(r"[0-9]{2,10}", fullmatch=True)),
    )


@st.composite
def flight_events(draw: st.DrawFn) -> FlightEvent:
    """Valid flight events."""
    return FlightEvent(
        event_id=draw(identifiers),
        event_time=draw(timestamps),
        source=draw(labels),
        flight_id=draw(identifiers),
        carrier=draw(st.from_regex(r"[A-Z0-9]{2}", fullmatch=True)),
        flight_number=draw(st.from_regex(r"([A-Z0-9]{2})?[0-9]{1,4}[A-Z]?", fullmatch=True)),
        service=draw(st.sampled_from(FlightService)),
        route=draw(iata_routes),
        status=draw(st.sampled_from(FlightStatus)),
        scheduled_time=draw(timestamps),
        actual_time=draw(st.none() | timestamps),
        passengers=draw(st.none() | st.integers(0, 1_000)),
        cargo_kg=draw(st.none() | _number(0, 300_000)),
    )


@st.composite
def finance_events(draw: st.DrawFn) -> FinanceEvent:
    """Valid finance events in a currency of the default FX table."""
    return FinanceEvent(
        event_id=draw(identifiers),
        event_time=draw(timestamps),
        source=draw(labels),
        transaction_id=draw(identifiers),
        instrument=draw(st.sampled_from(Instrument)),
        amount=draw(amounts),
        currency=draw(st.sampled_from(sorted(FX_CURRENCIES))),
        lender_country=draw(countries),
        borrower_country=draw(countries),
        status=draw(st.sampled_from(FinanceStatus)),
        borrower_region=draw(st.none() | labels),
    )


@st.composite
def datachannel_samples(draw: st.DrawFn) -> DataChannelSample:
    """Valid data-channel samples."""
    return DataChannelSample(
        event_id=draw(identifiers),
        event_time=draw(timestamps),
        source=draw(labels),
        link_id=draw(identifiers),
        direction=draw(st.sampled_from(Direction)),
        interval_seconds=draw(st.integers(1, 3600)),
        bytes=draw(st.integers(0, 2**63 - 1)),
        latency_ms=draw(st.none() | _number(0, 3_600_000)),
        packet_loss_ratio=draw(st.none() | _number(0, 1)),
    )


#: A strategy of valid events per family name.
EVENTS: dict[str, st.SearchStrategy[BaseEvent]] = {
    "shipments": shipment_events(),
    "flights": flight_events(),
    "finance": finance_events(),
    "datachannel": datachannel_samples(),
}

#: A family name together with a valid event of it.
family_events = st.sampled_from(sorted(EVENTS)).flatmap(lambda family: st.tuples(st.just(family), EVENTS[family]))
