"""Flights: weekly operated flights against the schedule (14 a week on CKG-SIN), passengers,
cargo, cancellations, arrivals on time as OAG counts them, arrival and departure delay percentiles."""

from __future__ import annotations

from typing import Any

from dashboards.common import (
    Query,
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
from streams.alerting.alert import STREAM_SILENT, VOLUME_DROP, WEEKLY_FLIGHTS_BELOW_SCHEDULE
from streams.alerting.records import FLIGHT_ARRIVAL_DELAY_BUCKET_RATE1H, FLIGHT_DELAY_BUCKET_RATE1H, FLIGHTS_WINDOW_SUM
from streams.alerting.thresholds import Thresholds
from streams.core.families import FLIGHT_CARGO, FLIGHT_EVENTS, FLIGHT_PASSENGERS, FLIGHT_PUNCTUALITY

UID = "corridor-flights"
SELECTED = 'route=~"$route"'
ALERTS = (WEEKLY_FLIGHTS_BELOW_SCHEDULE, VOLUME_DROP, STREAM_SILENT)


def build(t: Thresholds) -> dict[str, Any]:
    schedule = min(t.weekly_flights_schedule.values())
    scheduled = ", ".join(f"{route}: {weekly}" for route, weekly in sorted(t.weekly_flights_schedule.items()))
    recorded, raw = deployment(t, SELECTED), workers(t, f'{SELECTED}, carrier=~"$carrier"')

    def punctual(matchers: str) -> str:
        """Flights counted for punctuality in the time range, per service (all carriers: the series has none)."""
        return (f'sum by ({t.by("service")}) '
                f"(increase({FLIGHT_PUNCTUALITY.name}_total{{{workers(t, matchers)}}}[$__range]))")

    on_time, counted = punctual(f'{SELECTED}, punctuality="on_time"'), punctual(SELECTED)

    def delay_percentiles(record: str) -> list[Query]:
        return [Query(f"histogram_quantile({q}, sum by (le) ({record}{{{recorded}}}))", f"p{round(q * 100)}")
                for q in (0.5, 0.9, 0.99)]

    board = (
        new_dashboard(UID, "Chongqing - Singapore flights",
                      "Flights between Chongqing and Singapore: operated flights against the timetable, passengers, "
                      "cargo, cancellations, arrivals on time and delays.",
                      t, alerts=ALERTS, stream="flights")
        .with_variable(label_variable("route", "route", f"{FLIGHT_EVENTS.name}_total", workers(t)))
        .with_variable(label_variable("carrier", "carrier", f"{FLIGHT_EVENTS.name}_total", workers(t, SELECTED)))
        .with_row(row("Schedule"))
        .with_panel(single("Operated flights, last 7d",
                           f"Flights operated in the rolling week (event time). Timetable: {scheduled} a week; "
                           f"{WEEKLY_FLIGHTS_BELOW_SCHEDULE} fires below it.",
                           [Query(f'sum by ({t.by("route")}) ({FLIGHTS_WINDOW_SUM}{{{recorded}, window="7d"}})',
                                  per_deployment(t, "{{route}}"))],
                           "none",
                           thresholds_config=below(schedule),
                           runbooks=runbook_links(t, [WEEKLY_FLIGHTS_BELOW_SCHEDULE])))
        .with_panel(single("Cancellations, last 7d", "Flights cancelled in the last 7 days (0 while flights are "
                           "reported and none was cancelled).",
                           [Query(f'sum(increase({FLIGHT_EVENTS.name}_total'
                                  f'{{{raw}, status="cancelled"}}[7d])) '
                                  f'or 0 * sum(increase({FLIGHT_EVENTS.name}_total'
                                  f'{{{raw}}}[7d]))')], "none"))
        .with_panel(single("Passengers, last 7d", "Passengers flown in the last 7 days.",
                           [Query(f'sum(increase({FLIGHT_PASSENGERS.name}_total'
                                  f'{{{raw}}}[7d]))')], "none"))
        .with_panel(single("Cargo, last 7d", "Air cargo flown in the last 7 days.",
                           [Query(f'sum(increase({FLIGHT_CARGO.name}_total'
                                  f'{{{raw}}}[7d])) / 1000')], "masskg"))
        .with_panel(graph("Weekly operated flights against the schedule",
                          "Rolling 7-day operated flights per route and service; the dashed line is the timetable.",
                          [Query(f'{FLIGHTS_WINDOW_SUM}{{{recorded}, window="7d"}}',
                                 per_deployment(t, "{{route}} {{service}}"))], "none",
                          thresholds_config=below(schedule),
                          runbooks=runbook_links(t, [WEEKLY_FLIGHTS_BELOW_SCHEDULE, VOLUME_DROP])))
        .with_panel(graph("Flights by status", "Flight events per day by status and carrier.",
                          [Query(f'sum by ({t.by("carrier, status")}) (increase({FLIGHT_EVENTS.name}_total'
                                 f'{{{raw}}}[1d]))', per_deployment(t, "{{carrier}} {{status}}"))],
                          "none", stacked=True))
        .with_row(row("Load"))
        .with_panel(graph("Passengers per day", "Passengers per day by carrier.",
                          [Query(f'sum by ({t.by("carrier")}) (increase({FLIGHT_PASSENGERS.name}_total'
                                 f'{{{raw}}}[1d]))', per_deployment(t, "{{carrier}}"))], "none"))
        .with_panel(graph("Cargo per day", "Air cargo per day by carrier.",
                          [Query(f'sum by ({t.by("carrier")}) (increase({FLIGHT_CARGO.name}_total'
                                 f'{{{raw}}}[1d])) / 1000', per_deployment(t, "{{carrier}}"))], "masskg"))
        .with_row(row("Punctuality"))
        .with_panel(single("On time (OAG, arrivals within 15 min)",
                           "Share of the flights on time in the dashboard's time range, per service, as OAG counts "
                           "it: arrived less than 15 minutes after the scheduled arrival (early ones too), out of "
                           "the arrivals and the cancellations (a cancelled flight is not on time). Arrivals "
                           "without an actual time are not counted. All carriers of the chosen routes.",
                           [Query(f"({on_time} or 0 * {counted}) / {counted}", per_deployment(t, "{{service}}"),
                                  instant=True)],
                           "percentunit", height=8))
        .with_panel(graph("Arrival delay percentiles",
                          "Arrival delay of arrived flights (actual minus scheduled arrival), from the arrival "
                          "delay histogram (1h rate); an early arrival counts as no delay (the lowest bucket).",
                          delay_percentiles(FLIGHT_ARRIVAL_DELAY_BUCKET_RATE1H), "s", width=9))
        .with_panel(graph("Departure delay percentiles",
                          "Departure delay of operated flights (actual minus scheduled departure), from the "
                          "delay histogram (1h rate).",
                          delay_percentiles(FLIGHT_DELAY_BUCKET_RATE1H), "s", width=9))
        .with_panel(heatmap("Departure delay distribution",
                            "Operated flights by departure delay: each cell the flights of the hour up to that "
                            "moment whose delay fell in that bucket of the delay histogram.",
                            Query(f'sum by (le) ({FLIGHT_DELAY_BUCKET_RATE1H}{{{recorded}}}) * 3600'), "none",
                            width=24))
    )
    return to_model(board)
