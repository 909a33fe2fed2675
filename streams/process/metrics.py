"""Reading a ``/metrics`` page: the text it serves, within a timeout, and the samples in it.

A worker answers 503 while it restores its state and nothing at all before its web port is
up; :class:`MetricsUnavailable` tells the two apart (``status``) for a caller that reports
what it waits for.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


class MetricsUnavailable(Exception):
    """No ``/metrics`` text: the server answered ``status`` instead, or (``status`` None) nothing answered."""

    def __init__(self, url: str, status: int | None, reason: object) -> None:
        super().__init__(f"{url}: {f'HTTP {status}' if status is not None else reason}")
        self.url = url
        self.status = status


def fetch_metrics(url: str, timeout_s: float) -> str:
    """The text ``url`` serves (an http URL); :class:`MetricsUnavailable` when there is none."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - the caller's http URL
            text: str = response.read().decode()
            return text
    except urllib.error.HTTPError as exc:
        exc.close()
        raise MetricsUnavailable(url, exc.code, exc.reason) from None
    except OSError as exc:  # URLError, a refused or reset connection, a timeout
        raise MetricsUnavailable(url, None, getattr(exc, "reason", exc)) from None


def parse_metrics(text: str) -> Iterator[Sample]:
    """Every sample of a Prometheus text exposition, family by family; ValueError on a malformed one."""
    for family in text_string_to_metric_families(text):
        yield from family.samples
