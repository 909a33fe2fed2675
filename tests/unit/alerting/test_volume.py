"""The volume alerts: what each expression compares, with every threshold from Thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams.alerting import records, volume
from streams.alerting.thresholds import PROFILES, Thresholds
from streams.evaluation.quality import recording_rules, referenced

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules"
NAMES = {
    "CorridorVolumeDrop", "CorridorVolumeAnomaly", "CorridorRouteVanished", "CorridorBookingsCancelled",
    "CorridorWeeklyFlightsBelowSchedule", "CorridorDataChannelThroughputDrop",
}


def by_name(thresholds: Thresholds) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for rule in volume.rules(thresholds):
        found.setdefault(rule["alert"], []).append(rule)
    return found


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_alert_of_the_contract_is_rendered(profile):
    assert set(by_name(PROFILES[profile])) == NAMES


def test_volume_drop_has_one_rule_per_stream_with_its_window_fraction_and_minimum():
    thresholds = PROFILES["default"]
    drops = {rule["labels"]["stream"]: rule for rule in by_name(thresholds)["CorridorVolumeDrop"]}
    assert set(drops) == {"shipments", "flights", "finance", "datachannel"}
    shipments = drops["shipments"]["expr"]
    assert 'corridor_shipment_teu_window{job="corridor-worker", window="24h"}' in shipments
    assert "< 0.5 * sum by (cluster, namespace, corridor, route, mode)" in shipments
    assert "offset 7d" in shipments and ">= 100" in shipments
    assert 'instrument="trade_finance"' in drops["finance"]["expr"]
    assert drops["shipments"]["for"] == "30m"


def test_thresholds_change_the_expressions():
    changed = PROFILES["default"].model_copy(update={
        "volume_period_s": 3600,
        "volume_drop_fraction": {**PROFILES["default"].volume_drop_fraction, "shipments": 0.3},
        "volume_anomaly_deviations": 2.5,
        "weekly_flights_schedule": {"CKG-SIN": 2, "CKG-KUL": 7},
    })
    rules = by_name(changed)
    shipments = next(r for r in rules["CorridorVolumeDrop"] if r["labels"]["stream"] == "shipments")
    assert "< 0.3 * " in shipments["expr"] and "offset 1h" in shipments["expr"]
    assert "- 2.5 * corridor_route_mode:corridor_shipment_teu:seasonal6h_zscore_spread1w" in \
        rules["CorridorVolumeAnomaly"][0]["expr"]
    flights = rules["CorridorWeeklyFlightsBelowSchedule"][0]["expr"]
    assert 'route="CKG-SIN"}) < 2, "schedule", "2"' in flights
    assert 'route="CKG-KUL"}) < 7, "schedule", "7"' in flights


def test_windows_are_summed_over_workers_before_any_function_over_time():
    # A series that moves to another worker must not make a gap or a double: sum, then compare.
    for rules in by_name(PROFILES["default"]).values():
        for rule in rules:
            for selector in ("corridor_shipment_teu_window{", "corridor_datachannel_bytes_window{"):
                if selector in rule["expr"]:
                    assert "sum by (" in rule["expr"], rule["alert"]


def test_route_vanished_needs_a_silence_longer_than_its_window():
    with pytest.raises(ValueError, match="longer than route_vanished_window"):
        volume.route_vanished(PROFILES["default"].model_copy(update={"route_vanished_silent_s": 3600}))
    rule = volume.route_vanished(PROFILES["default"])
    teu_1h = 'corridor_shipment_teu_window{job="corridor-worker", window="1h"}'
    assert f"max_over_time({teu_1h}[5h])) == 0" in rule["expr"]
    assert 'corridor_shipment_teu_window{job="corridor-worker", window="24h"} offset 6h) >= 50' in rule["expr"]


def test_bookings_cancelled_compares_a_routes_cancellations_with_its_own_bookings_in_one_window():
    changed = PROFILES["default"].model_copy(update={
        "cancellations_window_s": 1800, "cancellations_min": 25, "cancellations_per_booking": 2.0,
        "cancellations_for_s": 600,
    })
    rule = volume.bookings_cancelled(changed)
    by = "cluster, namespace, corridor, route, mode"
    shipments = 'corridor_shipments_total{job="corridor-worker", milestone="%s"}'
    cancelled = f"sum by ({by}) (increase({shipments % 'cancelled'}[30m]))"
    booked = f"sum by ({by}) (increase({shipments % 'booked'}[30m]))"
    # increase() per series, then the sum: a partition moving to another owner starts a new series.
    assert rule["expr"] == f"{cancelled}\n>= 25\nand on ({by})\n{cancelled}\n> 2 * {booked}"
    assert rule["for"] == "10m"
    assert "over 2 cancellations per booking" in rule["annotations"]["summary"]
    assert "fewer than 25 cancellations never alert" in rule["annotations"]["description"]


def test_the_test_profile_is_short():
    test = PROFILES["test"]
    assert test.volume_period_s <= 600
    assert max(test.volume_drop_for_s, test.volume_anomaly_for_s, test.route_vanished_for_s,
               test.weekly_flights_for_s, test.throughput_drop_for_s, test.cancellations_for_s) <= 60
    assert set(test.volume_drop_window.values()) == {"5m"}


def test_every_recording_rule_the_alerts_read_exists():
    recorded = recording_rules(RULES)
    for rules in by_name(PROFILES["default"]).values():
        for rule in rules:
            for name in referenced(rule["expr"]):
                if ":" in name:
                    assert name in recorded, (rule["alert"], name)


def test_baseline_rules_are_named_level_metric_operation_and_read_summed_windows():
    document = yaml.safe_load((RULES / "corridor-baselines.yml").read_text(encoding="utf-8"))
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    baselines = {records.TEU_SUM6H, records.TEU_SEASONAL6H, records.TEU_SEASONAL6H_ZSCORE_SPREAD1W}
    assert {rule["record"] for rule in rules} >= baselines
    for rule in rules:
        assert len(rule["record"].split(":")) == 3, rule["record"]
        if "corridor_shipment_teu_window" in rule["expr"]:
            assert "sum by (cluster, namespace, corridor, route, mode) (corridor_shipment_teu_window" in rule["expr"]


def test_thresholds_are_readable_numbers_in_descriptions():
    assert volume._human(100) == "100"
    assert volume._human(5e6) == "5M"
    assert volume._human(1e11) == "100G"
