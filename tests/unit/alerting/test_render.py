"""The checked-in rule files are what the code renders from the default thresholds."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.alerting.rules import render
from streams.alerting.thresholds import PROFILES

ALERTS = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts"


def test_committed_alert_files_match_the_rendered_ones():
    rendered = render(PROFILES["default"])
    committed = {path.name: path.read_text(encoding="utf-8") for path in ALERTS.glob("*.yml")}
    assert committed == rendered, "run `corridor alerts render` and commit deploy/prometheus/alerts/"


def test_every_alert_carries_severity_summary_description_runbook_and_for():
    for profile in PROFILES.values():
        for text in render(profile).values():
            for group in yaml.safe_load(text)["groups"]:
                for rule in group["rules"]:
                    assert rule["for"] and rule["labels"]["severity"] in {"critical", "warning", "info"}, rule
                    annotations = rule["annotations"]
                    assert annotations["summary"] and annotations["description"], rule
                    assert annotations["runbook_url"].endswith("#" + rule["alert"].lower()), rule
