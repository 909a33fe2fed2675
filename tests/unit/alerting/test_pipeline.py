"""The pipeline alerts, the deploy configuration around them and the runbook agree with each other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from schemas.families import FAMILY_NAMES
from streams.alerting.alert import duration
from streams.alerting.pipeline import rules
from streams.alerting.rules import render
from streams.alerting.thresholds import PROFILES, Thresholds
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
PROMETHEUS_CONFIG = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
ALERTMANAGER_CONFIG = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "1s"), (90, "1m30s"), (3600, "1h"), (86400, "1d"), (90061, "1d1h1m1s")]
)
def test_duration_is_a_prometheus_duration(seconds, text):
    assert duration(seconds) == text


def test_a_duration_is_positive():
    with pytest.raises(ValueError, match="positive"):
        duration(0)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_stream_has_its_silence_rule(profile):
    thresholds = PROFILES[profile]
    assert set(thresholds.stream_silent_s) == set(FAMILY_NAMES)
    assert set(thresholds.key_silent_s) <= set(thresholds.stream_silent_s)
    silent = [rule for rule in rules(thresholds) if rule["alert"] == "CorridorStreamSilent"]
    assert [rule["labels"]["stream"] for rule in silent] == list(thresholds.stream_silent_s)


@pytest.mark.parametrize(
    "per_stream",
    [{"key_silent_s": {"shipment": 60}}, {"volume_drop_fraction": {"flight": 0.5}}, {"volume_drop_matchers": {"": ""}}],
)
def test_thresholds_refuse_a_per_stream_key_that_is_no_family(per_stream):
    with pytest.raises(ValueError, match="not an event family"):
        Thresholds(**per_stream)


def test_prometheus_scrapes_the_workers_as_the_alerts_and_the_workers_expect():
    jobs = {scrape["job_name"]: scrape for scrape in PROMETHEUS_CONFIG["scrape_configs"]}
    assert PROFILES["default"].worker_selector == 'job="corridor-worker"'
    workers = jobs["corridor-worker"]
    interval = workers.get("scrape_interval", PROMETHEUS_CONFIG["global"]["scrape_interval"])
    assert interval == duration(round(Settings().scrape_interval_s))
    assert PROMETHEUS_CONFIG["rule_files"] == ["rules/*.yml", "alerts/*.yml"]
    assert PROMETHEUS_CONFIG["alerting"]["alertmanagers"]


def test_every_threshold_is_documented_in_the_runbook():
    missing = [name for name in Thresholds.model_fields if f"`{name}`" not in RUNBOOK]
    assert not missing, f"docs/runbook.md, section Thresholds, lacks {missing}"


def runbook_sections() -> set[str]:
    return set(re.findall(r"^## (Corridor\w+)$", RUNBOOK, flags=re.MULTILINE))


def rendered_alerts() -> set[str]:
    return {rule["alert"] for text in render(PROFILES["default"]).values()
            for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}


def test_every_alert_has_its_runbook_section():
    # The 11 alerts of the contract, CorridorBookingsCancelled, the 5 of the ingest and the contract's later
    # ones (lag in seconds, checkpoints, dead letters unsent, data-channel latency and loss, transit time,
    # overdue shipments, on-time share, late flights), each with its section, and no section for none.
    assert rendered_alerts() == runbook_sections()
    assert len(rendered_alerts()) == 27


def test_inhibitions_name_alerts_of_the_runbook():
    named = set()
    for rule in ALERTMANAGER_CONFIG["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            name, _, value = matcher.partition("=")
            if name.rstrip("!~") == "alertname":
                named |= set(value.lstrip("~").strip('"').split("|"))
    assert named <= runbook_sections()
