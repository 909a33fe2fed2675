"""A thresholds file: its keys override a profile, the model refuses what it would refuse, and the
alert rules and dashboards rendered with it carry its values; the committed example is the model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from streams.alerting.config import ConfigError, example, load, parse
from streams.alerting.thresholds import PROFILES, Thresholds
from streams.cli import cli

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "config" / "thresholds.yaml"
DEPLOY = ROOT / "deploy"
OVERLAY = DEPLOY / "k8s" / "overlays" / "dev-thresholds"


def write(tmp_path: Path, text: str, name: str = "thresholds.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def invoke(*arguments: str) -> Result:
    return CliRunner().invoke(cli, list(arguments))


def render(tmp_path: Path, *options: str) -> Result:
    """`corridor alerts render` and `corridor dashboards build` into ``tmp_path``, with ``options`` each."""
    (tmp_path / "k8s").mkdir(exist_ok=True)
    result = invoke("alerts", "render", str(tmp_path / "alerts"), "--rules-dir", str(tmp_path / "rules"),
                    "--prometheus-rule", str(tmp_path / "k8s" / "prometheus-rules.yaml"), *options)
    if result.exit_code:
        return result
    return invoke("dashboards", "build", "--out", str(tmp_path / "dashboards"),
                  "--configmap", str(tmp_path / "k8s" / "grafana-dashboards.yaml"), *options)


def texts(directory: Path, pattern: str) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in directory.glob(pattern)}


def usage_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--config'" in result.output, result.output
    return result.output


# Loading


def test_an_empty_file_is_the_profile_it_overrides(tmp_path):
    assert load(write(tmp_path, "")) == PROFILES["default"]
    assert load(write(tmp_path, "# nothing changed\n"), PROFILES["test"]) == PROFILES["test"]


def test_the_file_s_keys_override_the_profile_and_the_rest_stays(tmp_path):
    path = write(tmp_path, "dead_letters_fraction: 0.1\nstream_silent_s: {shipments: 600}\n"
                           "deployment_labels: [cluster]\n")
    for base in PROFILES.values():
        loaded = load(path, base)
        assert loaded.dead_letters_fraction == 0.1 and loaded.deployment_labels == ("cluster",)
        # A mapping given replaces the profile's whole: the streams left out are not watched.
        assert loaded.stream_silent_s == {"shipments": 600}
        assert loaded.model_dump(exclude={"dead_letters_fraction", "stream_silent_s", "deployment_labels"}) == (
            base.model_dump(exclude={"dead_letters_fraction", "stream_silent_s", "deployment_labels"}))


@pytest.mark.parametrize(("text", "expected"), [
    ("silnt_for_s: 60\n", "thresholds.yaml:1: silnt_for_s: unknown key (did you mean 'silent_for_s'?)"),
    ("silent_for_s: 60\nwhatever: 1\n", "thresholds.yaml:2: whatever: unknown key (`corridor alerts config` lists"),
    ("silent_for_s: -5\n", "thresholds.yaml:1: silent_for_s: Input should be greater than 0; the file has -5"),
    ("stream_silent_s: {shipments: on}\n", "thresholds.yaml:1: stream_silent_s.shipments: on is a boolean here (YAML "
                                         "reads yes, no, on and off as booleans); quote it if it is a name, or give a "
                                         "whole number"),
    ("7: 1\n", "thresholds.yaml:1: 7: unknown key"),
    ("silent_for_s: 1.5\n", "thresholds.yaml:1: silent_for_s: Input should be a valid integer"),
    ("stream_silent_s:\n  shipments: 60\n  ships: 60\n", "thresholds.yaml:3: stream_silent_s.ships: not an event "
                                                           "family: ships (the families: shipments, flights"),
    ("volume_drop_fraction:\n  shipments: half\n", "thresholds.yaml:2: volume_drop_fraction.shipments: Input should "
                                                   "be a valid number"),
    ("deployment_labels: [cluster, kube-namespace]\n", "thresholds.yaml:1: deployment_labels: not a Prometheus label "
                                                       "name: 'kube-namespace'"),
    ("silent_for_s: 60\nsilent_for_s: 120\n", "thresholds.yaml:2: 'silent_for_s' repeats the key of line 1"),
    ("silent_for_s: 60\nstalled_for_s: [60\n", "thresholds.yaml:3: not valid YAML"),
    ("silent_for_s: 60\n  stalled_for_s: 60\n", "thresholds.yaml:2: not valid YAML"),
    ("- silent_for_s: 60\n", "thresholds.yaml: expected a mapping of threshold names to values, not a list"),
])
def test_a_file_the_thresholds_refuse_is_refused_naming_the_line_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load(path)
    assert str(refused.value).startswith(f"{path.parent}/{expected}"), str(refused.value)


def test_a_bad_value_says_what_the_key_is_and_its_default():
    with pytest.raises(ConfigError, match=r"silent_for_s: for: of CorridorStreamSilent; default 300\)$"):
        parse("silent_for_s: 0\n")
    with pytest.raises(ConfigError, match=r"default \{shipments: 0\.5, flights: 0\.5, finance: 0\.2, datachannel"):
        parse("volume_drop_fraction: {shipments: half}\n")


def test_every_refused_key_is_named_one_a_line():
    with pytest.raises(ConfigError) as refused:
        parse("silent_for_s: -1\nbogus: 1\nvolume_drop_fraction: {shipments: x}\n", source="t.yaml")
    lines = str(refused.value).splitlines()
    assert sorted(line.split(": ")[1] for line in lines) == ["bogus", "silent_for_s", "volume_drop_fraction.shipments"]


# The commented file of every key


def test_the_committed_example_is_what_corridor_alerts_config_prints():
    result = invoke("alerts", "config")
    assert result.exit_code == 0, result.output
    assert result.output == example() == EXAMPLE.read_text(encoding="utf-8"), (
        "run `corridor alerts config > deploy/config/thresholds.yaml`")


def test_the_example_has_every_field_under_its_description_and_loads_as_the_defaults():
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert list(document) == list(Thresholds.model_fields)
    assert load(EXAMPLE) == PROFILES["default"]
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for name, field in Thresholds.model_fields.items():
        (at,) = [number for number, line in enumerate(lines) if line.startswith(f"{name}:")]
        comment = []
        for line in reversed(lines[:at]):
            if not line.startswith("# "):
                break
            comment.insert(0, line.removeprefix("# "))
        assert " ".join(comment) == field.description, name


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_any_profile_printed_as_a_file_loads_back_as_itself(profile):
    assert parse(example(PROFILES[profile])) == PROFILES[profile]
    result = invoke("alerts", "config", "--profile", profile)
    assert result.exit_code == 0 and parse(result.output) == PROFILES[profile]


def test_alerts_config_prints_what_a_file_makes_of_the_profile(tmp_path):
    result = invoke("alerts", "config", "--profile", "test", "--config", str(write(tmp_path, "silent_for_s: 42\n")))
    assert result.exit_code == 0, result.output
    assert parse(result.output) == PROFILES["test"].model_copy(update={"silent_for_s": 42})


# `corridor alerts render --config` and `corridor dashboards build --config`


def test_an_empty_file_renders_exactly_the_committed_files(tmp_path):
    result = render(tmp_path, "--config", str(write(tmp_path, "")))
    assert result.exit_code == 0, result.output
    assert texts(tmp_path / "alerts", "*.yml") == texts(DEPLOY / "prometheus" / "alerts", "*.yml")
    assert texts(tmp_path / "rules", "*.yml") == texts(DEPLOY / "prometheus" / "rules", "*.yml")
    assert texts(tmp_path / "dashboards", "*.json") == texts(ROOT / "dashboards" / "json", "*.json")
    assert texts(tmp_path / "k8s", "*.yaml") == {
        name: (DEPLOY / "k8s" / "base" / name).read_text(encoding="utf-8")
        for name in ("prometheus-rules.yaml", "grafana-dashboards.yaml")}


def test_the_example_file_renders_exactly_the_committed_files(tmp_path):
    result = render(tmp_path, "--config", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    assert texts(tmp_path / "alerts", "*.yml") == texts(DEPLOY / "prometheus" / "alerts", "*.yml")
    assert texts(tmp_path / "dashboards", "*.json") == texts(ROOT / "dashboards" / "json", "*.json")


def share_rejected_threshold(dashboard: Path) -> float:
    model = json.loads(dashboard.read_text(encoding="utf-8"))
    (panel,) = [panel for panel in model["panels"] if panel.get("title") == "Share rejected"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return steps[-1]["value"]


def dead_letters_expr(alerts: Path) -> str:
    (group,) = yaml.safe_load((alerts / "pipeline.yml").read_text(encoding="utf-8"))["groups"]
    (rule,) = [rule for rule in group["rules"] if rule["alert"] == "CorridorDeadLettersRising"]
    return rule["expr"]


def test_a_threshold_from_the_file_is_in_the_alert_rule_the_prometheus_rule_and_the_dashboard(tmp_path):
    default = PROFILES["default"].dead_letters_fraction
    assert f"> {default:g}\n" in dead_letters_expr(DEPLOY / "prometheus" / "alerts")
    assert share_rejected_threshold(ROOT / "dashboards" / "json" / "corridor-pipeline.json") == default

    result = render(tmp_path, "--config", str(write(tmp_path, "dead_letters_fraction: 0.1\n")))
    assert result.exit_code == 0, result.output
    expr = dead_letters_expr(tmp_path / "alerts")
    assert "> 0.1\n" in expr and f"> {default:g}" not in expr
    assert share_rejected_threshold(tmp_path / "dashboards" / "corridor-pipeline.json") == 0.1
    rule = yaml.safe_load((tmp_path / "k8s" / "prometheus-rules.yaml").read_text(encoding="utf-8"))
    assert expr in [rule["expr"] for group in rule["spec"]["groups"] for rule in group["rules"]]
    configmap = yaml.safe_load((tmp_path / "k8s" / "grafana-dashboards.yaml").read_text(encoding="utf-8"))
    assert configmap["data"]["corridor-pipeline.json"] == (tmp_path / "dashboards" / "corridor-pipeline.json"
                                                           ).read_text(encoding="utf-8")


def test_a_selector_from_the_file_reaches_the_rules_and_the_dashboards(tmp_path):
    config = write(tmp_path, 'worker_selector: job="corridor-worker", env="staging"\n')
    assert render(tmp_path, "--config", str(config)).exit_code == 0
    assert 'up{job="corridor-worker", env="staging"}' in (tmp_path / "alerts" / "pipeline.yml").read_text()
    assert 'up{job=\\"corridor-worker\\", env=\\"staging\\"}' in (
        tmp_path / "dashboards" / "corridor-pipeline.json").read_text()


def test_the_file_overrides_the_chosen_profile(tmp_path):
    config = write(tmp_path, "dead_letters_fraction: 0.1\n")
    result = invoke("alerts", "render", str(tmp_path / "alerts"), "--rules-dir", str(tmp_path / "rules"),
                    "--profile", "test", "--config", str(config))
    assert result.exit_code == 0, result.output
    expected = PROFILES["test"].model_copy(update={"dead_letters_fraction": 0.1})
    from streams.alerting.rules import render as render_rules

    assert texts(tmp_path / "alerts", "*.yml") == render_rules(expected)


@pytest.mark.parametrize("command", [("alerts", "render"), ("dashboards", "build"), ("alerts", "config")])
@pytest.mark.parametrize(("text", "named"), [
    ("silnt_for_s: 60\n", "silnt_for_s: unknown key (did you mean 'silent_for_s'?)"),
    ("silent_for_s: -5\n", "silent_for_s: Input should be greater than 0"),
    ("stream_silent_s: {ships: 60}\n", "stream_silent_s.ships: not an event family: ships"),
    ("volume_drop_fraction: {shipments: half}\n", "volume_drop_fraction.shipments: Input should be a valid number"),
    ("dead_letters_fraction: [0.1\n", "thresholds.yaml:2: not valid YAML"),
])
def test_a_refused_file_exits_2_naming_the_key_and_writes_nothing(tmp_path, command, text, named):
    config = write(tmp_path, text)
    outputs = ["--out", str(tmp_path / "out")] if command[0] == "dashboards" else (
        [str(tmp_path / "out"), "--rules-dir", str(tmp_path / "out")] if command[1] == "render" else [])
    output = usage_error(invoke(*command, *outputs, "--config", str(config)))
    assert named in output
    assert not (tmp_path / "out").exists()


def test_alerts_evaluate_refuses_a_bad_file_before_it_simulates_anything(tmp_path):
    output = usage_error(invoke("alerts", "evaluate", "--workdir", str(tmp_path / "work"),
                                "--config", str(write(tmp_path, "silent_for_s: -5\n"))))
    assert "silent_for_s: Input should be greater than 0" in output
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("command", [("alerts", "render"), ("dashboards", "build"), ("alerts", "config"),
                                     ("alerts", "evaluate")])
def test_a_missing_file_exits_2_naming_the_path(tmp_path, command):
    missing = tmp_path / "no-such-thresholds.yaml"
    output = usage_error(invoke(*command, "--config", str(missing)))
    assert str(missing) in output


def test_the_overlay_s_rendered_files_are_committed_as_the_docs_render_them(tmp_path):
    """The commands of the overlay's kustomization.yaml, run: they write exactly the committed files."""
    thresholds = str(OVERLAY / "thresholds.yaml")
    for arguments in (
        ["alerts", "render", "--config", thresholds, str(tmp_path / "alerts"), "--rules-dir", str(tmp_path / "rules"),
         "--prometheus-rule", str(tmp_path / "prometheus-rules.yaml")],
        ["dashboards", "build", "--config", thresholds, "--out", str(tmp_path / "dashboards"),
         "--configmap", str(tmp_path / "grafana-dashboards.yaml")],
    ):
        result = invoke(*arguments)
        assert result.exit_code == 0, result.output
    for name in ("prometheus-rules.yaml", "grafana-dashboards.yaml"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (OVERLAY / name).read_text(encoding="utf-8"), (
            f"render {OVERLAY.relative_to(ROOT)}/{name} again: the commands are in its kustomization.yaml "
            "(or `make render`)")


def test_the_runbook_s_example_file_is_one_the_thresholds_take():
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    section = runbook[runbook.index("\n## Thresholds\n"):]
    start = section.index("```yaml\n") + len("```yaml\n")
    loaded = parse(section[start:section.index("```\n", start)], source="docs/runbook.md")
    assert loaded != PROFILES["default"] and "finance" not in loaded.stream_silent_s
