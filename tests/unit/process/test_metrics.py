"""Fetching a /metrics text (what a worker answers while it restores, before it listens) and its samples."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streams.process import MetricsUnavailable, fetch_metrics, free_port, parse_metrics

METRICS = """\
# HELP corridor_events_received_total Events received.
# TYPE corridor_events_received_total counter
corridor_events_received_total{stream="shipments",partition="0",owner="a1b2-1"} 700.0
corridor_events_received_total{stream="flights",partition="1",owner="a1b2-1"} 1.2e+03
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2e+08
"""


class _Worker(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        body = METRICS.encode() if self.status == 200 else b"not now\n"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def worker() -> Iterator[tuple[str, type[_Worker]]]:
    handler = type("Handler", (_Worker,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics", handler
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_text_served_and_the_status_served_instead(worker: tuple[str, type[_Worker]]) -> None:
    url, handler = worker
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
