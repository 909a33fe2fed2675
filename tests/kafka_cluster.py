"""Apache Kafka for the tests: 1 or 3 KRaft nodes (broker and controller in one JVM each) on loopback.

The jars are Apache Kafka's own broker (``org.apache.kafka:kafka_2.13``) and its dependencies,
which ``scripts/bootstrap.sh`` copies from Maven Central into ``.tools/kafka/libs`` with
``scripts/kafka/pom.xml``; ``java`` is the machine's (``JAVA_HOME``, then ``PATH``). A cluster
formats its own storage in a directory of its own, takes free loopback ports, waits until
every node serves metadata, and stops only the processes it started.

By hand (what the tests start, for a look with any Kafka client):

    .venv/bin/python -m tests.kafka_cluster --nodes 3      # prints the bootstrap address; Ctrl-C stops it
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError
from aiokafka.protocol.metadata import MetadataRequest

from streams.process import free_port, start_process, stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Where scripts/bootstrap.sh puts the broker's jars; ``CORRIDOR_KAFKA_LIBS`` names another folder.
KAFKA_LIBS = PROJECT_ROOT / ".tools" / "kafka" / "libs"
KAFKA_LIBS_ENV = "CORRIDOR_KAFKA_LIBS"
#: A node's heap: three nodes, a Prometheus and the workers share the machine's memory.
HEAP = "768m"
#: A node stopped with SIGTERM shuts down in order (leadership moved, log flushed) within this.
STOP_GRACE_S = 30.0
READY_TIMEOUT_S = 90.0
_LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.coordinator.group=WARN
"""

T = TypeVar("T")


class KafkaMissing(RuntimeError):
    """Java or the broker's jars are not there; the message says how to get them."""


def kafka_libs() -> Path:
    """The folder of Apache Kafka's jars, checked; :class:`KafkaMissing` with the fix otherwise."""
    configured = os.environ.get(KAFKA_LIBS_ENV)
    libs = Path(configured) if configured else KAFKA_LIBS
    if not any(libs.glob("kafka_2.13-*.jar")):
        where = f"{KAFKA_LIBS_ENV}={configured}" if configured else str(libs)
        raise KafkaMissing(f"no Apache Kafka jars (kafka_2.13-*.jar) in {where}: run ./scripts/bootstrap.sh "
                           f"(make test does), which copies them from Maven Central with scripts/kafka/pom.xml")
    return libs


def java_binary() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH; :class:`KafkaMissing` with the fix otherwise."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KafkaMissing("java not found (JAVA_HOME, PATH): Apache Kafka needs a Java 17 runtime, "
                           "e.g. Debian's openjdk-17-jre-headless")
    return found


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what kafka-storage makes).

    Never one that starts with ``-``, which kafka-storage's command line takes for an option (Kafka's
    own ``Uuid.randomUuid`` draws again for the same reason); one cluster in 64 failed to format.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end on a loop of its own, also when called from inside a running loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


@dataclass
class KafkaNode:
    """One KRaft node: broker and controller in one process, with its own ports and log directory."""

    node_id: int
    port: int
    controller_port: int
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.root / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.root / "kafka.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class KafkaCluster:
    """``nodes`` Apache Kafka KRaft nodes on loopback; ``with`` starts and stops them.

    With three nodes, topics are replicated three times with ``min.insync.replicas=2``, the
    production shape. ``kill_node``/``start_node`` crash and bring back one node;
    ``stop``/``start`` stop and start them all with their logs kept (a restarted cluster is
    the same cluster, as in production).
    """

    def __init__(self, nodes: int = 1, workdir: Path | None = None, heap: str = HEAP,
                 ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.libs = kafka_libs()
        self.java = java_binary()
        self.heap = heap
        self.ready_timeout_s = ready_timeout_s
        self._tempdir = None if workdir is not None else tempfile.TemporaryDirectory(prefix="corridor-kafka-")
        self.workdir = workdir if workdir is not None else Path(self._tempdir.name)  # type: ignore[union-attr]
        #: The cluster's id, kept across restarts (its storage is formatted once).
        self.cluster_id = new_cluster_id()
        self.nodes = [
            KafkaNode(node_id, free_port(), free_port(), self.workdir / f"node-{node_id}")
            for node_id in range(1, nodes + 1)
        ]
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def running(self) -> bool:
        return any(node.running for node in self.nodes)

    @property
    def pid(self) -> int | None:
        first = self.nodes[0].process
        return first.pid if first is not None else None

    @property
    def log_path(self) -> Path:
        return self.nodes[0].log_path

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def properties(self, node: KafkaNode) -> dict[str, str]:
        """The node's server.properties: the compose file's broker, sized for ``len(nodes)`` nodes."""
        count = len(self.nodes)
        replicas = str(min(count, 3))
        in_sync = str(min(count, 2))
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        return {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.root / "data"),
            # As in deploy/compose: topics are created with their partition counts, never by a stray request.
            "auto.create.topics.enable": "false",
            "default.replication.factor": replicas,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": in_sync,
            "transaction.state.log.num.partitions": "10",
            "group.initial.rebalance.delay.ms": "0",
            # A node that crashed is fenced, and may register again, after 3 s rather than 9 s:
            # failovers and restarts in the tests take seconds, not tens of them.
            "broker.session.timeout.ms": "3000",
            "broker.heartbeat.interval.ms": "500",
        }

    def start(self) -> KafkaCluster:
        """Format the storage (once), start every node that is not running, and wait until all serve."""
        if not self._formatted:
            self._format()
        for node in self.nodes:
            if not node.running:
                self._launch(node)
        self.wait_ready()
        return self

    def start_node(self, node_id: int) -> None:
        """Start one node again (its log kept) and wait until the whole cluster serves."""
        self._launch(self.node(node_id))
        self.wait_ready()

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node: a crash, nothing flushed or handed over."""
        node = self.node(node_id)
        if node.process is not None:
            stop_process(node.process, 0, signal.SIGKILL)
            node.process = None

    def stop_node(self, node_id: int) -> int:
        """SIGTERM one node (a controlled shutdown) and wait for it; its exit code."""
        node = self.node(node_id)
        code = stop_process(node.process, STOP_GRACE_S) if node.process is not None else 0
        node.process = None
        return code

    def stop(self) -> None:
        """Stop every node this cluster started; the logs stay until :meth:`close`."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is not None:
                stop_process(node.process, STOP_GRACE_S)
                node.process = None

    def close(self) -> None:
        """Stop the nodes and remove the cluster's files (when it made its own directory)."""
        self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> KafkaCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait until every running node answers metadata requests itself and the cluster lists it."""
        timeout_s = timeout_s or self.ready_timeout_s
        deadline = time.monotonic() + timeout_s
        waiting = [node for node in self.nodes if node.running]
        while waiting:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"Kafka node {node.node_id} exited with {node.process.returncode}: "
                                       f"{self._log_tail(node)}")
            waiting = [node for node in waiting if not self._serves(node)]
            if waiting and time.monotonic() > deadline:
                tails = "; ".join(f"node {n.node_id}: {self._log_tail(n)}" for n in waiting)
                raise RuntimeError(f"Kafka at {self.bootstrap} was not ready in {timeout_s:g} s ({tails})")
            if waiting:
                time.sleep(0.2)

    def _serves(self, node: KafkaNode) -> bool:
        async def listed() -> bool:
            admin = AIOKafkaAdminClient(bootstrap_servers=node.address, request_timeout_ms=5000)
            await admin.start()
            try:
                described = await admin.describe_cluster()
                return node.node_id in {int(broker["node_id"]) for broker in described["brokers"]}
            finally:
                await admin.close()

        # aiokafka logs every refused connection at ERROR while the node starts.
        aiokafka_log = logging.getLogger("aiokafka")
        level = aiokafka_log.level
        aiokafka_log.setLevel(logging.CRITICAL)
        try:
            return run_sync(listed())
        except Exception:  # not serving yet
            return False
        finally:
            aiokafka_log.setLevel(level)

    def leader(self, topic: str, partition: int) -> int:
        """The node id leading ``topic``'s ``partition`` now."""
        (described,) = self._describe_topics([topic])
        for entry in described["partitions"]:
            if entry["partition"] == partition:
                return int(entry["leader"])
        raise KeyError(f"{topic} has no partition {partition}")

    def under_replicated(self) -> list[tuple[str, int]]:
        """Partitions of every topic (internal ones included) with a replica out of sync, or no leader."""
        return [
            (topic["topic"], entry["partition"])
            for topic in self._describe_topics(None)
            for entry in topic["partitions"]
            if entry["leader"] < 0 or set(entry["isr"]) != set(entry["replicas"])
        ]

    def _lagging(self) -> list[tuple[str, int]]:
        """``under_replicated()``, or a placeholder while the node asked does not answer metadata yet: a node
        started a moment ago is not in the cluster's metadata until it registered with the controller."""
        try:
            return self.under_replicated()
        except (NodeNotReadyError, KafkaConnectionError) as exc:
            return [(f"metadata not answered yet ({type(exc).__name__})", -1)]

    def wait_in_sync(self, timeout_s: float | None = None) -> None:
        """Wait until no partition is under-replicated: a node that came back caught up with its leaders.

        A rolling restart moves on only then; stopping the next node earlier leaves partitions
        with fewer in-sync replicas than ``min.insync.replicas``, which refuse ``acks=all`` writes.
        """
        timeout_s = timeout_s or self.ready_timeout_s
        deadline = time.monotonic() + timeout_s
        while lagging := self._lagging():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka at {self.bootstrap}: {len(lagging)} partitions still under-replicated "
                                   f"after {timeout_s:g} s, e.g. {lagging[:5]}")
            time.sleep(0.5)

    def _describe_topics(self, topics: list[str] | None) -> list[dict[str, Any]]:
        """The metadata of ``topics`` (None: all of them), as a node that runs answers it.

        Asked of that node by its id: an admin client asks a random node of the cluster's
        metadata, which still lists a node killed a moment ago.
        """
        running = next((node for node in self.nodes if node.running), None)
        if running is None:
            raise RuntimeError(f"no node of the Kafka cluster at {self.bootstrap} runs")

        async def describe(node: KafkaNode) -> list[dict[str, Any]]:
            client = AIOKafkaClient(bootstrap_servers=node.address)
            await client.bootstrap()
            try:
                response = await client.send(node.node_id, MetadataRequest(topics))
                return response.to_object()["topics"]
            finally:
                await client.close()

        return run_sync(describe(running))

    def _format(self) -> None:
        formatting = []
        for node in self.nodes:
            node.root.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties(node).items()))
            (node.root / "log4j.properties").write_text(_LOG4J)
            formatting.append(subprocess.Popen(  # noqa: S603 - our own argument list, no shell
                [*self._java_command(node), "kafka.tools.StorageTool", "format", "--ignore-formatted",
                 "-t", self.cluster_id, "-c", str(node.config_path)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            ))
        for node, process in zip(self.nodes, formatting, strict=True):
            output, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"formatting Kafka node {node.node_id} failed: {output.decode(errors='replace')}")
        self._formatted = True

    def _java_command(self, node: KafkaNode, heap: str = "256m") -> list[str]:
        return [self.java, f"-Xmx{heap}", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{node.root / 'log4j.properties'}",
                "-cp", f"{self.libs}/*"]

    def _launch(self, node: KafkaNode) -> None:
        # In a session of its own: Ctrl-C in a terminal reaches the test run only; the cluster is stopped in order.
        node.process = start_process(
            [*self._java_command(node, self.heap), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
             "kafka.Kafka", str(node.config_path)],
            log_path=node.log_path,
        )

    @staticmethod
    def _log_tail(node: KafkaNode, lines: int = 5) -> str:
        if not node.log_path.exists():
            return "no output"
        return " | ".join(node.log_path.read_text(errors="replace").strip().splitlines()[-lines:]) or "no output"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kafka_cluster",
                                     description="Start the tests' Apache Kafka cluster on loopback until Ctrl-C.")
    parser.add_argument("--nodes", type=int, default=1, choices=(1, 3), help="KRaft nodes (default 1)")
    parser.add_argument("--dir", type=Path, help="keep the cluster's files here (default: a temporary directory)")
    args = parser.parse_args(argv)
    try:
        cluster = KafkaCluster(args.nodes, workdir=args.dir)
    except KafkaMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    with cluster:
        print(f"Apache Kafka, {args.nodes} node(s), cluster {cluster.cluster_id}: bootstrap {cluster.bootstrap}",
              flush=True)
        print(f"files in {cluster.workdir}; Ctrl-C stops it", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})  # blocked in the main thread: waited for here
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
