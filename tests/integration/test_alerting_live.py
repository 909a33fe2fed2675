"""The whole alerting path, live: simulated data-channel traffic through a real worker, a real
Prometheus evaluating the project's rules (the ``test`` thresholds: seconds, not minutes) and a
real Alertmanager routing with deploy/alertmanager/alertmanager.yml to a webhook of the test.

When the traffic stops, ``CorridorStreamSilent`` reaches the webhook as firing (through the
``page`` receiver); when it comes back, as resolved. A real `corridor ingest` whose broker is away
answers 503, and ``CorridorIngestUndelivered`` reaches the webhook with the deployment labels of
its scrape target. A worker that starts late on a backlog and applies it slowly raises
``CorridorConsumerLagHigh`` (through the ``ticket`` receiver) while it processes. Everything runs on
free loopback ports with directories of the test's own, and the test stops only what it started.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from schemas.families import FAMILIES
from schemas.samples import sample_event
from streams.alerting.alert import CONSUMER_LAG_HIGH, PIPELINE_STALLED
from streams.alerting.alert import INGEST_UNDELIVERED as UNDELIVERED
from streams.alerting.rules import render, write
from streams.alerting.thresholds import PROFILES
from streams.process import ServerProcess
from streams.sdk.producer import Publisher
from streams.sim.simulator import Scenario, SimulationConfig, generate, pause
from tests.integration.conftest import broker_settings_for, free_port
from tests.integration.ingests import IngestProcess
from tests.integration.prometheus import PROJECT_ROOT, PrometheusServer, job_of
from tests.integration.workers import wait_for, worker_for

pytestmark = pytest.mark.integration

THRESHOLDS = PROFILES["test"]
ALERT = "CorridorStreamSilent"
STREAM = "datachannel"


class Webhook:
    """An HTTP server on a free loopback port keeping every notification Alertmanager posts."""

    def __init__(self) -> None:
        received: list[tuple[float, dict[str, Any]]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alert(self, status: str, since: float, name: str = ALERT, **labels: str) -> dict[str, Any] | None:
        """The first notified alert ``name`` with ``status`` and ``labels``, posted after ``since``."""
        wanted = {"alertname": name, **labels}
        for posted, notification in list(self.received):
            for alert in notification["alerts"]:
                if posted >= since and alert["status"] == status \
                        and all(alert["labels"].get(key) == value for key, value in wanted.items()):
                    return {**alert, "receiver": notification["receiver"]}
        return None


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml with every receiver posting to the test's webhook and
    the groups flushed within a second; routes and inhibitions as deployed."""
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    config.pop("global", None)  # only the email receivers need it
    config["receivers"] = [
        {"name": receiver["name"], "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        for receiver in config["receivers"]
    ]
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return config


class AlertmanagerServer:
    """Alertmanager on free loopback ports (no cluster) with its own data directory."""

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config = config
        self.port = free_port()
        self.server: ServerProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> AlertmanagerServer:
        config = self.workdir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config))
        self.server = ServerProcess(
            [self.binary, f"--config.file={config}", f"--storage.path={self.workdir / 'data'}",
             f"--web.listen-address={self.address}", "--cluster.listen-address="],
            self.workdir / "alertmanager.log", f"http://{self.address}/-/ready", ready_timeout_s=30, stop_timeout_s=20,
        ).start()
        return self

    def stop(self) -> None:
        """Stops the process this object started (and nothing else)."""
        if self.server is not None:
            self.server.stop()


def samples() -> Iterator[dict[str, Any]]:
    """The simulator's data-channel samples (both links, both directions), dated now as they are sent."""
    for _, event in generate(SimulationConfig(Scenario.BASELINE, seed=11, families=(STREAM,)), None):
        yield event | {"event_time": datetime.now(UTC).isoformat()}


async def publish_until(publisher: Publisher, source: Iterator[dict[str, Any]], stop: asyncio.Event) -> None:
    """Four samples every half second until ``stop`` is set."""
    while not stop.is_set():
        report = await publisher.publish(STREAM, list(itertools.islice(source, 4)))
        assert report.delivered == len(report.outcomes), report
        await pause(stop, 0.5)


async def until(predicate, timeout: float, message: str) -> Any:
    """Polls ``predicate`` (a quick call) every half second without holding up the event loop's other tasks."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        await asyncio.sleep(0.5)
    return result


def diagnosis(prometheus: PrometheusServer, alertmanager: AlertmanagerServer, webhook: Webhook) -> str:
    """What Prometheus and Alertmanager hold, for a failure message."""
    alerts = [(row["metric"], row["value"][1]) for row in prometheus.query("ALERTS")]
    freshness = prometheus.query("time() - stream_key:corridor_last_event_timestamp_seconds:max")
    log = (alertmanager.workdir / "alertmanager.log").read_text(errors="replace")[-1500:]
    return f"ALERTS {alerts}; silence {freshness}; webhook {webhook.received}; alertmanager log {log}"


async def test_stream_silent_reaches_alertmanager_and_resolves(
    fresh_broker, alertmanager_bin, prometheus_bin, tmp_path
):
    recording_rules = sorted((PROJECT_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
    rule_files = [*write(tmp_path / "alerts", THRESHOLDS), *recording_rules]
    worker = worker_for(fresh_broker, tmp_path, "live", app_id=f"corridor-alerting-{uuid.uuid4().hex[:8]}").start()
    alertmanager = prometheus = None
    source = samples()
    with Webhook() as webhook:
        try:
            wait_for(worker.scrape, timeout=60, message="the worker to serve /metrics")
            (tmp_path / "alertmanager").mkdir()
            alertmanager = AlertmanagerServer(alertmanager_bin, tmp_path / "alertmanager",
                                              alertmanager_config(webhook.url)).start()
            (tmp_path / "prometheus").mkdir()
            prometheus = PrometheusServer(
                tmp_path / "prometheus", [f"127.0.0.1:{worker.web_port}"], rule_files=rule_files,
                binary=prometheus_bin, job=job_of(THRESHOLDS.worker_selector), alertmanagers=[alertmanager.address],
            ).start()
            freshness = f'time() - max(stream_key:corridor_last_event_timestamp_seconds:max{{stream="{STREAM}"}}) < 4'
            async with Publisher(broker_settings_for(fresh_broker.bootstrap)) as publisher:
                stop = asyncio.Event()
                traffic = asyncio.create_task(publish_until(publisher, source, stop))
                await until(lambda: prometheus.query(freshness), 60, "Prometheus to see fresh data-channel events")
                stop.set()
                await traffic
                stopped = time.time()

                try:
                    firing = await until(lambda: webhook.alert("firing", stopped, stream=STREAM), 40,
                                         f"{ALERT} firing at the webhook")
                except AssertionError as error:
                    raise AssertionError(f"{error}; {diagnosis(prometheus, alertmanager, webhook)}") from None
                assert firing["receiver"] == "page"
                assert firing["labels"]["severity"] == "critical"
                assert "key" not in firing["labels"], "the whole stream is silent: one alert, not one per link"
                assert firing["annotations"]["runbook_url"].endswith("#corridorstreamsilent")
                assert time.time() - stopped >= THRESHOLDS.stream_silent_s[STREAM]

                stop = asyncio.Event()
                traffic = asyncio.create_task(publish_until(publisher, source, stop))
                resumed = time.time()
                try:
                    resolved = await until(lambda: webhook.alert("resolved", resumed, stream=STREAM), 40,
                                           f"{ALERT} resolved at the webhook")
                except AssertionError as error:
                    raise AssertionError(f"{error}; {diagnosis(prometheus, alertmanager, webhook)}") from None
                finally:
                    stop.set()
                    await traffic
                assert resolved["labels"] == firing["labels"]
        finally:
            for server in (prometheus, alertmanager):
                if server is not None:
                    server.stop()
            worker.stop()


def test_ingest_undelivered_reaches_alertmanager_with_its_deployment_labels(
    alertmanager_bin, prometheus_bin, tmp_path
):
    """Every POST to an ingest whose broker is away is answered 503 after the publisher's retry timeout;
    the ingest alerts (the only rules loaded) page for the deployment its scrape target names."""
    deployment = {"cluster": "live", "namespace": "alerting"}
    alerts = tmp_path / "ingest.yml"
    alerts.write_text(render(THRESHOLDS)["ingest.yml"])
    ingest = IngestProcess(f"127.0.0.1:{free_port()}", tmp_path / "ingest.log",
                           {"CORRIDOR_PUBLISH_RETRY_TIMEOUT_S": "0.5"}).start()
    alertmanager = prometheus = None
    with Webhook() as webhook:
        try:
            (tmp_path / "alertmanager").mkdir()
            alertmanager = AlertmanagerServer(alertmanager_bin, tmp_path / "alertmanager",
                                              alertmanager_config(webhook.url)).start()
            (tmp_path / "prometheus").mkdir()
            prometheus = PrometheusServer(
                tmp_path / "prometheus", [f"127.0.0.1:{ingest.port}"], rule_files=[alerts], binary=prometheus_bin,
                job=job_of(THRESHOLDS.ingest_selector), alertmanagers=[alertmanager.address], labels=deployment,
            ).start()
            wait_for(lambda: prometheus.query("up == 1"), timeout=30, interval=0.5,
                     message="Prometheus to scrape the ingest")
            started = time.time()

            def answered_503_and_notified() -> dict[str, Any] | None:
                assert ingest.post("datachannel", [sample_event("datachannel")]).status == 503
                return webhook.alert("firing", started, UNDELIVERED, **deployment)

            try:
                firing = wait_for(answered_503_and_notified, timeout=60, interval=0.2,
                                  message=f"{UNDELIVERED} firing at the webhook")
            except AssertionError as error:
                alerts_now = [(row["metric"], row["value"][1]) for row in prometheus.query("ALERTS")]
                raise AssertionError(f"{error}; ALERTS {alerts_now}; webhook {webhook.received}") from None
            assert firing["receiver"] == "page"
            assert firing["labels"] == {"alertname": UNDELIVERED, "severity": "critical", **deployment}
            assert firing["annotations"]["runbook_url"].endswith(f"#{UNDELIVERED.lower()}")
            assert "in cluster live namespace alerting" in firing["annotations"]["summary"]
            assert time.time() - started < 45
        finally:
            for server in (prometheus, alertmanager):
                if server is not None:
                    server.stop()
            ingest.stop()


#: The slow worker of the lag test applies a record at most every APPLY_DELAY_S (tests/integration/faults.py,
#: ``slow-apply``), so the BACKLOG records published before it starts take it at least BACKLOG * APPLY_DELAY_S.
APPLY_DELAY_S = 0.2
BACKLOG = 150


async def publish_backlog(bootstrap: str) -> float:
    """BACKLOG data-channel samples, one record each (each its own batch: the embedded broker under-reports the
    end offset after multi-record batches); returns how long publishing them took."""
    source = samples()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    started = time.monotonic()
    try:
        for event in itertools.islice(source, BACKLOG):
            await producer.send_and_wait(FAMILIES[STREAM].topic, json.dumps(event).encode(),
                                         key=event["link_id"].encode())
    finally:
        await producer.stop()
    return time.monotonic() - started


async def test_a_worker_falling_behind_reaches_alertmanager_as_consumer_lag_high(
    fresh_broker, alertmanager_bin, prometheus_bin, tmp_path
):
    """A worker that starts late on a backlog and applies it slowly: the oldest unapplied record ages past the
    test threshold and goes on ageing while records are processed, so CorridorConsumerLagHigh fires.

    Deterministic by construction: the backlog is published (in ``published_in`` seconds) before the worker
    starts, and the worker takes at least BACKLOG * APPLY_DELAY_S = 30 s over it. While it does, its lag is
    above zero, the age of the oldest unapplied record is now minus the Kafka timestamp of the last applied one,
    which the publishing spread over ``published_in`` only: it rises at least (1 - published_in / 30 s) seconds
    a second, and stays above the 5 s threshold from 5 s after the backlog was published. Prometheus needs two
    scrapes (1 s) for the rise, the for: of 2 s and Alertmanager's group_wait of 1 s: well inside the 30 s.
    """
    published_in = await publish_backlog(fresh_broker.bootstrap)
    processing_s = BACKLOG * APPLY_DELAY_S
    assert published_in < processing_s / 3, "the backlog must be published well before the worker is through it"
    rule_files = write(tmp_path / "alerts", THRESHOLDS)
    worker = worker_for(fresh_broker, tmp_path, "slow", app_id=f"corridor-lag-{uuid.uuid4().hex[:8]}",
                        fault="slow-apply", env={"CORRIDOR_TEST_APPLY_DELAY_S": str(APPLY_DELAY_S)}).start()
    alertmanager = prometheus = None
    with Webhook() as webhook:
        try:
            (tmp_path / "alertmanager").mkdir()
            alertmanager = AlertmanagerServer(alertmanager_bin, tmp_path / "alertmanager",
                                              alertmanager_config(webhook.url)).start()
            (tmp_path / "prometheus").mkdir()
            prometheus = PrometheusServer(
                tmp_path / "prometheus", [f"127.0.0.1:{worker.web_port}"], rule_files=rule_files,
                binary=prometheus_bin, job=job_of(THRESHOLDS.worker_selector), alertmanagers=[alertmanager.address],
            ).start()
            name = CONSUMER_LAG_HIGH
            try:
                firing = await until(lambda: webhook.alert("firing", 0, name, stream=STREAM), 60,
                                     f"{name} firing at the webhook")
            except AssertionError as error:
                ages = prometheus.query("corridor_consumer_lag_seconds")
                raise AssertionError(f"{error}; lag seconds {ages}; {diagnosis(prometheus, alertmanager, webhook)}") \
                    from None
            samples_now = worker.scrape() or {}
            received = sum(v for (metric, labels), v in samples_now.items()
                           if metric == "corridor_events_received_total" and ("stream", STREAM) in labels)
            assert 0 < received < BACKLOG, "it fired while the worker was processing the backlog, not after"
            assert firing["receiver"] == "ticket"
            labels = firing["labels"]
            assert labels["severity"] == "warning"
            assert labels["topic"] == FAMILIES[STREAM].topic and labels["partition"].isdigit()
            assert firing["annotations"]["runbook_url"].endswith("#corridorconsumerlaghigh")
            stalled = webhook.alert("firing", 0, PIPELINE_STALLED, stream=STREAM)
            assert not stalled, "processing, however slowly, is no stall"
        finally:
            for server in (prometheus, alertmanager):
                if server is not None:
                    server.stop()
            worker.stop()


def test_pipeline_alerts_silence_the_volume_alerts_they_cause(alertmanager_bin, tmp_path):
    """The inhibitions of deploy/alertmanager/alertmanager.yml, on a real Alertmanager fed through its API."""
    def labels(alertname: str, cluster: str, **more: str) -> dict[str, str]:
        return {"alertname": alertname, "cluster": cluster, **more}

    down = labels("CorridorWorkerDown", "a", job="corridor-worker", instance="w1:6066", severity="critical")
    stalled = labels("CorridorPipelineStalled", "b", stream="shipments", partition="2", severity="critical")
    unpersisted = labels("CorridorCheckpointAgeHigh", "d", stream="flights", partition="1", severity="critical")
    expected = {  # alert -> whether it is silenced
        "a silent finance": (labels("CorridorStreamSilent", "a", stream="finance"), True),
        "a route anomaly": (labels("CorridorVolumeAnomaly", "a", corridor="ILSTC", route="CNCKG-SGSIN"), True),
        # Cancellations are counted when processed: a worker down or stalled hides them, never makes them.
        "a cancellations": (labels("CorridorBookingsCancelled", "a", corridor="ILSTC", route="CNCKG-VNHAN"), False),
        "b cancellations": (labels("CorridorBookingsCancelled", "b", corridor="ILSTC", route="CNCKG-LAVTE"), False),
        "b silent shipments": (labels("CorridorStreamSilent", "b", stream="shipments"), True),
        "b shipments drop": (labels("CorridorVolumeDrop", "b", stream="shipments", route="CNQZH-SGSIN"), True),
        "b route vanished": (labels("CorridorRouteVanished", "b", corridor="ILSTC", route="CNCKG-LAVTE"), True),
        "b silent finance": (labels("CorridorStreamSilent", "b", stream="finance"), False),
        "b flights drop": (labels("CorridorVolumeDrop", "b", stream="flights", route="CKG-SIN"), False),
        "b weekly flights": (labels("CorridorWeeklyFlightsBelowSchedule", "b", route="CKG-SIN"), False),
        "b throughput": (labels("CorridorDataChannelThroughputDrop", "b", link="CQ-SG-1", direction="cn_to_sg"), False),
        "c silent finance": (labels("CorridorStreamSilent", "c", stream="finance"), False),
        # A partition not checkpointed freezes what its stream exports, as a stall does.
        "d silent flights": (labels("CorridorStreamSilent", "d", stream="flights"), True),
        "d weekly flights": (labels("CorridorWeeklyFlightsBelowSchedule", "d", route="CKG-SIN"), True),
        "d silent finance": (labels("CorridorStreamSilent", "d", stream="finance"), False),
    }
    with Webhook() as webhook:
        alertmanager = AlertmanagerServer(alertmanager_bin, tmp_path, alertmanager_config(webhook.url)).start()
        try:
            sources = (down, stalled, unpersisted)
            body = json.dumps([{"labels": alert} for alert in (*sources, *(a for a, _ in expected.values()))])
            request = urllib.request.Request(f"http://{alertmanager.address}/api/v2/alerts", data=body.encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200

            def silenced() -> dict[str, bool] | None:
                with urllib.request.urlopen(f"http://{alertmanager.address}/api/v2/alerts", timeout=10) as response:
                    listed = {tuple(sorted(a["labels"].items())): bool(a["status"]["inhibitedBy"])
                              for a in json.load(response)}
                got = {name: listed.get(tuple(sorted(alert.items()))) for name, (alert, _) in expected.items()}
                return got if got == {name: want for name, (_, want) in expected.items()} else None

            try:
                wait_for(silenced, timeout=20, interval=0.5, message="the inhibitions to apply")
            except AssertionError:
                with urllib.request.urlopen(f"http://{alertmanager.address}/api/v2/alerts", timeout=10) as response:
                    raise AssertionError(f"inhibitions differ: {json.load(response)}") from None
        finally:
            alertmanager.stop()
