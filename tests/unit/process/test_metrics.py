"""Fetching a /metrics text (what a worker answers while it restores, before it listens) and its samples."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.process import MetricsUnavailable, fetch_metrics, free_port, parse_metrics
from tests.fake_http import FakeMetricsPage

METRICS = """\
# HELP corridor_events_received_total Events received.
# TYPE corridor_events_received_total counter
corridor_events_received_total{stream="shipments",partition="0",owner="a1b2-1"} 700.0
corridor_events_received_total{stream="flights",partition="1",owner="a1b2-1"} 1.2e+03
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2e+08
"""


@pytest.fixture
def page() -> Iterator[FakeMetricsPage]:
    with FakeMetricsPage(200, lambda status: METRICS.encode() if status == 200 else b"not now\n").serving() as fake:
        yield fake


def test_the_text_served_and_the_status_served_instead(page: FakeMetricsPage) -> None:
    url, handler = f"{page.url}/metrics", page
    assert fetch_metrics(url, 5) == METRICS
    handler.status = 503
    with pytest.raises(MetricsUnavailable, match="HTTP 503") as refused:
        fetch_metrics(url, 5)
    assert refused.value.status == 503 and refused.value.url == url


def test_nothing_listening_has_no_status() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(MetricsUnavailable) as nothing:
        fetch_metrics(url, 5)
    assert nothing.value.status is None


def test_samples_of_every_family_keep_their_names_labels_and_values() -> None:
    samples = [(sample.name, sample.labels, sample.value) for sample in parse_metrics(METRICS)]
    assert samples == [
        ("corridor_events_received_total", {"stream": "shipments", "partition": "0", "owner": "a1b2-1"}, 700.0),
        ("corridor_events_received_total", {"stream": "flights", "partition": "1", "owner": "a1b2-1"}, 1200.0),
        ("process_resident_memory_bytes", {}, 1.2e8),
    ]
    assert list(parse_metrics("")) == []
    with pytest.raises(ValueError):
        list(parse_metrics("corridor_events_received_total{stream=shipments} 1\n"))
