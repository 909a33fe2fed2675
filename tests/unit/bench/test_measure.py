"""Reading a worker's /metrics, memory and log, and the arithmetic on them: latencies, percentiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.bench.measure import (
    JOURNEY_RECORDS,
    NewestValues,
    PipelineCounts,
    Sent,
    cpu_seconds_of,
    gauge_total,
    memory_of,
    parse_proc_stat,
    parse_proc_status,
    restored_at,
    visibility_latencies,
    weighted_percentile,
)
from streams.core.checkpoint import head_key, journey_key
from streams.kafka.admin import changelog_topic
from streams.settings import Settings
from streams.worker.app import CorridorApp

METRICS = """\
# HELP corridor_events_received_total Events received.
# TYPE corridor_events_received_total counter
corridor_events_received_total{stream="shipments",partition="0",owner="a1b2-1"} 700.0
corridor_events_received_total{stream="shipments",partition="0",owner="c3d4-2"} 5.0
corridor_events_received_total{stream="shipments",partition="3",owner="a1b2-1"} 1.2e+03
corridor_events_received_total{stream="datachannel",partition="1",owner="a1b2-1"} 11000.0
# HELP corridor_events_accepted_total Events accepted.
# TYPE corridor_events_accepted_total counter
corridor_events_accepted_total{stream="shipments",partition="0",owner="a1b2-1"} 690.0
corridor_events_accepted_total{stream="datachannel",partition="1",owner="a1b2-1"} 11000.0
corridor_events_rejected_total{stream="shipments",reason="out_of_range",partition="0",owner="a1b2-1"} 10.0
corridor_shipments_total{corridor="ILSTC",route="a \\"quoted\\" route",partition="0",owner="a1b2-1"} 3.0
corridor_events_received_created{stream="shipments",partition="0",owner="a1b2-1"} 1.7e+09
process_resident_memory_bytes 1.2e+08
# HELP corridor_shipments_in_transit Shipments departed from their origin and not arrived at their destination.
# TYPE corridor_shipments_in_transit gauge
corridor_shipments_in_transit{corridor="ILSTC",route="CNCKG-SGSIN",mode="rail_sea"} 1500.0
corridor_shipments_in_transit{corridor="ILSTC",route="a {braced} route",mode="sea"} 2.5e+03
corridor_shipments_in_transit_other{corridor="ILSTC"} 7.0
"""


def test_pipeline_counts_sum_owners_per_stream_and_partition() -> None:
    counts = PipelineCounts.parse(METRICS)
    assert counts.received == {("shipments", 0): 705, ("shipments", 3): 1200, ("datachannel", 1): 11000}
    assert counts.accepted == {("shipments", 0): 690, ("datachannel", 1): 11000}
    assert counts.received_by_stream() == {"shipments": 1905, "datachannel": 11000}
    assert counts.accepted_by_stream() == {"shipments": 690, "datachannel": 11000}
    assert counts.total_received == 12905
    assert PipelineCounts.parse("").total_received == 0


def test_gauge_total_sums_the_samples_of_one_gauge() -> None:
    assert gauge_total(METRICS, "corridor_shipments_in_transit") == 4000
    assert gauge_total(METRICS, "process_resident_memory_bytes") == 1.2e8
    assert gauge_total(METRICS, "corridor_shipments_overdue") == 0


def test_newest_values_keep_the_last_value_of_each_journey_key_and_nothing_of_a_deleted_one() -> None:
    newest = NewestValues(JOURNEY_RECORDS)
    for key, value in [(journey_key(0, 0, 0), b"x" * 100), (journey_key(0, 0, 1), b"y" * 40),
                       (head_key(0), b"h" * 500), (b"0:dedup:1:0", b"d" * 64), (None, b"n"),
                       (journey_key(0, 1, 0), b"z" * 30), (journey_key(0, 0, 0), None), (journey_key(0, 0, 1), b"w")]:
        newest.add(key, value)
    assert newest.total == 30 + 1


def test_the_bench_reads_the_journey_records_where_the_worker_writes_them(tmp_path: Path) -> None:
    app = CorridorApp(Settings(app_id="corridor-bench-1a2b3c-journeys-departed", state_dir=tmp_path))
    assert app.changelogs["shipments"].topic == changelog_topic("corridor-bench-1a2b3c-journeys-departed",
                                                                "shipments")


def test_restored_at_reads_the_first_state_restored_line() -> None:
    lines = [
        "not json at all, state restored",
        '{"ts":"2026-11-30T16:58:37.172+00:00","level":"INFO","message":"Executing _on_partitions_assigned"}',
        '{"ts":"2026-11-30T16:58:37.177+00:00","level":"INFO","message":"state restored","partitions":16}',
        '{"ts":"2026-11-30T16:58:50.000+00:00","level":"INFO","message":"state restored","partitions":4}',
    ]
    assert restored_at(lines) == pytest.approx(1796057917.177)
    assert restored_at(lines[:2]) is None


def test_proc_status_gives_resident_and_peak_bytes() -> None:
    status = "Name:\tpython\nVmPeak:\t  900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t4\n"
    assert parse_proc_status(status) == (1024 * 1024, 2048 * 1024)
    assert parse_proc_status("Name:\tkthread\n") is None


def test_proc_stat_gives_user_and_system_cpu_seconds() -> None:
    # The command name may hold spaces and parentheses; utime and stime are fields 14 and 15.
    stat = "4242 (python (bench) x) S 1 4242 4242 0 -1 4194304 900 0 0 0 250 50 0 0 20 0 3 0 100 0"
    assert parse_proc_stat(stat, ticks_per_second=100) == 3.0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="no /proc on this platform")
def test_memory_and_cpu_of_this_process() -> None:
    memory = memory_of(os.getpid())
    assert memory is not None
    resident, peak = memory
    assert 0 < resident <= peak
    assert memory_of(2**22 + 12345) is None  # no such process
    before = cpu_seconds_of(os.getpid())
    sum(range(2_000_000))
    after = cpu_seconds_of(os.getpid())
    assert before is not None and after is not None and after >= before
    assert cpu_seconds_of(2**22 + 12345) is None


def test_latency_of_a_record_runs_to_the_first_scrape_counting_its_partition_up_to_it() -> None:
    sent = [
        Sent("shipments", 0, offset=10, sent_at=100.0, events=5),
        Sent("shipments", 0, offset=11, sent_at=100.5, events=5),
        Sent("datachannel", 2, offset=3, sent_at=100.2, events=40),
    ]
    before = {("shipments", 0): 1000}
    scrapes = [
        (100.4, {("shipments", 0): 1000}),
        (101.0, {("shipments", 0): 1005, ("datachannel", 2): 40}),  # the first record of partition 0, not the second
        (101.6, {("shipments", 0): 1010, ("datachannel", 2): 40}),
    ]
    latencies = sorted((round(latency, 6), events) for latency, events in visibility_latencies(sent, before, scrapes))
    assert latencies == [(0.8, 40), (1.0, 5), (1.1, 5)]
    # Offsets, not send order, say which records a count includes.
    reordered = visibility_latencies(list(reversed(sent)), before, scrapes)
    assert sorted((round(latency, 6), events) for latency, events in reordered) == latencies


def test_a_record_never_counted_is_an_error() -> None:
    sent = [Sent("finance", 1, offset=0, sent_at=1.0, events=2)]
    with pytest.raises(ValueError, match="finance partition 1: offset 0 was never counted"):
        visibility_latencies(sent, {}, [(2.0, {("finance", 1): 1})])


def test_weighted_percentile_is_the_nearest_rank() -> None:
    samples = [(0.3, 1), (0.1, 1), (0.2, 1), (0.4, 1)]
    assert weighted_percentile(samples, 0.5) == 0.2
    assert weighted_percentile(samples, 0.99) == 0.4
    assert weighted_percentile(samples, 0.0) == 0.1
    assert weighted_percentile(samples, 1.0) == 0.4
    # Weights are events: one record of 98 events at 0.5 s and two of one event each.
    assert weighted_percentile([(0.5, 98), (2.0, 1), (0.1, 1)], 0.99) == 0.5
    assert weighted_percentile([(0.5, 98), (2.0, 1), (0.1, 1)], 0.995) == 2.0
    with pytest.raises(ValueError):
        weighted_percentile([], 0.5)
    with pytest.raises(ValueError):
        weighted_percentile(samples, 1.5)
