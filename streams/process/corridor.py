"""``corridor worker`` (and the other verbs) as child processes: their command line, environment and log file.

A child runs this interpreter on ``-m streams VERB`` (no entry point on PATH needed) and
reads its settings from its environment: this process's, with the caller's ``defaults``
below it and ``settings`` above it. :class:`WorkerProcess` is one worker of a consumer
group on a loopback web port of its own, as ``corridor bench`` and the tests run it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from streams.process.children import free_port, start_process, stop_process, tail
from streams.process.metrics import MetricsUnavailable, fetch_metrics

#: What this interpreter runs for ``corridor worker``.
WORKER_ARGS = ("-m", "streams", "worker")


def corridor_command(verb: str, *args: str) -> list[str]:
    """``corridor VERB ARGS...`` as this interpreter runs it."""
    return [sys.executable, "-m", "streams", verb, *args]


def start_corridor(
    command: Sequence[str],
    *,
    log_path: Path | None,
    settings: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
    append: bool = True,
    new_session: bool = True,
) -> subprocess.Popen[bytes]:
    """Start ``command`` (:func:`corridor_command`, or a stand-in for it) with this process's environment,
    ``defaults`` where it sets nothing and ``settings`` over it; output as :func:`start_process` sends it."""
    env = {**(defaults or {}), **os.environ, **(settings or {})}
    return start_process(command, log_path=log_path, env=env, append=append, new_session=new_session)


@dataclass
class WorkerProcess:
    """One ``corridor worker`` child: a consumer group member with its own state directory, log file and web
    port on 127.0.0.1; ``with`` starts and stops it, and it can be started again after a stop or a kill."""

    bootstrap: str
    state_dir: Path
    log_path: Path
    app_id: str  #: consumer group and changelog names
    store: str | None = None  #: CORRIDOR_STORE; None: the environment's
    #: How often this worker is scraped (a moved partition's values are held twice as long); None: the environment's.
    scrape_interval_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)  #: further CORRIDOR_* settings, over all of the above
    web_port: int = field(default_factory=free_port)
    #: What the interpreter runs: ``corridor worker``, or a stand-in that wraps it.
    args: Sequence[str] = WORKER_ARGS
    new_session: bool = True  #: out of the terminal's session: Ctrl-C reaches the owner, which stops the worker
    stop_timeout_s: float = 30.0  #: how long a stop waits before SIGKILL
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def settings(self) -> dict[str, str]:
        """The CORRIDOR_* variables this worker gets over the environment's."""
        settings = {
            "CORRIDOR_KAFKA_BOOTSTRAP": self.bootstrap,
            "CORRIDOR_APP_ID": self.app_id,
            "CORRIDOR_STATE_DIR": str(self.state_dir),
            "CORRIDOR_WEB_HOST": "127.0.0.1",
            "CORRIDOR_WEB_PORT": str(self.web_port),
        }
        if self.store is not None:
            settings["CORRIDOR_STORE"] = self.store
        if self.scrape_interval_s is not None:
            settings["CORRIDOR_SCRAPE_INTERVAL_S"] = str(self.scrape_interval_s)
        return settings | self.env

    def start(self) -> WorkerProcess:
        """Start the worker (its log appended to); it serves /metrics once it has joined its group."""
        self.process = start_corridor([sys.executable, *self.args], log_path=self.log_path,
                                      settings=self.settings(), new_session=self.new_session)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float | None = None) -> int | None:
        """Send ``sig`` (SIGTERM: checkpoint and leave the group), SIGKILL after ``timeout_s`` (default
        ``stop_timeout_s``); the exit code once reaped, None when it was never started."""
        if self.process is None:
            return None
        return stop_process(self.process, self.stop_timeout_s if timeout_s is None else timeout_s, sig)

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the worker has not been started")
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/metrics"

    def metrics_text(self, timeout_s: float = 5.0) -> str | None:
        """What the worker's /metrics serves, or None while it serves nothing."""
        try:
            return fetch_metrics(self.metrics_url, timeout_s)
        except MetricsUnavailable:
            return None

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)
