"""The alerts of time on the corridor: what each compares, with every threshold from Thresholds, read
from the recording rules of corridor-transit.yml (deploy/prometheus/tests/transit_test.yml and
overdue_test.yml show them firing and not)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from streams.alerting import records, transit
from streams.alerting.thresholds import PROFILES
from streams.evaluation.quality import recording_rules, referenced

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules"
ROUTE = "cluster, namespace, corridor, route, mode"


def by_name(rules: list[dict]) -> dict[str, dict]:
    return {rule["alert"]: rule for rule in rules}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_four_alerts_are_rendered_as_warnings(profile):
    rules = by_name(transit.rules(PROFILES[profile]))
    assert set(rules) == {"CorridorTransitTimeHigh", "CorridorShipmentsOverdue", "CorridorOnTimeShareLow",
                          "CorridorFlightsLate"}
    assert {rule["labels"]["severity"] for rule in rules.values()} == {"warning"}


def test_the_default_expressions():
    rules = by_name(transit.rules(PROFILES["default"]))
    day = records.TRANSIT_BUCKET_INCREASE1D
    # The day's arrivals, and the first day's of the week before: a route younger than that week has seen
    # only its quicker shipments arrive in it.
    assert rules["CorridorTransitTimeHigh"]["expr"] == (
        f"histogram_quantile(0.5, {day})\n"
        f"> 1.15 * histogram_quantile(0.5, {records.TRANSIT_BUCKET_INCREASE1D_AVG1W} offset 1d)\n"
        f'and on ({ROUTE})\n{day}{{le="+Inf"}} >= 20\n'
        f'and on ({ROUTE})\n{day}{{le="+Inf"}} offset 8d >= 20'
    )
    overdue, in_transit = records.OVERDUE_SUM, records.IN_TRANSIT_SUM
    assert rules["CorridorShipmentsOverdue"]["expr"] == (
        f"{overdue} >= 10\nand on ({ROUTE})\n{overdue}\n> 0.1 * (\n  {in_transit}\nor\n  0 * {overdue}\n)"
    )
    assert rules["CorridorOnTimeShareLow"]["expr"] == (
        f"{records.ARRIVED_ON_TIME_RATIO1D} < 0.6\nand on ({ROUTE})\n"
        f'sum by ({ROUTE}) ({records.PUNCTUALITY_INCREASE1D}{{milestone="arrived"}}) >= 20'
    )
    assert rules["CorridorFlightsLate"]["expr"] == (
        f"{records.FLIGHT_ON_TIME_RATIO1W} < 0.4\nand on (cluster, namespace, route)\n"
        f"sum by (cluster, namespace, route) ({records.FLIGHT_PUNCTUALITY_INCREASE1W}) >= 7"
    )
    assert {rule["for"] for rule in rules.values()} == {"1h"}


def test_thresholds_change_the_expressions_and_the_words():
    changed = PROFILES["default"].model_copy(update={
        "transit_time_quantile": 0.75, "transit_time_factor": 1.5, "transit_time_min_arrivals": 50,
        "overdue_min_shipments": 25, "overdue_fraction": 0.2, "on_time_target": 0.65, "flights_late_target": 0.6,
        "flights_late_min_flights": 2, "transit_time_for_s": 7200,
    })
    rules = by_name(transit.rules(changed))
    slow = rules["CorridorTransitTimeHigh"]
    assert "histogram_quantile(0.75, " in slow["expr"] and "> 1.5 * " in slow["expr"]
    assert slow["expr"].count(">= 50") == 2
    assert "the p75 transit time" in slow["annotations"]["description"] and slow["for"] == "2h"
    overdue = rules["CorridorShipmentsOverdue"]["expr"]
    assert ">= 25" in overdue and "> 0.2 * (" in overdue
    assert "< 0.65\n" in rules["CorridorOnTimeShareLow"]["expr"]
    assert "below 65%" in rules["CorridorOnTimeShareLow"]["annotations"]["summary"]
    assert rules["CorridorFlightsLate"]["expr"].startswith(f"{records.FLIGHT_ON_TIME_RATIO1W} < 0.6\n")
    assert rules["CorridorFlightsLate"]["expr"].endswith(" >= 2")


def test_the_alerts_read_recording_rules_only_evaluated_every_minute():
    recorded = recording_rules(RULES)
    for rule in transit.rules(PROFILES["default"]):
        names = referenced(rule["expr"])
        assert not {name for name in names if name.startswith("corridor_") and ":" not in name}, rule["alert"]
        assert all(name in recorded for name in names if ":" in name), rule["alert"]
    document = yaml.safe_load((RULES / "corridor-transit.yml").read_text(encoding="utf-8"))
    assert [group["interval"] for group in document["groups"]] == [records.TRANSIT_INTERVAL] == ["1m"]


def test_counters_and_histograms_are_increased_per_series_then_summed():
    # A partition moving to another owner starts a new series: increase() of each, then the sum.
    _, groups = records.files(PROFILES["default"])["corridor-transit.yml"]
    raw = [record.expr for group in groups for record in group.records if re.search(r"_(bucket|total)\{", record.expr)]
    assert len(raw) == 5
    for expr in raw:
        assert re.fullmatch(r'sum by \(cluster, namespace, [\w, ]+\) \(increase\(corridor_\w+\{job="corridor-worker"\}'
                            r"\[1[dw]\]\)\)", expr), expr


def test_quantiles_are_named_as_people_say_them():
    assert transit.quantile_name(0.5) == "median"
    assert transit.quantile_name(0.75) == "p75"
    assert transit.quantile_name(0.9) == "p90"
