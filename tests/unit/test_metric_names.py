"""Every metric a dashboard query or a rule names is one a series declaration exports, or a recording rule.

And the dashboards and the rules spell no metric, rule or alert name: they import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import dashboards
from streams.alerting import records, rules
from streams.alerting.thresholds import PROFILES
from streams.core.families import MEASURED
from streams.core.series import EVENTS_REJECTED, INGEST_SERIES, PIPELINE_COUNTERS, WORKER_SERIES

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_IDENTIFIER = re.compile(r"(?<![\w:$])[A-Za-z_:][\w:]*")
_ALERT = re.compile(r"Corridor[A-Z]\w*")
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created", "_info")


def exported() -> set[str]:
    """Every series name a worker or the ingest exports, with the suffixes Prometheus adds to counters,
    histograms and infos."""
    series = [*PIPELINE_COUNTERS, EVENTS_REJECTED, *WORKER_SERIES, *INGEST_SERIES]
    for family in MEASURED.values():
        series += [*family.counters, *family.windows, *family.histograms, *family.gauges]
    return {series.name + suffix for series in series for suffix in _SUFFIXES}


def known_names() -> set[str]:
    return exported() | records.RECORD_NAMES


def corridor_names(expr: str) -> set[str]:
    """The corridor metric and rule names ``expr`` reads (string literals, such as label values, left out)."""
    return {name for name in _IDENTIFIER.findall(_STRING.sub('""', expr)) if "corridor_" in name}


def dashboard_queries() -> Iterator[tuple[str, str]]:
    def walk(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"expr", "query"} and isinstance(value, str):
                    yield where, value
                else:
                    yield from walk(value, where)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    for name, model in dashboards.render().items():
        yield from walk(model, f"dashboard {name}")


def rule_expressions() -> Iterator[tuple[str, str]]:
    for profile, thresholds in PROFILES.items():
        for rule in rules.alert_rules(thresholds):
            yield f"alert {rule['alert']} ({profile})", rule["expr"]
    for text in records.render(PROFILES["default"]).values():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                yield f"record {rule['record']}", rule["expr"]


def test_the_expressions_are_found():
    assert sum(1 for _ in dashboard_queries()) > 20
    assert sum(1 for _ in rule_expressions()) > 20


@pytest.mark.parametrize("source", ["dashboards", "rules"])
def test_every_metric_named_is_exported_or_recorded(source):
    known = known_names()
    expressions = dashboard_queries() if source == "dashboards" else rule_expressions()
    unknown = {where: names for where, expr in expressions if (names := corridor_names(expr) - known)}
    assert not unknown, f"no series declaration exports these: {unknown}"


def test_a_misspelt_metric_is_caught():
    names = corridor_names('sum by (stream) (rate(corridor_events_recieved_total{topic="corridor_x"}[5m]))')
    assert names == {"corridor_events_recieved_total"}
    assert not names <= exported()


def test_no_dashboard_or_alert_module_spells_a_metric_or_rule_name():
    root, known = Path(__file__).resolve().parents[2], known_names()
    modules = [*(root / "dashboards").glob("*.py"), *(root / "streams" / "alerting").glob("*.py")]
    spelled = {
        path.name: names
        for path in modules
        if path.name != "records.py" and (names := set(_IDENTIFIER.findall(path.read_text(encoding="utf-8"))) & known)
    }
    assert not spelled, f"name these by their series declaration or streams.alerting.records: {spelled}"


def test_no_dashboard_or_rule_module_spells_an_alert_name():
    root = Path(__file__).resolve().parents[2]
    alerts = {rule["alert"] for rule in rules.alert_rules(PROFILES["default"])}
    modules = [*(root / "dashboards").glob("*.py"), *(root / "streams" / "alerting").glob("*.py")]
    # thresholds.py names the alert each field tunes in its description, as prose
    modules = [path for path in modules if path.name not in {"alert.py", "thresholds.py"}]
    spelled = {
        path.name: names for path in modules if (names := set(_ALERT.findall(path.read_text("utf-8"))) & alerts)
    }
    assert not spelled, f"name these by their constant in streams.alerting.alert: {spelled}"
