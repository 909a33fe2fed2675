"""The embedded broker's workarounds apply only where it is the broker that answers (streams/kafka/profile.py).

A worker and an SDK publisher are connected to each broker, and what they run with is read
back from them: the worker's log line and ``corridor_build_info``, the publisher's producer.
"""

from __future__ import annotations

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.samples import sample_event
from streams.sdk import Publisher, aiokafka_compat
from tests.integration.conftest import ON_BOTH_FRESH_BROKERS, broker_settings_for
from tests.integration.workers import GROUP_ENV, WorkerProcess, wait_for
from tests.kafka_cluster import KafkaCluster

pytestmark = pytest.mark.integration

#: What a worker named worker-0 runs with on each broker: producer batches (bytes), faust's restore check,
#: rebasing, static group membership.
EFFECTIVE = {
    "kafka": {"broker": "kafka", "producer_max_batch_size": 16_384, "recovery_consistency_check": True,
              "rebase_new_cluster": False, "group_instance_id": "worker-0"},
    "embedded": {"broker": "embedded", "producer_max_batch_size": 1, "recovery_consistency_check": False,
                 "rebase_new_cluster": True, "group_instance_id": None},
}


def kind_of(broker) -> str:
    return "kafka" if isinstance(broker, KafkaCluster) else "embedded"


def broker_line(worker: WorkerProcess) -> dict | None:
    """The worker's JSON log line saying which broker answered and what it runs with, once written."""
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"producer_max_batch_size"' in line:
            return orjson.loads(line)
    return None


def build_broker(worker: WorkerProcess) -> str | None:
    text = worker.metrics_text() or ""
    for line in text.splitlines():
        if line.startswith("corridor_build_info{"):
            return line.split('broker="', 1)[1].split('"', 1)[0]
    return None


@ON_BOTH_FRESH_BROKERS
@pytest.mark.parametrize("flavor", ["auto", "embedded"])
def test_a_worker_runs_with_the_profile_of_the_broker_that_answers(fresh_broker, flavor, tmp_path):
    kind = kind_of(fresh_broker) if flavor == "auto" else flavor
    worker = WorkerProcess(fresh_broker.bootstrap, tmp_path / "state", tmp_path / "worker.log", app_id="profile",
                           env={**GROUP_ENV, "CORRIDOR_LOG_FORMAT": "json", "CORRIDOR_BROKER_FLAVOR": flavor,
                                "CORRIDOR_WORKER_ID": "worker-0"})
    worker.start()
    try:
        line = wait_for(lambda: broker_line(worker), timeout=60, message="the worker to find its broker")
        assert {key: line[key] for key in EFFECTIVE[kind]} == EFFECTIVE[kind], worker.log_tail()
        assert wait_for(lambda: build_broker(worker), timeout=30, message="corridor_build_info") == kind
    finally:
        worker.stop()


@ON_BOTH_FRESH_BROKERS
async def test_the_sdk_asks_for_its_producer_id_the_broker_s_way(fresh_broker):
    async with Publisher(broker_settings_for(fresh_broker.bootstrap)) as publisher:
        report = await publisher.publish("datachannel", [sample_event("datachannel")])
        assert report.delivered == 1, report
        producer = publisher._producer
    # On Apache Kafka aiokafka's own producer (InitProducerId v0); v3 only for the embedded broker.
    want = AIOKafkaProducer if kind_of(fresh_broker) == "kafka" else aiokafka_compat.Producer
    assert type(producer) is want
