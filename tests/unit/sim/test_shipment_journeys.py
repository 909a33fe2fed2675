"""Simulated shipments as contract version 2 tells them: legs, the Qinzhou hub, plans, containers and trains,
the producers still on version 1, and the ``congestion`` and ``delays`` scenarios against the baseline."""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.shipments import iso6346_check_digit
from schemas.validation import ValidationRules, validate_object
from streams.settings import DEFAULT_PUNCTUALITY_TOLERANCE, Settings
from streams.sim.simulator import Scenario, SimulationConfig, generate

START = datetime(2020, 4, 1, tzinfo=UTC)
SEED = 11
DAY = timedelta(days=1)
#: A week of departures (booked within the span: bookings come up to 3 days ahead), followed until every
#: one of them is delivered: the longest journey (2.75 days by rail, under 4.7 at the hub, 9 at sea, 1.5 to
#: clear, 2 to deliver) ends before day 30.
WEEK = (timedelta(days=3), timedelta(days=10))
WEEK_FOLLOWED = timedelta(days=30)
#: The scenarios' runs: slipping from day 4, followed to day 14 (their shipments are compared with the baseline's).
SLIP_AFTER = timedelta(days=4)
SCENARIO_SPAN = timedelta(days=14)
RAIL_SEA = "CNCKG-CNQZH-SGSIN"
#: A second in days: event times are whole seconds, so a duration shifted by whole days may round a second apart.
SECOND = 1 / 86400
V2_FIELDS = ("location", "planned_time", "planned_time_classifier", "planned_arrival", "equipment_id",
             "equipment_size_type", "empty", "transport_id")

Event = dict[str, Any]
#: A shipment's events by their event id's ending: booked, departed, arrived/CNQZH, ... delivered.
Journey = dict[str, Event]


def shipments(scenario: Scenario, span: timedelta) -> list[Event]:
    config = SimulationConfig(scenario, seed=SEED, start=START, slip_after=SLIP_AFTER, families=("shipments",))
    return [event for _, event in generate(config, span)]


def journeys(events: list[Event]) -> dict[str, Journey]:
    """By shipment number (the part of the id that no scenario changes)."""
    found: dict[str, Journey] = defaultdict(dict)
    for event in events:
        shipment, milestone = event["event_id"].split("/", 1)
        found[shipment.rsplit("-", 1)[1]][milestone] = event
    return dict(found)


def at(event: Event, field: str = "event_time") -> datetime:
    return datetime.fromisoformat(event[field])


def days(start: Event, end: Event) -> float:
    return (at(end) - at(start)) / DAY


@pytest.fixture(scope="module")
def baseline() -> list[Event]:
    return shipments(Scenario.BASELINE, WEEK_FOLLOWED)


@pytest.fixture(scope="module")
def baseline_journeys(baseline: list[Event]) -> dict[str, Journey]:
    return journeys(baseline)


@pytest.fixture(scope="module")
def first_week(baseline_journeys: dict[str, Journey]) -> dict[str, Journey]:
    """The journeys that departed their origin in the week: each is complete."""
    return {
        number: journey
        for number, journey in baseline_journeys.items()
        if "departed" in journey and START + WEEK[0] <= at(journey["departed"]) < START + WEEK[1]
    }


@pytest.fixture(scope="module")
def congestion() -> list[Event]:
    return shipments(Scenario.CONGESTION, SCENARIO_SPAN)


@pytest.fixture(scope="module")
def delays() -> list[Event]:
    return shipments(Scenario.DELAYS, SCENARIO_SPAN)


def test_every_shipment_event_of_each_scenario_is_valid(
    baseline: list[Event], congestion: list[Event], delays: list[Event]
) -> None:
    rules = dataclasses.replace(ValidationRules.from_settings(Settings()), max_age=None)
    moment, end = START + SLIP_AFTER, START + SCENARIO_SPAN
    # The scenarios' events before their moment are the baseline's (test_a_slip_leaves_the_baseline_...).
    checked = ([e for e in baseline if at(e) < end], [e for e in congestion if at(e) >= moment],
               [e for e in delays if at(e) >= moment])
    for events in checked:
        result = validate_object("shipments", events, rules, reference_time=START + WEEK_FOLLOWED)
        assert not result.errors, result.errors[:3]
        assert len(result.events) == len(events) > 10_000


def test_rail_sea_journeys_go_by_train_to_qinzhou_wait_there_and_sail_to_singapore(
    first_week: dict[str, Journey],
) -> None:
    rail_sea = [journey for journey in first_week.values() if journey["booked"]["route"] == RAIL_SEA]
    order = ("booked", "departed", "arrived/CNQZH", "transshipped", "departed/CNQZH", "arrived", "customs_cleared",
             "delivered")
    places = ("CNCKG", "CNCKG", "CNQZH", "CNQZH", "CNQZH", "SGSIN", "SGSIN", "SGSIN")
    sources = tuple({"CNCKG": "cq-rail-ops", "CNQZH": "qinzhou-port-tos", "SGSIN": "psa-portnet"}[p] for p in places)

    assert len(rail_sea) > 1000
    for journey in rail_sea:
        assert tuple(journey) == order
        assert tuple(journey[milestone]["location"] for milestone in order) == places
        assert [at(journey[milestone]) for milestone in order] == sorted(at(journey[m]) for m in order)
        # The sources: the rail operator at Chongqing, the port at Qinzhou, PortNet in Singapore.
        assert tuple(journey[milestone]["source"] for milestone in order) == sources
        # By train to Qinzhou, then on a vessel: the arrival names what it came on.
        train, vessel = journey["departed"]["transport_id"], journey["departed/CNQZH"]["transport_id"]
        assert re.fullmatch(r"X85\d\d", train) and journey["arrived/CNQZH"]["transport_id"] == train
        assert re.fullmatch(r"IMO\d{7}/\d{4}S", vessel) and journey["arrived"]["transport_id"] == vessel
        # The ETA is given at booking and at the departure from Chongqing only, and is the plan of the last arrival.
        eta = {journey[m]["planned_arrival"] for m in order if "planned_arrival" in journey[m]}
        assert [m for m in order if "planned_arrival" in journey[m]] == ["booked", "departed"]
        assert eta == {journey["arrived"]["planned_time"]}


def test_the_other_routes_depart_their_origin_and_arrive_at_their_destination(first_week: dict[str, Journey]) -> None:
    others = [journey for journey in first_week.values() if journey["booked"]["route"] != RAIL_SEA]
    trains = {"CNCKG-VNHAN": r"X91\d\d", "CNCKG-LAVTE": r"X93\d\d", "CNQZH-SGSIN": r"IMO\d{7}/\d{4}S"}

    assert {journey["booked"]["route"] for journey in others} == {"CNQZH-SGSIN", "CNCKG-VNHAN", "CNCKG-LAVTE",
                                                                  "CNCKG-SGSIN"}
    for journey in others:
        route = journey["booked"]["route"]
        assert tuple(journey) == ("booked", "departed", "arrived", "customs_cleared", "delivered")
        times = [at(event) for event in journey.values()]
        assert times == sorted(times)
        departed, arrived = journey["departed"], journey["arrived"]
        # Version 1 producers send no location: the contract's defaults (origin, destination) say the same.
        assert departed.get("location", route[:5]) == route[:5] and arrived.get("location", route[-5:]) == route[-5:]
        if route in trains:
            assert re.fullmatch(trains[route], departed["transport_id"])
        else:
            assert "transport_id" not in departed and "transport_id" not in arrived  # by road


def test_producers_still_on_version_1_send_no_version_2_field_and_the_rest_send_them(baseline: list[Event]) -> None:
    version_1 = [event for event in baseline if not set(V2_FIELDS) & set(event)]
    version_2 = [event for event in baseline if set(V2_FIELDS) & set(event)]

    assert {event["source"] for event in version_1} == {"cq-road-freight", "vnr-yen-vien"}
    assert not {event["source"] for event in version_2} & {"cq-road-freight", "vnr-yen-vien"}
    # The road operator's bookings and departures, and Vietnam Railways' arrivals in Hanoi: about a shipment in
    # four goes by road (one container each), one in seven to Hanoi; the rail-sea journeys have eight events.
    assert len(version_1) / len(baseline) == pytest.approx(0.15, abs=0.02)
    assert all(
        event["location"] and event["equipment_id"] and event["empty"] is False for event in version_2
    )


def test_each_shipment_travels_in_one_container_with_a_valid_number_and_its_size(baseline: list[Event]) -> None:
    containers: dict[str, set[tuple[str, str]]] = defaultdict(set)
    teu: dict[str, float] = {}
    for event in baseline:
        if "equipment_id" in event:
            containers[event["shipment_id"]].add((event["equipment_id"], event["equipment_size_type"]))
            teu[event["shipment_id"]] = event["teu"]

    assert all(len(named) == 1 for named in containers.values())
    sizes = Counter()
    for shipment, named in containers.items():
        ((number, size),) = named
        assert iso6346_check_digit(number) == int(number[10])
        assert size in ("22G1", "45G1")
        assert size == "22G1" or teu[shipment] >= 2  # a forty-foot container is 2 TEU
        sizes[size] += 1
    assert sizes["45G1"] / sizes.total() == pytest.approx(0.6, abs=0.03)  # the first container's draw: 60 % 40 ft
    owners = {number[:4] for named in containers.values() for number, _ in named}
    assert owners == {"PCIU", "CSNU", "CMAU", "MSKU", "ONEU", "TBJU", "TGHU"}


def test_imo_numbers_carry_their_check_digit(baseline: list[Event]) -> None:
    vessels = {event["transport_id"][3:10] for event in baseline if event.get("transport_id", "").startswith("IMO")}

    assert len(vessels) > 10
    for imo in vessels:
        assert sum(int(digit) * weight for digit, weight in zip(imo, range(7, 1, -1), strict=False)) % 10 == int(imo[6])


def test_legs_take_two_days_by_rail_about_a_day_at_qinzhou_and_six_by_sea(first_week: dict[str, Journey]) -> None:
    rail_sea = [journey for journey in first_week.values() if journey["booked"]["route"] == RAIL_SEA]
    rail = [days(journey["departed"], journey["arrived/CNQZH"]) for journey in rail_sea]
    dwell = [days(journey["arrived/CNQZH"], journey["departed/CNQZH"]) for journey in rail_sea]
    sea = [days(journey["departed/CNQZH"], journey["arrived"]) for journey in rail_sea]
    transit = [days(journey["departed"], journey["arrived"]) for journey in rail_sea]

    # The means the distributions give (streams/sim/simulator.py, _SLIPS and _HUB_CONNECTION): rail 48 h plus
    # 0.08 x 12 h late minus 0.02 x 7.5 h early = 2.03 days; at the hub a 1-day connection, plus the sailing's
    # delay (0.93 x 0.25 + 0.07 x 2 = 0.37 days), minus the train's (2.3 h late leaving, 0.8 h slower) = 1.24
    # days; sea 6 days plus 0.07 x 2 - 0.03 x 1.25 = 6.10 days. About 1,500 journeys a week, with standard
    # deviations of 0.17, 0.57 and 0.64 days: standard errors of 0.005, 0.015 and 0.017 days. The bounds
    # allow six standard errors and more, so only a change of the distributions moves a mean out of them.
    assert len(rail_sea) > 1000
    assert statistics.mean(rail) == pytest.approx(2.03, abs=0.03)
    assert statistics.mean(dwell) == pytest.approx(1.24, abs=0.1)
    assert statistics.mean(sea) == pytest.approx(6.10, abs=0.1)
    assert statistics.mean(transit) == pytest.approx(2.03 + 1.24 + 6.10, abs=0.2)
    # The spread: the hub's dwell mostly within half a day to two days, never under the 6 h of handling.
    assert min(dwell) >= 0.25 and sum(0.5 <= d <= 2 for d in dwell) / len(dwell) > 0.85
    assert min(rail) >= 1.6 and max(rail) <= 2.75
    assert min(sea) >= 4.5 and max(sea) <= 9


def test_most_milestones_keep_to_their_plan_within_the_tolerance_of_their_mode(baseline: list[Event]) -> None:
    verdicts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for event in baseline:
        if "planned_time" not in event:
            continue
        late = (at(event) - at(event, "planned_time")).total_seconds()
        allowed = DEFAULT_PUNCTUALITY_TOLERANCE[event["mode"]].total_seconds()
        verdict = "late" if late > allowed else "early" if late < -allowed else "on_time"
        verdicts[event["route"], event["milestone"], event["location"]][verdict] += 1

    # Planned times come from version 2 producers: not from the road operator's departures (version 1), nor
    # from Vietnam Railways' arrivals in Hanoi.
    assert set(verdicts) == {
        (RAIL_SEA, "departed", "CNCKG"), (RAIL_SEA, "arrived", "CNQZH"), (RAIL_SEA, "departed", "CNQZH"),
        (RAIL_SEA, "arrived", "SGSIN"), ("CNQZH-SGSIN", "departed", "CNQZH"), ("CNQZH-SGSIN", "arrived", "SGSIN"),
        ("CNCKG-LAVTE", "departed", "CNCKG"), ("CNCKG-LAVTE", "arrived", "LAVTE"), ("CNCKG-VNHAN", "departed", "CNCKG"),
        ("CNCKG-SGSIN", "arrived", "SGSIN"),
    }
    for (route, milestone, location), counted in verdicts.items():
        assert counted["on_time"] / counted.total() > 0.75, (route, milestone, counted)
        if location == route[-5:]:  # at the destination: a minority late, the slips of every leg added up
            assert 0.05 < counted["late"] / counted.total() < 0.25, (route, milestone, counted)


def untagged(events: list[Event]) -> list[Event]:
    """The events with their run's tag taken out of their ids (a scenario has its own)."""
    return [event | {"event_id": re.sub(r"-[0-9a-f]{8}-", "-", event["event_id"]),
                     "shipment_id": re.sub(r"-[0-9a-f]{8}-", "-", event["shipment_id"])} for event in events]


def teu_departed(events: list[Event]) -> Counter[str]:
    return Counter({
        route: sum(e["teu"] for e in events if e["route"] == route and e["milestone"] == "departed"
                   and e.get("location", e["origin"]) == e["origin"] and at(e) < START + SCENARIO_SPAN)
        for route in {e["route"] for e in events}
    })


@pytest.mark.parametrize("scenario", ["congestion", "delays"])
def test_a_slip_leaves_the_baseline_as_it_was_before_its_moment_and_the_teu_departed_as_it_is(
    scenario: str, baseline: list[Event], request: pytest.FixtureRequest
) -> None:
    slipped: list[Event] = request.getfixturevalue(scenario)
    moment = START + SLIP_AFTER

    before = untagged([event for event in baseline if at(event) < moment])
    assert untagged([event for event in slipped if at(event) < moment]) == before
    assert teu_departed(slipped) == teu_departed(baseline)
    assert untagged([e for e in slipped if e["milestone"] in ("booked", "cancelled")]) == untagged(
        [e for e in baseline if e["milestone"] in ("booked", "cancelled") and at(e) < START + SCENARIO_SPAN])


def test_congestion_holds_every_sailing_from_qinzhou_after_its_moment_two_days_longer(
    baseline: list[Event], baseline_journeys: dict[str, Journey], congestion: list[Event]
) -> None:
    moment, slipped = START + SLIP_AFTER, journeys(congestion)
    compared = 0
    for number, journey in slipped.items():
        if "departed/CNQZH" not in journey or "arrived/CNQZH" not in journey:
            continue
        usual = baseline_journeys[number]
        dwell, usual_dwell = (days(j["arrived/CNQZH"], j["departed/CNQZH"]) for j in (journey, usual))
        if at(usual["departed/CNQZH"]) >= moment:
            assert dwell == pytest.approx(usual_dwell + 2, abs=SECOND)
            compared += 1
        else:
            assert dwell == usual_dwell
        # The plans stay as they were: the later sailing is late, and so is the arrival in Singapore.
        assert journey["departed/CNQZH"]["planned_time"] == usual["departed/CNQZH"]["planned_time"]
        if "arrived" in journey:
            voyage = days(journey["departed/CNQZH"], journey["arrived"])
            assert voyage == pytest.approx(days(usual["departed/CNQZH"], usual["arrived"]), abs=SECOND)
            assert journey["arrived"]["planned_time"] == usual["arrived"]["planned_time"]
    assert compared > 500
    # Nothing sails from Qinzhou for two days after the moment; the direct sailings of CNQZH-SGSIN keep their times.
    sailings = [at(e) for e in congestion if e["event_id"].endswith("/departed/CNQZH")]
    assert not [sailed for sailed in sailings if moment <= sailed < moment + 2 * DAY]
    assert untagged([e for e in congestion if e["route"] == "CNQZH-SGSIN"]) == untagged(
        [e for e in baseline if e["route"] == "CNQZH-SGSIN" and at(e) < START + SCENARIO_SPAN])


def test_delays_make_every_sea_leg_sailing_after_its_moment_two_days_longer(
    baseline_journeys: dict[str, Journey], delays: list[Event]
) -> None:
    moment, slipped = START + SLIP_AFTER, journeys(delays)
    compared = {RAIL_SEA: 0, "CNQZH-SGSIN": 0}
    for number, journey in slipped.items():
        route = journey[next(iter(journey))]["route"]
        if route not in compared or "arrived" not in journey:
            continue
        sails = "departed/CNQZH" if route == RAIL_SEA else "departed"
        if sails not in journey:
            continue  # under way at the start
        usual = baseline_journeys[number]
        voyage, usual_voyage = (days(j[sails], j["arrived"]) for j in (journey, usual))
        if at(usual[sails]) >= moment:
            assert voyage == pytest.approx(usual_voyage + 2, abs=SECOND)
            compared[route] += 1
        else:
            assert voyage == usual_voyage
        assert journey[sails]["event_time"] == usual[sails]["event_time"]  # the sailing leaves on time
        assert journey["arrived"]["planned_time"] == usual["arrived"]["planned_time"]
    assert compared[RAIL_SEA] > 200 and compared["CNQZH-SGSIN"] > 50
