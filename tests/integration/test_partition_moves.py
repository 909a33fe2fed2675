"""Counters stay right under PromQL when partitions move: a crash, a graceful restart, a scale-out.

Two worker ports, one real Prometheus scraping both every second. After a first load is
drained and scraped, a partition move happens while more events arrive; then
``sum(increase(...))`` over a window spanning the move must equal what was accepted in it
(within increase()'s extrapolation), and no state-derived series may ever fall.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from tests.integration.prometheus import PrometheusServer
from tests.integration.workers import (
    drained,
    expected_received,
    produce,
    replay,
    wait_for,
    worker_for,
)
from tests.replay import Record, ReplayData, expected_metrics

pytestmark = pytest.mark.integration

#: increase() extrapolates each series towards the window's edges by up to half a scrape
#: interval (docs/semantics.md); the acceptance bound for a sum over a move.
TOLERANCE = 0.10
EXTRA_EVENTS = 5_000


def totals(records: list[Record]) -> dict[str, float]:
    """Events accepted and TEU departed, by the reference model."""
    expected = expected_metrics(records, time.time())
    return {
        metric: sum(v for (name, _), v in expected.items() if name == metric)
        for metric in ("corridor_events_accepted_total", "corridor_shipment_teu_total")
    }


def more_records(seed: int) -> list[Record]:
    data = ReplayData(time.time(), seed=seed)
    data._ids = 10_000_000  # event ids distinct from the first load's
    return data.build(EXTRA_EVENTS)


@pytest.mark.parametrize("move", ["crash", "graceful-restart", "scale-out"])
def test_increase_over_a_partition_move_is_what_was_accepted(move, prometheus_bin, fresh_broker, tmp_path):
    started = time.time()
    first = replay(fresh_broker, 20_000, seed=31)
    a = worker_for(fresh_broker, tmp_path, "a", app_id=f"moves-{move}")
    b = worker_for(fresh_broker, tmp_path, "b", app_id=f"moves-{move}")
    (tmp_path / "prometheus").mkdir()
    prometheus = PrometheusServer(
        tmp_path / "prometheus", [f"127.0.0.1:{a.web_port}", f"127.0.0.1:{b.web_port}"], binary=prometheus_bin
    ).start()
    try:
        before = [a] if move == "scale-out" else [a, b]
        for worker in before:
            worker.start()
        want_first = totals(first)

        def scraped(want: dict[str, float]) -> bool:
            return all(prometheus.scalar(f"sum({m})") == pytest.approx(v, rel=1e-9) for m, v in want.items())

        wait_for(lambda: drained(before, expected_received(first)), timeout=180, message="the first load to drain")
        wait_for(lambda: scraped(want_first), timeout=60, message="Prometheus to see the first load")
        window_start = time.time()
        # increase() extrapolates every series towards the window's edges by its average slope:
        # a series that ends at the move errs by about half a scrape over its length in the window.
        time.sleep(10)

        extra = more_records(seed=32)
        if move == "crash":
            a.kill()
            asyncio.run(produce(fresh_broker.bootstrap, extra))
            a.start()
        elif move == "graceful-restart":
            assert a.stop() == 0, a.log_tail()
            asyncio.run(produce(fresh_broker.bootstrap, extra))
            a.start()
        else:
            b.start()
            asyncio.run(produce(fresh_broker.bootstrap, extra))
        want_all = totals(first + extra)
        wait_for(lambda: drained([a, b], expected_received(first + extra)), timeout=180,
                 message="both workers to drain the second load")
        wait_for(lambda: scraped(want_all), timeout=60, message="Prometheus to see the second load")
        time.sleep(20)  # likewise for the series that begin at the move
        window = math.ceil(time.time() - window_start)

        for metric, total in want_all.items():
            accepted = total - want_first[metric]
            seen = prometheus.scalar(f"sum(increase({metric}[{window}s]))")
            print(f"{move}: sum(increase({metric}[{window}s])) = {seen:.1f}, accepted {accepted:.1f}")
            assert seen == pytest.approx(accepted, rel=TOLERANCE), (metric, seen, accepted)
        whole_test = math.ceil(time.time() - started)
        names = [row["metric"]["__name__"] for row in prometheus.query('group by (__name__) ({owner!=""})')]
        assert "corridor_shipment_teu_total" in names and "corridor_flight_delay_seconds_bucket" in names
        for name in names:
            fell = prometheus.query(f'resets({name}{{owner!=""}}[{whole_test}s]) > 0')
            assert fell == [], f"{name}: series fell: {fell[:5]}"
        owners = prometheus.query('count by (stream) (count by (stream, owner) (corridor_events_accepted_total))')
        assert owners, "no corridor series were scraped"
    finally:
        prometheus.stop()
        a.stop()
        b.stop()
