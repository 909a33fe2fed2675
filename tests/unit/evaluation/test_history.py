"""Simulated metric history: drops spliced in from the drop scenario, the pure core, OpenMetrics out."""

from __future__ import annotations

import io
from collections import Counter
from datetime import datetime, timedelta

import pytest

from streams.evaluation.history import Drop, History, exported_history, simulated_events
from streams.sim.simulator import Scenario, SimulationConfig, generate

DAY = timedelta(days=1)
CONFIG = SimulationConfig(Scenario.BASELINE, seed=5, families=("shipments",))
DROP = Drop("CNCKG-CNQZH-SGSIN", 0.8, timedelta(hours=30), timedelta(hours=12))


def teu_by_route(events, begin: float, end: float) -> Counter[str]:
    origin = CONFIG.start.timestamp()
    teu: Counter[str] = Counter()
    for _, event in events:
        moment = datetime.fromisoformat(event["event_time"]).timestamp() - origin
        # TEU count on the departure from the origin, not again from a hub on the way.
        at_origin = event.get("location", event["origin"]) == event["origin"]
        if event["milestone"] == "departed" and at_origin and begin <= moment < end:
            teu[event["route"]] += event["teu"]
    return teu


@pytest.fixture(scope="module")
def spliced():
    return list(simulated_events(CONFIG, 3 * DAY, [DROP]))


def test_the_events_stay_in_event_time_order(spliced):
    times = [event["event_time"] for _, event in spliced]
    assert times == sorted(times)


def test_only_the_dropped_route_loses_teu_and_only_during_the_drop(spliced):
    baseline = list(generate(CONFIG, 3 * DAY))
    at, end = DROP.at.total_seconds(), DROP.end.total_seconds()
    before, during, after = (0, at), (at, end), (end, 3 * 86400)
    assert teu_by_route(spliced, *before) == teu_by_route(baseline, *before)
    assert teu_by_route(spliced, *after) == teu_by_route(baseline, *after)
    cut, kept = teu_by_route(baseline, *during), teu_by_route(spliced, *during)
    for route in cut:
        if route == DROP.route:
            assert kept[route] == pytest.approx(0.2 * cut[route], abs=12)  # within half a shipment, the scenario says
        else:
            assert kept[route] == cut[route]


def test_the_exported_windows_are_what_the_events_carry():
    history = exported_history(CONFIG, 2 * DAY, 300, {"corridor_shipment_teu_window"})
    end = CONFIG.start.timestamp() + 2 * 86400
    departed = teu_by_route(generate(CONFIG, 2 * DAY), 86400, 2 * 86400)
    for (name, labels), series in history.series.items():
        labels = dict(labels)
        assert name == "corridor_shipment_teu_window" and series.type == "gauge"
        # Every 5 minutes to the end, from the route's first departure (a series exists once seen).
        assert series.times[-1] == end and {b - a for a, b in zip(series.times, series.times[1:])} == {300}
        if labels["window"] == "24h":
            # The 24h window's 15-minute buckets: it holds the last day, to the bucket.
            assert series.values[-1] == pytest.approx(departed[labels["route"]], rel=0.05)


def test_openmetrics_groups_each_family_and_series_and_cuts_by_time():
    history = History({"a_window", "b"})
    for moment in (100.0, 200.0, 300.0):
        history.record(moment, [
            ("a_window", "gauge", "a_window", {"route": 'x"y'}, 1.5),
            ("b", "counter", "b_total", {}, moment),
            ("ignored", "gauge", "ignored", {}, 1.0),
        ])
    out = io.StringIO()
    history.write_openmetrics(out, 200, 300)
    assert out.getvalue() == (
        "# TYPE a_window gauge\n"
        'a_window{route="x\\"y"} 1.5 200.000\n'
        "# TYPE b counter\n"
        "b_total 200.0 200.000\n"
        "# EOF\n"
    )
    assert history.span == (100.0, 300.0)


def test_a_histograms_samples_are_written_as_families_of_their_own_and_other_types_are_refused():
    history = History({"h"})
    history.record(1.0, [("h", "histogram", "h_bucket", {"le": "1"}, 1.0), ("h", "histogram", "h_count", {}, 2.0),
                         ("h", "histogram", "h_sum", {}, 0.5)])
    out = io.StringIO()
    history.write_openmetrics(out)
    assert out.getvalue() == (
        "# TYPE h_bucket unknown\n" 'h_bucket{le="1"} 1.0 1.000\n'
        "# TYPE h_count unknown\n" "h_count 2.0 1.000\n"
        "# TYPE h_sum unknown\n" "h_sum 0.5 1.000\n"
        "# EOF\n"
    )
    with pytest.raises(ValueError, match="summary"):
        History({"s"}).record(1.0, [("s", "summary", "s_sum", {}, 1.0)])
