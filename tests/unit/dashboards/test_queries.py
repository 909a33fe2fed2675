"""Every query of every rendered dashboard, read as a PromQL syntax tree: it selects the deployments
the dashboard's variables choose and keeps them apart, and it reads counters only through rate()
or increase() (tests/dashboard_queries.py says the rules).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import dashboards
from streams.alerting.thresholds import PROFILES, Thresholds
from tests.dashboard_queries import deployment_problems, label_values, raw_counter_problems

MODELS = dashboards.load()
T = PROFILES["default"]


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row carries its panels


def panel_queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every target."""
    return [(panel["title"], target["expr"]) for panel in panels(model) for target in panel.get("targets", [])]


def annotation_queries(model: dict[str, Any]) -> list[str]:
    return [annotation["expr"] for annotation in model["annotations"]["list"] if annotation.get("expr")]


def query_variables(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [variable for variable in model["templating"]["list"] if variable["type"] == "query"]


def all_problems(model: dict[str, Any], t: Thresholds) -> dict[str, list[str]]:
    """Each query that loses the deployment, by where it is, with what is wrong in it."""
    found = {f"panel {title!r}: {expr}": deployment_problems(expr, t) for title, expr in panel_queries(model)}
    found.update({f"annotation: {expr}": deployment_problems(expr, t) for expr in annotation_queries(model)})
    labels = list(t.deployment_labels)
    for variable in query_variables(model):
        selector, _ = label_values(variable["query"]["query"])
        # A deployment variable lists its label's values among the deployments chosen before it.
        chosen = labels[:labels.index(variable["name"])] if variable["name"] in labels else labels
        found[f"variable ${variable['name']}: {selector}"] = deployment_problems(selector, t, chosen)
    return {where: problems for where, problems in found.items() if problems}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_query_selects_and_keeps_apart_the_chosen_deployments(name):
    assert panel_queries(MODELS[name]) and annotation_queries(MODELS[name])
    assert all_problems(MODELS[name], T) == {}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_deployment_variables_come_first_each_narrowed_by_the_one_before(name):
    variables = MODELS[name]["templating"]["list"]
    assert [v["name"] for v in variables[:3]] == ["datasource", "cluster", "namespace"]
    cluster, namespace = (v["query"]["query"] for v in variables[1:3])
    assert cluster == 'label_values(up{job="corridor-worker"}, cluster)'
    assert namespace == 'label_values(up{job="corridor-worker", cluster=~"$cluster"}, namespace)'
    assert all(v["includeAll"] and v["allValue"] == ".*" for v in variables[1:3])


def test_the_deployment_labels_are_the_configured_ones():
    t = Thresholds(deployment_labels=("k8s_cluster",))
    models = dashboards.render(t)
    for name, model in models.items():
        assert all_problems(model, t) == {}, name
        assert [v["name"] for v in model["templating"]["list"][:2]] == ["datasource", "k8s_cluster"]
        text = json.dumps(model)
        assert "$namespace" not in text and "$cluster" not in text


@pytest.mark.parametrize(("query", "complaint"), [
    ('sum(stream:corridor_events_received:rate5m{namespace=~"$namespace"})', 'cluster=~"$cluster"'),
    ('sum(stream:corridor_events_received:rate5m{cluster=~".*", namespace=~"$namespace"})', 'cluster=~"$cluster"'),
    ('sum by (route) (corridor_route_mode:corridor_shipment_teu:rate1h{cluster=~"$cluster", namespace=~"$namespace"})',
     "sum by (route)"),
    ('sum by (cluster, le) (stream_le:corridor_event_delay_seconds_bucket:rate5m{cluster=~"$cluster", '
     'namespace=~"$namespace"})', "sum by (cluster, le)"),
    ('sum without (namespace) (stream:corridor_events_received:rate5m{cluster=~"$cluster", namespace=~"$namespace"})',
     "without (namespace)"),
    ('up{cluster=~"$cluster", namespace=~"$namespace"}', 'selects neither the workers'),
    ('sum by (cluster, namespace) (up{job="corridor-worker", cluster=~"$cluster", namespace=~"$namespace"}) / on '
     '(cluster) sum by (cluster, namespace) (up{job="corridor-worker", cluster=~"$cluster", namespace=~"$namespace"})',
     "on (cluster)"),
    ('up{job="corridor-worker", cluster=~"$cluster", namespace=~"$namespace"} / ignoring (namespace) '
     'up{job="corridor-worker", cluster=~"$cluster", namespace=~"$namespace"}', "ignoring (namespace)"),
    ('ALERTS{alertstate="firing"}', 'cluster=~"$cluster", namespace=~"$namespace"'),
])
def test_a_query_that_loses_the_deployment_is_caught(query, complaint):
    problems = deployment_problems(query, T)
    assert problems and any(complaint in problem for problem in problems), problems


@pytest.mark.parametrize("query", [
    'sum(stream:corridor_events_received:rate5m{cluster=~"$cluster", namespace=~"$namespace"})',
    'histogram_quantile(0.9, sum by (le) (stream_le:corridor_event_delay_seconds_bucket:rate5m{cluster=~"$cluster", '
    'namespace=~"$namespace"}))',
    'sum by (namespace, cluster, route) (rate(corridor_shipments_total{job="corridor-worker", cluster=~"$cluster", '
    'namespace=~"$namespace"}[$__rate_interval]))',
    'up{job="corridor-worker", cluster=~"$cluster", namespace=~"$namespace"} / on (cluster, namespace, instance) '
    'up{job="corridor-ingest", cluster=~"$cluster", namespace=~"$namespace"}',
])
def test_a_query_that_keeps_the_deployment_passes(query):
    assert deployment_problems(query, T) == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_panel_reads_a_raw_counter(name):
    found = {f"{title!r}: {expr}": problems for title, expr in panel_queries(MODELS[name])
             if (problems := raw_counter_problems(expr))}
    assert found == {}


@pytest.mark.parametrize("query", [
    'sum(corridor_finance_usd_total{instrument=~"$instrument"})',
    'sum by (instrument) (corridor_finance_usd_total)',
    'corridor_events_accepted_total',
    'histogram_quantile(0.9, sum by (le) (corridor_flight_delay_seconds_bucket))',
    'sum(corridor_flight_delay_seconds_sum) / sum(corridor_flight_delay_seconds_count)',
    'max_over_time(corridor_shipment_teu_total[1h])',
    'rate(sum without (owner) (corridor_events_accepted_total)[5m:])',
    'sum(rate(corridor_events_accepted_total[5m])) / sum(corridor_events_received_total)',
])
def test_a_raw_counter_read_outside_a_rate_is_caught(query):
    assert raw_counter_problems(query), query


@pytest.mark.parametrize("query", [
    'sum(increase(corridor_finance_usd_total{instrument=~"$instrument"}[$__range]))',
    'sum by (le) (rate(corridor_flight_delay_seconds_bucket[5m] offset 1w))',
    'sum(irate(corridor_events_accepted_total[1m]))',
    'sum(instrument:corridor_finance_usd:rate1h)',
    'sum(corridor_finance_usd_window{window="7d"})',
])
def test_a_counter_read_through_a_rate_passes(query):
    assert raw_counter_problems(query) == []
