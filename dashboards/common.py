"""What every corridor dashboard shares: the datasource variable, the deployment variables, label
variables, panels with their queries, thresholds from the alert config, runbook links and the
firing-alerts annotation.

Queries read the project's recording rules where one exists (deploy/prometheus/rules/) and
the raw series otherwise; every label variable's "All" value is ``.*`` so that queries match
with ``=~"$var"``. The datasource is always the ``$datasource`` variable: no dashboard
carries a datasource uid of its own.

Several deployments may share one Prometheus: every dashboard has a variable per deployment
label of the alert config (``Thresholds.deployment_labels``, ``cluster`` and ``namespace`` by
default), and every query selects them. A panel builds its selectors with ``deployment()``
(recorded series, ``ALERTS``) or ``workers()`` (the workers' raw series, which also carry the
worker selector); an aggregation that keeps series apart groups by ``t.by(...)``, which keeps the
deployment labels, and names the series with ``per_deployment()``; one that adds everything up
(``sum(...)``, ``sum by (le)``) shows one number for the deployments chosen. A Prometheus whose
series carry none of these labels still works: the "All" value ``.*`` matches an absent label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, dashboard, piechart, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import heatmap as heat
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (
    BigValueGraphMode,
    GraphTresholdsStyleMode,
    HeatmapCellLayout,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
    VizOrientation,
)
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode, HeatmapColorScale
from grafana_foundation_sdk.models.piechart import PieChartLegendValues, PieChartType
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from streams.alerting.alert import runbook_url
from streams.alerting.rules import alert_rules
from streams.alerting.thresholds import Thresholds

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The series every scraped target has: the deployment variables list their values from it, so a
#: deployment whose workers are all down is still listed.
TARGETS = "up"
TAGS = ["corridor-monitor"]
REFRESH = "1m"

Panel = Builder[model.Panel]


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel and how its series are named in the legend."""

    expr: str
    legend: str = ""
    instant: bool = False


def deployment(t: Thresholds, matchers: str = "") -> str:
    """The inside of a selector narrowed to the deployments the dashboard's variables choose, then
    ``matchers``: for recorded series and ``ALERTS`` (``f'{RULE}{{{deployment(t, 'window="7d"')}}}'``)."""
    return _chosen(t.deployment_labels, matchers)


def _chosen(labels: Sequence[str], matchers: str) -> str:
    return ", ".join([*(f'{label}=~"${label}"' for label in labels), *filter(None, [matchers])])


def workers(t: Thresholds, matchers: str = "") -> str:
    """The inside of a selector of the workers' raw series: the worker selector, the chosen deployments,
    then ``matchers``."""
    return t.workers(deployment(t, matchers))


def per_deployment(t: Thresholds, legend: str = "") -> str:
    """``legend`` followed by the series' deployment labels, so that under "All" the series of two
    deployments are told apart (a Prometheus without the labels shows ``legend`` alone)."""
    return " ".join([*filter(None, [legend]), *(f"{{{{{label}}}}}" for label in t.deployment_labels)])


def firing_alerts(thresholds: Thresholds, alerts: Sequence[str], stream: str | None = None) -> str:
    """The ``ALERTS`` selector of the firing ``alerts``: with ``stream``, the rules rendered once per
    stream (those carrying a ``stream`` label) only for that stream."""
    per_stream = sorted({rule["alert"] for rule in alert_rules(thresholds) if rule["alert"] in alerts
                         and "stream" in rule["labels"]}) if stream else []
    others = sorted(set(alerts) - set(per_stream))
    firing = deployment(thresholds, 'alertstate="firing"')
    selectors = [f'ALERTS{{{firing}, alertname=~"{"|".join(others)}"}}'] if others else []
    if per_stream:
        selectors.append(f'ALERTS{{{firing}, alertname=~"{"|".join(per_stream)}", stream="{stream}"}}')
    return " or ".join(selectors)


def new_dashboard(uid: str, title: str, description: str, thresholds: Thresholds, *, alerts: Sequence[str],
                  stream: str | None = None) -> dashboard.Dashboard:
    """A dashboard with the datasource and deployment variables, the corridor links and the
    firing-alerts annotation (``alerts``, narrowed to ``stream`` where an alert exists per stream)."""
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-7d", "now")
        .refresh(REFRESH)
        .link(dashboard.DashboardLink("Corridor dashboards").type(model.DashboardLinkType.DASHBOARDS).tags(TAGS)
              .as_dropdown(True).include_vars(True).keep_time(True))
        .link(dashboard.DashboardLink("Runbook").type(model.DashboardLinkType.LINK).url(thresholds.runbook_url)
              .target_blank(True).icon("doc"))
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .annotation(
            dashboard.AnnotationQuery()
            .name("Firing alerts")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("red")
            .expr(firing_alerts(thresholds, alerts, stream))
        )
    )
    for variable in deployment_variables(thresholds):
        board = board.with_variable(variable)
    return board


def deployment_variables(t: Thresholds) -> list[dashboard.QueryVariable]:
    """A variable per deployment label, each narrowed by the ones before it (namespaces of the chosen
    clusters), listing the values the workers' targets carry."""
    labels = t.deployment_labels
    return [label_variable(label, label, TARGETS, t.workers(_chosen(labels[:i], ""))) for i, label in enumerate(labels)]


def label_variable(name: str, label: str, metric: str, selector: str = "") -> dashboard.QueryVariable:
    """A multi-value variable over ``label``'s values on ``metric`` (narrowed by ``selector``), All = ``.*``."""
    query = f"label_values({metric}{{{selector}}}, {label})" if selector else f"label_values({metric}, {label})"
    return (
        dashboard.QueryVariable(name)
        .label(label.replace("_", " ").capitalize() if name == label else name.capitalize())
        .datasource(DATASOURCE)
        .query({"query": query, "refId": f"{name}-values", "qryType": 1})
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def steps(*pairs: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute threshold steps: (value, color) from the base (value None) upwards."""
    return dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=value, color=color) for value, color in pairs]
    )


def below(limit: float) -> dashboard.ThresholdsConfig:
    """Red under ``limit`` (an alert's threshold), green from it."""
    return steps((None, "red"), (limit, "green"))


def above(limit: float) -> dashboard.ThresholdsConfig:
    """Green under ``limit``, red from it."""
    return steps((None, "green"), (limit, "red"))


def runbook_links(thresholds: Thresholds, alerts: Sequence[str]) -> list[dashboard.DashboardLink]:
    return [dashboard.DashboardLink(f"Runbook: {alert}").url(runbook_url(thresholds, alert)).target_blank(True)
            for alert in alerts]


def _targets(queries: Sequence[Query], query_format: PromQueryFormat | None = None) -> list[prometheus.Dataquery]:
    targets = []
    for ref, query in zip("ABCDEFGHIJ", queries, strict=False):
        target = prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
        target = target.instant() if query.instant else target.range()
        if query_format is not None:
            target = target.format(query_format)
        if query.legend:
            target = target.legend_format(query.legend)
        targets.append(target)
    return targets


def _dress(panel: Any, title: str, description: str, queries: Sequence[Query], unit: str, *, width: int,
           height: int, thresholds_config: dashboard.ThresholdsConfig | None, runbooks: list[dashboard.DashboardLink],
           query_format: PromQueryFormat | None = None) -> Panel:
    panel = (panel.title(title).description(description).datasource(DATASOURCE)
             .targets(_targets(queries, query_format))
             .unit(unit).span(width).height(height))
    if thresholds_config is not None:
        panel = panel.thresholds(thresholds_config)
    if runbooks:
        panel = panel.links(runbooks)
    return panel


def graph(title: str, description: str, queries: Sequence[Query], unit: str, *, width: int = 12, height: int = 8,
          stacked: bool = False, thresholds_config: dashboard.ThresholdsConfig | None = None,
          runbooks: Sequence[dashboard.DashboardLink] = ()) -> Panel:
    """A time series panel; with ``thresholds_config`` the alert threshold is drawn as a dashed line."""
    legend = (common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE).placement(LegendPlacement.BOTTOM)
              .show_legend(True).calcs(["lastNotNull", "max"]))
    panel = timeseries.Panel().legend(legend).fill_opacity(40 if stacked else 10).line_width(1).span_nulls(False)
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(StackingMode.NORMAL))
    if thresholds_config is not None:
        panel = panel.thresholds_style(common.GraphThresholdsStyleConfig()
                                       .mode(GraphTresholdsStyleMode.DASHED))
    return _dress(panel, title, description, queries, unit, width=width, height=height,
                  thresholds_config=thresholds_config, runbooks=list(runbooks))


def single(title: str, description: str, queries: Sequence[Query], unit: str, *, width: int = 6, height: int = 5,
           thresholds_config: dashboard.ThresholdsConfig | None = None,
           runbooks: Sequence[dashboard.DashboardLink] = ()) -> Panel:
    """A stat panel showing the last value of each series, with a sparkline."""
    panel = (stat.Panel().graph_mode(BigValueGraphMode.AREA)
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    return _dress(panel, title, description, queries, unit, width=width, height=height,
                  thresholds_config=thresholds_config or steps((None, "blue")), runbooks=list(runbooks))


def bars(title: str, description: str, queries: Sequence[Query], unit: str, *, width: int = 12, height: int = 8,
         thresholds_config: dashboard.ThresholdsConfig | None = None,
         per_series: Mapping[str, dashboard.ThresholdsConfig] | None = None,
         runbooks: Sequence[dashboard.DashboardLink] = ()) -> Panel:
    """A horizontal bar gauge: one bar per series, its last value; ``per_series`` sets the thresholds
    of the series whose legend is that name, or starts with it and a space (``per_deployment``)."""
    panel = (bargauge.Panel().orientation(VizOrientation.HORIZONTAL)
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))
    for name, config in sorted((per_series or {}).items()):
        panel = panel.override_by_regexp(f"^{re.escape(name)}( .*)?$",
                                         [model.DynamicConfigValue(id_val="thresholds", value=config.build())])
    return _dress(panel, title, description, queries, unit, width=width, height=height,
                  thresholds_config=thresholds_config or steps((None, "blue")), runbooks=list(runbooks))


def pie(title: str, description: str, queries: Sequence[Query], unit: str, *, width: int = 6,
        height: int = 8) -> Panel:
    """A donut of the series' last values (shares of a whole)."""
    panel = (piechart.Panel().pie_type(PieChartType.DONUT)
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .legend(piechart.PieChartLegendOptions().display_mode(LegendDisplayMode.TABLE)
                     .placement(LegendPlacement.RIGHT).show_legend(True).values([PieChartLegendValues.PERCENT])))
    return _dress(panel, title, description, queries, unit, width=width, height=height, thresholds_config=None,
                  runbooks=[])


def heatmap(title: str, description: str, query: Query, unit: str, *, bounds_unit: str = "s", width: int = 12,
            height: int = 8, runbooks: Sequence[dashboard.DashboardLink] = (), repeat: str = "") -> Panel:
    """A heatmap of a histogram: ``query`` sums a ``_bucket`` rate by ``le``; Grafana turns the cumulative
    buckets into one row per bucket (bounds in ``bounds_unit``), each cell what fell in it (``unit``).
    With ``repeat`` (a variable's name), one heatmap side by side per value of the variable chosen."""
    panel = heat.Panel()
    if repeat:
        panel = panel.repeat(repeat).repeat_direction("h")
    panel = (panel.calculate(False)
             .rows_frame(heat.RowsHeatmapOptions().layout(HeatmapCellLayout.LE))
             .color(heat.HeatmapColorOptions().mode(HeatmapColorMode.SCHEME).scheme("Oranges")
                    .scale(HeatmapColorScale.EXPONENTIAL).exponent(0.5).steps(64))
             .y_axis(heat.YAxisConfig().unit(bounds_unit))
             .cell_values(heat.CellValues().unit(unit))
             .show_legend().show_tooltip().show_y_histogram())
    return _dress(panel, title, description, [Query(query.expr, query.legend or "{{le}}")], unit, width=width,
                  height=height, thresholds_config=None, runbooks=list(runbooks), query_format=PromQueryFormat.HEATMAP)


def grid(title: str, description: str, queries: Sequence[Query], unit: str, *, width: int = 12,
         height: int = 8) -> Panel:
    """A table of instant query results, one row per series (labels as columns)."""
    instant = [Query(q.expr, q.legend, instant=True) for q in queries]
    panel = table.Panel().with_transformation(model.DataTransformerConfig(id_val="labelsToFields", options={}))
    return _dress(panel, title, description, instant, unit, width=width, height=height, thresholds_config=None,
                  runbooks=[])


def row(title: str) -> dashboard.Row:
    return dashboard.Row(title)


def to_model(built: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard as the JSON model Grafana imports, with what the SDK has no builder for:
    the firing-alerts annotation's title and text templates."""
    result: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(built.build()))
    for annotation in result.get("annotations", {}).get("list", []):
        if annotation.get("name") == "Firing alerts":
            annotation.update(
                step="60s",
                titleFormat="{{alertname}}",
                textFormat="{{severity}} {{stream}} {{route}}{{link}}{{instance}}",
                tagKeys="severity,stream",
                useValueForTime=False,
            )
    return result
