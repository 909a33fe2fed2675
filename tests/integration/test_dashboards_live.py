"""Every query of every rendered dashboard, run against a real Prometheus that scrapes a real
worker fed by the simulator (all four families) with the project's recording rules loaded, and
two real `corridor ingest` processes (the ingest dashboard's series): one in front of the
broker answering 202, 401, 404 and 422, one whose broker is away answering 503, each as the
ingest job with cluster and namespace labels of its own, as two deployments would be.

The panels and variables are enumerated from the committed JSON in dashboards/json, so a new
panel is checked without touching this test. Each query must be valid PromQL and return at
least one series with the template variables at "All" (``.*``). Queries that compare with a
week earlier (``offset``) read a week-old copy of the worker's own series: before Prometheus
starts, the worker's scrape is written as OpenMetrics dated a week back and turned into a
TSDB block with promtool, as an operator backfills history.

The worker is scraped as one deployment (its target labelled ``cluster`` and ``namespace``), so
the deployment variables are exercised for real: with the worker's own deployment chosen every
query still returns series, with another one none does.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import dashboards
from schemas.families import FAMILY_NAMES
from schemas.samples import sample_event
from streams.alerting.records import RECEIVED_RATE5M
from streams.alerting.thresholds import PROFILES
from streams.evaluation.history import History
from streams.kafka.admin import create_topics
from streams.kafka.broker import EmbeddedBroker
from streams.process import parse_metrics
from tests.dashboard_queries import BUILTINS, label_values
from tests.integration.conftest import broker_settings_for, free_port
from tests.integration.ingests import IngestProcess
from tests.integration.prometheus import PROJECT_ROOT, PrometheusServer, job_of, scrape_job
from tests.integration.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

RULE_FILES = sorted((PROJECT_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
#: The simulated span published before the worker is scraped, as fast as it goes: nearly the
#: dedup horizon (7 days; older events are refused), so that the 7d windows are filled.
SIMULATED_S = 7 * 86400 - 3600
#: The deployment the worker's target is labelled as (Thresholds.deployment_labels of the default profile).
DEPLOYMENT = {"cluster": "corridor-test", "namespace": "corridor"}
#: A series of the transit rules' group, evaluated every minute rather than at the global interval.
TRANSIT_RULE = "corridor_route_mode_le:corridor_shipment_transit_seconds_bucket:increase1d"
#: A deployment nothing is scraped from.
ELSEWHERE = {"cluster": "elsewhere", "namespace": "nowhere"}
#: A line of `corridor simulate`'s summary: family, then the events it published.
PUBLISHED = re.compile(r"^(?P<family>shipments|flights|finance|datachannel)\s+(?P<count>\d+)\s", re.MULTILINE)
#: The deployment labels of the two ingests' scrape jobs: one in front of the broker, in the worker's
#: deployment, and one whose broker is away, in a namespace of its own.
SERVING = DEPLOYMENT
BROKER_AWAY = {"cluster": DEPLOYMENT["cluster"], "namespace": "broker-away"}


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row carries its panels


def queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every target of every rendered panel."""
    found = []
    for name, model in dashboards.load().items():
        for panel in panels(model):
            found.extend((name, panel["title"], target["expr"]) for target in panel.get("targets", []))
    return found


def variables() -> list[tuple[str, str, str]]:
    """(dashboard, variable, label_values query) of every query variable."""
    return [(name, variable["name"], variable["query"]["query"])
            for name, model in dashboards.load().items()
            for variable in model["templating"]["list"] if variable["type"] == "query"]


#: A week's average of a recorded day, read a day back (the transit baseline). A Prometheus started minutes
#: ago holds neither the day back nor an hour boundary of the average's subquery, so here the recorded day it
#: averages is read instead, now (the same labels and selectors); the baseline's values a day back are
#: promtool's to test (deploy/prometheus/tests/transit_test.yml).
RECORDED_A_DAY_BACK = re.compile(r"\b([a-z_]+:[a-z_]+:increase1d)_avg1w(\{[^}]*\}) offset 1d")


def interpolated(expression: str, model_variables: list[str], chosen: dict[str, str] | None = None) -> str:
    """``expression`` as Grafana sends it: its own variables filled in, the ``chosen`` ones with their
    value (a deployment), every other at "All" (``.*``); a week's average of a recorded day read a day back
    read as the recorded day now."""
    expression = RECORDED_A_DAY_BACK.sub(r"\1\2", expression)
    for builtin, value in BUILTINS.items():
        expression = expression.replace(builtin, value)
    for name in sorted(model_variables, key=len, reverse=True):
        value = (chosen or {}).get(name, ".*")
        expression = expression.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expression, f"an unknown template variable is left in {expression!r}"
    return expression


def backfill_week_old_copy(metrics_text: str, tsdb: Path, promtool: str, now: float,
                           target_labels: dict[str, str]) -> None:
    """The worker's counters, gauges and histograms as if scraped every minute around a week ago (with the labels
    Prometheus gives its target), as a TSDB block."""
    history = History(wanted=set())
    period = PROFILES["default"].volume_period_s
    samples = [(family.name, family.type, sample.name, {**sample.labels, **target_labels}, sample.value)
               for family in text_string_to_metric_families(metrics_text)
               if family.type in ("counter", "gauge", "histogram")
               for sample in family.samples if not sample.name.endswith("_created")]
    history.wanted = frozenset(name for name, *_ in samples)
    for minute in range(-90, 31):
        history.record(now - period + 60 * minute, samples)
    openmetrics = tsdb.parent / "week-old.om"
    with openmetrics.open("w") as out:
        history.write_openmetrics(out)
    tsdb.mkdir(parents=True, exist_ok=True)
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb)],
                   check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def fresh_broker_module() -> Iterator[EmbeddedBroker]:
    """A broker of this module's own: the simulator writes to the fixed corridor topics."""
    with EmbeddedBroker(port=free_port()) as embedded:
        asyncio.run(create_topics(broker_settings_for(embedded.bootstrap)))
        yield embedded


@pytest.fixture(scope="module")
def scraped(fresh_broker_module, prometheus_bin, promtool_bin, tmp_path_factory) -> Iterator[PrometheusServer]:
    """A Prometheus with the recording rules, scraping a worker that holds a simulated week."""
    workdir = tmp_path_factory.mktemp("dashboards")
    bootstrap = fresh_broker_module.bootstrap
    simulate = subprocess.run(
        [sys.executable, "-m", "streams", "simulate", "--duration", str(SIMULATED_S), "--speed", "1e9",
         "--seed", "5"],
        env={**os.environ, "CORRIDOR_KAFKA_BOOTSTRAP": bootstrap}, capture_output=True, text=True, timeout=600,
    )
    assert simulate.returncode == 0, simulate.stdout + simulate.stderr
    worker = WorkerProcess(bootstrap, workdir / "state", workdir / "worker.log").start()
    serving = IngestProcess(bootstrap, workdir / "ingest-serving.log")
    # Nothing listens at the away broker's address: the publisher gives up after a second, and answers 503.
    away = IngestProcess(f"127.0.0.1:{free_port()}", workdir / "ingest-away.log",
                         {"CORRIDOR_PUBLISH_RETRY_TIMEOUT_S": "1"})
    prometheus = None
    try:
        serving.start()
        away.start()
        published = {match["family"]: int(match["count"]) for match in PUBLISHED.finditer(simulate.stdout)}
        assert set(published) == {"shipments", "flights", "finance", "datachannel"}, simulate.stdout

        def caught_up() -> str | None:
            """The worker's /metrics once it shows every published event accepted and no lag."""
            text = worker.metrics_text()
            if text is None:
                return None
            accepted: dict[str, float] = {}
            lags = []
            for sample in parse_metrics(text):
                if sample.name == "corridor_events_accepted_total":
                    stream = sample.labels["stream"]
                    accepted[stream] = accepted.get(stream, 0) + sample.value
                elif sample.name == "corridor_consumer_lag":
                    lags.append(sample.value)
            return text if accepted == published and lags and not any(lags) else None

        metrics_text = wait_for(caught_up, timeout=300, interval=1, message="the worker to apply the simulation")
        target, job = f"127.0.0.1:{worker.web_port}", job_of(PROFILES["default"].worker_selector)
        backfill_week_old_copy(metrics_text, workdir / "tsdb", promtool_bin, time.time(),
                               {"job": job, "instance": target, **DEPLOYMENT})
        ingest_job = job_of(PROFILES["default"].ingest_selector)
        prometheus = PrometheusServer(
            workdir, [target], RULE_FILES, binary=prometheus_bin, job=job, labels=DEPLOYMENT,
            more_jobs=[scrape_job(ingest_job, ([f"127.0.0.1:{serving.port}"], SERVING),
                                  ([f"127.0.0.1:{away.port}"], BROKER_AWAY))],
        ).start()
        wait_for(lambda: len(prometheus.query(f'up{{job="{ingest_job}"}} == 1')) == 2, timeout=60, interval=1,
                 message="Prometheus to scrape both ingests")
        post_ingest_traffic(serving, away)
        # Rates need two scrapes in their range and the recording rules a few evaluations.
        wait_for(lambda: prometheus.query(RECEIVED_RATE5M), timeout=60, interval=1,
                 message="the recording rules to produce series")
        wait_for(lambda: prometheus.query(TRANSIT_RULE), timeout=90, interval=1,
                 message="the transit rules (evaluated every minute) to produce series")
        wait_for(lambda: prometheus.query('increase(corridor_ingest_requests_total{code="503"}[1m]) > 0'),
                 timeout=60, interval=1, message="Prometheus to see the ingest's answers")
        time.sleep(3)
        yield prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        for ingest in (serving, away):
            ingest.stop()
        worker.stop()


def post_ingest_traffic(serving: IngestProcess, away: IngestProcess) -> None:
    """202 for every family, 401, 404 and 422 from the serving ingest; 503 from the one whose broker is away."""
    for family in FAMILY_NAMES:
        assert serving.post(family, [sample_event(family)]).status == 202
    assert serving.post("flights", [sample_event("flights")], token=None).status == 401
    assert serving.post("ferries", [sample_event("flights")]).status == 404
    assert serving.post("flights", [sample_event("flights", passengers=-1)]).status == 422
    assert away.post("datachannel", [sample_event("datachannel")]).status == 503


def test_every_panel_has_queries_and_the_rendered_json_exists():
    found = queries()
    assert {name for name, *_ in found} == set(dashboards.render()), "every dashboard has panels with queries"
    assert len(found) >= 40


def model_variables(dashboard: str) -> list[str]:
    return [v["name"] for v in dashboards.load()[dashboard]["templating"]["list"]]


def listed(prometheus: PrometheusServer, dashboard: str, query: str, chosen: dict[str, str] | None = None) -> set[str]:
    """The values a variable's ``label_values(selector, label)`` query lists."""
    selector, label = label_values(query)
    result = prometheus.query(f"count by ({label}) ({interpolated(selector, model_variables(dashboard), chosen)})")
    return {series["metric"].get(label, "") for series in result}


@pytest.mark.parametrize(("dashboard", "variable", "query"), variables(), ids=lambda v: str(v)[:60])
def test_every_variable_has_values(scraped, dashboard, variable, query):
    assert listed(scraped, dashboard, query), f"{dashboard}/${variable}: {query!r} lists no values"


def test_the_deployment_variables_list_the_scraped_deployment(scraped):
    for dashboard, variable, query in variables():
        if variable in DEPLOYMENT:
            assert listed(scraped, dashboard, query) == {DEPLOYMENT[variable]}
            assert listed(scraped, dashboard, query, DEPLOYMENT) == {DEPLOYMENT[variable]}
            assert listed(scraped, dashboard, query, ELSEWHERE) == (set() if variable != "cluster" else
                                                                    {DEPLOYMENT["cluster"]})


@pytest.mark.parametrize(("dashboard", "title", "expression"), queries(), ids=lambda v: str(v)[:60])
def test_every_panel_query_returns_series(scraped, dashboard, title, expression):
    result = scraped.query(interpolated(expression, model_variables(dashboard)))
    assert result, f"{dashboard} / {title!r}: {expression!r} returned no series"


@pytest.mark.parametrize(("dashboard", "title", "expression"), queries(), ids=lambda v: str(v)[:60])
def test_every_panel_query_returns_series_for_the_scraped_deployment(scraped, dashboard, title, expression):
    result = scraped.query(interpolated(expression, model_variables(dashboard), DEPLOYMENT))
    assert result, f"{dashboard} / {title!r}: {expression!r} returned no series for {DEPLOYMENT}"


@pytest.mark.parametrize(("dashboard", "title", "expression"), queries(), ids=lambda v: str(v)[:60])
def test_no_panel_query_returns_series_for_another_deployment(scraped, dashboard, title, expression):
    result = scraped.query(interpolated(expression, model_variables(dashboard), ELSEWHERE))
    assert result == [], f"{dashboard} / {title!r}: {expression!r} shows another deployment's series"


def test_alert_annotations_are_valid_promql(scraped):
    for dashboard, model in dashboards.load().items():
        for annotation in model["annotations"]["list"]:
            scraped.query(interpolated(annotation["expr"], model_variables(dashboard)))  # raises on invalid PromQL


def test_the_ingest_panels_read_both_real_ingests(scraped):
    """The ingest dashboard's answers by code and its replicas show what the two ingests answered."""
    board = dashboards.load()["corridor-ingest"]
    chosen = model_variables("corridor-ingest")
    (by_code,) = [target["expr"] for panel in panels(board) if panel["title"] == "Requests per second by code"
                  for target in panel["targets"]]
    answered = {(row["metric"]["namespace"], row["metric"]["code"])
                for row in scraped.query(f"{interpolated(by_code, chosen)} > 0")}
    serving, away = SERVING["namespace"], BROKER_AWAY["namespace"]
    assert answered == {(serving, "202"), (serving, "401"), (serving, "404"), (serving, "422"), (away, "503")}
    (replicas,) = [target["expr"] for panel in panels(board) if panel["title"] == "Up per replica"
                   for target in panel["targets"]]
    assert {row["metric"]["namespace"] for row in scraped.query(interpolated(replicas, chosen))} == {
        serving, away}
