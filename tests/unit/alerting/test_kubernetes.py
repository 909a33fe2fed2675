"""The PrometheusRule in deploy/k8s/base is the rule files, and `corridor alerts render` keeps it so."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from streams.alerting import kubernetes
from streams.cli import cli

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "rules"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts"
COMMITTED = ROOT / "deploy" / "k8s" / "base" / "prometheus-rules.yaml"


def test_committed_prometheus_rule_matches_the_rule_files():
    assert COMMITTED.read_text(encoding="utf-8") == kubernetes.render((RULES, ALERTS)), (
        "run `corridor alerts render` and commit deploy/k8s/base/prometheus-rules.yaml")


def test_prometheus_rule_groups_are_the_rule_files_groups_in_order():
    rule = yaml.safe_load(kubernetes.render((RULES, ALERTS)))
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    expected = [group for folder in (RULES, ALERTS) for path in sorted(folder.glob("*.yml"))
                for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]]
    assert rule["spec"]["groups"] == expected
    assert {group["name"] for group in expected} >= {"corridor-volume", "corridor-pipeline"}


def test_expressions_keep_the_literal_block_style_of_the_rule_files():
    text = kubernetes.render((RULES, ALERTS))
    assert "expr: |" in text and "\\n" not in text


def test_repeated_group_names_are_refused(tmp_path):
    for name in ("a.yml", "b.yml"):
        (tmp_path / name).write_text("groups:\n- name: same\n  rules: []\n")
    with pytest.raises(ValueError, match="same"):
        kubernetes.rule_groups([tmp_path])


def render_into(tmp_path: Path, *options: str) -> tuple[Path, str]:
    target = tmp_path / "k8s" / "prometheus-rules.yaml"
    arguments = ["alerts", "render", str(tmp_path / "alerts"), "--rules-dir", str(tmp_path / "rules"),
                 "--prometheus-rule", str(target), *options]
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 0, result.output
    return target, result.output


def test_alerts_render_writes_the_committed_prometheus_rule(tmp_path):
    (tmp_path / "k8s").mkdir()
    target, output = render_into(tmp_path)
    assert str(target) in output
    assert target.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_alerts_render_skips_the_prometheus_rule_without_its_folder_or_with_test_thresholds(tmp_path):
    target, _ = render_into(tmp_path)
    assert not target.parent.exists()
    (tmp_path / "k8s").mkdir()
    target, _ = render_into(tmp_path, "--profile", "test")
    assert not target.exists()
    written = sorted(path.name for path in (tmp_path / "alerts").glob("*.yml"))
    assert written == ["datachannel.yml", "health.yml", "ingest.yml", "pipeline.yml", "transit.yml", "volume.yml"]
