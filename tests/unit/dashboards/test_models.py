"""The rendered dashboards: in sync with their generators, portable between Grafanas, drawn with
the alerts' own thresholds and runbooks, with a heatmap per histogram, in the time zone of the build."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

import dashboards
from streams.alerting.records import (
    DWELL_BUCKET_INCREASE1D,
    EVENT_DELAY_BUCKET_RATE5M,
    FLIGHT_ARRIVAL_DELAY_BUCKET_RATE1H,
    FLIGHT_DELAY_BUCKET_RATE1H,
    LATENCY_BUCKET_RATE5M,
    TRANSIT_BUCKET_INCREASE1D,
)
from streams.alerting.rules import alert_rules
from streams.alerting.thresholds import PROFILES, Thresholds
from streams.alerting.transit import transit_baseline
from streams.cli import cli
from streams.core.families import FLIGHT_PUNCTUALITY
from tests.dashboard_queries import parse
from tests.unit.dashboards.grafana_units import known

MODELS = dashboards.load()


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a JSON model."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in model["panels"] if panel["type"] != "row"]


def test_the_rendered_json_matches_the_generators():
    assert dashboards.stale() == [], "run `corridor dashboards build` and commit dashboards/json"
    assert set(MODELS) == set(dashboards.render())


def test_stale_names_a_changed_a_missing_and_an_extra_file(tmp_path):
    models = dashboards.render()
    dashboards.write(tmp_path, models)
    assert dashboards.stale(tmp_path, models) == []
    (tmp_path / "corridor-flights.json").write_text("{}\n")
    (tmp_path / "corridor-finance.json").unlink()
    (tmp_path / "old.json").write_text("{}\n")
    assert dashboards.stale(tmp_path, models) == ["corridor-finance.json", "corridor-flights.json", "old.json"]
    dashboards.write(tmp_path, models)
    assert dashboards.stale(tmp_path, models) == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_uid_is_stable_and_names_the_file(name):
    assert MODELS[name]["uid"] == name
    assert "id" not in MODELS[name] or MODELS[name]["id"] is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_datasource_is_the_datasource_variable(name):
    model = MODELS[name]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    refs = [value for key, value in walk(model) if key == "datasource"]
    assert refs, "panels name their datasource"
    assert all(ref == {"type": "prometheus", "uid": "${datasource}"} for ref in refs), refs
    text = json.dumps(model)
    assert "corridor-prometheus" not in text  # the provisioned datasource's uid stays out of the models


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_panel_has_a_query_a_unit_and_a_description(name):
    for panel in panels(MODELS[name]):
        assert panel["targets"], panel["title"]
        assert all(target["expr"] for target in panel["targets"])
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel.get("description"), panel["title"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_label_variables_default_to_all(name):
    for variable in MODELS[name]["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["includeAll"] and variable["multi"] and variable["allValue"] == ".*"
            assert variable["datasource"]["uid"] == "${datasource}"


def test_template_variables_cover_corridor_route_link_and_instrument():
    names = {name: {v["name"] for v in model["templating"]["list"]} for name, model in MODELS.items()}
    assert {"datasource", "corridor", "route"} <= names["corridor-overview"]
    assert {"datasource", "route"} <= names["corridor-flights"]
    assert {"datasource", "instrument"} <= names["corridor-finance"]
    assert {"datasource", "link"} <= names["corridor-datachannel"]
    assert {"datasource", "cluster", "namespace", "family"} <= names["corridor-ingest"]
    assert {"datasource", "corridor", "route", "mode"} <= names["corridor-transit"]


def test_the_ingest_dashboard_selects_the_ingest_and_keeps_the_deployment_labels():
    t = PROFILES["default"]
    for item in panels(MODELS["corridor-ingest"]):
        for target in item["targets"]:
            assert t.ingest_selector in target["expr"], item["title"]
            assert 'cluster=~"$cluster", namespace=~"$namespace"' in target["expr"], item["title"]
            assert "sum by (" not in target["expr"] or "sum by (cluster, namespace" in target["expr"], item["title"]


def runbook_urls(model: dict[str, Any]) -> set[str]:
    return {link["url"] for panel in panels(model) for link in panel.get("links", [])}


def test_every_alert_has_its_runbook_linked_from_a_panel():
    t = PROFILES["default"]
    linked = set().union(*(runbook_urls(model) for model in MODELS.values()))
    for rule in alert_rules(t):
        assert rule["annotations"]["runbook_url"] in linked, rule["alert"]


def test_firing_alerts_are_annotations_on_every_dashboard():
    alerts = {rule["alert"] for rule in alert_rules(PROFILES["default"])}
    shown = set()
    for model in MODELS.values():
        (annotation,) = [a for a in model["annotations"]["list"] if a["name"] == "Firing alerts"]
        assert annotation["enable"] and annotation["expr"].startswith("ALERTS{")
        shown.update(name for alert in alerts if alert in annotation["expr"] for name in [alert])
    assert shown == alerts


def threshold_values(panel: dict[str, Any]) -> list[float]:
    return [step["value"] for step in panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
            if step["value"] is not None]


def panel(model: str, title: str) -> dict[str, Any]:
    (found,) = [p for p in panels(MODELS[model]) if p["title"] == title]
    return found


def test_thresholds_come_from_the_alert_config():
    t = PROFILES["default"]
    assert threshold_values(panel("corridor-flights", "Weekly operated flights against the schedule")) == [
        t.weekly_flights_schedule["CKG-SIN"]]
    assert threshold_values(panel("corridor-overview", "24h volume against a week earlier")) == [
        t.volume_drop_fraction["shipments"]]
    assert threshold_values(panel("corridor-pipeline", "Share rejected")) == [t.dead_letters_fraction]
    assert threshold_values(panel("corridor-pipeline", "Restore time")) == [t.restore_slow_s]
    assert threshold_values(panel("corridor-ingest", "Server errors (5xx but 503)")) == [
        t.ingest_server_errors_fraction]
    assert threshold_values(panel("corridor-ingest", "Undelivered (503)")) == [t.ingest_undelivered_fraction]
    assert threshold_values(panel("corridor-ingest", "Rate-limited (429)")) == [t.ingest_rate_limited_fraction]
    assert threshold_values(panel("corridor-ingest", "Answer time percentiles")) == [t.ingest_slow_p99_s]
    assert threshold_values(panel("corridor-ingest", "Replicas up")) == [1]
    assert threshold_values(panel("corridor-transit", "Transit time against the week before")) == [
        t.transit_time_factor]
    assert threshold_values(panel("corridor-transit", "Arrivals on time per route")) == [t.on_time_target]
    assert threshold_values(panel("corridor-transit", "Overdue shipments per route")) == [t.overdue_min_shipments]
    assert threshold_values(panel("corridor-transit", "Overdue per shipment in transit, per route")) == [
        t.overdue_fraction]
    assert threshold_values(panel("corridor-transit", "Flights on time per route, last 7 days")) == [
        t.flights_late_target]
    silent = panel("corridor-pipeline", "Since the newest event")["fieldConfig"]["overrides"]
    assert {o["matcher"]["id"] for o in silent} == {"byRegexp"}
    for legend in ("{stream}", "{stream} prod corridor", "{stream}  "):  # with the deployment labels or without
        by_stream = {stream: o["properties"][0]["value"]["steps"][1]["value"] for o in silent
                     for stream in t.stream_silent_s
                     if re.fullmatch(o["matcher"]["options"], legend.format(stream=stream))}
        assert by_stream == t.stream_silent_s


def test_a_changed_threshold_changes_the_panels():
    t = PROFILES["default"]
    changed = Thresholds(**{**t.model_dump(), "weekly_flights_schedule": {"CKG-SIN": 21}, "volume_period_s": 86400})
    flights = dashboards.render(changed)["corridor-flights"]
    (weekly,) = [p for p in panels(flights) if p["title"] == "Weekly operated flights against the schedule"]
    assert threshold_values(weekly) == [21]
    overview = json.dumps(dashboards.render(changed)["corridor-overview"])
    assert "offset 1d" in overview and "offset 7d" not in overview


def test_panels_do_not_overlap():
    for name, model in MODELS.items():
        cells: set[tuple[int, int]] = set()
        for item in model["panels"]:
            grid = item["gridPos"]
            area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & area, f"{name}: {item['title']} overlaps another panel"
            assert grid["x"] + grid["w"] <= 24
            cells |= area


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_panel_unit_is_one_grafana_knows(name):
    units = {panel["title"]: panel["fieldConfig"]["defaults"]["unit"] for panel in panels(MODELS[name])}
    assert {title: unit for title, unit in units.items() if not known(unit)} == {}


def test_an_unknown_unit_is_refused():
    assert not known("kg") and not known("suffix:") and not known("TEU")
    assert known("masskg") and known("suffix:TEU") and known("currencyUSD")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_time_series_show_gaps_as_gaps(name):
    series = [panel for panel in panels(MODELS[name]) if panel["type"] == "timeseries"]
    assert series and all(panel["fieldConfig"]["defaults"]["custom"]["spanNulls"] is False for panel in series)


@pytest.mark.parametrize(("name", "record"), [
    ("corridor-pipeline", EVENT_DELAY_BUCKET_RATE5M),
    ("corridor-flights", FLIGHT_DELAY_BUCKET_RATE1H),
    ("corridor-datachannel", LATENCY_BUCKET_RATE5M),
])
def test_each_histogram_has_a_heatmap_of_its_buckets(name, record):
    (heatmap,) = [panel for panel in panels(MODELS[name]) if panel["type"] == "heatmap"]
    (target,) = heatmap["targets"]
    assert target["format"] == "heatmap" and target["legendFormat"] == "{{le}}"
    tree = parse(target["expr"])
    while not hasattr(tree, "modifier") or tree.modifier is None:  # sum by (le) (...), perhaps scaled
        tree = tree.lhs
    assert list(tree.modifier.labels) == ["le"] and tree.expr.name == record
    options = heatmap["options"]
    assert options["calculate"] is False and options["rowsFrame"]["layout"] == "le"
    assert options["yAxis"]["unit"] == "s"


def test_transit_time_is_drawn_with_the_alerts_line_and_a_heatmap_per_route():
    t = PROFILES["default"]
    percentiles = panel("corridor-transit", "Transit time percentiles per route")
    line = percentiles["targets"][-1]["expr"]
    assert line == f"{t.transit_time_factor:g} * {transit_baseline(t, deployment_selected(line))}"
    maps = {p["title"]: p for p in panels(MODELS["corridor-transit"]) if p["type"] == "heatmap"}
    assert set(maps) == {"Transit time distribution: $route", "Dwell at Qinzhou (CNQZH) distribution"}
    assert maps["Transit time distribution: $route"]["repeat"] == "route"
    for heatmap, record in zip(maps.values(), (TRANSIT_BUCKET_INCREASE1D, DWELL_BUCKET_INCREASE1D), strict=True):
        (target,) = heatmap["targets"]
        assert target["format"] == "heatmap" and target["expr"].startswith(f"sum by (le) ({record}{{")
        assert heatmap["options"]["yAxis"]["unit"] == "s"


def deployment_selected(expr: str) -> str:
    """The matchers inside the first selector of ``expr``."""
    return expr[expr.index("{") + 1:expr.index("}")]


def test_the_committed_dashboards_open_in_china_time():
    assert dashboards.DEFAULT_TIMEZONE == "Asia/Shanghai"
    assert {model["timezone"] for model in MODELS.values()} == {"Asia/Shanghai"}


@pytest.mark.parametrize("timezone", ["browser", "utc", "Asia/Singapore"])
def test_the_time_zone_is_a_setting_of_the_build(tmp_path, timezone):
    result = CliRunner().invoke(cli, ["dashboards", "build", "--out", str(tmp_path / "json"), "--configmap",
                                      str(tmp_path / "configmap.yaml"), "--timezone", timezone])
    assert result.exit_code == 0, result.output
    built = dashboards.load(tmp_path / "json")
    assert set(built) == set(MODELS)
    assert {model["timezone"] for model in built.values()} == {timezone}
    assert f'"timezone": "{timezone}"' in (tmp_path / "configmap.yaml").read_text()
    # Nothing else differs from the committed dashboards.
    assert {name: {**model, "timezone": "Asia/Shanghai"} for name, model in built.items()} == MODELS


def test_an_unknown_time_zone_is_refused():
    result = CliRunner().invoke(cli, ["dashboards", "build", "--check", "--timezone", "China/Chongqing"])
    assert result.exit_code == 2 and "not a time zone: 'China/Chongqing'" in result.output
    with pytest.raises(ValueError, match="not a time zone"):
        dashboards.render(timezone="UTC+8")


@pytest.mark.parametrize(("title", "record"), [
    ("Arrival delay percentiles", FLIGHT_ARRIVAL_DELAY_BUCKET_RATE1H),
    ("Departure delay percentiles", FLIGHT_DELAY_BUCKET_RATE1H),
])
def test_each_flight_delay_panel_reads_its_own_histogram(title, record):
    targets = panel("corridor-flights", title)["targets"]
    assert [target["legendFormat"] for target in targets] == ["p50", "p90", "p99"]
    assert all(f"sum by (le) ({record}{{" in target["expr"] for target in targets)
    other = ({FLIGHT_ARRIVAL_DELAY_BUCKET_RATE1H, FLIGHT_DELAY_BUCKET_RATE1H} - {record}).pop()
    assert not any(other in target["expr"] for target in targets)


def test_flights_on_time_are_the_arrivals_within_15_minutes_out_of_arrivals_and_cancellations():
    on_time = panel("corridor-flights", "On time (OAG, arrivals within 15 min)")
    (target,) = on_time["targets"]
    assert on_time["fieldConfig"]["defaults"]["unit"] == "percentunit" and target["instant"]
    assert "{{service}}" in target["legendFormat"]
    # (on_time, or 0 while flights were counted and none was on time) / every flight counted, per service
    tree = parse(target["expr"])
    assert str(tree.op) == "/" and str(tree.lhs.expr.op) == "or"
    numerator, counted = tree.lhs.expr.lhs, tree.rhs
    for aggregate in (numerator, counted):
        assert list(aggregate.modifier.labels) == ["cluster", "namespace", "service"]
    assert f'{FLIGHT_PUNCTUALITY.name}_total' in str(counted) and 'punctuality="on_time"' in str(numerator)
    assert "punctuality=" not in str(counted) and "[$__range]" in target["expr"]
