"""A real Prometheus server (Debian's `prometheus` package) for integration tests.

The binaries are looked for, in this order: the file named by ``CORRIDOR_PROMETHEUS_BIN`` /
``CORRIDOR_PROMTOOL_BIN`` (``CORRIDOR_ALERTMANAGER_BIN``, ``CORRIDOR_AMTOOL_BIN``), the
project's ``.tools/bin`` (where ``scripts/bootstrap.sh`` unpacks Debian's packages without
installing them), then ``PATH``. When a binary is missing
the test is skipped with the fix in its reason, unless ``CORRIDOR_REQUIRE_PROMETHEUS=1`` (set
by ``make test`` and ``.ci/run``): then it fails. The tests start their own Prometheus on a
free loopback port with a data directory of their own, and stop only what they started.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NoReturn

import pytest

from streams.evaluation import tools
from streams.process import ServerProcess, free_port
from streams.settings import Settings

#: The project's own folder of unpacked tools (scripts/bootstrap.sh).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = PROJECT_ROOT / ".tools" / "bin"

#: tool -> the environment variable naming its binary
TOOL_ENV = {
    "prometheus": "CORRIDOR_PROMETHEUS_BIN",
    "promtool": "CORRIDOR_PROMTOOL_BIN",
    "alertmanager": "CORRIDOR_ALERTMANAGER_BIN",
    "amtool": "CORRIDOR_AMTOOL_BIN",
}
REQUIRE_ENV = "CORRIDOR_REQUIRE_PROMETHEUS"


def find_tool(name: str) -> str | None:
    """The binary of ``name``: its environment variable, then .tools/bin, then PATH; or None."""
    return tools.find_tool(name, Settings(), local=(TOOLS_BIN,))


def prometheus_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def require_tool(name: str) -> str:
    """The binary of ``name``, or skip the test (fail it under CORRIDOR_REQUIRE_PROMETHEUS=1)."""
    binary = find_tool(name)
    if binary is not None:
        return binary
    env = TOOL_ENV[name]
    if os.environ.get(env):
        reason = f"{env}={os.environ[env]} is not an executable file"
    else:
        reason = (f"{name} not found in {TOOLS_BIN} or on PATH: run ./scripts/bootstrap.sh or make test "
                  f"to unpack Prometheus into .tools/, or set {env}")
    missing(reason)


def missing(reason: str) -> NoReturn:
    """Skips the test for a missing Prometheus piece, or fails it under CORRIDOR_REQUIRE_PROMETHEUS=1."""
    if prometheus_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this test may not be skipped)", pytrace=False)
    pytest.skip(reason)


def scrape_job(job: str, *groups: tuple[list[str], dict[str, str] | None]) -> dict:
    """One scrape configuration: each group's targets in ``job``, their series also carrying the group's
    labels (the deployment labels a service discovery would add, say)."""
    static = [{"targets": targets, **({"labels": labels} if labels else {})} for targets, labels in groups]
    return {"job_name": job, "static_configs": static}


class PrometheusServer:
    """Prometheus on a free loopback port scraping the given targets every second (job ``job``, their
    series carrying ``labels``; and the ``more_jobs`` of ``scrape_job``), evaluating rules every
    second and sending alerts to ``alertmanagers`` (host:port)."""

    def __init__(self, workdir: Path, targets: list[str], rule_files: list[Path] | None = None,
                 binary: str | None = None, job: str = "corridor", alertmanagers: list[str] | None = None,
                 more_jobs: list[dict] | None = None, labels: dict[str, str] | None = None) -> None:
        self.binary = binary or require_tool("prometheus")
        self.workdir = workdir
        self.port = free_port()
        self.targets = targets
        self.rule_files = rule_files or []
        self.job = job
        self.alertmanagers = alertmanagers or []
        self.more_jobs = more_jobs or []
        self.labels = labels
        self.server: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        """Writes this server's prometheus.yml into the work directory."""
        config = self.workdir / "prometheus.yml"
        document: dict = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [scrape_job(self.job, (self.targets, self.labels)), *self.more_jobs],
        }
        if self.alertmanagers:
            document["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": self.alertmanagers}]}]}
        config.write_text(json.dumps(document))
        return config

    def start(self) -> PrometheusServer:
        config = self.write_config()
        self.server = ServerProcess(
            [self.binary, f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            self.workdir / "prometheus.log", f"{self.url}/-/ready", ready_timeout_s=30, stop_timeout_s=20,
        ).start()
        return self

    def ready(self) -> bool:
        """Whether this server answers 200 on /-/ready."""
        return self.server is not None and self.server.ready()

    def alive(self) -> bool:
        """Whether the process this object started still runs."""
        return self.server is not None and self.server.process is not None and self.server.process.poll() is None

    def query(self, expression: str, at: float | None = None) -> list[dict]:
        """The result of an instant query (a vector, or a matrix for a range selector), at ``at``
        (Unix seconds) or now."""
        params = {"query": expression} if at is None else {"query": expression, "time": f"{at:.3f}"}
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - http on loopback
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"query {expression!r} failed: {body}")
        return body["data"]["result"]

    def scalar(self, expression: str, at: float | None = None) -> float | None:
        result = self.query(expression, at)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        """Stops the process this object started (and nothing else)."""
        if self.server is not None:
            self.server.stop()


def job_of(selector: str) -> str:
    """The job a selector of the alert config (``Thresholds.worker_selector``) names: ``job="x"`` -> ``x``."""
    match = re.search(r'\bjob="([^"]+)"', selector)
    assert match, f"{selector!r} selects no job"
    return match.group(1)
