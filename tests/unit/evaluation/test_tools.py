"""Finding the Prometheus binaries (configured path, ./.tools/bin, PATH) and saying how when they are missing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import cli
from streams.evaluation.tools import ToolMissing, env_name, find_tool, require_tool
from streams.settings import Settings


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def empty_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "path"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_the_configured_binary_comes_first(tmp_path, empty_path):
    configured = executable(tmp_path / "custom" / "promtool")
    executable(tmp_path / "tools" / "promtool")
    settings = Settings(promtool_bin=str(configured))
    assert find_tool("promtool", settings, local=(tmp_path / "tools",)) == str(configured)


def test_a_configured_path_that_is_not_executable_is_not_replaced_by_another(tmp_path, empty_path):
    executable(tmp_path / "tools" / "promtool")
    settings = Settings(promtool_bin=str(tmp_path / "missing"))
    assert find_tool("promtool", settings, local=(tmp_path / "tools",)) is None
    with pytest.raises(ToolMissing, match=f"{env_name('promtool')}=.*missing is not an executable file"):
        require_tool("promtool", settings, local=(tmp_path / "tools",))


def test_then_the_project_tools_then_path(tmp_path, empty_path):
    settings = Settings(prometheus_bin="")
    on_path = executable(empty_path / "prometheus")
    assert find_tool("prometheus", settings, local=(tmp_path / "tools",)) == str(on_path)
    local = executable(tmp_path / "tools" / "prometheus")
    assert find_tool("prometheus", settings, local=(tmp_path / "tools",)) == str(local)


def test_a_missing_tool_says_how_to_get_it(tmp_path, empty_path):
    with pytest.raises(ToolMissing, match="bootstrap.sh.*CORRIDOR_AMTOOL_BIN"):
        require_tool("amtool", Settings(), local=(tmp_path / "tools",))
    with pytest.raises(ValueError, match="unknown tool"):
        find_tool("grafana")


def test_evaluate_without_promtool_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CORRIDOR_PROMTOOL_BIN", str(tmp_path / "nowhere" / "promtool"))
    result = CliRunner().invoke(cli, ["alerts", "evaluate", "--weeks", "1"])
    assert result.exit_code == 1
    assert "CORRIDOR_PROMTOOL_BIN=" in result.output and "is not an executable file" in result.output


def test_evaluate_refuses_a_plan_it_cannot_run(monkeypatch, tmp_path):
    for tool in ("promtool", "prometheus"):
        monkeypatch.setenv(env_name(tool), str(executable(tmp_path / tool)))
    result = CliRunner().invoke(cli, ["alerts", "evaluate", "--routes", "CNCKG-NOWHERE"])
    assert result.exit_code == 2 and "unknown routes" in result.output
