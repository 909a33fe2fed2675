"""Transit and reliability: transit time per route against its usual, its legs and the dwell at the
Qinzhou hub, arrivals on time, shipments in transit and overdue, and flights on time as OAG counts.

Every panel reads the recording rules of ``deploy/prometheus/rules/corridor-transit.yml``: a day of
arrivals for shipments, a week for flights, as the alerts read them."""

from __future__ import annotations

from typing import Any

from dashboards.common import (
    Query,
    above,
    below,
    deployment,
    graph,
    heatmap,
    label_variable,
    new_dashboard,
    per_deployment,
    row,
    runbook_links,
    single,
    to_model,
    workers,
)
from streams.alerting.alert import FLIGHTS_LATE, ON_TIME_SHARE_LOW, SHIPMENTS_OVERDUE, TRANSIT_TIME_HIGH
from streams.alerting.records import (
    ARRIVED_ON_TIME_RATIO1D,
    DWELL_BUCKET_INCREASE1D,
    FLIGHT_ON_TIME_RATIO1W,
    FLIGHT_PUNCTUALITY_INCREASE1W,
    IN_TRANSIT_SUM,
    LEG_BUCKET_INCREASE1D,
    ON_TIME,
    OVERDUE_SUM,
    PUNCTUALITY_INCREASE1D,
    TRANSIT_BUCKET_INCREASE1D,
)
from streams.alerting.thresholds import Thresholds
from streams.alerting.transit import ALL_ARRIVALS, quantile_name, transit_baseline, transit_quantile
from streams.core.families import SHIPMENTS_EVICTED

UID = "corridor-transit"
ROUTES = 'corridor=~"$corridor", route=~"$route"'
SELECTED = f'{ROUTES}, mode=~"$mode"'
#: The transshipment hub of the rail-sea route, where a shipment changes from train to ship.
HUB = "CNQZH"
ALERTS = (TRANSIT_TIME_HIGH, SHIPMENTS_OVERDUE, ON_TIME_SHARE_LOW, FLIGHTS_LATE)
#: The percentiles drawn of each time.
PERCENTILES = (0.5, 0.9)


def _percentiles(record: str, selector: str, legend: str) -> list[Query]:
    return [Query(f"histogram_quantile({q:g}, {record}{{{selector}}})", f"{legend} p{round(q * 100)}")
            for q in PERCENTILES]


def build(t: Thresholds) -> dict[str, Any]:
    recorded, routes = deployment(t, SELECTED), deployment(t, ROUTES)
    at_hub = deployment(t, f'{ROUTES}, location="{HUB}"')
    flights, flights_on_time = deployment(t), deployment(t, f'punctuality="{ON_TIME}"')
    route_legend = per_deployment(t, "{{route}}")
    name = quantile_name(t.transit_time_quantile)
    transit_runbook, overdue_runbook = runbook_links(t, [TRANSIT_TIME_HIGH]), runbook_links(t, [SHIPMENTS_OVERDUE])
    board = (
        new_dashboard(UID, "Transit and reliability",
                      "Time on the corridor: how long shipments take per route against their usual, where the time "
                      "goes (legs, dwell at the Qinzhou hub), arrivals on time, shipments in transit and overdue, and "
                      "flights between Chongqing and Singapore on time.",
                      t, alerts=ALERTS)
        .with_variable(label_variable("corridor", "corridor", IN_TRANSIT_SUM, deployment(t)))
        .with_variable(label_variable("route", "route", IN_TRANSIT_SUM, deployment(t, 'corridor=~"$corridor"')))
        .with_variable(label_variable("mode", "mode", IN_TRANSIT_SUM, deployment(t, ROUTES)))
        .with_row(row("Transit time"))
        .with_panel(graph("Transit time percentiles per route",
                          "Departure from the origin to arrival at the destination (event time) of the shipments "
                          f"that arrived in the day up to each moment. The alert line is {t.transit_time_factor:g} "
                          f"times the {name} of the 7 days before that day: {TRANSIT_TIME_HIGH} fires while the "
                          f"{name} is above it (routes with at least {t.transit_time_min_arrivals} arrivals a day).",
                          [*_percentiles(TRANSIT_BUCKET_INCREASE1D, recorded, route_legend),
                           Query(f"{t.transit_time_factor:g} * {transit_baseline(t, recorded)}",
                                 per_deployment(t, "{{route}} alert line"))],
                          "s", height=9, runbooks=transit_runbook))
        .with_panel(graph("Transit time against the week before",
                          f"The {name} transit time of the day's arrivals over the same {name} of the 7 days before "
                          f"that day, per route; {TRANSIT_TIME_HIGH} fires above {t.transit_time_factor:g}.",
                          [Query(f"{transit_quantile(t, recorded)}\n/\n{transit_baseline(t, recorded)}",
                                 route_legend)],
                          "suffix:×", width=6, height=9, thresholds_config=above(t.transit_time_factor),
                          runbooks=transit_runbook))
        .with_panel(graph("Arrivals per route, last day",
                          "Shipments that arrived at their destination in the day up to each moment: the transit "
                          f"times above are theirs ({TRANSIT_TIME_HIGH} judges routes with at least "
                          f"{t.transit_time_min_arrivals}).",
                          [Query(f"{TRANSIT_BUCKET_INCREASE1D}{{{recorded}, {ALL_ARRIVALS}}}", route_legend)],
                          "none", width=6, height=9))
        .with_panel(heatmap("Transit time distribution: $route",
                            "Shipments of the route by transit time: each cell the arrivals of the day up to that "
                            "moment whose transit time fell in that bucket (a day wide up to 10 days). One panel "
                            "per route chosen.",
                            Query(f"sum by (le) ({TRANSIT_BUCKET_INCREASE1D}{{{recorded}}})"), "none",
                            runbooks=transit_runbook, repeat="route"))
        .with_row(row("Legs and dwell"))
        .with_panel(graph("Leg time percentiles",
                          "A departure to the next arrival, per leg (rail CNCKG-CNQZH, sea CNQZH-SGSIN, ...), of the "
                          "legs that ended in the day up to each moment.",
                          _percentiles(LEG_BUCKET_INCREASE1D, routes, per_deployment(t, "{{route}} {{leg}}")),
                          "s", runbooks=transit_runbook))
        .with_panel(graph(f"Dwell at Qinzhou ({HUB})",
                          "An arrival at the hub to the next departure from it (train to ship), of the shipments "
                          "that left the hub in the day up to each moment.",
                          _percentiles(DWELL_BUCKET_INCREASE1D, at_hub, route_legend), "s",
                          runbooks=transit_runbook))
        .with_panel(heatmap(f"Dwell at Qinzhou ({HUB}) distribution",
                            "Shipments by their dwell at the hub: each cell the departures from the hub in the day "
                            "up to that moment whose dwell fell in that bucket.",
                            Query(f"sum by (le) ({DWELL_BUCKET_INCREASE1D}{{{at_hub}}})"), "none", width=24))
        .with_row(row("On time"))
        .with_panel(graph("Arrivals on time per route",
                          "The share of the day's arrivals with a planned time that arrived within the mode's "
                          f"tolerance (rail 6 h, sea and rail-sea a day, road 2 h); {ON_TIME_SHARE_LOW} fires below "
                          f"{t.on_time_target:.0%} (routes with at least {t.on_time_min_arrivals} such arrivals).",
                          [Query(f"{ARRIVED_ON_TIME_RATIO1D}{{{recorded}}}", route_legend)], "percentunit",
                          thresholds_config=below(t.on_time_target),
                          runbooks=runbook_links(t, [ON_TIME_SHARE_LOW])))
        .with_panel(graph("Milestones by punctuality, last day",
                          "Milestones with a planned time in the day up to each moment: on time, early or late.",
                          [Query(f"sum by ({t.by('milestone, punctuality')}) "
                                 f"({PUNCTUALITY_INCREASE1D}{{{recorded}}})",
                                 per_deployment(t, "{{milestone}} {{punctuality}}"))],
                          "none", stacked=True))
        .with_row(row("In transit and overdue"))
        .with_panel(single("In transit now", "Shipments departed from their origin and not arrived, selected routes.",
                           [Query(f"sum({IN_TRANSIT_SUM}{{{recorded}}})")], "none"))
        .with_panel(single("Overdue now", "Shipments whose planned arrival plus the mode's tolerance has passed, "
                           "not arrived (`corridor shipments overdue` lists them).",
                           [Query(f"sum({OVERDUE_SUM}{{{recorded}}})")], "none", runbooks=overdue_runbook))
        .with_panel(single("Overdue per shipment in transit",
                           f"{SHIPMENTS_OVERDUE} fires per route above {t.overdue_fraction:.0%}, with at least "
                           f"{t.overdue_min_shipments} overdue.",
                           [Query(f"sum({OVERDUE_SUM}{{{recorded}}}) / sum({IN_TRANSIT_SUM}{{{recorded}}})")],
                           "percentunit", thresholds_config=above(t.overdue_fraction), runbooks=overdue_runbook))
        .with_panel(single("Given up, last 7d",
                           "Journeys evicted after the shipment horizon without arriving (their arrival never "
                           "reported): each was overdue until then. 0 while the deployment holds shipments and "
                           "gave none up.",
                           [Query(f"sum(increase({SHIPMENTS_EVICTED.name}_total{{{workers(t, SELECTED)}}}[7d]))"
                                  f" or 0 * sum({IN_TRANSIT_SUM}{{{recorded}}})")],
                           "none"))
        .with_panel(graph("Shipments in transit per route", "Shipments departed and not arrived, per route.",
                          [Query(f"{IN_TRANSIT_SUM}{{{recorded}}}", route_legend)], "none", width=8))
        .with_panel(graph("Overdue shipments per route",
                          f"{SHIPMENTS_OVERDUE} needs at least {t.overdue_min_shipments} overdue on a route.",
                          [Query(f"{OVERDUE_SUM}{{{recorded}}}", route_legend)], "none", width=8,
                          thresholds_config=above(t.overdue_min_shipments), runbooks=overdue_runbook))
        .with_panel(graph("Overdue per shipment in transit, per route",
                          f"{SHIPMENTS_OVERDUE} fires above {t.overdue_fraction:.0%} (and at least "
                          f"{t.overdue_min_shipments} overdue).",
                          [Query(f"{OVERDUE_SUM}{{{recorded}}}\n/\n{IN_TRANSIT_SUM}{{{recorded}}}", route_legend)],
                          "percentunit", width=8, thresholds_config=above(t.overdue_fraction),
                          runbooks=overdue_runbook))
        .with_row(row("Flights on time (OAG)"))
        .with_panel(single("Flights on time, last 7d",
                           "Flights arrived less than 15 minutes after schedule, as OAG counts, of all flights "
                           f"arrived or cancelled in the last 7 days; {FLIGHTS_LATE} fires per route below "
                           f"{t.flights_late_target:.0%} (with at least {t.flights_late_min_flights} flights).",
                           [Query(f"sum({FLIGHT_PUNCTUALITY_INCREASE1W}{{{flights_on_time}}})"
                                  f" / sum({FLIGHT_PUNCTUALITY_INCREASE1W}{{{flights}}})")],
                           "percentunit", thresholds_config=below(t.flights_late_target),
                           runbooks=runbook_links(t, [FLIGHTS_LATE])))
        .with_panel(graph("Flights on time per route, last 7 days",
                          f"The week's share of flights on time per flight route; {FLIGHTS_LATE} fires below "
                          f"{t.flights_late_target:.0%}.",
                          [Query(f"{FLIGHT_ON_TIME_RATIO1W}{{{flights}}}", route_legend)], "percentunit", width=9,
                          thresholds_config=below(t.flights_late_target), runbooks=runbook_links(t, [FLIGHTS_LATE])))
        .with_panel(graph("Flights by punctuality, last 7 days",
                          "Flights of the week up to each moment: on time, late (15 minutes or more) or cancelled.",
                          [Query(f"sum by ({t.by('route, punctuality')}) "
                                 f"({FLIGHT_PUNCTUALITY_INCREASE1W}{{{flights}}})",
                                 per_deployment(t, "{{route}} {{punctuality}}"))],
                          "none", width=9, stacked=True))
    )
    return to_model(board)
