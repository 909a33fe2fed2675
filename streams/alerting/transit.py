"""Alerts of time on the corridor: transit time above its usual, shipments overdue, arrivals and
flights on time below a target.

Each reads the recording rules of ``deploy/prometheus/rules/corridor-transit.yml``: the day's
(shipments) or the week's (flights) increase of the workers' partition series, summed by the
deployment labels and the route, and the shipments held now, summed over the workers. A route
arrives a few to ten shipments an hour and a flight route about two flights a day, so every
alert has a minimum below which a quiet route is not judged, and a ``for:`` of an hour: these
figures move over days, not minutes.
"""

from __future__ import annotations

from schemas.shipments import Milestone
from streams.alerting.alert import (
    FLIGHTS_LATE,
    ON_TIME_SHARE_LOW,
    SHIPMENTS_OVERDUE,
    TRANSIT_TIME_HIGH,
    Rule,
    Severity,
    alert,
    duration,
    labels_here,
    queried,
)
from streams.alerting.records import (
    ARRIVED_ON_TIME_RATIO1D,
    FLIGHT_ON_TIME_RATIO1W,
    FLIGHT_PUNCTUALITY_INCREASE1W,
    IN_TRANSIT_SUM,
    OVERDUE_SUM,
    PUNCTUALITY_INCREASE1D,
    TRANSIT_BUCKET_INCREASE1D,
    TRANSIT_BUCKET_INCREASE1D_AVG1W,
)
from streams.alerting.thresholds import Thresholds
from streams.alerting.volume import SHIPMENTS, VOLUMES

FLIGHTS = VOLUMES["flights"]
#: The labels of a flight route's alert besides the deployment's.
FLIGHT_ROUTE = ("route",)
#: Arrivals at the destination: the ``+Inf`` bucket of the transit histogram counts them all.
ALL_ARRIVALS = 'le="+Inf"'
ARRIVED = f'milestone="{Milestone.ARRIVED}"'
#: How far back the transit baseline's first day ends: the baseline is the week before the last day.
BASELINE_START = "8d"


def rules(thresholds: Thresholds) -> list[Rule]:
    return [
        transit_time_high(thresholds),
        shipments_overdue(thresholds),
        on_time_share_low(thresholds),
        flights_late(thresholds),
    ]


def quantile_name(quantile: float) -> str:
    """A quantile as people say it: 0.5 -> ``median``, 0.75 -> ``p75``."""
    return "median" if quantile == 0.5 else f"p{quantile * 100:g}"


def transit_quantile(t: Thresholds, matchers: str = "") -> str:
    """The transit time quantile of the last day's arrivals, per route (the dashboard adds its ``matchers``)."""
    selector = f"{TRANSIT_BUCKET_INCREASE1D}{{{matchers}}}" if matchers else TRANSIT_BUCKET_INCREASE1D
    return f"histogram_quantile({t.transit_time_quantile:g}, {selector})"


def transit_baseline(t: Thresholds, matchers: str = "") -> str:
    """The same quantile of the 7 days before the last day, per route: what the alert compares with."""
    selector = f"{TRANSIT_BUCKET_INCREASE1D_AVG1W}{{{matchers}}}" if matchers else TRANSIT_BUCKET_INCREASE1D_AVG1W
    return f"histogram_quantile({t.transit_time_quantile:g}, {selector} offset 1d)"


def transit_time_high(t: Thresholds) -> Rule:
    """A route's transit time quantile of the last day above ``transit_time_factor`` times the same quantile of
    the week before, on a route that had enough arrivals in the day to tell."""
    by = SHIPMENTS.grouping(t)
    name = quantile_name(t.transit_time_quantile)
    factor, minimum = t.transit_time_factor, t.transit_time_min_arrivals
    arrivals_today = f"{TRANSIT_BUCKET_INCREASE1D}{{{ALL_ARRIVALS}}}"
    # The week before must be the route's whole: arrivals in its first day. A route that started since
    # (a new deployment's journeys) has arrived only its quicker shipments in those days, a baseline too low.
    expr = (
        f"{transit_quantile(t)}\n> {factor:g} * {transit_baseline(t)}\n"
        f"and on ({by})\n{arrivals_today} >= {minimum}\n"
        f"and on ({by})\n{arrivals_today} offset {BASELINE_START} >= {minimum}"
    )
    here = labels_here(t, SHIPMENTS.by)
    arrivals = queried(t, f"{TRANSIT_BUCKET_INCREASE1D}{{{here},{ALL_ARRIVALS}}}", SHIPMENTS.by)
    usual = queried(t, transit_baseline(t, here), SHIPMENTS.by, shown="humanizeDuration")
    return alert(
        TRANSIT_TIME_HIGH,
        expr,
        for_=duration(t.transit_time_for_s),
        severity=Severity.WARNING,
        summary=f"{SHIPMENTS.subject}: shipments take longer than usual to arrive.",
        description=(
            f"{SHIPMENTS.subject}: the {name} transit time (departure from the origin to arrival at the destination, "
            f"event time) of the {arrivals} shipments that arrived in the last day is "
            f"{{{{ $value | humanizeDuration }}}}, against {usual} over the 7 days before: above {factor:g} times "
            f"it for {duration(t.transit_time_for_s)} (a day with fewer than {minimum} arrivals, or a week before "
            f"without them in its first day, is not compared). "
            "Dwell at a hub or a slow leg: the runbook says how to find which."
        ),
        thresholds=t,
    )


def shipments_overdue(t: Thresholds) -> Rule:
    """Shipments past their planned arrival (plus the mode's tolerance) on a route: at least
    ``overdue_min_shipments``, and more than ``overdue_fraction`` per shipment in transit."""
    by = SHIPMENTS.grouping(t)
    minimum, fraction = t.overdue_min_shipments, t.overdue_fraction
    # Shipments only booked may be overdue with none in transit: that route's share counts as unbounded.
    in_transit = f"(\n  {IN_TRANSIT_SUM}\nor\n  0 * {OVERDUE_SUM}\n)"
    expr = f"{OVERDUE_SUM} >= {minimum}\nand on ({by})\n{OVERDUE_SUM}\n> {fraction:g} * {in_transit}"
    here = labels_here(t, SHIPMENTS.by)
    held = queried(t, f"{IN_TRANSIT_SUM}{{{here}}} or vector(0)", SHIPMENTS.by)
    return alert(
        SHIPMENTS_OVERDUE,
        expr,
        for_=duration(t.overdue_for_s),
        severity=Severity.WARNING,
        summary=f"{SHIPMENTS.subject}: shipments overdue.",
        description=(
            f"{SHIPMENTS.subject}: {{{{ $value | humanize }}}} shipments have not arrived though their planned "
            f"arrival plus the mode's tolerance has passed, against {held} in transit: more than "
            f"{fraction:.0%} of them and at least {minimum}, for {duration(t.overdue_for_s)}. "
            "`corridor shipments overdue` lists them, with their last milestone and place."
        ),
        thresholds=t,
    )


def on_time_share_low(t: Thresholds) -> Rule:
    """A route's share of arrivals on time in the last day below ``on_time_target``, with enough arrivals."""
    by = SHIPMENTS.grouping(t)
    target, minimum = t.on_time_target, t.on_time_min_arrivals
    arrivals = f"sum by ({by}) ({PUNCTUALITY_INCREASE1D}{{{ARRIVED}}})"
    expr = f"{ARRIVED_ON_TIME_RATIO1D} < {target:g}\nand on ({by})\n{arrivals} >= {minimum}"
    here = labels_here(t, SHIPMENTS.by)
    counted = queried(t, f"sum({PUNCTUALITY_INCREASE1D}{{{here},{ARRIVED}}})", SHIPMENTS.by)
    return alert(
        ON_TIME_SHARE_LOW,
        expr,
        for_=duration(t.on_time_for_s),
        severity=Severity.WARNING,
        summary=f"{SHIPMENTS.subject}: arrivals on time below {target:.0%}.",
        description=(
            f"{SHIPMENTS.subject}: {{{{ $value | humanizePercentage }}}} of the {counted} arrivals with a planned "
            f"time in the last day were on time (within the tolerance of the mode), below the target of "
            f"{target:.0%} for {duration(t.on_time_for_s)} (a day with fewer than {minimum} such arrivals "
            "is not judged)."
        ),
        thresholds=t,
    )


def flights_late(t: Thresholds) -> Rule:
    """A flight route's share of flights on time (OAG) in the last 7 days below ``flights_late_target``."""
    by = t.by(*FLIGHT_ROUTE)
    target, minimum = t.flights_late_target, t.flights_late_min_flights
    flights = f"sum by ({by}) ({FLIGHT_PUNCTUALITY_INCREASE1W})"
    expr = f"{FLIGHT_ON_TIME_RATIO1W} < {target:g}\nand on ({by})\n{flights} >= {minimum}"
    counted = queried(t, f"sum({FLIGHT_PUNCTUALITY_INCREASE1W}{{{labels_here(t, FLIGHT_ROUTE)}}})", FLIGHT_ROUTE)
    return alert(
        FLIGHTS_LATE,
        expr,
        for_=duration(t.flights_late_for_s),
        severity=Severity.WARNING,
        summary=f"{FLIGHTS.subject}: fewer than {target:.0%} of the flights on time.",
        description=(
            f"{FLIGHTS.subject}: {{{{ $value | humanizePercentage }}}} of the {counted} flights of the last 7 "
            "days were on time as OAG counts (arrived less than 15 minutes after schedule; a cancelled "
            f"flight is not on time), below {target:.0%} for {duration(t.flights_late_for_s)} (fewer than {minimum} "
            "flights in the 7 days are not judged)."
        ),
        thresholds=t,
    )
