"""The checked-in recording-rule files are what the code renders."""

from __future__ import annotations

from pathlib import Path

import yaml

from streams.alerting.records import RECORD_NAMES, files, render
from streams.alerting.thresholds import PROFILES

DEFAULT = PROFILES["default"]

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules"


def test_committed_recording_rule_files_match_the_rendered_ones():
    committed = {path.name: path.read_text(encoding="utf-8") for path in RULES.glob("*.yml")}
    assert committed == render(DEFAULT), "run `corridor alerts render` and commit deploy/prometheus/rules/"


def test_the_rendered_yaml_holds_each_rule_as_declared():
    for name, text in render(DEFAULT).items():
        _, groups = files(DEFAULT)[name]
        loaded = yaml.safe_load(text)["groups"]
        assert [group["name"] for group in loaded] == [group.name for group in groups]
        for group, declared in zip(loaded, groups, strict=True):
            assert [(rule["record"], rule["expr"].strip()) for rule in group["rules"]] == [
                (record.name, record.expr) for record in declared.records
            ]


def test_recording_rules_are_named_level_metric_operation_once_each():
    names = [record.name for _, groups in files(DEFAULT).values() for group in groups for record in group.records]
    assert len(names) == len(RECORD_NAMES)
    assert all(len(name.split(":")) == 3 for name in names), names
