"""Several deployments on one Prometheus: every rule selects its deployment's series and keeps
the labels that tell deployments apart (Thresholds.deployment_labels), in every profile and
with any labels and selectors the config names. The promtool test
deploy/prometheus/tests/deployments_test.yml shows an outage in one firing for that one only."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams.alerting import records
from streams.alerting.rules import alert_rules
from streams.alerting.thresholds import PROFILES, Thresholds
from tests.promql import deployment_problems

ALERTMANAGER = Path(__file__).resolve().parents[3] / "deploy" / "alertmanager" / "alertmanager.yml"

#: Another deployment layout: one label apart, and workers selected by two matchers.
REGIONS = Thresholds(
    deployment_labels=("region",), worker_selector='job="corridor", env="prod"', ingest_selector='job="ingest"'
)
CONFIGS = {**PROFILES, "regions": REGIONS}


def expressions(t: Thresholds) -> list[tuple[str, str]]:
    rules = [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules(t)]
    recorded = [
        (f"record {record.name}", record.expr)
        for _, groups in records.files(t).values()
        for group in groups
        for record in group.records
    ]
    return rules + recorded


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_rule_keeps_the_deployments_apart(config):
    t = CONFIGS[config]
    found = {
        name: problems
        for name, expr in expressions(t)
        if (problems := deployment_problems(expr, t.deployment_labels, [t.worker_selector, t.ingest_selector]))
    }
    assert not found


@pytest.mark.parametrize(
    "expr, problem",
    [
        ('sum by (stream) (rate(corridor_events_received_total{job="corridor-worker"}[5m]))', "drops cluster"),
        ('sum(rate(corridor_events_received_total{job="corridor-worker"}[5m]))', "no by clause"),
        ('sum without (namespace) (corridor_consumer_lag{job="corridor-worker"})', "drops namespace"),
        ("sum by (cluster, namespace, stream) (rate(corridor_events_received_total[5m]))", "without a deployment"),
        ("a:b:c > 1 and on (stream) d:e:f", "does not match on cluster, namespace"),
        ("a:b:c > 1 unless ignoring (cluster) d:e:f", "ignores cluster"),
    ],
)
def test_the_check_finds_a_rule_that_merges_deployments(expr, problem):
    t = PROFILES["default"]
    problems = deployment_problems(expr, t.deployment_labels, [t.worker_selector])
    assert any(problem in found for found in problems), problems


def test_the_selector_and_labels_come_from_the_config():
    text = "\n".join(expr for _, expr in expressions(REGIONS))
    assert 'job="corridor", env="prod"' in text and "region" in text
    assert "cluster" not in text and "namespace" not in text and "corridor-worker" not in text


def test_alertmanager_groups_and_inhibits_within_a_deployment():
    """A worker down in staging must not silence production's volume alerts, nor share its notification."""
    config = yaml.safe_load(ALERTMANAGER.read_text(encoding="utf-8"))
    labels = set(PROFILES["default"].deployment_labels)
    assert labels <= set(config["route"]["group_by"])
    assert config["inhibit_rules"]
    for rule in config["inhibit_rules"]:
        assert labels <= set(rule["equal"]), rule


@pytest.mark.parametrize("selector", ["job=corridor-worker", "", 'job="corridor-worker",', '{job="corridor-worker"}'])
def test_a_selector_that_is_not_label_matchers_is_refused(selector):
    with pytest.raises(ValueError, match="not a list of label matchers"):
        Thresholds(worker_selector=selector)
