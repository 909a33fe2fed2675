"""Alert quality, measured on a real Prometheus: a short `corridor alerts evaluate` (one week).

Covers the shipment volume alerts on the busiest route (CNCKG-CNQZH-SGSIN): one week of
baseline after the 5-week warm-up the seasonal band needs, an 80% and a full cut injected by
the simulator's drop scenario. The full table (every route, 50/80/100%, covid-2020) is in
docs/runbook.md, "Alert quality".
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from streams.alerting.quality import ANY, HOUR, Plan, Report, evaluate
from streams.alerting.thresholds import PROFILES

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
ROUTE = "CNCKG-CNQZH-SGSIN"


@pytest.fixture(scope="module")
def report(promtool_bin, prometheus_bin, tmp_path_factory) -> Report:
    plan = Plan(weeks=1, routes=(ROUTE,), fractions=(0.8, 1.0), families=("shipments",), covid=False,
                horizon=timedelta(hours=24))
    return evaluate(plan, PROFILES["default"], rules_dir=RULES, workdir=tmp_path_factory.mktemp("quality"),
                    promtool=promtool_bin, prometheus_bin=prometheus_bin)


def delay(report: Report, alert: str, fraction: float) -> float | None:
    (found,) = report.delays(alert, fraction, ROUTE)
    return found


def test_no_volume_alert_fires_in_a_week_of_baseline(report):
    assert report.weeks == {"baseline": 1}
    assert report.false_firings["baseline"] == []


def test_a_cut_route_is_found_within_hours(report):
    # What the busiest route's ~9 departures an hour allow with no false firing (runbook, "Alert quality").
    assert delay(report, ANY, 0.8) is not None and delay(report, ANY, 0.8) <= 8 * HOUR
    assert delay(report, "CorridorVolumeAnomaly", 0.8) is not None
    assert delay(report, ANY, 1.0) is not None and delay(report, ANY, 1.0) <= 7 * HOUR
    assert delay(report, "CorridorRouteVanished", 1.0) is not None
    assert delay(report, "CorridorRouteVanished", 0.8) is None  # 20% of the TEU still departs


@pytest.mark.xfail(strict=True, reason="out of reach with no false firings: a route's departures are a few "
                                       "an hour (docs/runbook.md, 'Alert quality')")
def test_an_80_percent_drop_within_an_hour(report):
    assert delay(report, ANY, 0.8) is not None and delay(report, ANY, 0.8) <= 1 * HOUR
