"""``corridor shipments overdue`` against two workers of one group lists exactly the reference's overdue shipments."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime

import pytest

from tests.integration.conftest import CORRIDOR
from tests.integration.workers import (
    drained,
    expected_received,
    owned_partitions,
    replay,
    settled,
    wait_for,
    worker_for,
)
from tests.replay import expected_overdue

pytestmark = pytest.mark.integration


def millis(moment: str) -> int:
    """An ISO 8601 time as the reference keeps planned arrivals: whole epoch milliseconds."""
    return round(datetime.fromisoformat(moment).timestamp() * 1000)


def test_two_workers_list_exactly_the_overdue_shipments_of_the_reference(fresh_broker, tmp_path):
    # 30,000 events hold a dozen or more overdue shipments, spread over the shipments partitions.
    records = replay(fresh_broker, 30_000, seed=24)
    want = expected_received(records)
    workers = [worker_for(fresh_broker, tmp_path, name, app_id="corridor-overdue").start() for name in ("a", "b")]
    try:
        wait_for(lambda: drained(workers, want), timeout=120, message="two workers to drain together")
        wait_for(lambda: settled(workers), timeout=60, message="the group to settle")
        owner = {int(partition): f"http://127.0.0.1:{worker.web_port}"
                 for worker in workers for stream, partition in owned_partitions(worker) if stream == "shipments"}
        urls = [arg for worker in workers for arg in ("--url", f"http://127.0.0.1:{worker.web_port}")]
        run = subprocess.run([*CORRIDOR, "shipments", "overdue", "--json", *urls],
                             capture_output=True, text=True, timeout=60)
        now = time.time()
        table = subprocess.run([*CORRIDOR, "shipments", "overdue", *urls], capture_output=True, text=True, timeout=60)
    finally:
        for worker in workers:
            worker.stop()

    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    # The replay keeps every deadline hours away from its start: the set is the same at any instant of the test.
    expected = {(s["shipment_id"], s["route"], s["planned_arrival"]) for s in expected_overdue(records, now)}
    assert len(expected) >= 12
    assert {(s["shipment_id"], s["route"], millis(s["planned_arrival"])) for s in listed} == expected
    assert len(listed) == len(expected)
    # Each shipment comes from the worker that owns its partition, and both workers hold some.
    assert all(s["worker_url"] == owner[s["partition"]] for s in listed)
    assert len({s["worker_url"] for s in listed}) == 2
    assert [millis(s["planned_arrival"]) for s in listed] == sorted(millis(s["planned_arrival"]) for s in listed)

    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].strip() == f"{len(expected)} overdue shipments"
    assert all(s["shipment_id"] in table.stdout for s in listed)
