"""The corridor traffic simulator: realistic events of all four families, paced onto the wall clock."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import itemgetter
from typing import Any

from schemas.families import DATACHANNEL, FAMILY_NAMES, FINANCE, FLIGHTS, SHIPMENTS
from schemas.shipments import iso6346_check_digit
from streams.settings import DEFAULT_FX_PER_USD

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
YEAR = 365 * DAY

#: Departed TEU per hour on the corridor: the public record's "about 115 TEU an hour".
TEU_PER_HOUR = 115.0
#: Cross-border financing signed per simulated year, in USD: the USD 11.26 bn on record by April 2020.
FINANCE_USD_PER_YEAR = 11.26e9
#: Length of one data-channel sampling interval.
SAMPLE_SECONDS = 60
#: The simulated calendar's default origin: 1 April 2020, the month the reference figures describe.
DEFAULT_START = datetime(2020, 4, 1, tzinfo=UTC)
#: Simulated span replayed from the past before an endless run goes live: fills every rolling window.
DEFAULT_HISTORY = timedelta(days=7)

# The corridor's daily life follows China Standard Time.
_LOCAL_OFFSET = 8 * HOUR
_TIME_FIELDS = ("event_time", "scheduled_time", "actual_time", "planned_time", "planned_arrival")


class Scenario(StrEnum):
    """What the corridor is doing in a simulation."""

    BASELINE = "baseline"
    COVID_2020 = "covid-2020"
    DROP = "drop"
    CONGESTION = "congestion"
    DELAYS = "delays"


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: scenario, random seed, simulated calendar origin, the drop to inject, and when the
    ``congestion`` and ``delays`` scenarios make sailings slip."""

    scenario: Scenario
    seed: int = 0
    start: datetime = DEFAULT_START
    drop_route: str = "CNCKG-CNQZH-SGSIN"
    drop_fraction: float = 0.8
    drop_after: timedelta = timedelta(days=6)
    drop_for: timedelta | None = None  # None: the route stays cut
    slip_after: timedelta = timedelta(days=6)
    slip_by: timedelta = timedelta(days=2)
    slip_for: timedelta | None = None  # None: the sailings keep slipping
    families: tuple[str, ...] = FAMILY_NAMES

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0 <= self.drop_fraction <= 1:
            raise ValueError("drop_fraction must be within 0..1")
        if self.drop_route not in {route.name for route in _ROUTES}:
            raise ValueError(f"unknown drop_route {self.drop_route!r}")
        if self.drop_for is not None and self.drop_for <= timedelta(0):
            raise ValueError("drop_for must be positive (or None: the route stays cut)")
        if self.slip_by <= timedelta(0):
            raise ValueError("slip_by must be positive")
        if self.slip_for is not None and self.slip_for <= timedelta(0):
            raise ValueError("slip_for must be positive (or None: the sailings keep slipping)")
        if unknown := set(self.families) - set(FAMILY_NAMES):
            raise ValueError(f"unknown families {sorted(unknown)}")
        object.__setattr__(self, "scenario", Scenario(self.scenario))
        object.__setattr__(self, "start", self.start.astimezone(UTC))


@dataclass(frozen=True)
class _Rhythm:
    """Weekly and daily pattern of an activity; averages exactly 1 over any whole week."""

    weekday: tuple[float, float, float, float, float, float, float]  # Monday..Sunday, mean 1
    amplitude: float  # of the daily cosine, which averages 1 over every local day
    peak_hour: float  # local hour of the daily peak

    def __call__(self, epoch_seconds: float) -> float:
        days, second = divmod(epoch_seconds + _LOCAL_OFFSET, DAY)
        weekday = (int(days) + 3) % 7  # 1 January 1970 was a Thursday
        daily = 1 + self.amplitude * math.cos(2 * math.pi * (second / HOUR - self.peak_hour) / 24)
        return self.weekday[weekday] * daily

    @property
    def peak(self) -> float:
        return max(self.weekday) * (1 + self.amplitude)


_FREIGHT_RHYTHM = _Rhythm((1.08, 1.10, 1.10, 1.08, 1.04, 0.84, 0.76), amplitude=0.3, peak_hour=14)
_BANKING_RHYTHM = _Rhythm((1.2, 1.2, 1.2, 1.2, 1.2, 0.5, 0.5), amplitude=0.9, peak_hour=13)
_TRAFFIC_RHYTHM = _Rhythm((1.05, 1.05, 1.05, 1.05, 1.05, 0.875, 0.875), amplitude=0.35, peak_hour=15)


@dataclass(frozen=True)
class _Route:
    """A shipment route of the corridor and how its shipments travel."""

    name: str
    mode: str
    teu_share: float  # of the corridor's departed TEU
    max_containers: int  # per shipment
    carriers: tuple[str, ...]
    source: str  # system reporting bookings and departures at the origin
    #: (rail, sea or road: what carries the container, scheduled days) of each leg between the route's places.
    legs: tuple[tuple[str, float], ...]
    trains: str = ""  # the first three characters of the train numbers of its rail legs

    def __post_init__(self) -> None:
        if len(self.legs) != len(self.places) - 1:
            raise ValueError(f"{self.name}: one leg between each two places")

    @property
    def places(self) -> list[str]:
        return self.name.split("-")

    @property
    def origin(self) -> str:
        return self.places[0]

    @property
    def destination(self) -> str:
        return self.places[-1]

    @property
    def mean_teu(self) -> float:
        return (self.max_containers + 1) / 2 * (1 + _FORTY_FOOT_SHARE)


_SEA_CARRIERS = ("PIL", "COSCO Shipping", "CMA CGM", "Maersk", "ONE")
# Scheduled days per leg: docs/simulator.md, "Transit times", gives the sources.
_ROUTES = (
    _Route("CNCKG-CNQZH-SGSIN", "rail_sea", 0.45, 6, _SEA_CARRIERS[:3], "cq-rail-ops", (("rail", 2), ("sea", 6)),
           trains="X85"),
    _Route("CNQZH-SGSIN", "sea", 0.25, 10, _SEA_CARRIERS, "qinzhou-port-tos", (("sea", 6),)),
    _Route("CNCKG-VNHAN", "rail", 0.12, 4, ("China Railway Container",), "cq-rail-ops", (("rail", 4.5),),
           trains="X91"),
    _Route("CNCKG-LAVTE", "rail", 0.10, 4, ("Laos-China Railway",), "cq-rail-ops", (("rail", 4.5),), trains="X93"),
    _Route("CNCKG-SGSIN", "road", 0.08, 1, ("Chongqing Cross-Border Freight",), "cq-road-freight", (("road", 7.5),)),
)
# 2020: border controls halved cross-border trucking and sea-rail took the freight.
_COVID_TEU_SHARES = {"CNCKG-CNQZH-SGSIN": 0.49, "CNCKG-SGSIN": 0.04}
#: The system reporting the milestones at each place but a route's origin (its hubs and its destination).
_DESTINATION_SOURCES = {
    "CNQZH": "qinzhou-port-tos",
    "SGSIN": "psa-portnet",
    "VNHAN": "vnr-yen-vien",
    "LAVTE": "lcr-vientiane",
}
#: Producers still on version 1 of the shipment contract: the road operator, and Vietnam Railways' feed of
#: arrivals in Hanoi. Their events carry no location, plan, container or train; every other source sends
#: version 2, so both versions flow together (and one shipment's journey may mix them).
_VERSION_1_SOURCES = frozenset({"cq-road-freight", "vnr-yen-vien"})
_FORTY_FOOT_SHARE = 0.6
_SHIPMENT_CANCEL_SHARE = 0.04
_BOOKING_LEAD = (12 * HOUR, 72 * HOUR)
_DECLARED_SHARE = 0.75
_DECLARED_CURRENCIES = (("USD", 0.6), ("CNY", 0.3), ("SGD", 0.1))
_COMMODITIES = ("8471", "8517", "8703", "8708", "4011", "3901", "7208", "9403")
# Longest booking-to-delivery span after departure: shipments that departed this long
# before the start still report arrivals inside the simulated period.
_SHIPMENT_TAIL = 13 * DAY


@dataclass(frozen=True)
class _Slips:
    """How far a means of transport strays from its schedule, against ``tolerance`` (the worker's default
    on-time tolerance for its mode): most runs within half of it either way, a ``late`` share one to three
    tolerances late, an ``early`` share one to one and a half early. Departures leave up to half the
    tolerance after their time, or (the ``late`` share) one to three tolerances after it; never before."""

    tolerance: float
    late: float
    early: float

    def departure(self, rng: random.Random) -> float:
        """How long after its planned time a departure leaves."""
        chance, spread = rng.random(), rng.random()
        return (1 + 2 * spread if chance < self.late else spread / 2) * self.tolerance

    def run(self, rng: random.Random) -> float:
        """How much longer than scheduled a leg takes (negative: shorter)."""
        chance, spread = rng.random(), rng.random()
        if chance < self.early:
            return -(1 + spread / 2) * self.tolerance
        if chance < self.early + self.late:
            return (1 + 2 * spread) * self.tolerance
        return (spread - 0.5) * self.tolerance


_SLIPS = {
    "rail": _Slips(6 * HOUR, late=0.08, early=0.02),
    "sea": _Slips(DAY, late=0.07, early=0.03),
    "road": _Slips(2 * HOUR, late=0.10, early=0.02),
}
#: Planned time at a hub between the train's scheduled arrival and the sailing the container is booked on.
_HUB_CONNECTION = (0.75 * DAY, 1.25 * DAY)
#: No container sails within this time of its train's arrival (unloading, the move to the port's yard).
_HUB_HANDLING = 6 * HOUR
#: Time after the train's arrival at which the container is in the port's yard: ``transshipped``.
_HUB_TRANSFER = (1 * HOUR, 5 * HOUR)
_QUARTER_HOUR = 15 * MINUTE
#: ISO 6346 owner codes (with the category U) of the containers each carrier's shipments travel in.
_OWNER_CODES = {
    "PIL": "PCIU",
    "COSCO Shipping": "CSNU",
    "CMA CGM": "CMAU",
    "Maersk": "MSKU",
    "ONE": "ONEU",
    "China Railway Container": "TBJU",
    "Laos-China Railway": "TBJU",
    "Chongqing Cross-Border Freight": "TGHU",  # leased boxes
}


def _imo(first_six: str) -> str:
    """An IMO ship number: six digits and their check digit (weights 7 to 2, the sum's last digit)."""
    check = sum(int(digit) * weight for digit, weight in zip(first_six, range(7, 1, -1), strict=True)) % 10
    return f"IMO{first_six}{check}"


#: The vessels each carrier sails from Qinzhou to Singapore, in weekly turn (illustrative IMO numbers).
_FLEETS = {
    carrier: tuple(_imo(number) for number in numbers)
    for carrier, numbers in {
        "PIL": ("935012", "947134", "962891"),
        "COSCO Shipping": ("978326", "945602", "931755"),
        "CMA CGM": ("970244", "954310", "939217"),
        "Maersk": ("977854", "962044", "946211"),
        "ONE": ("980657", "974119", "957902"),
    }.items()
}


@dataclass(frozen=True)
class _Rotation:
    """A flight number's weekly Chongqing-Singapore departures (days and times relative to the simulated week)."""

    carrier: str
    flight_number: str
    service: str
    days: tuple[int, ...]
    departure: int  # seconds after the start of its day
    seats: int  # 0 for a freighter: no passengers reported
    load_factor: tuple[float, float]
    cargo_kg: tuple[float, float]


_EVERY_DAY = (0, 1, 2, 3, 4, 5, 6)
# Flight numbers are illustrative; departure times are in UTC for a start at midnight UTC.
_PRE_2020_TIMETABLE = (
    _Rotation("SQ", "SQ845", "passenger", _EVERY_DAY, 5 * HOUR + 50 * MINUTE, 285, (0.72, 0.94), (2500, 7000)),
    _Rotation("TR", "TR129", "passenger", (0, 2, 4, 6), 1 * HOUR + 15 * MINUTE, 329, (0.75, 0.96), (1500, 5000)),
    _Rotation("3U", "3U3891", "passenger", (1, 3, 5), 3 * HOUR + 40 * MINUTE, 300, (0.70, 0.92), (2000, 6000)),
)
_COVID_TIMETABLE = (
    _Rotation("TR", "TR129", "passenger", (2,), 1 * HOUR + 15 * MINUTE, 329, (0.15, 0.45), (4000, 12000)),
    _Rotation("3U", "3U3851", "cargo", (4,), 3 * HOUR + 40 * MINUTE, 0, (0, 0), (18000, 32000)),
)
_AIRLINE_SOURCES = {"SQ": "sq-flight-ops", "TR": "scoot-ops", "3U": "sichuan-airlines-ops"}
_BLOCK_TIME = 4 * HOUR + 25 * MINUTE
#: How much shorter than its block time a flight may be in the air: the slack airlines build into schedules.
_PADDING = 30 * MINUTE
# Chance per week of an extra rotation that is filed and then cancelled (never operated).
_EXTRA_ROTATION_CHANCE = {
    Scenario.BASELINE: 0.35, Scenario.COVID_2020: 0.6, Scenario.DROP: 0.35, Scenario.CONGESTION: 0.35,
    Scenario.DELAYS: 0.35,
}


@dataclass(frozen=True)
class _Instrument:
    """A kind of financing: how often it is used, its size, and the stages after signing."""

    name: str
    median_usd: float
    sigma: float  # of the log-normal size
    stages: tuple[tuple[str, float, float], ...]  # (status, min days, max days) after the previous stage

    @property
    def mean_usd(self) -> float:
        return self.median_usd * math.exp(self.sigma**2 / 2)


# Each with its share of the deals.
_INSTRUMENTS = (
    (_Instrument("trade_finance", 0.4e6, 0.9, (("disbursed", 1, 5), ("settled", 30, 120))), 0.72),
    (_Instrument("loan", 3e6, 0.8, (("disbursed", 3, 30),)), 0.18),
    (_Instrument("syndicated_loan", 40e6, 0.6, (("disbursed", 7, 45),)), 0.03),
    (_Instrument("bond", 30e6, 0.7, (("settled", 2, 5),)), 0.03),
    (_Instrument("equity", 8e6, 0.9, (("settled", 2, 5),)), 0.025),
    (_Instrument("reit", 40e6, 0.5, (("settled", 3, 10),)), 0.015),
)
_DEAL_CANCEL_SHARE = 0.02


@dataclass(frozen=True)
class _Lending:
    """One direction of cross-border lending: who lends to whom, through which systems, in which currencies."""

    lender_country: str
    borrower_country: str
    sources: tuple[str, ...]
    currencies: tuple[tuple[str, float], ...]


# Each with its share of the deals.
_LENDINGS = (
    (_Lending("SG", "CN", ("dbs-gtb", "ocbc-gtb", "uob-gtb"), (("USD", 0.5), ("SGD", 0.35), ("CNY", 0.15))), 0.8),
    (_Lending("CN", "SG", ("icbc-chongqing", "bank-of-chongqing"), (("CNY", 0.6), ("USD", 0.4))), 0.2),
)
_BORROWER_REGIONS = (("Chongqing", 0.7), ("Guangxi", 0.1), ("Sichuan", 0.1), ("Yunnan", 0.05), ("Guizhou", 0.05))


@dataclass(frozen=True)
class _Link:
    """A data-channel link: mean throughput per direction and its base round-trip latency."""

    link_id: str
    gbit_per_s: dict[str, float]
    latency_ms: float


_LINKS = (
    _Link("CQ-SG-1", {"cn_to_sg": 1.6, "sg_to_cn": 1.1}, 62.0),
    _Link("CQ-SG-2", {"cn_to_sg": 0.9, "sg_to_cn": 0.7}, 68.0),
)
_LOSS_SPIKE_CHANCE = 0.0005

_Timed = tuple[int, dict[str, Any]]


class _Run:
    """One simulated run's identity: its random streams, its event ids and its calendar."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        # Every id carries this tag, so runs with another seed, scenario or start never collide.
        identity = f"{config.scenario}/{config.seed}/{config.start.isoformat()}".encode()
        self.tag = hashlib.blake2b(identity, digest_size=4).hexdigest()
        self.epoch = config.start.timestamp()

    def rng(self, stream: str) -> random.Random:
        # The scenario is left out so that "drop" draws exactly the baseline's traffic.
        return random.Random(f"{self.config.seed}/{stream}")  # noqa: S311 - reproducible traffic, not secrets

    def event(self, event_id: str, at: float, source: str, fields: dict[str, Any]) -> _Timed:
        """A timed event; times are whole seconds after the start until rendered."""
        moment = round(at)
        return moment, {"event_id": event_id, "event_time": moment, "source": source, **fields}


def generate(config: SimulationConfig, duration: timedelta | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Events of the configured families from ``config.start`` for ``duration`` (None: endless), in event-time order."""
    for _, family, event in _timeline(config, duration):
        yield family, _render(event, config.start)


def _timeline(config: SimulationConfig, duration: timedelta | None) -> Iterator[tuple[int, str, dict[str, Any]]]:
    run = _Run(config)
    producers = {
        SHIPMENTS.name: _shipments, FLIGHTS.name: _flights, FINANCE.name: _finance, DATACHANNEL.name: _datachannel
    }
    streams = [_tagged(family, producers[family](run)) for family in FAMILY_NAMES if family in config.families]
    merged = heapq.merge(*streams, key=itemgetter(0))
    if duration is None:
        return merged
    end = duration.total_seconds()
    return itertools.takewhile(lambda timed: timed[0] < end, merged)


def _tagged(family: str, events: Iterator[_Timed]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    for moment, event in events:
        if moment >= 0:
            yield moment, family, event


def _render(event: dict[str, Any], origin: datetime) -> dict[str, Any]:
    for name in _TIME_FIELDS:
        if name in event:
            event[name] = (origin + timedelta(seconds=event[name])).isoformat()
    return event


def _in_time_order(groups: Iterable[tuple[float, list[_Timed]]], lead: float) -> Iterator[_Timed]:
    """Merge groups given in order of their anchor time, whose events lie no earlier than ``lead`` before it."""
    pending: list[tuple[int, int, dict[str, Any]]] = []
    sequence = itertools.count()
    for anchor, events in groups:
        while pending and pending[0][0] < anchor - lead:
            moment, _, event = heapq.heappop(pending)
            yield moment, event
        for moment, event in events:
            heapq.heappush(pending, (moment, next(sequence), event))
    while pending:
        moment, _, event = heapq.heappop(pending)
        yield moment, event


def _arrivals(rng: random.Random, per_second: float, rhythm: _Rhythm, epoch: float, begin: float) -> Iterator[float]:
    """Times after ``begin`` of a Poisson process whose rate follows the rhythm (by thinning)."""
    moment = begin
    while True:
        moment += rng.expovariate(per_second * rhythm.peak)
        if rng.random() * rhythm.peak < rhythm(epoch + moment):
            yield moment


def _pick(rng: random.Random, weighted: tuple[tuple[Any, float], ...]) -> Any:
    return rng.choices([value for value, _ in weighted], [weight for _, weight in weighted])[0]


def _shipments(run: _Run) -> Iterator[_Timed]:
    config = run.config
    rng, drop_rng = run.rng(SHIPMENTS.name), run.rng(f"{SHIPMENTS.name}/drop")
    # Plans, slips, containers and trains: a stream of their own, so that the draws above stay as they were.
    details = run.rng(f"{SHIPMENTS.name}/v2")
    shares = {route.name: route.teu_share for route in _ROUTES}
    if config.scenario is Scenario.COVID_2020:
        shares |= _COVID_TEU_SHARES
    # Pick routes by shipment count so that each route gets its share of the TEU.
    weights = [shares[route.name] / route.mean_teu for route in _ROUTES]
    departures_per_second = TEU_PER_HOUR * sum(weights) / HOUR / (1 - _SHIPMENT_CANCEL_SHARE)
    cut = _Cut(config) if config.scenario is Scenario.DROP else None

    def shipments() -> Iterator[tuple[float, list[_Timed]]]:
        departures = _arrivals(rng, departures_per_second, _FREIGHT_RHYTHM, run.epoch, -_SHIPMENT_TAIL)
        for number, departure in enumerate(departures):
            route = rng.choices(_ROUTES, weights)[0]
            shipment = _Shipment(run, rng, details, route, f"SHP-{run.tag}-{number:07d}", departure)
            if cut is not None and cut.removes(shipment):
                yield departure, shipment.called_off(cut.after + drop_rng.uniform(0, 2 * HOUR))
            else:
                yield departure, shipment.journey()

    return _in_time_order(shipments(), lead=_BOOKING_LEAD[1])


class _Cut:
    """The drop: removes a share of one route's departing TEU from a moment on (for a while, or for good),
    exactly rather than by chance. Only departures within the cut are called off: bookings for later ones stand."""

    def __init__(self, config: SimulationConfig) -> None:
        self.route, self.fraction = config.drop_route, config.drop_fraction
        self.after = config.drop_after.total_seconds()
        self.until = math.inf if config.drop_for is None else self.after + config.drop_for.total_seconds()
        self.offered = self.kept = 0.0

    def removes(self, shipment: _Shipment) -> bool:
        """Whether the shipment is called off; the kept TEU stays within half a shipment of the kept share."""
        if shipment.cancelled or shipment.route.name != self.route or not self.after <= shipment.departure < self.until:
            return False
        teu = shipment.fields["teu"]
        self.offered += teu
        if self.kept + teu / 2 < (1 - self.fraction) * self.offered:
            self.kept += teu
            return False
        return True


#: (milestone, event id suffix, when, reporting source, version 2 fields) of one shipment event.
_Milestone = tuple[str, str, float, str, dict[str, Any]]
#: Planned times are the plan (DCSA's PLN), never a later estimate.
_PLANNED = {"planned_time_classifier": "PLN"}


@dataclass(frozen=True)
class _Leg:
    """One leg of a shipment's journey: when it left and arrived, when it was planned to, and on what."""

    start: str
    end: str
    departed: float
    arrived: float
    planned_departure: int
    planned_arrival: int
    transport_id: str | None  # train number, or vessel IMO number and voyage; None on the road


class _Slipping:
    """Where the ``congestion`` and ``delays`` scenarios act: sailings from a moment on (for a while, or for good)."""

    def __init__(self, config: SimulationConfig) -> None:
        self.scenario = config.scenario
        self.by = config.slip_by.total_seconds()
        self.after = config.slip_after.total_seconds()
        self.until = math.inf if config.slip_for is None else self.after + config.slip_for.total_seconds()

    def sailing(self, sails: float) -> float:
        """congestion: a sailing from a hub leaves ``by`` later."""
        return sails + self.by if self.scenario is Scenario.CONGESTION and self.after <= sails < self.until else sails

    def voyage(self, sails: float, run: float) -> float:
        """delays: a sea leg sailing in the period takes ``by`` longer."""
        return run + self.by if self.scenario is Scenario.DELAYS and self.after <= sails < self.until else run


class _Shipment:
    """One consignment: every attribute is drawn up front so that the random streams never depend on its fate.

    ``rng`` draws what version 1 of the contract carries, in the order it always did; ``details``
    draws the rest (plans, slips, the container), so that neither stream depends on the other.
    """

    def __init__(
        self, run: _Run, rng: random.Random, details: random.Random, route: _Route, shipment_id: str, departure: float
    ) -> None:
        self.run, self.route, self.shipment_id, self.departure = run, route, shipment_id, departure
        forty_foot = [rng.random() < _FORTY_FOOT_SHARE for _ in range(rng.randint(1, route.max_containers))]
        teu = sum(2 if big else 1 for big in forty_foot)
        gross = sum(3800 + rng.uniform(8000, 26000) if big else 2300 + rng.uniform(6000, 21000) for big in forty_foot)
        self.fields: dict[str, Any] = {
            "shipment_id": shipment_id,
            "corridor": "ILSTC",
            "route": route.name,
            "mode": route.mode,
            "teu": teu,
            "gross_weight_kg": round(gross),
            "origin": route.origin,
            "destination": route.destination,
            "carrier": rng.choice(route.carriers),
        }
        if rng.random() < _DECLARED_SHARE:
            currency = _pick(rng, _DECLARED_CURRENCIES)
            usd = teu * rng.lognormvariate(math.log(35_000), 0.6)
            value = round(usd * float(DEFAULT_FX_PER_USD[currency]), 2)
            self.fields |= {"declared_value": value, "currency": currency}
        if rng.random() < 0.8:
            self.fields["commodity_hs"] = rng.choice(_COMMODITIES)
        self.booked = departure - rng.uniform(*_BOOKING_LEAD)
        self.cancelled = rng.random() < _SHIPMENT_CANCEL_SHARE
        self.cancel_at = self.booked + rng.uniform(0.2, 0.9) * (departure - self.booked)
        self.transfer = rng.uniform(*_HUB_TRANSFER)
        rng.random()  # the transit time's draw before the legs had their own: kept, so later draws stay as they were
        clearing, handover = rng.uniform(4 * HOUR, 36 * HOUR), rng.uniform(6 * HOUR, 48 * HOUR)
        # The first container names the shipment's equipment (the contract has one container number per event).
        serial = f"{_OWNER_CODES[self.fields['carrier']]}{details.randrange(1_000_000):06d}"
        self.equipment = {
            "equipment_id": f"{serial}{iso6346_check_digit(serial)}",
            "equipment_size_type": "45G1" if forty_foot[0] else "22G1",
            "empty": False,
        }
        self.legs = self._travel(details)
        self.arrived = self.legs[-1].arrived
        self.cleared = self.arrived + clearing
        self.delivered = self.cleared + handover

    def _travel(self, details: random.Random) -> list[_Leg]:
        """The legs as planned and as travelled: the first departs at ``departure``; at a hub the container waits
        for the sailing it is booked on (and sails no sooner than the handling allows); slips as ``_SLIPS`` says."""
        route, slipping = self.route, _Slipping(self.run.config)
        planned = self._timetabled(max(self.departure - _SLIPS[route.legs[0][0]].departure(details), self.booked))
        moment = self.departure
        legs = []
        stretches = zip(route.legs, itertools.pairwise(route.places), strict=True)
        for number, ((by, days), (start, end)) in enumerate(stretches):
            slips = _SLIPS[by]
            if number:
                planned = self._timetabled(planned + details.uniform(*_HUB_CONNECTION))
                moment = slipping.sailing(max(planned + slips.departure(details), moment + _HUB_HANDLING))
            run = days * DAY + slips.run(details)
            if by == "sea":
                run = slipping.voyage(moment, run)
            scheduled = round(days * DAY)
            transport = self._transport(by, planned)
            legs.append(_Leg(start, end, moment, moment + run, planned, planned + scheduled, transport))
            moment, planned = moment + run, planned + scheduled
        return legs

    def _timetabled(self, at: float) -> int:
        """``at`` on a timetable's quarter hour (of the real clock), in whole seconds after the start."""
        epoch = self.run.epoch
        return round(round((epoch + at) / _QUARTER_HOUR) * _QUARTER_HOUR - epoch)

    def _transport(self, by: str, planned: int) -> str | None:
        """The train (by the slot of the day it is planned to leave, China time: six a day) or the carrier's
        sailing (its vessel in weekly turn, the voyage named by the week: ``2015S``, southbound) of a leg."""
        at = self.run.epoch + planned
        if by == "rail":
            return f"{self.route.trains}{int((at + _LOCAL_OFFSET) % DAY // (4 * HOUR)) + 1:02d}"
        if by == "sea":
            fleet = _FLEETS[self.fields["carrier"]]
            year, week, _ = datetime.fromtimestamp(at, UTC).isocalendar()
            return f"{fleet[int(at // WEEK) % len(fleet)]}/{year % 100:02d}{week:02d}S"
        return None

    def journey(self) -> list[_Timed]:
        """The milestones this shipment reaches; a cancelled booking never departs.

        Each leg departs and arrives; at a hub (Qinzhou on the rail-sea route) the container is
        ``transshipped`` (in the port's yard) after the train's arrival and sails later. The first
        departure and the last arrival keep the ids ``.../departed`` and ``.../arrived``; those at a
        hub are ``.../arrived/CNQZH`` and ``.../departed/CNQZH``.
        """
        if self.cancelled:
            return self._events(self._booking(), self._cancellation(self.cancel_at))
        route, last = self.route, len(self.legs) - 1
        milestones = [self._booking()]
        for number, leg in enumerate(self.legs):
            on = {} if leg.transport_id is None else {"transport_id": leg.transport_id}
            leaves = {"location": leg.start, "planned_time": leg.planned_departure, **_PLANNED, **on}
            arrives = {"location": leg.end, "planned_time": leg.planned_arrival, **_PLANNED, **on}
            source = _DESTINATION_SOURCES[leg.end]
            if number:
                hub = _DESTINATION_SOURCES[leg.start]
                milestones.append(("departed", f"departed/{leg.start}", leg.departed, hub, leaves))
            else:
                eta = {"planned_arrival": self.legs[-1].planned_arrival}
                milestones.append(("departed", "departed", leg.departed, route.source, leaves | eta))
            if number == last:
                milestones.append(("arrived", "arrived", leg.arrived, source, arrives))
            else:
                milestones.append(("arrived", f"arrived/{leg.end}", leg.arrived, source, arrives))
                in_yard = {"location": leg.end}
                milestones.append(("transshipped", "transshipped", leg.arrived + self.transfer, source, in_yard))
        at_destination = {"location": route.destination}
        source = _DESTINATION_SOURCES[route.destination]
        milestones.append(("customs_cleared", "customs_cleared", self.cleared, source, at_destination))
        milestones.append(("delivered", "delivered", self.delivered, source, at_destination))
        return self._events(*milestones)

    def called_off(self, moment: float) -> list[_Timed]:
        """The route is cut: a booking made before ``moment`` is cancelled then, a later one is never made."""
        if self.booked >= moment:
            return []
        return self._events(self._booking(), self._cancellation(moment))

    def _booking(self) -> _Milestone:
        planned = {"location": self.route.origin, "planned_arrival": self.legs[-1].planned_arrival}
        return "booked", "booked", self.booked, self.route.source, planned

    def _cancellation(self, moment: float) -> _Milestone:
        return "cancelled", "cancelled", moment, self.route.source, {"location": self.route.origin}

    def _events(self, *milestones: _Milestone) -> list[_Timed]:
        # Shipments under way before the start only report what happens after it. Producers still on
        # version 1 of the contract send none of its version 2 fields.
        return [
            self.run.event(
                f"{self.shipment_id}/{key}",
                moment,
                source,
                self.fields
                | {"milestone": milestone}
                | ({} if source in _VERSION_1_SOURCES else details | self.equipment),
            )
            for milestone, key, moment, source, details in milestones
            if moment >= 0
        ]


def _flights(run: _Run) -> Iterator[_Timed]:
    scenario = run.config.scenario
    rng = run.rng(FLIGHTS.name)
    timetable = _COVID_TIMETABLE if scenario is Scenario.COVID_2020 else _PRE_2020_TIMETABLE
    spare_days = [(rotation, day) for rotation in timetable for day in _EVERY_DAY if day not in rotation.days]

    def weeks() -> Iterator[tuple[float, list[_Timed]]]:
        for week in itertools.count():
            events = [
                event
                for rotation in timetable
                for day in rotation.days
                for event in _flight(run, rng, rotation, week, day, operated=True)
            ]
            # Extra rotations are filed and cancelled, so cancellations never cut the operated count.
            if rng.random() < _EXTRA_ROTATION_CHANCE[scenario]:
                rotation, day = rng.choice(spare_days)
                events += _flight(run, rng, rotation, week, day, operated=False)
            yield week * WEEK, events

    return _in_time_order(weeks(), lead=0)


def _flight(run: _Run, rng: random.Random, rotation: _Rotation, week: int, day: int, operated: bool) -> list[_Timed]:
    """One departure, filed at the start of its week; it departs late or on time and arrives, or is cancelled."""
    flight_id = f"{rotation.flight_number}-{run.tag}-{week:04d}{day}"
    source = _AIRLINE_SOURCES[rotation.carrier]
    week_start = week * WEEK
    scheduled = week_start + day * DAY + rotation.departure
    fields = {
        "flight_id": flight_id,
        "carrier": rotation.carrier,
        "flight_number": rotation.flight_number,
        "service": rotation.service,
        "route": "CKG-SIN",
    }

    def status(name: str, at: float, **details: Any) -> _Timed:
        return run.event(f"{flight_id}/{name}", at, source, fields | {"status": name} | details)

    filed = status("scheduled", week_start, scheduled_time=scheduled)
    if not operated:
        cancelled = week_start + rng.uniform(0.3, 0.9) * (scheduled - week_start)
        return [filed, status("cancelled", cancelled, scheduled_time=scheduled)]
    # Delays stay under 3 hours so that a departure never slips into the next simulated week.
    chance = rng.random()
    if chance < 0.7:
        delay = rng.uniform(0, 15 * MINUTE)
    elif chance < 0.95:
        delay = rng.uniform(15 * MINUTE, HOUR)
    else:
        delay = rng.uniform(HOUR, 3 * HOUR)
    departed = round(scheduled + delay)
    # Schedules are padded: a flight is in the air up to half an hour less than its block time (or 5 minutes
    # more), so one that leaves a little late still arrives on time, as most do.
    arrived = round(departed + _BLOCK_TIME + rng.uniform(-_PADDING, 5 * MINUTE))
    load = {"cargo_kg": round(rng.uniform(*rotation.cargo_kg), 1)}
    if rotation.seats:
        load["passengers"] = round(rotation.seats * rng.uniform(*rotation.load_factor))
    return [
        filed,
        status("departed", departed, scheduled_time=scheduled, actual_time=departed, **load),
        status("arrived", arrived, scheduled_time=scheduled + _BLOCK_TIME, actual_time=arrived),
    ]


def _finance(run: _Run) -> Iterator[_Timed]:
    rng = run.rng(FINANCE.name)
    mean_usd = sum(weight * instrument.mean_usd for instrument, weight in _INSTRUMENTS)
    deals_per_second = FINANCE_USD_PER_YEAR / YEAR / mean_usd

    def deals() -> Iterator[tuple[float, list[_Timed]]]:
        # The first deal is signed at the start, so a run shows financing from its first moment.
        signings = itertools.chain([0.0], _arrivals(rng, deals_per_second, _BANKING_RHYTHM, run.epoch, 0.0))
        for number, signed in enumerate(signings):
            yield signed, _deal(run, rng, f"FIN-{run.tag}-{number:07d}", signed)

    return _in_time_order(deals(), lead=0)


def _deal(run: _Run, rng: random.Random, transaction_id: str, signed: float) -> list[_Timed]:
    """A deal signed at ``signed`` in one of the lender's currencies, then disbursed or settled, or cancelled."""
    instrument: _Instrument = _pick(rng, _INSTRUMENTS)
    lending: _Lending = _pick(rng, _LENDINGS)
    currency = _pick(rng, lending.currencies)
    usd = rng.lognormvariate(math.log(instrument.median_usd), instrument.sigma)
    fields: dict[str, Any] = {
        "transaction_id": transaction_id,
        "instrument": instrument.name,
        "amount": round(usd * float(DEFAULT_FX_PER_USD[currency]), 2),
        "currency": currency,
        "lender_country": lending.lender_country,
        "borrower_country": lending.borrower_country,
    }
    if lending.borrower_country == "CN":
        fields["borrower_region"] = _pick(rng, _BORROWER_REGIONS)
    source = rng.choice(lending.sources)
    stages = [("signed", signed)]
    if rng.random() < _DEAL_CANCEL_SHARE:
        stages.append(("cancelled", signed + rng.uniform(1, 20) * DAY))
    else:
        moment = signed
        for status, min_days, max_days in instrument.stages:
            moment += rng.uniform(min_days, max_days) * DAY
            stages.append((status, moment))
    return [run.event(f"{transaction_id}/{status}", at, source, fields | {"status": status}) for status, at in stages]


def _datachannel(run: _Run) -> Iterator[_Timed]:
    rng = run.rng(DATACHANNEL.name)
    for sample in itertools.count(1):
        end = sample * SAMPLE_SECONDS
        activity = _TRAFFIC_RHYTHM(run.epoch + end - SAMPLE_SECONDS / 2)
        for link in _LINKS:
            for direction, gbit_per_s in link.gbit_per_s.items():
                rate = gbit_per_s * 1e9 / 8 * activity * rng.lognormvariate(0, 0.08)
                loss = 2e-5 * activity * rng.lognormvariate(0, 0.5)
                if rng.random() < _LOSS_SPIKE_CHANCE:
                    loss = rng.uniform(0.002, 0.02)
                yield run.event(
                    f"DC-{run.tag}-{link.link_id}-{direction}-{sample:08d}",
                    end,
                    "cqsg-link-monitor",
                    {
                        "link_id": link.link_id,
                        "direction": direction,
                        "interval_seconds": SAMPLE_SECONDS,
                        "bytes": round(rate * SAMPLE_SECONDS),
                        "latency_ms": round(link.latency_ms + 6 * activity + abs(rng.gauss(0, 1.5)), 2),
                        "packet_loss_ratio": round(loss, 7),
                    },
                )


def replay_start(speed: float, duration: timedelta | None, history: timedelta = DEFAULT_HISTORY) -> datetime:
    """Where in real time a run at ``speed`` begins: pass it as ``SimulationConfig.start`` to align the calendars."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=_replay_lead(speed, duration, history))


def _replay_lead(speed: float, duration: timedelta | None, history: timedelta) -> int:
    """How far behind the wall clock the replay starts: it gains ``speed - 1`` seconds every second."""
    if not 0 < speed < math.inf:
        raise ValueError("speed must be a positive number")
    span = (duration if duration is not None else history).total_seconds()
    return math.ceil(span * (1 - 1 / speed)) if speed > 1 else 0


async def run_simulation(
    config: SimulationConfig,
    publish: Callable[[str, list[dict[str, Any]]], Awaitable[Any]],
    *,
    speed: float,
    duration: timedelta | None,
    clock: Callable[[], float] = time.monotonic,
    stop: asyncio.Event | None = None,
    on_batch: Callable[[str, list[dict[str, Any]]], Any] | None = None,
    history: timedelta = DEFAULT_HISTORY,
    max_batch: int = 1_000,
) -> dict[str, int]:
    """Publish the simulation in batches per family, replaying the past at ``speed`` until it reaches the wall clock.

    The simulated span (``duration``, or ``history`` for an endless run, which then goes
    on at wall-clock pace) is dated so that the replay catches up with the wall clock
    when the span ends: no event is ever dated after the wall clock. ``clock`` paces the
    run (seconds, monotonic); ``stop`` ends it early; ``on_batch`` sees every published
    batch; ``max_batch`` caps the events handed to ``publish`` at once. Returns the
    number of events published per family.
    """
    lead = _replay_lead(speed, duration, history)
    origin = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=lead)
    if stop is None:
        stop = asyncio.Event()
    published = dict.fromkeys(config.families, 0)
    events = _timeline(config, duration)
    upcoming = next(events, None)
    began = clock()
    while upcoming is not None and not stop.is_set():
        elapsed = clock() - began
        cursor = min(speed * elapsed, lead + elapsed)
        batches: dict[str, list[dict[str, Any]]] = {}
        taken = 0
        while upcoming is not None and upcoming[0] <= cursor and taken < max_batch:
            _, family, event = upcoming
            batches.setdefault(family, []).append(_render(event, origin))
            upcoming = next(events, None)
            taken += 1
        for family, batch in batches.items():
            await publish(family, batch)
            published[family] += len(batch)
            if on_batch is not None:
                on_batch(family, batch)
        if upcoming is None or taken == max_batch:
            await asyncio.sleep(0)
            continue
        due = max(upcoming[0] / speed, upcoming[0] - lead)
        await pause(stop, min(max(due - (clock() - began), 0.05), 1.0))
    return published


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less once ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
