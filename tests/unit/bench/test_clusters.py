"""``corridor bench --bootstrap``: what it asks of the user, and which topics it recreates on a shared cluster
(an in-memory cluster here; tests/integration/test_bench.py runs it on Apache Kafka)."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType

import pytest
from click.testing import CliRunner

from schemas.families import DEADLETTER_TOPIC, FAMILIES
from streams.bench import clusters
from streams.bench.clusters import APP_PREFIX, ClusterError, SharedCluster, is_bench_topic
from streams.bench.report import BenchReport, BrokerKind
from streams.bench.runner import BenchConfig
from streams.cli import cli
from streams.settings import Settings, get_settings
from tests.unit.kafka.test_admin import SlowCluster
from tests.unit.kafka.test_broker_probe import closed_port

CORRIDOR_TOPICS = {*(family.topic for family in FAMILIES.values()), DEADLETTER_TOPIC}


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("CORRIDOR_KAFKA_SECURITY_PROTOCOL", "CORRIDOR_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def bench(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["bench", *args])
    return result.exit_code, result.stderr


def test_bootstrap_needs_the_confirmation_that_it_recreates_the_topics() -> None:
    code, stderr = bench("--bootstrap", "127.0.0.1:9092")
    assert code == 2
    assert "--bootstrap deletes the corridor topics at 127.0.0.1:9092, with their events" in stderr
    assert "add --recreate-topics to confirm" in stderr


def test_the_confirmation_alone_is_a_usage_error() -> None:
    code, stderr = bench("--recreate-topics")
    assert code == 2
    assert "--recreate-topics goes with --bootstrap" in stderr


@pytest.mark.parametrize("bootstrap", ["localhost", "localhost:port", "localhost:0", "a:9092,b", ""])
def test_a_bootstrap_that_is_not_host_port_is_a_usage_error(bootstrap: str) -> None:
    code, stderr = bench("--bootstrap", bootstrap, "--recreate-topics")
    assert code == 2
    assert "expected HOST:PORT[,HOST:PORT...]" in stderr


def test_several_brokers_and_ipv6_are_host_port() -> None:
    assert BenchConfig(bootstrap="a:9092,b:9093").bootstrap == "a:9092,b:9093"
    assert BenchConfig(bootstrap="[::1]:9092").bootstrap == "[::1]:9092"


def test_the_baselines_speak_plain_text_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRIDOR_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    code, stderr = bench("--bootstrap", "kafka:9093", "--recreate-topics")
    assert code == 2
    assert "needs a plain-text listener" in stderr


def test_help_says_what_bootstrap_deletes() -> None:
    result = CliRunner().invoke(cli, ["bench", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "It DELETES the corridor topics there (with their events) and every corridor-bench-* topic" in text
    assert "for a test bed, never a cluster whose topics matter. Needs --recreate-topics" in text


def test_the_bench_s_topics_are_those_of_its_apps() -> None:
    assert is_bench_topic(f"{APP_PREFIX}1a2b3c-envelopes-state-shipments-changelog")
    assert not is_bench_topic("corridor-monitor-state-shipments-changelog")  # a real worker's state is left alone
    assert not any(is_bench_topic(topic) for topic in CORRIDOR_TOPICS)


async def test_each_group_of_stages_gets_the_corridor_topics_new_and_the_bench_s_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = SlowCluster({**dict.fromkeys(CORRIDOR_TOPICS, 12), f"{APP_PREFIX}old-state-flights-changelog": 12,
                           "corridor-monitor-state-flights-changelog": 12, "__consumer_offsets": 50})

    class Admin:
        def __init__(self, settings: Settings) -> None:
            assert settings.bootstrap == "kafka:9092"

        async def __aenter__(self) -> SlowCluster:
            return cluster

        async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                            tb: TracebackType | None) -> None:
            pass

    monkeypatch.setattr(clusters, "KafkaTopicAdmin", Admin)
    steps: list[str] = []
    shared = SharedCluster(Settings(topic_partitions=4), "kafka:9092", steps.append)
    async with shared.fresh() as bootstrap:
        assert bootstrap == "kafka:9092"
        assert cluster.topics == {**dict.fromkeys(CORRIDOR_TOPICS, 4), "corridor-monitor-state-flights-changelog": 12,
                                  "__consumer_offsets": 50}
        cluster.topics[f"{APP_PREFIX}new-state-flights-changelog"] = 4  # what a worker of the group creates
    await shared.close()
    assert set(cluster.topics) == CORRIDOR_TOPICS | {"corridor-monitor-state-flights-changelog", "__consumer_offsets"}
    assert steps == ["recreating the corridor topics at kafka:9092"] * 2


async def test_a_cluster_that_does_not_answer_fails_with_its_address() -> None:
    port = closed_port()
    shared = SharedCluster(Settings(), f"127.0.0.1:{port}", lambda step: None)
    with pytest.raises(ClusterError, match=f"cannot recreate the corridor topics at 127.0.0.1:{port}"):
        await shared.recreate()


def test_the_report_names_the_broker_and_where_it_ran() -> None:
    report = BenchReport(events=10, single_events=10, seed=0)
    report.broker = BrokerKind("kafka", 3, "k1:9092,k2:9092,k3:9092", 4)
    assert report.notes()[0] == ("broker: Apache Kafka, 3 nodes at k1:9092,k2:9092,k3:9092, the corridor topics "
                                 "(4 partitions) deleted and created again for each group of stages")
    out = report.to_json()
    assert (out["broker"], out["broker_nodes"], out["bootstrap"], out["topic_partitions"]) == (
        "kafka", 3, "k1:9092,k2:9092,k3:9092", 4)
    report.broker = BrokerKind("embedded", 1, None, 4)
    assert report.notes()[0] == "broker: embedded, a fresh one on loopback for each group of stages (4 partitions)"
    assert BenchReport(events=10, single_events=10, seed=0).to_json()["broker"] is None
