"""Counters stay right under PromQL when partitions move: a crash, a graceful restart, a scale-out, a
rebalance that overtakes a joining worker's restore, and a crash and a graceful restart of named workers
(``CORRIDOR_WORKER_ID``), which go on with their own series.

Two worker ports, one real Prometheus scraping both every second. After a first load is
drained and scraped, a partition move happens while more events arrive. Over a window
spanning the move, the rise the samples show, summed over every series, must be exactly
what was accepted in it; ``sum(increase(...))`` must lie between that and the most its
extrapolation can add to those samples; and no state-derived series may ever fall.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from tests.integration.conftest import ON_BOTH_FRESH_BROKERS
from tests.integration.prometheus import PrometheusServer
from tests.integration.workers import (
    drained,
    expected_received,
    owned_partitions,
    produce,
    replay,
    settled,
    wait_for,
    worker_for,
)
from tests.replay import Record, ReplayData, expected_metrics

pytestmark = pytest.mark.integration

EXTRA_EVENTS = 5_000
#: Longer than the workers' holds (two scrape intervals of a second) and a scrape: this long after
#: the last move, every series that began or ended at a move showed both its ends to Prometheus.
SETTLED_S = 4
#: How far increase() may extend a series towards each edge of its window, in average sample
#: intervals (Prometheus' extrapolatedRate: up to the edge if it is closer than 1.1 of them).
EXTRAPOLATION_REACH = 1.1


def totals(records: list[Record]) -> dict[str, float]:
    """Events accepted and TEU departed, by the reference model."""
    expected = expected_metrics(records, time.time())
    return {
        metric: sum(v for (name, _), v in expected.items() if name == metric)
        for metric in ("corridor_events_accepted_total", "corridor_shipment_teu_total")
    }


def sampled_rise(samples: list[list]) -> float:
    """What one series' samples ([time, "value"] pairs) rose by: last less first (it never falls)."""
    return float(samples[-1][1]) - float(samples[0][1]) if samples else 0.0


def increase_bound(samples: list[list], start: float, end: float) -> float:
    """The most ``increase()`` over (start, end] can make of one series' samples there.

    increase() is the sampled rise stretched by its average slope towards the window's edges:
    at each edge by the distance to it if that is under 1.1 average sample intervals, else by
    half an interval, and less where the counter would go below zero. So never further than
    the edge, nor than 1.1 intervals. A series with one sample has no increase.
    """
    if len(samples) < 2:
        return 0.0
    first, last = float(samples[0][0]), float(samples[-1][0])
    sampled = last - first
    reach = EXTRAPOLATION_REACH * sampled / (len(samples) - 1)
    return sampled_rise(samples) * (sampled + min(first - start, reach) + min(end - last, reach)) / sampled


def more_records(seed: int) -> list[Record]:
    data = ReplayData(time.time(), seed=seed)
    data._ids = 10_000_000  # event ids distinct from the first load's
    return data.build(EXTRA_EVENTS)


@ON_BOTH_FRESH_BROKERS
@pytest.mark.parametrize(("move", "named"), [
    ("crash", False), ("graceful-restart", False), ("scale-out", False),
    # b joins, and before its restore of what it was given ends, a leaves and b is given everything: faust
    # ends the overtaken restore all the same, while the assignor already holds the new assignment.
    ("restore-overtaken", False),
    # Named workers (CORRIDOR_WORKER_ID): static members on Apache Kafka, going on with their own series.
    ("crash", True), ("graceful-restart", True),
], ids=["crash", "graceful-restart", "scale-out", "restore-overtaken", "crash-named", "graceful-restart-named"])
def test_increase_over_a_partition_move_is_what_was_accepted(move, named, prometheus_bin, fresh_broker, tmp_path):
    started = time.time()
    first = replay(fresh_broker, 20_000, seed=31)
    a, b = (worker_for(fresh_broker, tmp_path, name, app_id=f"moves-{move}",
                       fault="restore-overtaken" if move == "restore-overtaken" and name == "b" else None,
                       env={"CORRIDOR_WORKER_ID": name} if named else None) for name in ("a", "b"))
    (tmp_path / "prometheus").mkdir()
    prometheus = PrometheusServer(
        tmp_path / "prometheus", [f"127.0.0.1:{a.web_port}", f"127.0.0.1:{b.web_port}"], binary=prometheus_bin
    ).start()
    try:
        before = [a] if move in ("scale-out", "restore-overtaken") else [a, b]
        after = [b] if move == "restore-overtaken" else [a, b]
        for worker in before:
            worker.start()
        want_first = totals(first)

        def scraped(want: dict[str, float]) -> bool:
            return all(prometheus.scalar(f"sum({m})") == pytest.approx(v, rel=1e-9) for m, v in want.items())

        wait_for(lambda: drained(before, expected_received(first)), timeout=180, message="the first load to drain")
        wait_for(lambda: settled(before), timeout=60, message="the group to settle")
        time.sleep(SETTLED_S)
        wait_for(lambda: scraped(want_first), timeout=60, message="Prometheus to see the first load")
        # Every series now shows all of the first load, and nothing more arrives before the move:
        # the window starts here, so every sample in it is taken after the first load was.
        window_start = time.time()
        time.sleep(SETTLED_S)  # samples of every series before the move

        extra = more_records(seed=32)
        if move == "crash":
            a.kill()
            asyncio.run(produce(fresh_broker.bootstrap, extra))
            a.start()
        elif move == "graceful-restart":
            assert a.stop() == 0, a.log_tail()
            asyncio.run(produce(fresh_broker.bootstrap, extra))
            a.start()
        elif move == "scale-out":
            b.start()
            asyncio.run(produce(fresh_broker.bootstrap, extra))
        else:
            b.start()
            every = len(owned_partitions(a))
            wait_for(lambda: 0 < len(owned_partitions(a)) < every, timeout=60, message="a to give b partitions")
            assert a.stop() == 0, a.log_tail()
            asyncio.run(produce(fresh_broker.bootstrap, extra))
        want_all = totals(first + extra)
        wait_for(lambda: drained(after, expected_received(first + extra)), timeout=180,
                 message="the workers to drain the second load")
        # The window ends once the group settled (the crashed member's session expired too), and
        # every series that began or ended at a move was sampled to its end.
        wait_for(lambda: settled(after), timeout=60, message="the group to settle after the move")
        time.sleep(SETTLED_S)
        wait_for(lambda: scraped(want_all), timeout=60, message="Prometheus to see the second load")
        at = round(time.time(), 3)
        window = math.floor(at - window_start)  # so that the window (at - window, at] starts after window_start

        for metric, total in want_all.items():
            accepted = total - want_first[metric]
            # Exact, without extrapolation: a partition's count is on one series until its move and
            # on the next one from the value the first ended at (the holds show both ends to every
            # scraper), so the series' rises add up to what was accepted. The worker killed in the
            # crash case had been idle and scraped: its series lose nothing.
            series = prometheus.query(f"{metric}[{window}s]", at)
            rise = prometheus.scalar(f"sum(max_over_time({metric}[{window}s]) - min_over_time({metric}[{window}s]))",
                                     at)
            # increase() only ever stretches a series' rise towards the window's edges.
            seen = prometheus.scalar(f"sum(increase({metric}[{window}s]))", at)
            bound = sum(increase_bound(s["values"], at - window, at) for s in series)
            print(f"{move}{'-named' if named else ''}: {metric} over {window}s, {len(series)} series: "
                  f"accepted {accepted:.1f}, sampled rise {rise:.1f}, increase() {seen:.1f}, at most {bound:.1f}")
            assert rise == pytest.approx(accepted, rel=1e-9, abs=1e-6), (metric, rise, accepted)
            assert sum(sampled_rise(s["values"]) for s in series) == pytest.approx(rise, rel=1e-9, abs=1e-6)
            assert rise * (1 - 1e-9) <= seen <= bound * (1 + 1e-9), (metric, rise, seen, bound)
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
