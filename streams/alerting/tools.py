"""Where the Prometheus binaries are: the configured path, then ``./.tools/bin``, then ``PATH``.

``CORRIDOR_PROMETHEUS_BIN`` / ``CORRIDOR_PROMTOOL_BIN`` / ``CORRIDOR_ALERTMANAGER_BIN`` /
``CORRIDOR_AMTOOL_BIN`` (read by :class:`~streams.settings.Settings`) name a binary; a path
that is set but not an executable file is a mistake to report, never a reason to run
another binary. ``.tools/bin`` is where ``scripts/bootstrap.sh`` unpacks Debian's packages.
:class:`ServerProcess` runs one of the servers on loopback and stops only what it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from streams.kafka.broker import stop_process
from streams.settings import Settings

TOOLS = ("prometheus", "promtool", "alertmanager", "amtool")
#: The project's folder of unpacked tools, relative to where a command runs.
LOCAL_TOOLS = Path(".tools") / "bin"


class ToolMissing(RuntimeError):
    """A Prometheus binary that is not there; the message says how to get it."""


def env_name(tool: str) -> str:
    """The environment variable naming ``tool``'s binary."""
    return f"CORRIDOR_{tool.upper()}_BIN"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_tool(tool: str, settings: Settings | None = None, local: Sequence[Path] = (LOCAL_TOOLS,)) -> str | None:
    """The binary of ``tool`` as an absolute path: its configured path, then each of ``local``, then ``PATH``;
    or None."""
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}: one of {', '.join(TOOLS)}")
    settings = settings or Settings()
    configured = getattr(settings, f"{tool}_bin")
    if configured:
        return os.path.abspath(configured) if _executable(Path(configured)) else None
    for folder in local:
        if _executable(folder / tool):
            return os.path.abspath(folder / tool)
    found = shutil.which(tool)
    return os.path.abspath(found) if found else None


def require_tool(tool: str, settings: Settings | None = None, local: Sequence[Path] = (LOCAL_TOOLS,)) -> str:
    """The binary of ``tool``, or :class:`ToolMissing` saying how to provide it."""
    settings = settings or Settings()
    binary = find_tool(tool, settings, local)
    if binary is not None:
        return binary
    configured = getattr(settings, f"{tool}_bin")
    if configured:
        raise ToolMissing(f"{env_name(tool)}={configured} is not an executable file")
    places = ", ".join(str(folder) for folder in local)
    raise ToolMissing(
        f"{tool} not found in {places} or on PATH: run ./scripts/bootstrap.sh (unpacks Prometheus into "
        f".tools/bin), install Debian's prometheus package, or set {env_name(tool)}"
    )


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """One server binary (Prometheus, Alertmanager) started by us, on loopback, logging to ``log_path``.

    ``start()`` waits until ``ready_url`` answers 200 (their ``/-/ready``), and reports the log's
    end when the server exits or never gets ready. ``stop()`` ends the process this object
    started, and nothing else: the machine's own servers are never touched.
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
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own argument list, no shell
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
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
