"""The Prometheus and Alertmanager files in deploy/: promtool and amtool accept them, the rule
unit tests pass, and every alert has its "not yet", "fires" and "must not fire" cases."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from streams.alerting.rules import render
from streams.alerting.thresholds import PROFILES
from tests.integration.prometheus import job_of

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"


def run(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def rule_files(folder: str) -> list[str]:
    files = sorted(str(path) for path in (PROMETHEUS / folder).glob("*.yml"))
    assert files, f"no rule files in deploy/prometheus/{folder}"
    return files


@pytest.mark.parametrize("folder", ["rules", "alerts"])
def test_promtool_accepts_every_rule_file(promtool_bin, folder):
    result = run(promtool_bin, "check", "rules", *rule_files(folder))
    assert result.returncode == 0, result.stdout + result.stderr


RULE_TESTS = sorted(path.name for path in (PROMETHEUS / "tests").glob("*.yml"))


@pytest.fixture(scope="module")
def rule_test_results(promtool_bin) -> dict[str, tuple[int, str]]:
    """Every promtool rule test file's exit code and output. The files are independent, so they
    run side by side (each promtool is one process on one core), two at a time."""
    def one(test_file: str) -> tuple[int, str]:
        result = run(promtool_bin, "test", "rules", str(PROMETHEUS / "tests" / test_file))
        return result.returncode, result.stdout + result.stderr

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(RULE_TESTS, pool.map(one, RULE_TESTS), strict=True))


@pytest.mark.parametrize("test_file", RULE_TESTS)
def test_promtool_rule_tests_pass(rule_test_results, test_file):
    returncode, output = rule_test_results[test_file]
    assert returncode == 0, output


def test_promtool_accepts_the_prometheus_configuration(promtool_bin):
    """deploy/prometheus/prometheus.yml, with the rule and alert files it names."""
    result = run(promtool_bin, "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_configuration_scrapes_the_jobs_the_alerts_watch():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {scrape["job_name"] for scrape in config["scrape_configs"]}
    assert job_of(PROFILES["default"].worker_selector) in jobs
    assert job_of(PROFILES["default"].ingest_selector) in jobs


def test_amtool_accepts_the_alertmanager_configuration(amtool_bin):
    result = run(amtool_bin, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=CorridorWorkerDown", "severity=critical"], "page"),
    (["alertname=CorridorStateGap", "severity=warning", "stream=shipments"], "ticket"),
    (["alertname=CorridorBuildInfo", "severity=info"], "ticket"),
    (["alertname=Unknown"], "ticket"),
])
def test_alerts_are_routed_by_severity(amtool_bin, labels, receiver):
    result = run(amtool_bin, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_alert_has_not_yet_firing_and_quiet_cases():
    """At least three promtool cases per alert over deploy/prometheus/tests, one of them firing and
    one expecting nothing (before for: elapses, or a case that must not fire)."""
    cases: dict[str, list[int]] = defaultdict(list)  # alertname -> alerts expected by each case
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for group in yaml.safe_load(path.read_text()).get("tests", []):
            for case in group.get("alert_rule_test", []):
                cases[case["alertname"]].append(len(case.get("exp_alerts") or []))
    alerts = {
        rule["alert"]
        for text in render(PROFILES["default"]).values()
        for group in yaml.safe_load(text)["groups"]
        for rule in group["rules"]
    }
    assert alerts
    thin = {name: cases[name] for name in sorted(alerts)
            if len(cases[name]) < 3 or 0 not in cases[name] or max(cases[name]) == 0}
    assert not thin, f"alerts without three cases, one firing and one quiet (expected alerts per case): {thin}"
