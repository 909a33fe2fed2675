"""Thresholds of one's own in the deployments: the compose override and the dev-thresholds overlay.

- Docker Compose: docker-compose accepts compose.yaml with compose.thresholds.yaml; its one-shot
  services run `corridor alerts render --config` and `corridor dashboards build --config` on the
  mounted file (deploy/config/thresholds.yaml, or $CORRIDOR_THRESHOLDS) into volumes that
  Prometheus and Grafana mount where compose.yaml mounted the repository's folders. The services'
  commands are run here on the host with their mounts laid out in a folder, and Prometheus' compose
  configuration with the rendered rules passes `promtool check config`.
- Kubernetes: `kustomize build` renders deploy/k8s/overlays/dev-thresholds, whose PrometheusRule
  and dashboards' ConfigMap are those rendered from its thresholds.yaml, and every object validates.

Missing docker-compose, promtool or kustomize skip these tests (or fail them under
CORRIDOR_REQUIRE_PROMETHEUS=1), as in test_deploy.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

import dashboards
from streams.alerting import records
from streams.alerting.config import load
from streams.alerting.kubernetes import rule_groups
from streams.alerting.rules import render as render_alerts
from streams.cli import cli
from tests.integration.prometheus import require_tool
from tests.integration.test_deploy import (
    COMPOSE_FILE,
    DEPLOY,
    K8S,
    KUBERNETES_VERSION,
    OPERATOR_KINDS,
    check_operator_object,
    corridor_command,
    docker_compose,
    kustomize,
    kustomize_build,
    run,
)

pytestmark = pytest.mark.integration

OVERRIDE = DEPLOY / "compose" / "compose.thresholds.yaml"
EXAMPLE = DEPLOY / "config" / "thresholds.yaml"
OVERLAY = K8S / "overlays" / "dev-thresholds"
RENDERERS = {"alert-rules": ("alerts", "render"), "dashboards": ("dashboards", "build")}

__all__ = ["docker_compose", "kustomize"]  # fixtures, used by name


def compose_config(docker_compose: str, thresholds: Path | None) -> dict[str, Any]:
    environment = {key: value for key, value in os.environ.items() if key != "CORRIDOR_THRESHOLDS"}
    if thresholds is not None:
        environment["CORRIDOR_THRESHOLDS"] = str(thresholds)
    result = subprocess.run([docker_compose, "-f", str(COMPOSE_FILE), "-f", str(OVERRIDE), "config"],
                            capture_output=True, text=True, timeout=120, check=False, env=environment)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> the named volume or host path mounted there."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
        found[target] = source
    return found


def on_host(source: str, volumes: Path) -> Path:
    return Path(source) if source.startswith("/") else volumes / source


def run_renderers(config: dict[str, Any], volumes: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each renderer's command on the host, its container paths replaced by their mounts; return
    the thresholds file they read."""
    read = set()
    # The image's working directory holds nothing: no repository file is in reach of the defaults.
    workdir = volumes.parent / "workdir"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    for name, verb in RENDERERS.items():
        service = config["services"][name]
        assert tuple(service["command"][:2]) == verb, name
        assert service.get("user") in ("0", "0:0"), f"{name} writes into fresh volumes, which are root's"
        assert service.get("restart", "no") == "no", f"{name}: a refused file does not get better on a retry"
        paths = mounts(service)
        arguments = []
        for argument in service["command"]:
            target = next((target for target in paths if argument == target or argument.startswith(target + "/")),
                          None)
            if target is not None:
                argument = str(on_host(paths[target], volumes)) + argument.removeprefix(target)
            arguments.append(argument)
        corridor_command(arguments)
        read.add(Path(arguments[arguments.index("--config") + 1]))
        result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 0, f"{name}: {result.output}"
    assert not list(workdir.iterdir()), "a renderer wrote into the image's working directory"
    (thresholds,) = read
    return thresholds


@pytest.mark.parametrize("own_file", [False, True], ids=["default", "CORRIDOR_THRESHOLDS"])
def test_compose_override_renders_the_rules_and_dashboards_prometheus_and_grafana_read(
        docker_compose, tmp_path, monkeypatch, own_file):
    promtool = require_tool("promtool")
    own = tmp_path / "mine.yaml"
    own.write_text("dead_letters_fraction: 0.1\nsilent_for_s: 600\n", encoding="utf-8")
    config = compose_config(docker_compose, own if own_file else None)
    base = yaml.safe_load(run([docker_compose, "-f", str(COMPOSE_FILE), "config"]))
    assert set(config["services"]) == set(base["services"]) | set(RENDERERS)

    volumes = tmp_path / "volumes"
    thresholds_file = run_renderers(config, volumes, monkeypatch)
    assert thresholds_file == (own if own_file else EXAMPLE)
    thresholds = load(thresholds_file)

    # Prometheus: the folders of its rule_files are the renderer's volumes, read once it is done.
    prometheus = config["services"]["prometheus"]
    assert prometheus["depends_on"]["alert-rules"]["condition"] == "service_completed_successfully"
    prometheus_mounts = mounts(prometheus)
    layout = tmp_path / "etc-prometheus"
    layout.mkdir()
    shutil.copy(prometheus_mounts["/etc/prometheus/prometheus.yml"], layout / "prometheus.yml")
    rule_files = yaml.safe_load((layout / "prometheus.yml").read_text(encoding="utf-8"))["rule_files"]
    for pattern in rule_files:
        folder = prometheus_mounts[f"/etc/prometheus/{Path(pattern).parent}"]
        assert folder in config["volumes"], f"{pattern} is read from {folder}, not from a rendered volume"
        shutil.copytree(volumes / folder, layout / Path(pattern).parent)
    assert {path.name: path.read_text(encoding="utf-8") for path in (layout / "alerts").glob("*.yml")} == (
        render_alerts(thresholds))
    assert {path.name: path.read_text(encoding="utf-8") for path in (layout / "rules").glob("*.yml")} == (
        records.render(thresholds))
    pipeline = (layout / "alerts" / "pipeline.yml").read_text(encoding="utf-8")
    assert ("> 0.1\n" in pipeline) is own_file
    assert "SUCCESS" in run([promtool, "check", "config", str(layout / "prometheus.yml")])

    # Grafana: the provisioned folder and its home dashboard come from the dashboards' volume.
    grafana = config["services"]["grafana"]
    assert grafana["depends_on"]["dashboards"]["condition"] == "service_completed_successfully"
    (provider,) = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "corridor.yaml").read_text(
        encoding="utf-8"))["providers"]
    folder = mounts(grafana)[provider["options"]["path"]]
    assert folder in config["volumes"]
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == Path(provider["options"]["path"]) and (volumes / folder / home.name).exists()
    rendered = {path.stem: path.read_text(encoding="utf-8") for path in (volumes / folder).glob("*.json")}
    assert rendered == {name: dashboards.dumps(model) for name, model in dashboards.render(thresholds).items()}


def test_compose_override_with_a_refused_file_stops_before_writing(docker_compose, tmp_path, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("silent_for: 600\n", encoding="utf-8")
    config = compose_config(docker_compose, bad)
    for name in RENDERERS:
        arguments = [str(bad) if argument == "/etc/corridor/thresholds.yaml" else
                     str(tmp_path / "out") if argument.startswith("/rendered/") else argument
                     for argument in config["services"][name]["command"]]
        result = CliRunner().invoke(cli, arguments)
        assert result.exit_code == 2 and "silent_for: unknown key (did you mean 'silent_for_s'?)" in result.output
        assert not (tmp_path / "out").exists()


# Kubernetes


@pytest.fixture(scope="module")
def overlay(kustomize: str) -> list[dict[str, Any]]:
    return kustomize_build(kustomize, "overlays/dev-thresholds")


def test_dev_thresholds_overlay_deploys_the_rules_and_dashboards_of_its_thresholds(overlay, tmp_path):
    thresholds = load(OVERLAY / "thresholds.yaml")
    (tmp_path / "alerts").mkdir()
    for name, text in render_alerts(thresholds).items():
        (tmp_path / "alerts" / name).write_text(text, encoding="utf-8")
    records.write(tmp_path / "rules", thresholds)
    (rule,) = [item for item in overlay if item["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == rule_groups((tmp_path / "rules", tmp_path / "alerts"))
    (configmap,) = [item for item in overlay if item["kind"] == "ConfigMap"
                    and item["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert configmap["data"] == {f"{name}.json": dashboards.dumps(model)
                                 for name, model in dashboards.render(thresholds).items()}
    # What the overlay changes is in them: its selector and its dead-letter threshold.
    expressions = [rule["expr"] for group in rule["spec"]["groups"] for rule in group["rules"]]
    assert any(thresholds.worker_selector in expr for expr in expressions)
    assert any(f"> {thresholds.dead_letters_fraction:g}\n" in expr for expr in expressions)


def test_dev_thresholds_overlay_is_the_dev_overlay_with_other_rules_and_dashboards(overlay, kustomize):
    dev = kustomize_build(kustomize, "overlays/dev")

    def key(item: dict[str, Any]) -> tuple[str, str]:
        return item["kind"], item["metadata"]["name"]
    replaced = {("PrometheusRule", "corridor-monitor"), ("ConfigMap", "corridor-dashboards")}
    assert sorted(map(key, overlay)) == sorted(map(key, dev))
    kept = [item for item in overlay if key(item) not in replaced]
    assert kept == [item for item in dev if key(item) not in replaced]
    for item in overlay:
        if key(item) in replaced:
            (before,) = [other for other in dev if key(other) == key(item)]
            assert item["metadata"] == before["metadata"], "the patches keep the names, labels and namespace"
        if item["kind"] in OPERATOR_KINDS:
            check_operator_object(item)
        else:
            kubernetes_validate.validate(item, KUBERNETES_VERSION, strict=True)

