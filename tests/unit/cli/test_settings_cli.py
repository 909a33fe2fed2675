"""``corridor --version`` and ``corridor settings``: the effective settings, secrets masked."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from streams.cli import cli
from streams.settings import Settings, get_settings

SECRET = "not-to-be-printed"  # noqa: S105 - a test value that must not appear


@pytest.fixture(autouse=True)
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_version_names_the_installed_release():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"corridor {version('corridor-monitor')}\n"


def test_settings_lists_every_setting_once_and_masks_secrets():
    env = {"CORRIDOR_KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092", "CORRIDOR_KAFKA_SASL_MECHANISM": "PLAIN",
           "CORRIDOR_KAFKA_SASL_USERNAME": "corridor", "CORRIDOR_KAFKA_SASL_PASSWORD": SECRET,
           "CORRIDOR_LATENESS_TOLERANCE": "PT10M"}
    result = CliRunner(env=env).invoke(cli, ["settings"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    lines = result.output.splitlines()
    names = [line.split("=", 1)[0] if "=" in line else line.split()[1] for line in lines]
    assert sorted(names) == sorted(f"CORRIDOR_{name.upper()}" for name in Settings.model_fields)
    assert "CORRIDOR_KAFKA_SASL_PASSWORD=**********" in lines
    assert "CORRIDOR_KAFKA_BOOTSTRAP=kafka-1:9092,kafka-2:9092" in lines
    assert "CORRIDOR_LATENESS_TOLERANCE=PT10M" in lines
    assert any(line.startswith("# CORRIDOR_REGISTRY_FILE unset") for line in lines)


def test_what_settings_prints_reads_back_as_the_same_settings(monkeypatch):
    """The output is an environment file: set from it, every setting but the masked secrets comes back equal."""
    env = {"CORRIDOR_KAFKA_BOOTSTRAP": "kafka:9092", "CORRIDOR_TOPIC_PARTITIONS": "8",
           "CORRIDOR_DEDUP_HORIZON": "P3D", "CORRIDOR_CHECKPOINT_INTERVAL_S": "2.5"}
    result = CliRunner(env=env).invoke(cli, ["settings"])
    assert result.exit_code == 0, result.output
    printed = dict(line.split("=", 1) for line in result.output.splitlines() if not line.startswith("#"))
    for name in list(printed):
        monkeypatch.setenv(name, printed[name])
    assert Settings() == Settings(**{k.removeprefix("CORRIDOR_").lower(): v for k, v in env.items()})


def test_settings_json_is_one_object_keyed_by_name():
    result = CliRunner(env={"CORRIDOR_KAFKA_SASL_PASSWORD": SECRET}).invoke(cli, ["settings", "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert set(values) == set(Settings.model_fields)
    assert values["kafka_sasl_password"] == "**********"  # noqa: S105 - the mask
