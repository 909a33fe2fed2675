"""`corridor run` as a user starts it: its own broker, a worker, the simulator; stopped by a signal or a failure."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from streams.kafka.broker import EmbeddedBroker, broker_answers
from streams.process import MetricsUnavailable, fetch_metrics
from tests.integration.conftest import CORRIDOR, free_port
from tests.integration.workers import Samples, parse_samples, wait_for

pytestmark = pytest.mark.integration

WINDOW_METRICS = (
    "corridor_shipment_teu_window",
    "corridor_flights_window",
    "corridor_finance_usd_window",
    "corridor_datachannel_bytes_window",
)


@dataclass
class RunProcess:
    """A `corridor run` subprocess without a terminal, its output in files."""

    process: subprocess.Popen[bytes]
    web_port: int
    stdout: Path
    stderr: Path

    def scrape(self) -> Samples | None:
        try:
            return parse_samples(fetch_metrics(f"http://127.0.0.1:{self.web_port}/metrics", 5))
        except MetricsUnavailable:
            return None

    def children(self) -> list[psutil.Process]:
        """The broker and worker processes (not the short-lived `file` that platform.architecture() runs)."""
        children = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if child.status() != psutil.STATUS_ZOMBIE and child.name() != "file":
                    children.append(child)
            except psutil.NoSuchProcess:
                pass
        return children

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")


StartRun = Callable[..., RunProcess]


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[StartRun]:
    """``start_run(*arguments, **environment)``: `corridor run` on free ports with a fresh state and group."""
    runs: list[RunProcess] = []

    def start(*arguments: str, **env: str) -> RunProcess:
        web_port = free_port()
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("CORRIDOR_")
        } | {
            "CORRIDOR_BROKER_PORT": str(free_port()),
            "CORRIDOR_WEB_PORT": str(web_port),
            "CORRIDOR_WEB_HOST": "127.0.0.1",
            "CORRIDOR_STATE_DIR": str(tmp_path / f"state-{len(runs)}"),
            "CORRIDOR_APP_ID": f"run-test-{uuid.uuid4().hex[:8]}",
            "CORRIDOR_REBALANCE_TIMEOUT_S": "1.0",
            "CORRIDOR_SESSION_TIMEOUT_S": "6.0",
        } | env
        stdout, stderr = tmp_path / f"run-{len(runs)}.out", tmp_path / f"run-{len(runs)}.err"
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            process = subprocess.Popen([*CORRIDOR, "run", *arguments], env=environment, stdin=subprocess.DEVNULL,
                                       stdout=out, stderr=err)
        run = RunProcess(process, web_port, stdout, stderr)
        runs.append(run)
        return run

    yield start
    for run in runs:
        # A failed test must not leave its processes behind either.
        leftovers = run.children() if run.process.poll() is None else []
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
        for child in leftovers:
            child.kill()


def volumes(samples: Samples | None) -> dict[str, float]:
    """Each family's rolling volume, summed over its series and windows."""
    found = dict.fromkeys(WINDOW_METRICS, 0.0)
    for (name, _labels), value in (samples or {}).items():
        if name in found:
            found[name] += value
    return found


def test_run_without_a_terminal_shows_every_family_and_stops_cleanly_on_sigint(start_run: StartRun) -> None:
    started = time.monotonic()
    run = start_run()

    def all_families_have_volume() -> Samples | None:
        assert run.process.poll() is None, run.output()
        samples = run.scrape()
        return samples if all(value > 0 for value in volumes(samples).values()) else None

    samples = wait_for(all_families_have_volume, timeout=30 - (time.monotonic() - started), message="volumes")
    assert time.monotonic() - started < 30
    assert volumes(samples)["corridor_flights_window"] >= 1
    # The run started its own broker and one worker, and said where they are.
    children = run.children()
    commands = [" ".join(child.cmdline()) for child in children]
    assert len(children) == 2, commands
    assert any("tansu" in command and " broker " in command for command in commands), commands
    assert any(command.endswith("-m streams worker") for command in commands), commands
    wait_for(lambda: "TEU 1h" in run.output(), timeout=10, message="a summary line")
    output = run.output()
    assert f"metrics    http://127.0.0.1:{run.web_port}/metrics" in output
    assert "(embedded, memory storage, pid" in output

    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(60) == 0, run.output()
    assert not [child.pid for child in children if psutil.pid_exists(child.pid)]
    stopped = run.output()
    assert stopped.index("simulator stopped") < stopped.index("worker stopped") < stopped.index(
        "embedded broker stopped"
    )


def test_run_reports_a_worker_that_dies_and_leaves_an_existing_broker_running(
    start_run: StartRun, broker: EmbeddedBroker
) -> None:
    run = start_run("--no-simulate", CORRIDOR_KAFKA_BOOTSTRAP=broker.bootstrap)
    worker = wait_for(lambda: run.children(), timeout=15, message="the worker process")
    assert len(worker) == 1  # no broker of its own: one answers already
    worker[0].kill()
    assert run.process.wait(30) == 1
    output = run.output()
    assert f"the worker (pid {worker[0].pid}) exited with code -9" in output
    assert "(already running)" in output
    assert asyncio.run(broker_answers(broker.bootstrap))
