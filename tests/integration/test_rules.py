"""The Prometheus rules in deploy/prometheus: promtool accepts them and their unit tests pass."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_every_rule_file(promtool_bin):
    files = sorted(str(path) for path in (DEPLOY / "rules").glob("*.yml"))
    assert files, "no rule files"
    result = promtool(promtool_bin, "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", sorted(path.name for path in (DEPLOY / "tests").glob("*.yml")))
def test_promtool_rule_tests_pass(promtool_bin, test_file):
    result = promtool(promtool_bin, "test", "rules", str(DEPLOY / "tests" / test_file))
    assert result.returncode == 0, result.stdout + result.stderr
