"""Integration fixtures: real brokers (the embedded one, Apache Kafka), fresh topics per test, a plain reader.

``broker`` (one per session) and ``fresh_broker`` (one per test) are the embedded broker
unless a test asks for Apache Kafka with :data:`ON_BOTH_BROKERS` / :data:`ON_BOTH_FRESH_BROKERS`,
which run it once on each. Apache Kafka is a single KRaft node of ``tests/kafka_cluster.py``
(``kafka_cluster3`` has three); when Java or its jars are missing the test fails with the fix.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.admin import create_topics, ensure_topics
from streams.kafka.broker import EmbeddedBroker
from streams.process import free_port
from streams.settings import Settings
from tests.kafka_cluster import KafkaCluster, KafkaMissing

#: What ``broker`` and ``fresh_broker`` are: both have ``bootstrap``, ``start()`` and ``stop()``.
AnyBroker = EmbeddedBroker | KafkaCluster
#: The brokers a test meant to behave the same on both runs on.
BROKER_KINDS = ("embedded", "kafka")
#: Runs the test once with ``broker`` the session's embedded broker, once with the session's Apache Kafka.
ON_BOTH_BROKERS = pytest.mark.parametrize("broker", BROKER_KINDS, indirect=True)
#: Runs the test once on a fresh embedded broker, once on a fresh Apache Kafka node.
ON_BOTH_FRESH_BROKERS = pytest.mark.parametrize("fresh_broker", BROKER_KINDS, indirect=True)

#: The installed ``corridor`` entry point, for running the CLI as a subprocess.
CORRIDOR = [str(Path(sys.executable).with_name("corridor"))]


def broker_settings_for(bootstrap: str, **overrides: object) -> Settings:
    """Settings pointing at ``bootstrap`` with short group timeouts and retries for tests."""
    defaults: dict[str, object] = {
        "kafka_bootstrap": bootstrap,
        "rebalance_timeout_s": 1.0,
        "session_timeout_s": 6.0,
        "publish_retry_timeout_s": 5.0,
    }
    return Settings(**(defaults | overrides))  # type: ignore[arg-type]


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The partition numbers of ``topic``, as the cluster's metadata has them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return [entry["partition"] for entry in described["partitions"]]
    finally:
        await admin.close()


async def read_topic(
    bootstrap: str, topic: str, idle_s: float = 0.5, timeout_s: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic``, read from the start until none arrives for ``idle_s``.

    No consumer group (partitions assigned by hand) and no end offsets: the embedded
    broker under-reports them after multi-record batches.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        partitions = await topic_partitions(bootstrap, topic)
        consumer.assign([TopicPartition(topic, partition) for partition in sorted(partitions)])
        await consumer.seek_to_beginning()
        records: list[ConsumerRecord[bytes, bytes]] = []
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000))
            if not batch:
                break
            for partition_records in batch.values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


def started_broker(kind: str, workdir: Path) -> AnyBroker:
    """A started broker of ``kind`` (``embedded`` or ``kafka``) on free loopback ports, with the corridor topics."""
    if kind == "embedded":
        broker: AnyBroker = EmbeddedBroker(port=free_port())
        broker.start()
    else:
        try:
            broker = KafkaCluster(1, workdir=workdir).start()
        except KafkaMissing as exc:  # never skipped: the test command provides Kafka (scripts/bootstrap.sh)
            pytest.fail(str(exc), pytrace=False)
    try:
        asyncio.run(create_topics(broker_settings_for(broker.bootstrap)))
    except BaseException:
        stop_broker(broker)
        raise
    return broker


def stop_broker(broker: AnyBroker) -> None:
    if isinstance(broker, KafkaCluster):
        broker.close()
    else:
        broker.stop()


@contextmanager
def own_broker(kind: str, tmp_path: Path) -> Iterator[AnyBroker]:
    """A broker of ``kind`` on ports of its own, not started yet; stopped (and its files removed) at the end."""
    if kind == "embedded":
        embedded = EmbeddedBroker(port=free_port())
        try:
            yield embedded
        finally:
            embedded.stop()
        return
    try:
        cluster = KafkaCluster(1, workdir=tmp_path / "kafka")
    except KafkaMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnyBroker]:
    """The session's embedded broker (or, under :data:`ON_BOTH_BROKERS`, Apache Kafka), with the corridor topics."""
    kind = getattr(request, "param", "embedded")
    started = started_broker(kind, tmp_path_factory.mktemp(f"{kind}-broker"))
    yield started
    stop_broker(started)


@pytest.fixture
def broker_settings(broker: EmbeddedBroker) -> Settings:
    """Settings pointing at the session's broker."""
    return broker_settings_for(broker.bootstrap)


@pytest.fixture
def new_topic(broker_settings: Settings) -> Callable[..., Awaitable[str]]:
    """``await new_topic("name", partitions=4)``: a topic no other test uses."""

    async def create(name: str = "test", partitions: int = 4) -> str:
        topic = f"{name}.{uuid.uuid4().hex[:12]}"
        await ensure_topics(broker_settings, {topic: partitions})
        return topic

    return create


@pytest.fixture
def group_id() -> str:
    """A consumer group name no other test uses."""
    return f"test-group-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fresh_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnyBroker]:
    """A broker of the test's own (the corridor topic names are fixed), with the topics created: embedded, or
    under :data:`ON_BOTH_FRESH_BROKERS` also a fresh Apache Kafka node."""
    kind = getattr(request, "param", "embedded")
    started = started_broker(kind, tmp_path_factory.mktemp(f"{kind}-broker"))
    yield started
    stop_broker(started)


@pytest.fixture
def kafka_cluster3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three Apache Kafka KRaft nodes of the test's own: replication factor 3, ``min.insync.replicas=2``."""
    try:
        cluster = KafkaCluster(3, workdir=tmp_path_factory.mktemp("kafka3"))
    except KafkaMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with cluster:
        asyncio.run(create_topics(broker_settings_for(cluster.bootstrap, topic_replication=3)))
        yield cluster


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path of the prometheus binary (tests/integration/prometheus.py: skip or fail when missing)."""
    from tests.integration.prometheus import require_tool  # imports this module: not at the top

    return require_tool("prometheus")


@pytest.fixture(scope="session")
def promtool_bin() -> str:
    """Path of the promtool binary (tests/integration/prometheus.py: skip or fail when missing)."""
    from tests.integration.prometheus import require_tool  # imports this module: not at the top

    return require_tool("promtool")


@pytest.fixture(scope="session")
def alertmanager_bin() -> str:
    """Path of the alertmanager binary (tests/integration/prometheus.py: skip or fail when missing)."""
    from tests.integration.prometheus import require_tool  # imports this module: not at the top

    return require_tool("alertmanager")


@pytest.fixture(scope="session")
def amtool_bin() -> str:
    """Path of the amtool binary (tests/integration/prometheus.py: skip or fail when missing)."""
    from tests.integration.prometheus import require_tool  # imports this module: not at the top

    return require_tool("amtool")


#: Tests that repeat, on another broker or store, a guarantee `make test` shows on its twin, and that
#: take half a minute or more each: outside `make test` to keep it under 30 minutes (docs/testing.md),
#: run with `pytest -m extended`. Their twins: the same test on the other broker or store.
EXTENDED = frozenset({
    "tests/integration/test_durability.py::test_sigkill_at_three_random_points_leaves_exact_totals[embedded-memory://]",
    "tests/integration/test_durability.py::test_a_busy_partition_drains_exactly_across_a_sigkill[memory://]",
    "tests/integration/test_partition_moves.py::test_increase_over_a_partition_move_is_what_was_accepted"
    "[graceful-restart-embedded]",
    "tests/integration/test_partition_moves.py::test_increase_over_a_partition_move_is_what_was_accepted"
    "[restore-overtaken-embedded]",
    "tests/integration/test_partition_moves.py::test_increase_over_a_partition_move_is_what_was_accepted"
    "[crash-named-embedded]",
    "tests/integration/test_bench.py::"
    "test_with_bootstrap_every_stage_runs_on_the_given_apache_kafka_and_leaves_its_topics_empty",
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid in EXTENDED:
            item.add_marker(pytest.mark.extended)
