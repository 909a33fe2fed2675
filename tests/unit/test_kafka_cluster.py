"""The tests' Apache Kafka (tests/kafka_cluster.py) without starting it: what is missing is named with its fix,
and each node's settings are the production shape for its cluster size."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import kafka_cluster
from tests.kafka_cluster import KafkaCluster, KafkaMissing, java_binary, kafka_libs


def test_missing_jars_name_the_folder_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRIDOR_KAFKA_LIBS", str(tmp_path))
    with pytest.raises(KafkaMissing, match=r"no Apache Kafka jars .* CORRIDOR_KAFKA_LIBS=.*scripts/bootstrap.sh"):
        kafka_libs()


def test_missing_java_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaMissing, match="java not found .* Java 17"):
        java_binary()


@pytest.mark.parametrize(("nodes", "replicas", "in_sync"), [(1, "1", "1"), (3, "3", "2")])
def test_node_settings_follow_the_cluster_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nodes: int,
                                               replicas: str, in_sync: str) -> None:
    (tmp_path / "libs").mkdir()
    (tmp_path / "libs" / "kafka_2.13-3.9.1.jar").touch()
    monkeypatch.setattr(kafka_cluster, "KAFKA_LIBS", tmp_path / "libs")
    monkeypatch.delenv("CORRIDOR_KAFKA_LIBS", raising=False)
    cluster = KafkaCluster(nodes, workdir=tmp_path / "cluster")
    ports = {port for node in cluster.nodes for port in (node.port, node.controller_port)}
    assert len(ports) == 2 * nodes
    for node in cluster.nodes:
        properties = cluster.properties(node)
        assert properties["node.id"] == str(node.node_id)
        assert properties["controller.quorum.voters"].count("@127.0.0.1:") == nodes
        assert properties["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{node.port}"
        assert (properties["default.replication.factor"], properties["offsets.topic.replication.factor"],
                properties["min.insync.replicas"]) == (replicas, replicas, in_sync)
        assert properties["auto.create.topics.enable"] == "false"
    assert cluster.bootstrap == ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes)
