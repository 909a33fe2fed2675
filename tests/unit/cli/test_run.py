"""`corridor run` and `corridor simulate` without a broker: help, usage errors, tallies, scraping /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner

from schemas.validation import RecordError, RejectReason
from streams.cli import cli
from streams.cli.engine import PublishTally, metrics_url, publish_simulation, read_metrics
from streams.sdk.producer import DELIVERED, INVALID, UNDELIVERED, EventOutcome, PublishReport
from streams.settings import Settings, get_settings
from streams.sim.simulator import Scenario, SimulationConfig, replay_start
from tests.fake_http import FakeMetricsPage


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Nothing listens on port 1.
    monkeypatch.setenv("CORRIDOR_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("CORRIDOR_PUBLISH_RETRY_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_simulate_help_names_every_option() -> None:
    result = CliRunner().invoke(cli, ["simulate", "--help"])
    assert result.exit_code == 0
    for option in ("--scenario", "--speed", "--duration", "--seed", "--drop-route", "--drop-fraction", "--drop-after",
                   "--drop-for", "--slip-after", "--slip-by", "--slip-for"):
        assert option in result.output
    assert "baseline|covid-2020|drop|congestion|delays" in result.output
    assert "corridor simulate --duration 86400 --speed 36000" in result.output


def test_run_help_names_every_option_and_the_stop_order() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--simulate / --no-simulate", "--scenario", "--speed"):
        assert option in result.output
    help_text = " ".join(result.output.split())
    assert "stops the simulator, the ingest, the worker and the broker it started, in that order" in help_text


def test_simulate_without_a_broker_exits_1_and_says_where_it_looked() -> None:
    result = CliRunner().invoke(cli, ["simulate", "--duration", "60"])
    assert result.exit_code == 1
    assert "no Kafka broker answered at 127.0.0.1:1" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scenario", "drop", "--drop-route", "CNCKG-NOWHERE"], "unknown drop_route 'CNCKG-NOWHERE'"),
        (["--drop-fraction", "1.5"], "1.5 is not in the range 0<=x<=1"),
        (["--speed", "0"], "0.0 is not in the range x>0"),
        (["--scenario", "boom"], "'boom' is not one of 'baseline', 'covid-2020', 'drop', 'congestion', 'delays'"),
        (["--scenario", "congestion", "--slip-by", "0"], "0.0 is not in the range x>0"),
    ],
)
def test_simulate_usage_errors_exit_2(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", *arguments])
    assert result.exit_code == 2
    assert message in result.output


def test_simulate_passes_the_scenario_and_its_moment_to_the_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    simulated: list[SimulationConfig] = []

    def run_simulate(settings: Settings, config: SimulationConfig, **_: object) -> PublishTally:
        simulated.append(config)
        return PublishTally()

    monkeypatch.setattr("streams.cli.engine.run_simulate", run_simulate)
    arguments = ["--scenario", "delays", "--slip-after", "86400", "--slip-by", "3600", "--slip-for", "7200"]
    result = CliRunner().invoke(cli, ["simulate", "--duration", "60", *arguments])

    assert result.exit_code == 0, result.output
    (config,) = simulated
    assert config.scenario is Scenario.DELAYS
    assert (config.slip_after, config.slip_by, config.slip_for) == (
        timedelta(days=1), timedelta(hours=1), timedelta(hours=2))


def test_tally_counts_each_outcome_per_family_and_keeps_the_first_problem() -> None:
    rejection = RecordError(2, RejectReason.OUT_OF_RANGE, "teu: must be >= 0 (got -3)", (), b"{}")
    tally = PublishTally()
    tally.add(PublishReport("shipments", "corridor.shipments.v1", [
        EventOutcome(DELIVERED, 0, 10), EventOutcome(DELIVERED, 0, 10), EventOutcome(INVALID, rejection=rejection),
    ]))
    tally.add(PublishReport("flights", "corridor.flights.v1", [
        EventOutcome(UNDELIVERED, error="KafkaConnectionError: no broker"), EventOutcome(DELIVERED, 1, 4),
    ]))
    assert tally.published == {"shipments": 2, "flights": 1, "finance": 0, "datachannel": 0}
    assert (tally.total_published, tally.total_invalid, tally.total_undelivered) == (3, 1, 1)
    assert tally.first_problem == "shipments: invalid: teu: must be >= 0 (got -3)"
    assert tally.summary().splitlines() == [
        "family         published   invalid  undelivered",
        "shipments              2         1            0",
        "flights                1         0            1",
        "finance                0         0            0",
        "datachannel            0         0            0",
        "total                  3         1            1",
        "first problem: shipments: invalid: teu: must be >= 0 (got -3)",
    ]


async def test_simulation_gives_up_after_the_first_undelivered_batch() -> None:
    settings = get_settings()
    config = SimulationConfig(Scenario.BASELINE, start=replay_start(36000, timedelta(days=1)))
    tally = PublishTally()
    stop = asyncio.Event()
    await asyncio.wait_for(
        publish_simulation(settings, config, tally, speed=36000, duration=timedelta(days=1), stop=stop,
                           give_up_when_undelivered=True),
        timeout=20,
    )
    assert stop.is_set()
    assert tally.total_published == 0
    # One batch went undelivered (the SDK retried it for 0.5 s), then nothing more was tried:
    # a day of traffic is over 9,000 events.
    assert 0 < tally.total_undelivered <= 1000
    assert tally.first_problem is not None and "undelivered" in tally.first_problem


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:6066/metrics"),
        ("::", "http://127.0.0.1:6066/metrics"),
        ("10.1.2.3", "http://10.1.2.3:6066/metrics"),
        ("fd00::1", "http://[fd00::1]:6066/metrics"),
    ],
)
def test_metrics_url_is_reachable_from_this_machine(host: str, url: str) -> None:
    assert metrics_url(Settings(web_host=host, web_port=6066)) == url


@pytest.fixture
def page() -> Iterator[FakeMetricsPage]:
    def body(status: int) -> bytes:
        return b"state is being restored\n" if status == 503 else b"corridor_events_received_total 1\n"

    with FakeMetricsPage(503, body).serving() as fake:
        yield fake


def test_read_metrics_tells_restoring_from_ready(page: FakeMetricsPage) -> None:
    url, handler = f"{page.url}/metrics", page
    assert read_metrics(url) == (None, "the worker is restoring its state")
    handler.status = 500
    assert read_metrics(url) == (None, f"{url} answered HTTP 500")
    handler.status = 200
    assert read_metrics(url) == ("corridor_events_received_total 1\n", "")


def test_read_metrics_before_the_worker_listens() -> None:
    text, status = read_metrics("http://127.0.0.1:1/metrics")
    assert text is None
    assert status == "waiting for the worker to join its group and serve /metrics"
