"""Alerts of the volume area: drops against last week, the seasonal band, vanished routes,
bursts of cancelled bookings, flights below the timetable, data-channel throughput.

Every expression reads the workers' event-time rolling windows (``*_window`` gauges, which
each worker sums over the partitions it owns) summed over the workers first, so a
rebalance, a crash or a restart neither fires nor hides an alert; the seasonal band reads
the recording rules of ``deploy/prometheus/rules/corridor-baselines.yml``. Baselines are
the same window one period (a week) earlier, which carries the same weekday and hour:
nights and weekends compare with nights and weekends. Cancelled bookings are counted from
the shipment totals (processing time), as docs/semantics.md says counters must be read:
``sum(increase(...))`` over the workers' series.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.alerting.alert import (
    BOOKINGS_CANCELLED,
    DATACHANNEL_THROUGHPUT_DROP,
    ROUTE_VANISHED,
    VOLUME_ANOMALY,
    VOLUME_DROP,
    WEEKLY_FLIGHTS_BELOW_SCHEDULE,
    Rule,
    Severity,
    alert,
    deployment_arguments,
    duration,
    labels_here,
    queried,
    this_deployment,
)
from streams.alerting.records import TEU_SEASONAL6H, TEU_SEASONAL6H_ZSCORE_SPREAD1W, TEU_SUM6H
from streams.alerting.thresholds import Thresholds
from streams.core.families import (
    DATACHANNEL_BYTES_WINDOW,
    FINANCE_USD_WINDOW,
    FLIGHTS_OPERATED_WINDOW,
    SHIPMENT_EVENTS,
    SHIPMENT_TEU_WINDOW,
)
from streams.core.windows import parse_window

#: The data channel's shortest rolling window: throughput is its bytes over its length.
THROUGHPUT_WINDOW = "5m"


@dataclass(frozen=True)
class Volume:
    """What one stream's volume is to the alerts: its window gauge, the labels it is kept by, its unit."""

    stream: str
    metric: str
    by: tuple[str, ...]
    unit: str
    subject: str  # names one series in a description (a template over $labels)

    def grouping(self, t: Thresholds) -> str:
        """The labels a series of this volume is kept by: the deployment's, then the volume's own."""
        return t.by(*self.by)

    def summed(self, t: Thresholds, window: str, matchers: str = "", offset: int | None = None) -> str:
        """The window summed over the workers (each owns some partitions), optionally one offset earlier."""
        inside = t.workers(f'window="{window}"' + (f", {matchers}" if matchers else ""))
        selector = f"{self.metric}{{{inside}}}"
        if offset is not None:
            selector += f" offset {duration(offset)}"
        return f"sum by ({self.grouping(t)}) ({selector})"

    def query(self, t: Thresholds, window: str, offset: int, per: int = 1) -> str:
        """A description template printing this series' window ``offset`` seconds earlier, divided by ``per``."""
        matchers = this_deployment(t, ",".join(f'{label}="%s"' for label in self.by))
        arguments = deployment_arguments(t, " ".join(f"$labels.{label}" for label in self.by))
        selector = f'{self.metric}{{window="{window}",{matchers}}} offset {duration(offset)}'
        scaled = f" / {per}" if per != 1 else ""
        return (
            f"{{{{ with printf `sum({selector}){scaled}` {arguments} | query }}}}"
            "{{ . | first | value | humanize }}{{ end }}"
        )


VOLUMES = {
    volume.stream: volume
    for volume in (
        Volume("shipments", SHIPMENT_TEU_WINDOW.name, SHIPMENT_TEU_WINDOW.labels, "TEU",
               "Route {{ $labels.route }} ({{ $labels.mode }}, {{ $labels.corridor }})"),
        Volume("flights", FLIGHTS_OPERATED_WINDOW.name, ("route",), "operated flights",
               "Flight route {{ $labels.route }}"),
        Volume("finance", FINANCE_USD_WINDOW.name, FINANCE_USD_WINDOW.labels, "USD",
               "Financing by {{ $labels.instrument }}"),
        Volume("datachannel", DATACHANNEL_BYTES_WINDOW.name, DATACHANNEL_BYTES_WINDOW.labels, "bytes",
               "Data-channel link {{ $labels.link }} ({{ $labels.direction }})"),
    )
}
SHIPMENTS = VOLUMES["shipments"]


def _route_query(t: Thresholds, expression: str, times: int = 1) -> str:
    """A description template printing ``expression``'s value for the alert's route; ``expression`` holds
    ``route(t)`` ``times`` times."""
    return queried(t, expression, SHIPMENTS.by, times)


def route(t: Thresholds) -> str:
    """Label matchers of the alert's deployment and shipment route in a description's query (see _route_query)."""
    return labels_here(t, SHIPMENTS.by)


def _human(number: float) -> str:
    """A threshold as people read it: 100, 5M, 100G."""
    for size, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= size:
            return f"{number / size:g}{prefix}"
    return f"{number:g}"


def rules(thresholds: Thresholds) -> list[Rule]:
    return [
        *volume_drop(thresholds),
        volume_anomaly(thresholds),
        route_vanished(thresholds),
        bookings_cancelled(thresholds),
        weekly_flights_below_schedule(thresholds),
        datachannel_throughput_drop(thresholds),
    ]


def volume_drop(t: Thresholds) -> list[Rule]:
    """One rule per stream: its rolling window below a fraction of the same window one period earlier."""
    period = t.volume_period_s
    rules = []
    for stream, window in t.volume_drop_window.items():
        volume = VOLUMES[stream]
        matchers = t.volume_drop_matchers.get(stream, "")
        fraction = t.volume_drop_fraction[stream]
        minimum = t.volume_drop_min_baseline[stream]
        now = volume.summed(t, window, matchers)
        before = volume.summed(t, window, matchers, offset=period)
        expr = (
            f"{now}\n< {fraction:g} * {before}\n"
            f"and on ({volume.grouping(t)})\n{before} >= {minimum:g}"
        )
        rules.append(alert(
            VOLUME_DROP,
            expr,
            for_=duration(t.volume_drop_for_s),
            severity=Severity.WARNING,
            summary=f"{volume.subject}: volume of the last {window} below {fraction:.0%} of the {window} up to "
                    f"{duration(period)} ago.",
            description=(
                f"{volume.subject} carried {{{{ $value | humanize }}}} {volume.unit} in the last {window} (event "
                f"time), against {volume.query(t, window, period)} {volume.unit} in the {window} up to "
                f"{duration(period)} ago: below {fraction:.0%} of it for {duration(t.volume_drop_for_s)} "
                f"(baselines under {_human(minimum)} {volume.unit} are not compared)."
            ),
            thresholds=t,
            labels={"stream": stream},  # one rule per stream: promtool wants their labels to differ
        ))
    return rules


def volume_anomaly(t: Thresholds) -> Rule:
    """Shipment TEU of the last 6 hours below the seasonal band (corridor-baselines.yml)."""
    on = f"on ({SHIPMENTS.grouping(t)})"
    k = t.volume_anomaly_deviations
    floor = f"{TEU_SEASONAL6H} - {k:g} * {TEU_SEASONAL6H_ZSCORE_SPREAD1W} * sqrt({TEU_SEASONAL6H})"
    expr = (
        f"{TEU_SUM6H}\n< {on}\n({floor})\n"
        f"and {on}\n{TEU_SEASONAL6H} >= {t.volume_anomaly_min_expected:g}"
    )
    here = route(t)
    expected = _route_query(t, f"{TEU_SEASONAL6H}{{{here}}}")
    spread = _route_query(
        t, f"{TEU_SEASONAL6H_ZSCORE_SPREAD1W}{{{here}}} * sqrt({TEU_SEASONAL6H}{{{here}}})", times=2
    )
    return alert(
        VOLUME_ANOMALY,
        expr,
        for_=duration(t.volume_anomaly_for_s),
        severity=Severity.WARNING,
        summary=f"{SHIPMENTS.subject}: TEU of the last 6h below the seasonal band.",
        description=(
            f"{SHIPMENTS.subject} departed {{{{ $value | humanize }}}} TEU in the last 6h (event time). The same "
            f"hours of the last 3 weeks, scaled by the trend, expect {expected} TEU, give or take {spread} TEU "
            f"(the route's usual deviation); the alert fires {k:g} deviations below the expectation."
        ),
        thresholds=t,
    )


def route_vanished(t: Thresholds) -> Rule:
    """No TEU for ``route_vanished_silent_s`` on a route that carried enough in the window before."""
    window, previous = t.route_vanished_window, t.route_vanished_previous_window
    silent = t.route_vanished_silent_s
    held = silent - parse_window(window)
    if held <= 0:
        raise ValueError("route_vanished_silent_s must be longer than route_vanished_window")
    inside = t.workers(f'window="{window}"')
    selector = f"{SHIPMENTS.metric}{{{inside}}}"
    # Each worker's window stays at 0 exactly when their sum does (they are never negative).
    nothing = f"sum by ({SHIPMENTS.grouping(t)}) (max_over_time({selector}[{duration(held)}])) == 0"
    before = SHIPMENTS.summed(t, previous, offset=silent)
    expr = (
        f"{nothing}\nand on ({SHIPMENTS.grouping(t)})\n"
        f"{before} >= {t.route_vanished_min_previous:g}"
    )
    return alert(
        ROUTE_VANISHED,
        expr,
        for_=duration(t.route_vanished_for_s),
        severity=Severity.CRITICAL,
        summary=f"{SHIPMENTS.subject}: no departures for {duration(silent)}.",
        description=(
            f"{SHIPMENTS.subject}: no TEU departed for {duration(silent)} (event time), after "
            f"{SHIPMENTS.query(t, previous, silent)} TEU in the {previous} before. The route is cut, or its "
            "departures no longer reach the corridor: see the runbook."
        ),
        thresholds=t,
    )


def bookings_cancelled(t: Thresholds) -> Rule:
    """A route cancelling more bookings than it takes: its departures are being called off.

    A cut route (a train, a sailing, a border crossing withdrawn) cancels the bookings of the
    departures it will not make within hours, long before those departures would have left;
    usually a route cancels a few bookings in a hundred. Comparing with the route's own
    bookings in the same window keeps a backlog replayed after an outage (bookings and
    cancellations together) from firing it."""
    window = duration(t.cancellations_window_s)
    by = SHIPMENTS.grouping(t)

    def counted(milestone: str) -> str:
        inside = t.workers(f'milestone="{milestone}"')
        return f"sum by ({by}) (increase({SHIPMENT_EVENTS.name}_total{{{inside}}}[{window}]))"

    cancelled, booked = counted("cancelled"), counted("booked")
    per = t.cancellations_per_booking
    expr = (
        f"{cancelled}\n>= {t.cancellations_min}\n"
        f"and on ({by})\n{cancelled}\n> {per:g} * {booked}"
    )
    booked_here = f'milestone="booked",{route(t)}'
    bookings = _route_query(t, f"sum(increase({SHIPMENT_EVENTS.name}_total{{{booked_here}}}[{window}]))")
    ratio = "more cancellations than bookings" if per == 1 else f"over {per:g} cancellations per booking"
    return alert(
        BOOKINGS_CANCELLED,
        expr,
        for_=duration(t.cancellations_for_s),
        severity=Severity.WARNING,
        summary=f"{SHIPMENTS.subject}: {ratio} in the last {window}: departures are being called off.",
        description=(
            f"{SHIPMENTS.subject}: {{{{ $value | humanize }}}} bookings cancelled in the last {window} (as "
            f"processed), against {bookings} new bookings: {ratio} for {duration(t.cancellations_for_s)} "
            f"(fewer than {t.cancellations_min} cancellations never alert). A route whose departures are cut "
            "cancels their bookings: its departed TEU will fall in the next hours and days."
        ),
        thresholds=t,
    )


def weekly_flights_below_schedule(t: Thresholds) -> Rule:
    """Operated flights in the last 7 days below the route's weekly timetable."""
    flights = VOLUMES["flights"]
    per_route = []
    for route, scheduled in sorted(t.weekly_flights_schedule.items()):
        matcher = f'route="{route}"'
        below = f"{flights.summed(t, '7d', matcher)} < {scheduled}"
        per_route.append(f'label_replace({below}, "schedule", "{scheduled}", "", "")')
    return alert(
        WEEKLY_FLIGHTS_BELOW_SCHEDULE,
        "\nor\n".join(per_route),
        for_=duration(t.weekly_flights_for_s),
        severity=Severity.WARNING,
        summary="Flight route {{ $labels.route }}: fewer flights in the last 7 days than the timetable.",
        description=(
            "{{ $value | humanize }} flights operated (departed) on {{ $labels.route }} in the last 7 days "
            "(event time); the timetable operates {{ $labels.schedule }} a week (Thresholds.weekly_flights_schedule). "
            f"Below it for {duration(t.weekly_flights_for_s)}, longer than any delay moves a departure."
        ),
        thresholds=t,
    )


def datachannel_throughput_drop(t: Thresholds) -> Rule:
    """A data-channel link direction's throughput below a fraction of the same 5 minutes a period earlier."""
    channel = VOLUMES["datachannel"]
    seconds = parse_window(THROUGHPUT_WINDOW)
    period = t.volume_period_s
    now = f"{channel.summed(t, THROUGHPUT_WINDOW)} / {seconds}"
    before = f"{channel.summed(t, THROUGHPUT_WINDOW, offset=period)} / {seconds}"
    fraction = t.throughput_drop_fraction
    expr = (
        f"{now}\n< {fraction:g} * {before}\n"
        f"and on ({channel.grouping(t)})\n{before} >= {t.throughput_min_baseline_bytes_per_s:g}"
    )
    return alert(
        DATACHANNEL_THROUGHPUT_DROP,
        expr,
        for_=duration(t.throughput_drop_for_s),
        severity=Severity.CRITICAL,
        summary=f"{channel.subject}: throughput below {fraction:.0%} of {duration(period)} earlier.",
        description=(
            f"{channel.subject} carries {{{{ $value | humanize }}}}B/s (last {THROUGHPUT_WINDOW}, event time), "
            f"against {channel.query(t, THROUGHPUT_WINDOW, period, per=seconds)}B/s in the same "
            f"{THROUGHPUT_WINDOW} {duration(period)} earlier: below {fraction:.0%} for "
            f"{duration(t.throughput_drop_for_s)}."
        ),
        thresholds=t,
    )
