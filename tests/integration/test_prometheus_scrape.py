"""A real Prometheus scraping a real worker sees the exact totals and windows."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.integration.prometheus import PrometheusServer
from tests.integration.workers import WorkerProcess, produce, wait_for
from tests.replay import ReplayData, expected_metrics

pytestmark = pytest.mark.integration


def test_prometheus_scrapes_exact_totals(fresh_broker, tmp_path):
    records = ReplayData(time.time(), seed=3).build(8_000)
    asyncio.run(produce(fresh_broker.bootstrap, records))
    expected = expected_metrics(records, time.time())
    accepted = Counter()
    for (name, labels), value in expected.items():
        if name == "corridor_events_accepted_total":
            accepted[dict(labels)["stream"]] = value

    worker = WorkerProcess(fresh_broker.bootstrap, tmp_path / "state", tmp_path / "worker.log").start()
    prometheus = PrometheusServer(tmp_path, [f"127.0.0.1:{worker.web_port}"]).start()
    try:
        def scraped_everything():
            rows = prometheus.query("corridor_events_accepted_total")
            got = {row["metric"]["stream"]: float(row["value"][1]) for row in rows}
            return got if got == dict(accepted) else None

        wait_for(scraped_everything, timeout=120, interval=1, message="Prometheus to see every accepted event")
        assert prometheus.scalar('up{job="corridor"}') == 1.0
        teu = sum(v for (n, _), v in expected.items() if n == "corridor_shipment_teu_total")
        assert prometheus.scalar("sum(corridor_shipment_teu_total)") == pytest.approx(teu, rel=1e-12)
        def flights_7d() -> float:
            return sum(v for (n, labels), v in expected_metrics(records, time.time()).items()
                       if n == "corridor_flights_window" and dict(labels)["window"] == "7d")

        # The 7d window moves on the hour: accept the value on either side of a boundary.
        before = flights_7d()
        seen = prometheus.scalar('sum(corridor_flights_window{window="7d"})')
        assert seen in {before, flights_7d()}
        rejected = sum(v for (n, _), v in expected.items() if n == "corridor_events_rejected_total")
        assert prometheus.scalar("sum(corridor_events_rejected_total)") == rejected
        assert prometheus.scalar("max(corridor_consumer_lag)") == 0.0
    finally:
        prometheus.stop()
        worker.stop()
