"""What a `corridor worker` child gets: its command line, its settings over the environment's, its log file."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from streams.process import WORKER_ARGS, WorkerProcess, corridor_command, start_corridor

#: Stands in for the worker: writes the CORRIDOR_* variables it was given to its log, as JSON.
SHOW_SETTINGS = ("-c", "import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
                       "if k.startswith('CORRIDOR_')}), flush=True)")


def settings_shown(log: Path) -> dict[str, str]:
    shown: dict[str, str] = json.loads(log.read_text().splitlines()[-1])
    return shown


def test_a_verb_runs_on_this_interpreter() -> None:
    assert corridor_command("ingest", "--port", "6070") == [sys.executable, "-m", "streams", "ingest", "--port", "6070"]
    assert [sys.executable, *WORKER_ARGS] == corridor_command("worker")


def test_defaults_go_under_the_environment_and_settings_over_it(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("CORRIDOR_WEB_PORT", "7000")
    monkeypatch.setenv("CORRIDOR_APP_ID", "from-the-environment")
    log = tmp_path / "child.log"
    start_corridor([sys.executable, *SHOW_SETTINGS], log_path=log,
                   defaults={"CORRIDOR_WEB_PORT": "6066", "CORRIDOR_SCRAPE_INTERVAL_S": "1.0"},
                   settings={"CORRIDOR_APP_ID": "given"}).wait(20)
    shown = settings_shown(log)
    assert shown["CORRIDOR_WEB_PORT"] == "7000"
    assert shown["CORRIDOR_SCRAPE_INTERVAL_S"] == "1.0"
    assert shown["CORRIDOR_APP_ID"] == "given"


def test_a_worker_gets_its_group_state_port_and_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CORRIDOR_STORE", "rocksdb://")
    monkeypatch.setenv("CORRIDOR_LOG_LEVEL", "DEBUG")
    worker = WorkerProcess("127.0.0.1:9092", tmp_path / "state", tmp_path / "w" / "worker.log", "bench-a",
                           scrape_interval_s=0.1, env={"CORRIDOR_LOG_LEVEL": "INFO"}, args=SHOW_SETTINGS)
    with worker:
        assert worker.process is not None
        worker.process.wait(20)
    shown = settings_shown(worker.log_path)
    assert {key: shown[key] for key in worker.settings()} == {
        "CORRIDOR_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
        "CORRIDOR_APP_ID": "bench-a",
        "CORRIDOR_STATE_DIR": str(tmp_path / "state"),
        "CORRIDOR_WEB_HOST": "127.0.0.1",
        "CORRIDOR_WEB_PORT": str(worker.web_port),
        "CORRIDOR_SCRAPE_INTERVAL_S": "0.1",
        "CORRIDOR_LOG_LEVEL": "INFO",
    }
    assert shown["CORRIDOR_STORE"] == "rocksdb://"  # not set by the worker: the environment's
    assert worker.metrics_url == f"http://127.0.0.1:{worker.web_port}/metrics"
    assert worker.metrics_text(timeout_s=1) is None


def test_a_worker_is_stopped_killed_and_started_again(tmp_path: Path) -> None:
    sleep = ("-c", "import time; print('up', flush=True); time.sleep(60)")
    worker = WorkerProcess("127.0.0.1:9092", tmp_path / "state", tmp_path / "worker.log", "a", args=sleep)
    assert worker.stop() is None and not worker.alive()
    worker.start()
    assert worker.alive()
    assert worker.stop(signal.SIGKILL) == -signal.SIGKILL and not worker.alive()
    worker.start()
    first_pid = worker.pid
    assert worker.stop() == -signal.SIGTERM
    assert worker.stop() == -signal.SIGTERM  # stopped already: nothing sent, the same code
    assert worker.pid == first_pid
    with pytest.raises(RuntimeError, match="not been started"):
        _ = WorkerProcess("127.0.0.1:9092", tmp_path, tmp_path / "other.log", "b").pid
