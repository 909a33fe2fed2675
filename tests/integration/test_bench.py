"""`corridor bench` on a small run: every stage counts exactly what it published; a stage that does not fails the run.
On fresh embedded brokers, and with ``--bootstrap`` on an Apache Kafka node the test starts.

No speed is asserted: the numbers only have to be there and positive.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from streams.kafka.admin import corridor_topics, list_topics
from tests.integration.conftest import CORRIDOR, broker_settings_for, read_topic
from tests.kafka_cluster import KafkaCluster, KafkaMissing, run_sync

pytestmark = pytest.mark.integration

HEADLINE = ("pipeline_batched_eps", "pipeline_single_eps", "baseline_aiokafka_eps", "baseline_aiokafka_single_eps",
            "baseline_faust_eps", "peak_rss_bytes", "startup_rss_bytes", "latency_p50_seconds", "latency_p99_seconds",
            "event_json_bytes", "ratio_batched_to_aiokafka", "ratio_single_to_faust")
STAGES = {"pipeline_batched", "pipeline_single", "baseline_aiokafka", "baseline_aiokafka_single", "baseline_faust",
          "pipeline_routes_10", "pipeline_routes_1000", "pipeline_journeys", "pipeline_no_journeys"}
#: Stages of shipments alone.
SHIPMENTS_ONLY = ("pipeline_routes", "pipeline_journeys", "pipeline_no_journeys")


def bench(*args: str, tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CORRIDOR_")} | settings
    return subprocess.run([*CORRIDOR, "bench", *args, "--keep-logs", str(tmp_path / "logs")], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_a_small_bench_counts_in_every_stage_exactly_what_it_published(tmp_path: Path) -> None:
    result = bench("--events", "20000", "--single-events", "4000", "--latency-seconds", "1", "--route-events", "3000",
                   "--journey-shipments", "3000", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["verified"] is True
    assert all(out[key] > 0 for key in HEADLINE), {key: out[key] for key in HEADLINE}
    assert (out["events"], out["single_events"], out["latency_events"], out["latency_rate_eps"]) == (
        20000, 4000, 10000, 10000)
    assert set(out["stages"]) == STAGES
    for name, stage in out["stages"].items():
        published = 3000 if name.startswith(SHIPMENTS_ONLY) else {"pipeline_batched": 20000,
                                                                  "baseline_aiokafka": 20000}.get(name, 4000)
        assert stage["counted"] == stage["expected"], name
        assert sum(stage["expected"].values()) == stage["events"] == published, name
        if name.startswith(SHIPMENTS_ONLY):
            assert stage["expected"]["shipments"] == published, f"{name}: shipments only"
        else:
            assert all(stage["expected"].values()), f"{name}: every family is in the mix"
        assert stage["seconds"] > 0 and stage["eps"] > 0 and stage["cpu_seconds"] > 0, name
    assert out["startup_rss_bytes"] < out["peak_rss_bytes"]
    assert out["latency_p50_seconds"] <= out["latency_p99_seconds"] <= out["latency_max_seconds"]
    assert out["stages"]["pipeline_batched"]["start"] == "worker log: state restored"
    # The run checked the journeys on /metrics (every departed shipment in transit, no cleared one); memory per
    # shipment is there but not bounded: 3,000 shipments are within the noise of a process's resident memory.
    assert out["journey_shipments"] == 3000 and out["journeys_ratio"] > 0
    assert isinstance(out["journey_bytes_per_shipment"], float)
    assert out["journey_changelog_bytes_per_shipment"] > 100  # a journey's row in the changelog


def test_a_worker_that_rejects_events_fails_the_run_with_the_counts(tmp_path: Path) -> None:
    # Envelopes of 500 events are over this limit: the worker dead-letters every one.
    result = bench("--events", "1000", "--only", "batched", tmp_path=tmp_path, CORRIDOR_MAX_EVENTS_PER_RECORD="100")
    assert result.returncode == 1
    assert "Error: the corridor worker on the envelopes received" in result.stderr
    assert "datachannel 0 events, but shipments 350, flights 50, finance 50, datachannel 550 were published" in (
        result.stderr)
    assert "too_many_events" in result.stderr  # the worker's log says why


def test_with_bootstrap_every_stage_runs_on_the_given_apache_kafka_and_leaves_its_topics_empty(
        tmp_path: Path) -> None:
    try:
        cluster = KafkaCluster(1, workdir=tmp_path / "kafka")
    except KafkaMissing as exc:  # never skipped: the test command provides Kafka (scripts/bootstrap.sh)
        pytest.fail(str(exc), pytrace=False)
    with cluster:
        result = bench("--bootstrap", cluster.bootstrap, "--recreate-topics", "--events", "5000", "--single-events",
                       "1000", "--latency-seconds", "0.5", "--route-events", "1000", "--journey-shipments", "1000",
                       "--json", tmp_path=tmp_path)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert (out["broker"], out["broker_nodes"], out["bootstrap"]) == ("kafka", 1, cluster.bootstrap)
        assert out["verified"] is True
        assert set(out["stages"]) == STAGES
        assert out["latency_p99_seconds"] > 0
        # The corridor topics are there, empty; the workers' changelogs are gone.
        topics = run_sync(list_topics(broker_settings_for(cluster.bootstrap)))
        assert {topic for topic in topics if not topic.startswith("__")} == set(corridor_topics())
        assert not any(run_sync(read_topic(cluster.bootstrap, topic, idle_s=0.2)) for topic in corridor_topics())

