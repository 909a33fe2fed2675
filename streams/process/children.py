"""Starting and stopping the child processes a tool runs: a free loopback port for them, a log file each.

A child is stopped through the ``Popen`` that started it (a signal, SIGKILL after a timeout,
then reaped), so nothing here can reach a process this program did not start: the
machine's own brokers, servers and workers are never touched.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_process(
    command: Sequence[str],
    *,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    append: bool = True,
    new_session: bool = True,
    cwd: str | Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` (an argument list, no shell) with no input, its output and errors going to ``log_path``
    (appended to, or written afresh) or, without one, to this process's own.

    ``new_session``: the child leaves this terminal's session, so Ctrl-C reaches this process only,
    which stops its children in order.
    """
    if log_path is None:
        return subprocess.Popen(  # noqa: S603 - the caller's own argument list, no shell
            list(command), env=env, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=new_session,
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab" if append else "wb") as log:  # the child holds its own copy of the file
        return subprocess.Popen(  # noqa: S603 - the caller's own argument list, no shell
            list(command), env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )


def stop_process(process: subprocess.Popen[bytes], timeout_s: float, sig: int = signal.SIGTERM) -> int:
    """Send ``sig`` to a child this program started, SIGKILL it after ``timeout_s``; its exit code once reaped."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a child's log; "" when it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ServerProcess:
    """One server binary (Prometheus, Alertmanager) started by us, on loopback, logging to ``log_path``.

    ``start()`` waits until ``ready_url`` answers 200 (their ``/-/ready``), and reports the log's
    end when the server exits or never gets ready. ``stop()`` ends the process this object
    started, and nothing else.
    """

    def __init__(self, command: Sequence[str], log_path: Path, ready_url: str, ready_timeout_s: float = 60,
                 stop_timeout_s: float = 60) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.ready_url = ready_url
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        # In this terminal's session: Ctrl-C stops the server along with the command that runs it.
        self.process = start_process(self.command, log_path=self.log_path, new_session=False)
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.ready():
                return self
            time.sleep(0.2)
        exited = self.process.poll()
        self.stop()
        state = f"exited with {exited}" if exited is not None else f"was not ready in {self.ready_timeout_s:g} s"
        raise RuntimeError(f"{self.command[0]} {state}: {self.log_path.read_text(errors='replace')[-2000:]}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as answer:  # noqa: S310 - loopback http
                return bool(answer.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        """Stop the process this object started (and nothing else)."""
        if self.process is not None:
            stop_process(self.process, self.stop_timeout_s)
        self.process = None
