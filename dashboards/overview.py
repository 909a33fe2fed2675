"""Corridor overview: rolling TEU per route and mode, this week against last week, shipments by
milestone, and each route's share of the corridor."""

from __future__ import annotations

from typing import Any

from dashboards.common import (
    Query,
    bars,
    below,
    deployment,
    graph,
    label_variable,
    new_dashboard,
    per_deployment,
    pie,
    row,
    runbook_links,
    single,
    to_model,
    workers,
)
from streams.alerting.alert import (
    BOOKINGS_CANCELLED,
    ROUTE_VANISHED,
    STREAM_SILENT,
    VOLUME_ANOMALY,
    VOLUME_DROP,
    duration,
)
from streams.alerting.records import TEU_RATE1H, TEU_WINDOW_SUM
from streams.alerting.thresholds import Thresholds
from streams.core.families import SHIPMENT_EVENTS, SHIPMENT_GROSS_WEIGHT, SHIPMENT_TEU_WINDOW

UID = "corridor-overview"
SELECTED = 'corridor=~"$corridor", route=~"$route", mode=~"$mode"'
ALERTS = (VOLUME_DROP, VOLUME_ANOMALY, ROUTE_VANISHED, BOOKINGS_CANCELLED, STREAM_SILENT)


def build(t: Thresholds) -> dict[str, Any]:
    period = duration(t.volume_period_s)
    drop_window = t.volume_drop_window["shipments"]
    drop_fraction = t.volume_drop_fraction["shipments"]
    runbooks = runbook_links(t, ALERTS[:3])
    window = duration(t.cancellations_window_s)
    recorded, raw = deployment(t, SELECTED), workers(t, SELECTED)
    board = (
        new_dashboard(UID, "Corridor overview",
                      "Sea-rail, rail and road freight on the New International Land-Sea Trade Corridor: rolling TEU "
                      "departed per route and mode (event time), against the same window a week earlier.",
                      t, alerts=ALERTS, stream="shipments")
        .with_variable(label_variable("corridor", "corridor", TEU_WINDOW_SUM, deployment(t)))
        .with_variable(label_variable("route", "route", TEU_WINDOW_SUM, deployment(t, 'corridor=~"$corridor"')))
        .with_variable(label_variable("mode", "mode", TEU_WINDOW_SUM,
                                      deployment(t, 'corridor=~"$corridor", route=~"$route"')))
        .with_row(row("Volume"))
        .with_panel(single("TEU departed, last 24h", "Rolling 24h of departures (event time), selected routes.",
                           [Query(f'sum({TEU_WINDOW_SUM}{{{recorded}, window="24h"}})')], "none"))
        .with_panel(single("TEU departed, last 7d", "Rolling 7 days of departures (event time), selected routes.",
                           [Query(f'sum({TEU_WINDOW_SUM}{{{recorded}, window="7d"}})')], "none"))
        .with_panel(single(f"{drop_window} volume against a week earlier",
                           f"Rolling {drop_window} TEU of the selected routes over the same window {period} earlier. "
                           f"{VOLUME_DROP} fires per route below {drop_fraction:.0%}.",
                           [Query(f'sum({TEU_WINDOW_SUM}{{{recorded}, window="{drop_window}"}}) / '
                                  f'sum({SHIPMENT_TEU_WINDOW.name}{{{raw}, window="{drop_window}"}} '
                                  f'offset {period})')],
                           "percentunit", thresholds_config=below(drop_fraction), runbooks=runbooks))
        .with_panel(single("Routes carrying freight", "Routes with departures in the last 24h, per deployment.",
                           [Query(f'count by ({t.by()}) (sum by ({t.by("route")}) '
                                  f'({TEU_WINDOW_SUM}{{{recorded}, window="24h"}}) > 0)', per_deployment(t))], "none",
                           runbooks=runbook_links(t, [ROUTE_VANISHED])))
        .with_panel(graph("Rolling 24h TEU per route and mode",
                          "Departed TEU in the 24h up to each moment (event time), per route and mode.",
                          [Query(f'{TEU_WINDOW_SUM}{{{recorded}, window="24h"}}',
                                 per_deployment(t, "{{route}} {{mode}}"))], "none", runbooks=runbooks))
        .with_panel(graph("Rolling 7d TEU: this week against last week",
                          f"The 7-day window now (solid) and {period} earlier (same routes).",
                          [Query(f'sum by ({t.by("route")}) ({TEU_WINDOW_SUM}{{{recorded}, window="7d"}})',
                                 per_deployment(t, "{{route}} this week")),
                           Query(f'sum by ({t.by("route")}) ({SHIPMENT_TEU_WINDOW.name}{{{raw}, window="7d"}} '
                                 f'offset {period})', per_deployment(t, "{{route}} last week"))],
                          "none", runbooks=runbooks))
        .with_row(row("Shipments"))
        .with_panel(graph("Shipments by milestone",
                          "Milestones reached per hour (booked, departed, arrived, customs cleared, ...).",
                          [Query(f'sum by ({t.by("milestone")}) (rate({SHIPMENT_EVENTS.name}_total{{{raw}}}'
                                 '[$__rate_interval])) * 3600', per_deployment(t, "{{milestone}}"))],
                          "none", stacked=True))
        .with_panel(graph("TEU departed per hour, by mode",
                          "Departures' TEU per hour (from the counters, one-hour rate).",
                          [Query(f'sum by ({t.by("mode")}) ({TEU_RATE1H}'
                                 f'{{{recorded}}}) * 3600', per_deployment(t, "{{mode}}"))],
                          "none", stacked=True))
        .with_panel(pie("Routes' share of the corridor (7d TEU)", "Each route's part of the corridor's rolling 7d TEU.",
                        [Query(f'sum by ({t.by("route")}) ({TEU_WINDOW_SUM}{{{recorded}, window="7d"}})',
                               per_deployment(t, "{{route}}"))], "none",
                        width=8))
        .with_panel(bars("Gross weight departed, last 24h", "Gross weight of departed shipments per route.",
                         [Query(f'sum by ({t.by("route")}) (increase({SHIPMENT_GROSS_WEIGHT.name}_total'
                                f'{{{raw}}}[24h])) / 1000', per_deployment(t, "{{route}}"))], "masskg", width=8))
        .with_panel(bars("Hourly TEU by route, now", "The last hour's rolling TEU per route.",
                         [Query(f'sum by ({t.by("route")}) ({TEU_WINDOW_SUM}{{{recorded}, window="1h"}})',
                                per_deployment(t, "{{route}}"))], "none",
                         width=8))
        .with_panel(graph(f"Bookings cancelled and taken, last {window}",
                          f"Per route: bookings cancelled and new bookings in the {window} up to each moment (as "
                          f"processed). {BOOKINGS_CANCELLED} fires when a route cancels more than it books, "
                          f"at least {t.cancellations_min}: its departures are being called off.",
                          [Query(f'sum by ({t.by("route")}) (increase({SHIPMENT_EVENTS.name}_total{{{raw}, '
                                 f'milestone="cancelled"}}[{window}]))', per_deployment(t, "{{route}} cancelled")),
                           Query(f'sum by ({t.by("route")}) (increase({SHIPMENT_EVENTS.name}_total{{{raw}, '
                                 f'milestone="booked"}}[{window}]))', per_deployment(t, "{{route}} booked"))],
                          "none", width=24, runbooks=runbook_links(t, [BOOKINGS_CANCELLED])))
    )
    return to_model(board)
