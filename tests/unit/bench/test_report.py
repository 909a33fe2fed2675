"""The bench's report: the JSON object's keys and values, the table rows and notes, the run's settings."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from streams.bench.baselines import Counting
from streams.bench.report import (
    BASELINE_AIOKAFKA,
    BASELINE_AIOKAFKA_SINGLE,
    BASELINE_FAUST,
    COLUMNS,
    PIPELINE_BATCHED,
    PIPELINE_JOURNEYS,
    PIPELINE_NO_JOURNEYS,
    PIPELINE_ROUTES_FEW,
    PIPELINE_ROUTES_MANY,
    PIPELINE_SINGLE,
    BenchReport,
    Latency,
    Memory,
    Throughput,
)
from streams.bench.runner import BenchConfig, _near_end
from streams.cli import cli

HEADLINE = ("pipeline_batched_eps", "pipeline_single_eps", "baseline_aiokafka_eps", "baseline_faust_eps",
            "peak_rss_bytes", "latency_p99_seconds")
PUBLISHED = {"shipments": 350, "flights": 50, "finance": 50, "datachannel": 550}


def measured(events: int, seconds: float, memory: Memory | None = None) -> Throughput:
    return Throughput(events, seconds, "start", PUBLISHED, PUBLISHED, memory, cpu_seconds=seconds * 2)


@pytest.fixture
def report() -> BenchReport:
    report = BenchReport(events=1_000, single_events=1_000, seed=7, event_json_bytes=312.94)
    report.throughput = {
        BASELINE_AIOKAFKA: measured(1_000, 0.005),
        PIPELINE_BATCHED: measured(1_000, 0.02, Memory(100 * 2**20, 100 * 2**20 + 64_000, 1_000)),
        BASELINE_AIOKAFKA_SINGLE: measured(1_000, 0.01),
        BASELINE_FAUST: measured(1_000, 0.1),
        PIPELINE_SINGLE: measured(1_000, 0.2),
    }
    report.latency = Latency(rate=10_000, seconds=10, events=100_000, p50=0.61, p99=1.234, max=1.5, poll_s=0.05)
    report.environment = {"python": "3.11.7", "platform": "Linux", "cpus": 2, "load_before": 0.5, "load_after": 1.0}
    return report


def test_json_has_the_headline_numbers_ratios_and_stages(report: BenchReport) -> None:
    out = json.loads(json.dumps(report.to_json()))
    assert all(out[key] > 0 for key in HEADLINE)
    assert out["pipeline_batched_eps"] == 50_000.0
    assert out["baseline_aiokafka_eps"] == 200_000.0
    assert out["ratio_batched_to_aiokafka"] == 0.25
    assert out["ratio_single_to_faust"] == 0.5
    assert out["ratio_single_to_aiokafka_single"] == 0.05
    assert (out["startup_rss_bytes"], out["bytes_per_event"]) == (100 * 2**20, 64.0)
    assert (out["latency_p50_seconds"], out["latency_p99_seconds"]) == (0.61, 1.234)
    assert (out["events"], out["single_events"], out["seed"], out["event_json_bytes"]) == (1_000, 1_000, 7, 312.9)
    assert out["verified"] is True
    assert set(out["stages"]) == set(report.throughput)
    assert out["stages"][PIPELINE_BATCHED]["counted"] == PUBLISHED
    assert out["stages"][PIPELINE_BATCHED]["peak_rss_bytes"] == 100 * 2**20 + 64_000
    assert (out["stages"][PIPELINE_BATCHED]["cpu_seconds"], out["stages"][PIPELINE_BATCHED]["eps_per_cpu_second"]) == (
        0.04, 25_000.0)
    assert out["cpus"] == 2


def test_json_of_a_partial_run_has_every_key_with_null_for_what_did_not_run() -> None:
    report = BenchReport(events=10, single_events=10, seed=0)
    report.throughput = {BASELINE_FAUST: measured(10, 1.0)}
    out = report.to_json()
    assert set(HEADLINE) <= set(out)
    assert out["baseline_faust_eps"] == 10.0
    assert out["pipeline_batched_eps"] is None
    assert out["ratio_single_to_faust"] is None
    assert out["peak_rss_bytes"] is None and out["latency_p99_seconds"] is None


def test_a_stage_that_counted_other_events_is_not_verified(report: BenchReport) -> None:
    report.throughput[PIPELINE_SINGLE] = Throughput(999, 1.0, "start", PUBLISHED, PUBLISHED | {"flights": 49})
    assert report.to_json()["verified"] is False
    assert report.to_json()["stages"][PIPELINE_SINGLE]["verified"] is False


def test_rows_compare_each_pipeline_with_its_baselines(report: BenchReport) -> None:
    rows = {row[0]: row for row in report.rows()}
    assert all(len(row) == len(COLUMNS) for row in rows.values())
    assert rows["corridor worker, envelopes of 500"] == (
        "corridor worker, envelopes of 500", "1,000", "0.02", "50,000", "0.04", "25,000", "0.25x", "")
    assert rows["corridor worker, single events"][3:] == ("5,000", "0.40", "2,500", "0.050x", "0.50x")
    assert rows["faust agent (counts), single events"][6:] == ("", "")
    without_cpu = BenchReport(events=10, single_events=10, seed=0)
    without_cpu.throughput = {PIPELINE_BATCHED: Throughput(10, 1.0, "start", PUBLISHED, PUBLISHED)}
    assert without_cpu.rows()[0][4:6] == ("", "")
    assert list(rows)[0] == "corridor worker, envelopes of 500"


def test_notes_give_memory_latency_and_the_machine(report: BenchReport) -> None:
    memory, latency, events, machine = report.notes()
    assert memory == "worker memory: peak RSS 100 MiB, 100 MiB once started: 64 bytes per event (1,000 events)"
    assert latency.startswith("event-to-metric latency at 10,000 events/s for 10 s (100,000 events in envelopes): "
                              "p50 0.610 s, p99 1.234 s, max 1.500 s")
    assert events == "events: 313 bytes of JSON on average, seed 7"
    assert machine.startswith("machine: 2 CPUs, load 0.5 before and 1.0 after")


def test_the_routes_stage_compares_1000_routes_with_10_per_second_and_per_cpu_second() -> None:
    shipments = {"shipments": 1_000}
    report = BenchReport(events=10, single_events=10, seed=0, route_events=1_000)
    report.throughput = {PIPELINE_ROUTES_FEW: Throughput(1_000, 0.02, "start", shipments, shipments, cpu_seconds=0.01),
                         PIPELINE_ROUTES_MANY: Throughput(1_000, 0.025, "start", shipments, shipments,
                                                          cpu_seconds=0.02)}
    out = report.to_json()
    assert (out["pipeline_routes_10_eps"], out["pipeline_routes_1000_eps"]) == (50_000.0, 40_000.0)
    assert (out["ratio_1000_to_10_routes"], out["ratio_1000_to_10_routes_per_cpu"]) == (0.8, 0.5)
    assert out["route_events"] == 1_000
    assert [row[0] for row in report.rows()] == ["corridor worker, 10 routes", "corridor worker, 1,000 routes"]
    assert report.notes() == ["shipments on 1,000 known routes against 10: 0.80x the events/s, 0.50x the events per "
                              "CPU second (1,000 shipments each, envelopes keyed by route)"]
    assert BenchReport(events=10, single_events=10, seed=0).to_json()["ratio_1000_to_10_routes_per_cpu"] is None


def test_the_journeys_stage_gives_the_cost_of_shipments_in_flight_in_events_per_second_and_bytes() -> None:
    shipments = {"shipments": 1_000}
    report = BenchReport(events=10, single_events=10, seed=0, journey_shipments=1_000, journey_changelog_bytes=230_000)
    mib = 2**20
    report.throughput = {
        # Grew by 1 MiB from its start, and the worker holding no journey by 100,000 bytes.
        PIPELINE_JOURNEYS: Throughput(1_000, 0.025, "start", shipments, shipments,
                                      Memory(80 * mib, 90 * mib, 1_000, 81 * mib), cpu_seconds=0.02),
        PIPELINE_NO_JOURNEYS: Throughput(1_000, 0.02, "start", shipments, shipments,
                                         Memory(79 * mib, 85 * mib, 1_000, 79 * mib + 100_000), cpu_seconds=0.01),
    }
    out = report.to_json()
    assert (out["pipeline_journeys_eps"], out["pipeline_no_journeys_eps"]) == (40_000.0, 50_000.0)
    assert (out["journeys_ratio"], out["journeys_ratio_per_cpu"]) == (0.8, 0.5)
    assert out["journey_shipments"] == 1_000
    assert out["journey_bytes_per_shipment"] == round((mib - 100_000) / 1_000, 1) == 948.6
    assert out["journey_changelog_bytes_per_shipment"] == 230.0
    assert out["stages"][PIPELINE_JOURNEYS]["end_rss_bytes"] == 81 * mib
    assert out["verified"] is True
    assert [row[0] for row in report.rows()] == ["corridor worker, departures", "corridor worker, customs clearances"]
    assert report.notes() == [
        "shipments in flight: departures, each opening a journey, at 0.80x the events/s of the same shipments "
        "clearing customs, 0.50x the events per CPU second; 949 bytes of resident memory per shipment in flight, "
        "230 bytes of changelog (1,000 shipments each)"]


def test_without_both_workers_memory_at_their_end_there_is_no_figure_per_shipment() -> None:
    shipments = {"shipments": 1_000}
    report = BenchReport(events=10, single_events=10, seed=0, journey_shipments=1_000)
    report.throughput = {
        PIPELINE_JOURNEYS: Throughput(1_000, 1.0, "start", shipments, shipments, Memory(1, 2, 1_000, 2)),
        PIPELINE_NO_JOURNEYS: Throughput(1_000, 1.0, "start", shipments, shipments, Memory(1, 2, 1_000)),
    }
    out = report.to_json()
    assert out["journeys_ratio"] == 1.0
    assert out["journey_bytes_per_shipment"] is None and out["journey_changelog_bytes_per_shipment"] is None
    assert "no resident memory read (1,000 shipments each)" in report.notes()[0]
    skipped = BenchReport(events=10, single_events=10, seed=0).to_json()
    assert all(skipped[key] is None for key in (
        "journey_shipments", "pipeline_journeys_eps", "pipeline_no_journeys_eps", "journeys_ratio",
        "journeys_ratio_per_cpu", "journey_bytes_per_shipment", "journey_changelog_bytes_per_shipment"))


def test_config_checks_stages_and_scales_the_latency_stage_with_the_events() -> None:
    assert BenchConfig(events=20_000).latency_events == 20_000
    assert BenchConfig().latency_events == 100_000
    assert BenchConfig().timeout(500_000) > BenchConfig().timeout(20_000) >= 60
    with pytest.raises(ValueError, match="unknown stages"):
        BenchConfig(stages=frozenset({"warp"}))
    with pytest.raises(ValueError, match="no stage"):
        BenchConfig(stages=frozenset())
    with pytest.raises(ValueError, match="must be positive"):
        BenchConfig(journey_shipments=0)


def test_the_end_is_near_when_due_soon_at_the_rate_so_far() -> None:
    assert not _near_end(started=0.0, now=1.0, counted=0, total=100)
    assert not _near_end(started=0.0, now=1.0, counted=10_000, total=100_000)  # 9 s to go
    assert _near_end(started=0.0, now=9.0, counted=90_000, total=100_000)  # 1 s to go


def test_baseline_counting_reports_once_when_the_total_is_reached(capsys: pytest.CaptureFixture[str]) -> None:
    ticks, cpu = iter([0.0, 0.6, 0.7, 0.9]), iter([10.0, 10.5])
    counting = Counting(expect=5, clock=lambda: next(ticks), cpu_clock=lambda: next(cpu))
    counting.first()
    assert not counting.add(2)
    assert not counting.add(2)
    assert counting.add(3)
    assert counting.add(1) is False  # already reported
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [{"counted": 2}, {"events": 7, "seconds": pytest.approx(0.9), "cpu_seconds": 0.5}]


def test_the_journeys_stage_takes_its_size_from_the_command_line() -> None:
    result = CliRunner().invoke(cli, ["bench", "--journey-shipments", "0"])
    assert result.exit_code == 2
    assert "--journey-shipments" in result.stderr
    assert "journeys" in CliRunner().invoke(cli, ["bench", "--help"]).stdout


def test_a_run_without_stages_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["bench", "--only", "faust", "--skip", "faust"])
    assert result.exit_code == 2
    assert "no stage left to run" in result.stderr
