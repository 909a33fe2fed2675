"""What a worker's port serves while its state is restored and afterwards: /metrics, /healthz, /readyz."""

from __future__ import annotations

import subprocess

import pytest

from schemas.families import DEADLETTER_TOPIC
from tests.integration.workers import (
    drained,
    expected_received,
    parse_samples,
    replay,
    wait_for,
    worker_for,
)

pytestmark = pytest.mark.integration


def test_readyz_answers_503_while_a_restore_is_held_then_200_and_metrics_never_fails(fresh_broker, tmp_path):
    records = replay(fresh_broker, 4_000, seed=21)
    want = expected_received(records)
    worker = worker_for(fresh_broker, tmp_path, "w", fault="slow-restore")
    worker.env["CORRIDOR_TEST_RESTORE_DELAY_S"] = "6"
    seen: list[tuple[int | None, int | None, int | None, float | None]] = []

    def ready() -> bool:
        metrics, live, ready = worker.probe("/metrics"), worker.probe("/healthz"), worker.probe("/readyz")
        samples = worker.scrape() if metrics == 200 else None
        restoring = None if samples is None else sum(
            v for (name, _), v in samples.items() if name == "corridor_partitions_restoring"
        )
        seen.append((metrics, live, ready, restoring))
        return ready == 200

    worker.start()
    try:
        wait_for(ready, timeout=120, interval=0.2, message="the worker to be ready")
        wait_for(lambda: drained([worker], want), timeout=120, message="the worker to drain")
        assert worker.probe("/readyz") == 200 and worker.probe("/healthz") == 200
    finally:
        worker.stop()
    answered = [s for s in seen if s[0] is not None]
    assert answered, "the worker's port never answered"
    assert all(metrics == 200 and live == 200 for metrics, live, _, _ in answered), answered
    held = [s for s in answered if s[2] == 503]
    assert len(held) >= 5, f"/readyz should answer 503 for the whole held restore: {answered}"
    assert any(restoring and restoring > 0 for *_, restoring in held), held
    assert answered[-1][2] == 200 and answered[-1][3] == 0


def test_readyz_answers_503_when_the_broker_is_gone(fresh_broker, tmp_path):
    worker = worker_for(fresh_broker, tmp_path, "w").start()
    try:
        wait_for(lambda: worker.probe("/readyz") == 200, timeout=120, interval=0.2, message="the worker to be ready")
        fresh_broker.stop()
        wait_for(lambda: worker.probe("/readyz") == 503, timeout=30, interval=0.5,
                 message="/readyz to see that no broker answers")
        assert worker.probe("/healthz") == 200 and worker.probe("/metrics") == 200
    finally:
        worker.kill()  # with no broker a graceful stop would wait for checkpoints that cannot be written


def test_promtool_finds_nothing_in_a_live_workers_metrics_and_faust_pages_are_off(
    promtool_bin, fresh_broker, tmp_path
):
    records = replay(fresh_broker, 3_000, seed=22)
    worker = worker_for(fresh_broker, tmp_path, "w").start()
    try:
        wait_for(lambda: drained([worker], expected_received(records)), timeout=120, message="the worker to drain")
        wait_for(lambda: (worker.scrape() or {}).get(("corridor_commit_latency_seconds_count", ())),
                 timeout=30, message="a commit to be timed")
        text = worker.metrics_text()
        for path in ("/router", "/table", "/graph", "/stats", "/performance"):
            assert worker.probe(f"{path}/") == 404, path
        assert worker.probe("/") == 200
    finally:
        worker.stop()
    assert text is not None and "corridor_build_info{" in text and "process_cpu_seconds_total" in text
    samples = parse_samples(text)
    assert samples[("corridor_rebalances_total", ())] >= 1
    assert samples[("corridor_send_errors_total", (("topic", DEADLETTER_TOPIC),))] == 0
    # Drained: every source partition with a known end shows its lag in records and in seconds, both 0.
    lags = {labels: value for (name, labels), value in samples.items() if name == "corridor_consumer_lag"}
    ages = {labels: value for (name, labels), value in samples.items() if name == "corridor_consumer_lag_seconds"}
    assert lags and set(ages) == set(lags) and set(ages.values()) == {0.0}, (lags, ages)
    result = subprocess.run([promtool_bin, "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=60, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
