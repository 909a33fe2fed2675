"""The scoring half of the alert-quality evaluation: for:, detections, rule levels, the plan, the report."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streams.evaluation.history import Drop
from streams.evaluation.quality import (
    ANY,
    ANY_TIME,
    DAY,
    HOUR,
    ROUTES,
    Detection,
    Firing,
    Plan,
    Report,
    SlipDetection,
    detections,
    firing_time,
    firings,
    markdown,
    referenced,
    rule_levels,
    slip_detections,
    summary_rows,
)

STEP = 300
ROUTE = (("route", "CNCKG-LAVTE"),)


def points(*moments: int) -> dict:
    return {ROUTE: [(float(moment), 1.0) for moment in moments]}


def test_an_expression_fires_once_it_held_for_its_for():
    episodes = firings("A", points(0, 300, 600, 900, 1200), STEP, 900)
    assert episodes == [Firing("A", ROUTE, 0.0, 900.0, 1200.0)]


def test_a_missed_evaluation_resets_the_pending_alert():
    assert firings("A", points(0, 300, 600, 1200, 1500), STEP, 900) == []
    # ... and a firing one ends; a new episode needs its for: again.
    episodes = firings("A", points(0, 300, 900, 1200), STEP, 300)
    assert [(e.pending_at, e.firing_at, e.until) for e in episodes] == [(0, 300, 300), (900, 1200, 1200)]


def test_for_zero_fires_at_once_and_each_label_set_is_its_own():
    series = {ROUTE: [(0.0, 1.0)], (("route", "CNQZH-SGSIN"),): [(300.0, 1.0), (600.0, 1.0)]}
    episodes = firings("A", series, STEP, 0)
    assert [(e.label("route"), e.firing_at) for e in episodes] == [("CNCKG-LAVTE", 0), ("CNQZH-SGSIN", 300)]


def test_firing_time_is_the_union_of_the_episodes_within_the_range():
    episodes = [Firing("A", ROUTE, 0, 600, 900), Firing("A", (("route", "x"),), 0, 900, 1500),
                Firing("A", ROUTE, 3000, 3300, 9000)]
    assert firing_time(episodes, 0, 6000, STEP) == (1800 - 600) + (6000 - 3300)


def test_a_drop_is_detected_by_the_first_firing_on_its_route_within_the_horizon():
    drop = Drop("CNCKG-LAVTE", 0.8, timedelta(hours=10), timedelta(hours=24))
    start = 1_000_000.0
    cut = start + 10 * HOUR
    episodes = [
        Firing("A", ROUTE, cut - 3600, cut - 600, cut),  # before the cut: not a detection
        Firing("B", (("route", "CNQZH-SGSIN"),), cut, cut + 600, cut + 900),  # another route
        Firing("A", ROUTE, cut + 3000, cut + 3600, cut + 7200),
        Firing("B", ROUTE, cut + 7000, cut + 7200, cut + 9000),
        Firing("C", ROUTE, cut + 30 * HOUR, cut + 30 * HOUR, cut + 31 * HOUR),  # past the horizon
    ]
    found = {d.alert: d.delay for d in detections(["A", "B", "C"], [drop], episodes, start, 24 * HOUR, seed=1)}
    assert found == {"A": 3600, "B": 7200, "C": None, ANY: 3600}


def test_rule_levels_order_recording_rules_and_find_the_raw_series():
    recording = {
        "r:a:sum": ['sum by (route) (corridor_shipment_teu_window{window="5m"})'],
        "r:b:expected": ["r:a:sum offset 1w"],
        "r:c:spread": ["stddev_over_time(r:b:expected[1w])", "r:a:sum"],
        "r:unused:sum": ["sum(corridor_flights_window)"],
    }
    levels, raw = rule_levels(["r:c:spread > 1 and corridor_finance_usd_window > 0"], recording)
    assert [sorted(level) for level in levels] == [["r:a:sum"], ["r:b:expected"], ["r:c:spread"]]
    assert raw == {"corridor_shipment_teu_window", "corridor_finance_usd_window"}


def test_rule_levels_refuse_a_loop():
    with pytest.raises(ValueError, match="loop"):
        rule_levels(["a:b:c"], {"a:b:c": ["d:e:f"], "d:e:f": ["a:b:c"]})


def test_referenced_skips_label_values_and_templates():
    names = referenced('sum(corridor_x_window{route="corridor_not_a_metric"}) + on (route) y:z:w `q:r:s`')
    assert {"corridor_x_window", "y:z:w", "sum", "route"} <= names
    assert "corridor_not_a_metric" not in names and "q:r:s" not in names


def test_the_plan_spreads_each_routes_drops_over_the_hours_of_the_week():
    plan = Plan(weeks=4)
    drops = plan.drops(seed=1)
    assert len(drops) == len(ROUTES) * 3
    for route in ROUTES:
        mine = sorted((d for d in drops if d.route == route), key=lambda d: d.at)
        assert sorted(d.fraction for d in mine) == [0.5, 0.8, 1.0]
        week_hours = sorted((d.at - plan.warmup).total_seconds() / HOUR % 168 for d in mine)
        # Neither last week's nor the seasonal weeks' baseline of one drop holds another.
        gaps = [b - a for a, b in zip(week_hours, [*week_hours[1:], week_hours[0] + 168])]
        assert min(gaps) >= plan.horizon.total_seconds() / HOUR + 24
        assert all(d.end <= plan.duration for d in mine)
    assert {d.at for d in drops} != {d.at for d in plan.drops(seed=2)}


def test_a_short_plan_still_fits_its_drops():
    plan = Plan(weeks=1, routes=("CNCKG-CNQZH-SGSIN",), fractions=(0.8, 1.0))
    assert all(drop.end <= plan.duration for drop in plan.drops(seed=3))
    assert [run.kind for run in plan.runs()] == ["baseline", "drops", "covid-2020"]


@pytest.mark.parametrize("change, message", [
    ({"weeks": 0}, "weeks"),
    ({"routes": ("CNCKG-XXXXX",)}, "unknown routes"),
    ({"fractions": (0.0,)}, "fractions"),
    ({"weeks": 1, "fractions": (0.5, 0.6, 0.7, 0.8)}, "do not fit"),
])
def test_the_plan_refuses_what_it_cannot_run(change, message):
    with pytest.raises(ValueError, match=message):
        Plan(**change)


def report() -> Report:
    plan = Plan(weeks=1, routes=("CNCKG-CNQZH-SGSIN", "CNCKG-LAVTE"), fractions=(0.5, 0.8), covid=False)
    result = Report(plan, ["A"])
    delays = {("CNCKG-CNQZH-SGSIN", 0.5): 5000.0, ("CNCKG-LAVTE", 0.5): None,
              ("CNCKG-CNQZH-SGSIN", 0.8): 1800.0, ("CNCKG-LAVTE", 0.8): 3000.0}
    for (route, fraction), delay in delays.items():
        drop = Drop(route, fraction, timedelta(days=40), timedelta(hours=24))
        result.detections += [Detection("A", 1, drop, delay), Detection(ANY, 1, drop, delay)]
    result.false_firings["baseline"] = [Firing("A", ROUTE, 0, 0, 0)]
    result.weeks["baseline"] = 1
    result.evaluated_seconds["baseline"] = 7 * 24 * HOUR
    result.firing_seconds[("baseline", "A")] = 7 * 24 * HOUR / 10
    return result


def test_the_report_checks_the_targets_it_covers():
    targets = report().targets()
    assert [(met, detail) for _, met, detail in targets] == [
        (False, "1 of 2 drops"), (True, "2 of 2 drops"), (False, "1 firings")
    ]
    assert report().per_week("baseline", "A") == 1 and report().per_week("covid-2020", "A") is None


def test_summary_rows_per_fraction_and_route_and_the_markdown():
    rows = summary_rows(report(), "A")
    assert rows[0] == {"drop": "50%", "route": "CNCKG-CNQZH-SGSIN", "drops": 1, "fastest": "1.4h",
                       "median": "1.4h", "slowest": "1.4h", "missed": 0}
    assert rows[2]["route"] == "all routes" and rows[2]["missed"] == 1
    text = markdown(report(), "corridor alerts evaluate --weeks 1")
    assert "`corridor alerts evaluate --weeks 1`" in text
    assert "| A | 1/2: 1.4h | 2/2: 0.7h (0.5-0.8h) | 1.00 (10%) |" in text
    assert "| CNCKG-LAVTE | 0/1 | 1/1: 0.8h |" in text
    assert "- NOT met: 0 false firings in 1 weeks of baseline (1 firings)" in text
    silent = report()
    silent.alerts.append("B")
    assert "| B | - | - | 0.00 |" in markdown(silent, "c")


def test_a_slip_is_found_by_the_first_firing_of_a_time_alert_on_a_route_it_slows_within_the_horizon():
    moment = 2_000_000.0
    rail_sea, sea, hanoi = (("route", "CNCKG-CNQZH-SGSIN"),), (("route", "CNQZH-SGSIN"),), (("route", "CNCKG-VNHAN"),)
    episodes = [
        Firing("T", rail_sea, moment - DAY, moment - DAY, moment),  # before the slip: not a finding
        Firing("O", hanoi, moment + DAY, moment + DAY, moment + 2 * DAY),  # a route the slip does not slow
        Firing("O", sea, moment + 7 * DAY, moment + 7 * DAY, moment + 8 * DAY),
        Firing("T", rail_sea, moment + 8 * DAY, moment + 8 * DAY, moment + 9 * DAY),
        Firing("S", rail_sea, moment + 11 * DAY, moment + 11 * DAY, moment + 12 * DAY),  # past the horizon
    ]
    congestion = {d.alert: d.delay for d in slip_detections(["T", "O", "S"], "congestion", episodes, moment,
                                                            10 * DAY, seed=1)}
    assert congestion == {"T": 8 * DAY, "O": None, "S": None, ANY_TIME: 8 * DAY}
    delays = {d.alert: d.delay for d in slip_detections(["T", "O"], "delays", episodes, moment, 10 * DAY, seed=1)}
    assert delays == {"T": 8 * DAY, "O": 7 * DAY, ANY_TIME: 7 * DAY}  # delays slows both sea routes


def test_slip_runs_come_once_with_their_own_warm_up_and_the_plan_refuses_unknown_ones():
    plan = Plan(weeks=1, seeds=(1, 2), routes=(), fractions=(), covid=False, slips=("congestion", "delays"))
    runs = [(run.kind, run.config.seed) for run in plan.runs()]
    assert runs == [("baseline", 1), ("congestion", 1), ("delays", 1), ("baseline", 2)]
    congestion = plan.runs()[1]
    assert congestion.slip and congestion.config.slip_after == plan.slip_warmup
    assert congestion.config.families == ("shipments",)
    with pytest.raises(ValueError, match="unknown slip scenarios"):
        Plan(slips=("flood",))


def test_the_report_scores_the_slips_and_counts_time_alerts_apart_from_the_volume_ones():
    result = report()
    result.time_alerts, result.slip_alerts = ["T", "F"], ["T"]
    result.slip_detections = [SlipDetection("T", "congestion", 1, 8 * DAY),
                              SlipDetection(ANY_TIME, "congestion", 1, 8 * DAY),
                              SlipDetection("T", "delays", 1, None), SlipDetection(ANY_TIME, "delays", 1, None)]
    result.false_firings["baseline"].append(Firing("T", ROUTE, 0, 0, 1))
    assert result.per_week("baseline", "T") == 1
    assert result.per_week("baseline", ANY) == 1  # the volume alerts' firings only
    targets = {target: (met, detail) for target, met, detail in result.targets()}
    assert targets["congestion found by a time alert within 10 days"] == (True, "1 of 1 runs")
    assert targets["delays found by a time alert within 10 days"] == (False, "0 of 1 runs")
    text = markdown(result, "c")
    assert "| T | 8.0 days | missed | 1.00 |" in text
    assert "| F | - | - | 0.00 |" in text  # watches flights: no slip is its job
