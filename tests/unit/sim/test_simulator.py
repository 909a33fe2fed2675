"""The corridor traffic simulator: reference figures, scenarios, determinism and wall-clock pacing."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from schemas.families import FAMILY_NAMES
from schemas.validation import ValidationRules, validate_object
from streams.settings import DEFAULT_FX_PER_USD, Settings
from streams.sim.simulator import Scenario, SimulationConfig, generate, replay_start, run_simulation

WEEK = timedelta(days=7)
START = datetime(2020, 4, 1, tzinfo=UTC)
SEED = 11

Events = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def baseline_week() -> Events:
    return list(generate(SimulationConfig(Scenario.BASELINE, seed=SEED, start=START), WEEK))


@pytest.fixture(scope="module")
def covid_week() -> Events:
    return list(generate(SimulationConfig(Scenario.COVID_2020, seed=SEED, start=START), WEEK))


def of(events: Events, family: str, **matching: str) -> list[dict[str, Any]]:
    return [
        event
        for name, event in events
        if name == family and all(event[field] == value for field, value in matching.items())
    ]


def moment(event: dict[str, Any], field: str = "event_time") -> datetime:
    return datetime.fromisoformat(event[field])


def departures(events: Events, **matching: str) -> list[dict[str, Any]]:
    """Departures from the origin: the ones whose TEU count (a departure from a hub on the way counts none)."""
    return [
        event
        for event in of(events, "shipments", milestone="departed", **matching)
        if event.get("location", event["origin"]) == event["origin"]
    ]


def departed_teu(events: Events) -> dict[str, list[float]]:
    """TEU departed per route, before and after two days into the week."""
    teu: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for event in departures(events):
        teu[event["route"]][moment(event) >= START + timedelta(days=2)] += event["teu"]
    return dict(teu)


def test_baseline_week_operates_fourteen_flights_of_three_carriers(baseline_week: Events) -> None:
    departed = of(baseline_week, "flights", status="departed")

    assert len(departed) == 14
    assert {event["carrier"] for event in departed} == {"TR", "3U", "SQ"}
    assert {(event["route"], event["service"]) for event in departed} == {("CKG-SIN", "passenger")}
    assert all(100 <= event["passengers"] <= 335 and event["cargo_kg"] > 0 for event in departed)


def test_covid_week_operates_one_scoot_passenger_and_one_sichuan_cargo_flight(covid_week: Events) -> None:
    departed = of(covid_week, "flights", status="departed")

    assert sorted((event["carrier"], event["service"]) for event in departed) == [("3U", "cargo"), ("TR", "passenger")]
    cargo = next(event for event in departed if event["service"] == "cargo")
    assert "passengers" not in cargo and cargo["cargo_kg"] >= 10_000


@pytest.mark.parametrize(("scenario", "weekly"), [(Scenario.BASELINE, 14), (Scenario.COVID_2020, 2)])
def test_operated_flights_per_week_are_exact_whatever_the_start(scenario: Scenario, weekly: int) -> None:
    start = datetime(2021, 3, 5, 17, 23, 45, tzinfo=UTC)
    config = SimulationConfig(scenario, seed=3, start=start, families=("flights",))
    flights = list(generate(config, 6 * WEEK))

    per_week = Counter((moment(event) - start) // WEEK for event in of(flights, "flights", status="departed"))
    assert per_week == dict.fromkeys(range(6), weekly)
    cancelled = {event["flight_id"] for event in of(flights, "flights", status="cancelled")}
    operated = {event["flight_id"] for event in of(flights, "flights", status="departed")}
    assert cancelled and not cancelled & operated


def test_each_flight_is_scheduled_then_departs_late_or_on_time_then_arrives(baseline_week: Events) -> None:
    lifecycle: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for event in of(baseline_week, "flights"):
        lifecycle[event["flight_id"]][event["status"]] = event

    for statuses in lifecycle.values():
        if "departed" not in statuses:
            assert set(statuses) == {"scheduled", "cancelled"}
            continue
        scheduled, departed, arrived = statuses["scheduled"], statuses["departed"], statuses["arrived"]
        delay = moment(departed, "actual_time") - moment(departed, "scheduled_time")
        assert moment(scheduled) < moment(departed) < moment(arrived)
        assert timedelta(0) <= delay <= timedelta(hours=3)
        assert moment(departed) == moment(departed, "actual_time")
        block_time = moment(arrived, "actual_time") - moment(departed, "actual_time")
        # The scheduled 4 h 25 min, less up to 30 minutes of the schedule's padding or more up to 5.
        assert timedelta(hours=3, minutes=55) <= block_time <= timedelta(hours=4, minutes=30)


def test_departed_teu_average_115_an_hour_over_a_week_with_a_daily_rhythm(baseline_week: Events) -> None:
    departed = departures(baseline_week)
    china_hour = Counter()
    for event in departed:
        china_hour[(moment(event).hour + 8) % 24] += event["teu"]

    assert sum(event["teu"] for event in departed) / (7 * 24) == pytest.approx(115, rel=0.1)
    afternoon = sum(china_hour[hour] for hour in range(10, 18))
    night = sum(china_hour[hour] for hour in (22, 23, 0, 1, 2, 3, 4, 5))
    assert afternoon > 1.4 * night


def test_shipment_modes_ends_and_weights_match_their_routes(baseline_week: Events) -> None:
    modes = {
        "CNCKG-CNQZH-SGSIN": "rail_sea",
        "CNCKG-SGSIN": "road",
        "CNCKG-VNHAN": "rail",
        "CNCKG-LAVTE": "rail",
        "CNQZH-SGSIN": "sea",
    }
    shipments = of(baseline_week, "shipments")
    teu = departed_teu(baseline_week)

    assert max(teu, key=lambda route: sum(teu[route])) == "CNCKG-CNQZH-SGSIN"
    assert set(teu) == set(modes)
    for event in shipments:
        assert event["mode"] == modes[event["route"]]
        assert (event["origin"], event["destination"]) == (event["route"][:5], event["route"][-5:])
        assert 4_000 <= event["gross_weight_kg"] / event["teu"] <= 24_000
        assert ("declared_value" in event) == ("currency" in event)
    assert {event["currency"] for event in shipments if "currency" in event} == {"USD", "SGD", "CNY"}
    assert any("declared_value" not in event for event in shipments)


def test_shipments_pass_their_milestones_in_order(baseline_week: Events) -> None:
    # Event ids end in the milestone, and the place for those at the hub: .../arrived/CNQZH.
    journeys: dict[str, list[str]] = defaultdict(list)
    routes: dict[str, str] = {}
    for event in of(baseline_week, "shipments"):
        journeys[event["shipment_id"]].append(event["event_id"].split("/", 1)[1])
        routes[event["shipment_id"]] = event["route"]

    for shipment_id, milestones in journeys.items():
        if "cancelled" in milestones:
            plan = ["booked", "cancelled"]
        else:
            rail_sea = routes[shipment_id] == "CNCKG-CNQZH-SGSIN"
            hub = ["arrived/CNQZH", "transshipped", "departed/CNQZH"] if rail_sea else []
            plan = ["booked", "departed", *hub, "arrived", "customs_cleared", "delivered"]
        # The week cuts journeys at both ends but never leaves a hole in the middle.
        first = plan.index(milestones[0])
        assert milestones == plan[first : first + len(milestones)]
    endings = Counter(milestones[-1] for milestones in journeys.values())
    assert endings["cancelled"] and endings["delivered"]


def test_drop_cuts_the_chosen_route_after_the_moment_and_nothing_else(baseline_week: Events) -> None:
    config = SimulationConfig(
        Scenario.DROP,
        seed=SEED,
        start=START,
        drop_route="CNCKG-CNQZH-SGSIN",
        drop_fraction=0.8,
        drop_after=timedelta(days=2),
        families=("shipments",),
    )
    dropped = list(generate(config, WEEK))
    before, after = departed_teu(baseline_week), departed_teu(dropped)

    for route, (teu_before_drop, teu_after_drop) in before.items():
        assert after[route][0] == teu_before_drop
        if route == config.drop_route:
            assert after[route][1] / teu_after_drop == pytest.approx(0.2, abs=0.01)
        else:
            assert after[route][1] == teu_after_drop
    cancelled_at_drop = [
        event
        for event in of(dropped, "shipments", milestone="cancelled", route=config.drop_route)
        if START + config.drop_after <= moment(event) <= START + config.drop_after + timedelta(hours=2)
    ]
    assert len(cancelled_at_drop) > 10


def test_a_drop_that_lasts_calls_off_only_the_departures_within_it(baseline_week: Events) -> None:
    config = SimulationConfig(
        Scenario.DROP,
        seed=SEED,
        start=START,
        drop_route="CNCKG-LAVTE",
        drop_fraction=0.5,
        drop_after=timedelta(days=2),
        drop_for=timedelta(days=1),
        families=("shipments",),
    )
    cut_from, cut_until = START + config.drop_after, START + config.drop_after + timedelta(days=1)
    dropped = list(generate(config, WEEK))

    def number(event: dict[str, Any]) -> str:  # the ids' tags differ between scenarios, their numbers do not
        return str(event["shipment_id"]).rsplit("-", 1)[1]

    def departed(events: Events) -> dict[str, datetime]:
        return {number(e): moment(e) for e in departures(events, route="CNCKG-LAVTE")}

    usual, kept = departed(baseline_week), departed(dropped)
    called_off = set(usual) - set(kept)
    assert set(kept) <= set(usual)
    assert called_off and all(cut_from <= usual[shipment] < cut_until for shipment in called_off)
    within = [shipment for shipment, at in usual.items() if cut_from <= at < cut_until]
    assert len(called_off) == pytest.approx(len(within) / 2, abs=3)  # half the TEU: about half the shipments
    # Every called-off booking was cancelled within two hours of the cut; no other booking was.
    usually_cancelled = {number(e) for e in of(baseline_week, "shipments", milestone="cancelled")}
    cancelled = {number(e): moment(e) for e in of(dropped, "shipments", milestone="cancelled")}
    extra = {shipment: at for shipment, at in cancelled.items() if shipment not in usually_cancelled}
    assert set(extra) <= called_off
    assert all(cut_from <= at <= cut_from + timedelta(hours=2) for at in extra.values())
    assert len(extra) > 10


def test_financing_over_a_simulated_year_is_of_the_usd_11_26_bn_order() -> None:
    config = SimulationConfig(Scenario.BASELINE, seed=SEED, start=START, families=("finance",))
    deals = of(list(generate(config, timedelta(days=365))), "finance")
    signed = [event for event in deals if event["status"] == "signed"]
    usd = sum(event["amount"] / float(DEFAULT_FX_PER_USD[event["currency"]]) for event in signed)

    assert usd == pytest.approx(11.26e9, rel=0.2)
    assert {event["currency"] for event in signed} == {"USD", "SGD", "CNY"}
    assert {event["instrument"] for event in signed} == {
        "loan",
        "syndicated_loan",
        "bond",
        "equity",
        "trade_finance",
        "reit",
    }
    assert {event["status"] for event in deals} == {"signed", "disbursed", "settled", "cancelled"}
    first_status = {}
    for event in deals:
        first_status.setdefault(event["transaction_id"], event["status"])
    assert set(first_status.values()) == {"signed"}


def test_datachannel_samples_each_link_and_direction_every_minute(baseline_week: Events) -> None:
    samples = of(baseline_week, "datachannel")
    per_stream: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for event in samples:
        per_stream[event["link_id"], event["direction"]].append(moment(event))

    assert set(per_stream) == {(link, way) for link in ("CQ-SG-1", "CQ-SG-2") for way in ("cn_to_sg", "sg_to_cn")}
    for times in per_stream.values():
        assert len(times) == 7 * 24 * 60 - 1
        assert {later - earlier for earlier, later in pairwise(times)} == {timedelta(minutes=1)}
    assert all(event["interval_seconds"] == 60 and event["bytes"] > 0 for event in samples)
    assert all(0 < event["latency_ms"] < 200 and 0 <= event["packet_loss_ratio"] < 0.05 for event in samples)


def test_events_come_in_time_order_within_the_period_with_unique_ids(baseline_week: Events) -> None:
    times = [moment(event) for _, event in baseline_week]
    ids = [event["event_id"] for _, event in baseline_week]

    assert times == sorted(times)
    assert times[0] >= START and times[-1] < START + WEEK
    assert len(set(ids)) == len(ids)
    assert {family for family, _ in baseline_week} == {"shipments", "flights", "finance", "datachannel"}
    assert all(event["event_time"].endswith("+00:00") and event["source"] for _, event in baseline_week)


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    def day(seed: int) -> Events:
        return list(generate(SimulationConfig(Scenario.BASELINE, seed=seed, start=START), timedelta(hours=12)))

    first, again, other = day(5), day(5), day(6)

    assert first == again
    assert not {event["event_id"] for _, event in first} & {event["event_id"] for _, event in other}
    for family, field in (("shipments", "teu"), ("finance", "amount"), ("datachannel", "bytes")):
        assert [event[field] for event in of(first, family)] != [event[field] for event in of(other, family)]


def test_every_simulated_event_passes_validation(baseline_week: Events, covid_week: Events) -> None:
    # Generated events carry their simulated (2020) times; the live driver shifts them to now.
    rules = dataclasses.replace(ValidationRules.from_settings(Settings()), max_age=None)
    reference = START + timedelta(days=8)
    drop = SimulationConfig(Scenario.DROP, seed=SEED, start=START, drop_after=timedelta(hours=12))
    dropped = list(generate(drop, timedelta(days=1)))

    # Scenarios differ in shipments and flights only.
    scenarios = ((baseline_week, FAMILY_NAMES), (covid_week, ("shipments", "flights")), (dropped, FAMILY_NAMES))
    for events, families in scenarios:
        for family in families:
            batch = of(events, family)
            result = validate_object(family, batch, rules, reference_time=reference)
            assert not result.errors, result.errors[:3]
            assert len(result.events) == len(batch) > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start": datetime(2020, 4, 1)}, "timezone-aware"),
        ({"drop_route": "CNCKG-XXXXX"}, "drop_route"),
        ({"drop_fraction": 1.5}, "drop_fraction"),
        ({"drop_for": timedelta(0)}, "drop_for"),
        ({"slip_by": timedelta(0)}, "slip_by"),
        ({"slip_for": timedelta(hours=-1)}, "slip_for"),
        ({"families": ("weather",)}, "families"),
    ],
)
def test_config_refuses_what_cannot_be_simulated(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulationConfig(Scenario.BASELINE, **change)


class Recorder:
    """A publish callback that keeps every batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[dict[str, Any]]]] = []

    async def __call__(self, family: str, events: list[dict[str, Any]]) -> None:
        self.batches.append((family, events))

    @property
    def events(self) -> Events:
        return [(family, event) for family, batch in self.batches for event in batch]


async def test_a_demo_run_shows_every_family_within_seconds() -> None:
    publish, stop = Recorder(), asyncio.Event()

    def until_all_families(family: str, batch: list[dict[str, Any]]) -> None:
        if {family for family, _ in publish.batches} == {"shipments", "flights", "finance", "datachannel"}:
            stop.set()

    began = time.monotonic()
    config = SimulationConfig(Scenario.BASELINE, start=datetime.now(UTC))
    await run_simulation(config, publish, speed=3600, duration=None, stop=stop, on_batch=until_all_families)

    assert stop.is_set()
    assert time.monotonic() - began < 3


async def test_a_run_replays_its_span_so_that_it_ends_at_the_wall_clock() -> None:
    speed, day = 1e6, timedelta(days=1)
    began = datetime.now(UTC)
    config = SimulationConfig(Scenario.BASELINE, seed=SEED, start=replay_start(speed, day))
    publish = Recorder()

    published = await run_simulation(config, publish, speed=speed, duration=day)

    ended = datetime.now(UTC)
    expected = list(generate(config, timedelta(days=1)))
    assert published == Counter(family for family, _ in expected)
    for family in published:
        assert [event["event_id"] for event in of(publish.events, family)] == [
            event["event_id"] for event in of(expected, family)
        ]
    by_id = {event["event_id"]: event for _, event in expected}
    shifts = {moment(sent) - moment(by_id[sent["event_id"]]) for _, sent in publish.events}
    # Started where the replay begins, the simulated calendar is the real one.
    assert len(shifts) == 1 and timedelta(0) <= shifts.pop() <= timedelta(seconds=2)
    assert began - timedelta(days=1, seconds=2) <= moment(publish.events[0][1])
    assert max(moment(event) for _, event in publish.events) <= ended
    assert ended - began < timedelta(seconds=3)


class SteppingClock:
    """A monotonic clock that jumps ``step`` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self.step, self.now = step, 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


async def test_an_endless_run_replays_its_history_then_keeps_pace_with_the_clock() -> None:
    # Each reading moves a minute on: the next event is always due, so the run never sleeps for long.
    clock, publish, stop = SteppingClock(step=60), Recorder(), asyncio.Event()
    behind: list[timedelta] = []
    began = datetime.now(UTC)

    def check(family: str, batch: list[dict[str, Any]]) -> None:
        wall = began + timedelta(seconds=clock.now)
        behind.append(wall - max(moment(event) for event in batch))
        if clock.now > 1200:
            stop.set()

    config = SimulationConfig(Scenario.BASELINE, seed=SEED, start=START)
    await run_simulation(
        config, publish, speed=3600, duration=None, clock=clock, stop=stop, on_batch=check, history=timedelta(hours=1)
    )

    times = [moment(event) for _, event in publish.events]
    assert min(behind) >= timedelta(seconds=-1)
    assert began - timedelta(hours=1, seconds=2) <= min(times)
    # Past the replayed hour the run went on: samples dated up to the (stepped) wall clock.
    assert max(times) >= began + timedelta(seconds=1000)
