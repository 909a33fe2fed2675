"""Every query of every rendered dashboard, read as a PromQL syntax tree: it reads counters only
through rate() or increase() (tests/dashboard_queries.py says the rule).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import dashboards
from tests.dashboard_queries import raw_counter_problems

MODELS = dashboards.load()


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row carries its panels


def panel_queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every target."""
    return [(panel["title"], target["expr"]) for panel in panels(model) for target in panel.get("targets", [])]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_panel_reads_a_raw_counter(name):
    found = {f"{title!r}: {expr}": problems for title, expr in panel_queries(MODELS[name])
             if (problems := raw_counter_problems(expr))}
    assert found == {}


@pytest.mark.parametrize("query", [
    'sum(corridor_finance_usd_total{instrument=~"$instrument"})',
    'sum by (instrument) (corridor_finance_usd_total)',
    'corridor_events_accepted_total',
    'histogram_quantile(0.9, sum by (le) (corridor_flight_delay_seconds_bucket))',
    'sum(corridor_flight_delay_seconds_sum) / sum(corridor_flight_delay_seconds_count)',
    'max_over_time(corridor_shipment_teu_total[1h])',
    'rate(sum without (owner) (corridor_events_accepted_total)[5m:])',
    'sum(rate(corridor_events_accepted_total[5m])) / sum(corridor_events_received_total)',
])
def test_a_raw_counter_read_outside_a_rate_is_caught(query):
    assert raw_counter_problems(query), query


@pytest.mark.parametrize("query", [
    'sum(increase(corridor_finance_usd_total{instrument=~"$instrument"}[$__range]))',
    'sum by (le) (rate(corridor_flight_delay_seconds_bucket[5m] offset 1w))',
    'sum(irate(corridor_events_accepted_total[1m]))',
    'sum(instrument:corridor_finance_usd:rate1h)',
    'sum(corridor_finance_usd_window{window="7d"})',
])
def test_a_counter_read_through_a_rate_passes(query):
    assert raw_counter_problems(query) == []
