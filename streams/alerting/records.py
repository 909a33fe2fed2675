"""The recording rules, named ``level:metric:operation``: what dashboards and alerts read.

Every metric name comes from its series declaration and every rule name is a constant
here, so a dashboard or an alert names a rule by its constant and a renamed series
renames the rules that read it. ``render`` writes the files in the style people write
rule files by hand, comments included (YAML dumpers drop comments).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.shipments import Milestone
from streams.alerting.alert import FLIGHTS_LATE, ON_TIME_SHARE_LOW, TRANSIT_TIME_HIGH, VOLUME_ANOMALY
from streams.alerting.alert import SHIPMENTS_OVERDUE as OVERDUE_ALERT
from streams.alerting.thresholds import PROFILES, Thresholds
from streams.core.families import (
    DATACHANNEL_BYTES,
    DATACHANNEL_BYTES_WINDOW,
    DATACHANNEL_LATENCY,
    DATACHANNEL_LOSS,
    DATACHANNEL_LOSS_MEASURED,
    FINANCE_USD,
    FINANCE_USD_WINDOW,
    FLIGHT_ARRIVAL_DELAY,
    FLIGHT_DELAY,
    FLIGHT_EVENTS,
    FLIGHT_PUNCTUALITY,
    FLIGHTS_OPERATED_WINDOW,
    SHIPMENT_DWELL,
    SHIPMENT_LEG,
    SHIPMENT_PUNCTUALITY,
    SHIPMENT_TEU,
    SHIPMENT_TEU_WINDOW,
    SHIPMENT_TRANSIT,
    SHIPMENTS_IN_TRANSIT,
    SHIPMENTS_OVERDUE,
)
from streams.core.series import (
    CHECKPOINT_AGE,
    CONSUMER_LAG,
    EVENT_DELAY,
    EVENTS_ACCEPTED,
    EVENTS_DUPLICATE,
    EVENTS_LATE,
    EVENTS_RECEIVED,
    EVENTS_REJECTED,
    LAST_EVENT_TIMESTAMP,
    PARTITIONS_RESTORING,
    STATE_GAPS,
)


@dataclass(frozen=True, slots=True)
class Record:
    """One recording rule; ``comment`` (lines, may be empty) is written above it."""

    name: str
    expr: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class RecordGroup:
    """One rule group; ``spaced``: its rules are long, so blank lines part them and each expression is a block;
    ``interval``: evaluated this often rather than at Prometheus' global interval."""

    name: str
    records: tuple[Record, ...]
    spaced: bool = False
    interval: str = ""  # the group's evaluation interval; empty: Prometheus' global one


# The table of rule names: dashboards and alerts import these, never spell them.
RECEIVED_RATE5M = f"stream:{EVENTS_RECEIVED.name}:rate5m"
ACCEPTED_RATE5M = f"stream:{EVENTS_ACCEPTED.name}:rate5m"
REJECTED_RATE5M = f"stream_reason:{EVENTS_REJECTED.name}:rate5m"
DUPLICATE_RATE5M = f"stream:{EVENTS_DUPLICATE.name}:rate5m"
LATE_RATE5M = f"stream:{EVENTS_LATE.name}:rate5m"
EVENT_DELAY_BUCKET_RATE5M = f"stream_le:{EVENT_DELAY.name}_bucket:rate5m"
TOPIC_LAG_SUM = f"topic:{CONSUMER_LAG.name}:sum"
PARTITION_LAG_MAX = f"stream_partition:{CONSUMER_LAG.name}:max"
KEY_LAST_EVENT_MAX = f"stream_key:{LAST_EVENT_TIMESTAMP.name}:max"
RESTORING_SUM = f"stream:{PARTITIONS_RESTORING.name}:sum"
CHECKPOINT_AGE_MAX = f"stream:{CHECKPOINT_AGE.name}:max"
STATE_GAPS_INCREASE1H = f"stream:{STATE_GAPS.name}:increase1h"
TEU_WINDOW_SUM = f"corridor_route_mode_window:{SHIPMENT_TEU_WINDOW.name}:sum"
FLIGHTS_WINDOW_SUM = f"route_service_window:{FLIGHTS_OPERATED_WINDOW.name}:sum"
FINANCE_WINDOW_SUM = f"instrument_window:{FINANCE_USD_WINDOW.name}:sum"
BYTES_WINDOW_SUM = f"link_direction_window:{DATACHANNEL_BYTES_WINDOW.name}:sum"
TEU_RATE1H = f"corridor_route_mode:{SHIPMENT_TEU.name}:rate1h"
FLIGHTS_RATE1H = f"route_carrier_service_status:{FLIGHT_EVENTS.name}:rate1h"
FINANCE_RATE1H = f"instrument:{FINANCE_USD.name}:rate1h"
BYTES_RATE5M = f"link_direction:{DATACHANNEL_BYTES.name}:rate5m"
FLIGHT_DELAY_BUCKET_RATE1H = f"route_service_le:{FLIGHT_DELAY.name}_bucket:rate1h"
FLIGHT_ARRIVAL_DELAY_BUCKET_RATE1H = f"route_service_le:{FLIGHT_ARRIVAL_DELAY.name}_bucket:rate1h"
LATENCY_BUCKET_RATE5M = f"link_le:{DATACHANNEL_LATENCY.name}_bucket:rate5m"
PACKET_LOSS_RATIO_RATE5M = "link_direction:corridor_datachannel_packet_loss:ratio_rate5m"
TEU_SUM6H = f"corridor_route_mode:{SHIPMENT_TEU.name}:sum6h"
TEU_SEASONAL6H = f"corridor_route_mode:{SHIPMENT_TEU.name}:seasonal6h"
TEU_SEASONAL6H_ZSCORE = f"corridor_route_mode:{SHIPMENT_TEU.name}:seasonal6h_zscore"
TEU_SEASONAL6H_ZSCORE_SPREAD1W = f"corridor_route_mode:{SHIPMENT_TEU.name}:seasonal6h_zscore_spread1w"
IN_TRANSIT_SUM = f"corridor_route_mode:{SHIPMENTS_IN_TRANSIT.name}:sum"
OVERDUE_SUM = f"corridor_route_mode:{SHIPMENTS_OVERDUE.name}:sum"
TRANSIT_BUCKET_INCREASE1D = f"corridor_route_mode_le:{SHIPMENT_TRANSIT.name}_bucket:increase1d"
TRANSIT_BUCKET_INCREASE1D_AVG1W = f"corridor_route_mode_le:{SHIPMENT_TRANSIT.name}_bucket:increase1d_avg1w"
LEG_BUCKET_INCREASE1D = f"corridor_route_leg_le:{SHIPMENT_LEG.name}_bucket:increase1d"
DWELL_BUCKET_INCREASE1D = f"corridor_route_location_le:{SHIPMENT_DWELL.name}_bucket:increase1d"
PUNCTUALITY_INCREASE1D = f"corridor_route_mode_milestone_punctuality:{SHIPMENT_PUNCTUALITY.name}:increase1d"
ARRIVED_ON_TIME_RATIO1D = f"corridor_route_mode:{SHIPMENT_PUNCTUALITY.name}:arrived_on_time_ratio1d"
FLIGHT_PUNCTUALITY_INCREASE1W = f"route_service_punctuality:{FLIGHT_PUNCTUALITY.name}:increase1w"
FLIGHT_ON_TIME_RATIO1W = f"route:{FLIGHT_PUNCTUALITY.name}:on_time_ratio1w"

#: The ``punctuality`` label of an event on time (shipment milestones and flights alike).
ON_TIME = "on_time"


def _sum_rate(t: Thresholds, by: str, metric: str, window: str) -> str:
    """The rate of a worker counter summed by the deployment labels and ``by``."""
    return f"sum by ({t.by(by)}) (rate({metric}{{{t.workers()}}}[{window}]))"


def _pipeline(t: Thresholds) -> RecordGroup:
    return RecordGroup(
        "corridor-pipeline-records",
        (
            Record(RECEIVED_RATE5M, _sum_rate(t, "stream", f"{EVENTS_RECEIVED.name}_total", "5m")),
            Record(ACCEPTED_RATE5M, _sum_rate(t, "stream", f"{EVENTS_ACCEPTED.name}_total", "5m")),
            Record(REJECTED_RATE5M, _sum_rate(t, "stream, reason", f"{EVENTS_REJECTED.name}_total", "5m")),
            Record(DUPLICATE_RATE5M, _sum_rate(t, "stream", f"{EVENTS_DUPLICATE.name}_total", "5m")),
            Record(LATE_RATE5M, _sum_rate(t, "stream", f"{EVENTS_LATE.name}_total", "5m")),
            Record(EVENT_DELAY_BUCKET_RATE5M, _sum_rate(t, "stream, le", f"{EVENT_DELAY.name}_bucket", "5m")),
            Record(TOPIC_LAG_SUM, f"sum by ({t.by('topic')}) ({CONSUMER_LAG.name}{{{t.workers()}}})"),
            Record(
                PARTITION_LAG_MAX,
                f"max by ({t.by('stream, partition')}) (label_replace({CONSUMER_LAG.name}{{{t.workers()}}}, "
                r'"stream", "$1", "topic", "corridor\\.(.+)\\.v1"))',
                "The lag per source partition under the family's name (topic corridor.<stream>.v1), the\n"
                "newest owner's and the previous one's overlapping for a scrape during a move.",
            ),
            Record(
                KEY_LAST_EVENT_MAX, f"max by ({t.by('stream, key')}) ({LAST_EVENT_TIMESTAMP.name}{{{t.workers()}}})"
            ),
            Record(RESTORING_SUM, f"sum by ({t.by('stream')}) ({PARTITIONS_RESTORING.name}{{{t.workers()}}})"),
            Record(CHECKPOINT_AGE_MAX, f"max by ({t.by('stream')}) ({CHECKPOINT_AGE.name}{{{t.workers()}}})"),
            Record(
                STATE_GAPS_INCREASE1H,
                f"sum by ({t.by('stream')}) (increase({STATE_GAPS.name}_total{{{t.workers()}}}[1h]))",
            ),
        ),
    )


def _window_sum(t: Thresholds, by: str, metric: str) -> str:
    return f"sum by ({t.by(by)}) ({metric}{{{t.workers()}}})"


def _volume(t: Thresholds) -> RecordGroup:
    return RecordGroup(
        "corridor-volume-records",
        (
            Record(
                TEU_WINDOW_SUM,
                _window_sum(t, "corridor, route, mode, window", SHIPMENT_TEU_WINDOW.name),
                "Event-time rolling windows are gauges: each worker shows the partitions it owns, so\n"
                "the sum over workers is the corridor's volume.",
            ),
            Record(FLIGHTS_WINDOW_SUM, _window_sum(t, "route, service, window", FLIGHTS_OPERATED_WINDOW.name)),
            Record(FINANCE_WINDOW_SUM, _window_sum(t, "instrument, window", FINANCE_USD_WINDOW.name)),
            Record(BYTES_WINDOW_SUM, _window_sum(t, "link, direction, window", DATACHANNEL_BYTES_WINDOW.name)),
            Record(
                TEU_RATE1H,
                _sum_rate(t, "corridor, route, mode", f"{SHIPMENT_TEU.name}_total", "1h"),
                "Processing-time rates of the durable totals.",
            ),
            Record(
                FLIGHTS_RATE1H,
                _sum_rate(t, "route, carrier, service, status", f"{FLIGHT_EVENTS.name}_total", "1h"),
            ),
            Record(FINANCE_RATE1H, _sum_rate(t, "instrument", f"{FINANCE_USD.name}_total", "1h")),
            Record(BYTES_RATE5M, _sum_rate(t, "link, direction", f"{DATACHANNEL_BYTES.name}_total", "5m")),
            Record(
                FLIGHT_DELAY_BUCKET_RATE1H,
                _sum_rate(t, "route, service, le", f"{FLIGHT_DELAY.name}_bucket", "1h"),
            ),
            Record(
                FLIGHT_ARRIVAL_DELAY_BUCKET_RATE1H,
                _sum_rate(t, "route, service, le", f"{FLIGHT_ARRIVAL_DELAY.name}_bucket", "1h"),
            ),
            Record(LATENCY_BUCKET_RATE5M, _sum_rate(t, "link, le", f"{DATACHANNEL_LATENCY.name}_bucket", "5m")),
            Record(
                PACKET_LOSS_RATIO_RATE5M,
                _sum_rate(t, "link, direction", f"{DATACHANNEL_LOSS.name}_total", "5m")
                + "\n/ "
                + _sum_rate(t, "link, direction", f"{DATACHANNEL_LOSS_MEASURED.name}_total", "5m"),
                "The time-weighted packet-loss ratio: loss-weighted sample seconds over measured seconds.",
            ),
        ),
    )


#: How often the seasonal baselines are evaluated: their subqueries step every 5 minutes over
#: weeks, so evaluating them every 15 s would redo the same week-long work twenty times.
BASELINES_INTERVAL = "5m"


def _baselines(t: Thresholds) -> RecordGroup:
    by = t.by("corridor, route, mode")
    five_minutes, seven_days = t.workers('window="5m"'), t.workers('window="7d"')
    teu_5m = f"(sum by ({by}) ({SHIPMENT_TEU_WINDOW.name}{{{five_minutes}}}))[5h55m:5m]"

    def teu_7d(offset: str) -> str:
        return f"sum by ({by}) ({SHIPMENT_TEU_WINDOW.name}{{{seven_days}}} offset {offset})"

    return RecordGroup(
        "corridor-baselines",
        (
            Record(
                TEU_SUM6H,
                f"sum_over_time({teu_5m})",
                "TEU departed in the last 6 hours: 72 consecutive 5-minute windows (a subquery every 5m\n"
                "over 5h55m takes 72 points).",
            ),
            Record(
                TEU_SEASONAL6H,
                "(\n"
                f"    sum_over_time({teu_5m} offset 1w)\n"
                f"  + sum_over_time({teu_5m} offset 2w)\n"
                f"  + sum_over_time({teu_5m} offset 3w)\n"
                ") / 3\n"
                f"* on ({by})\n"
                "(\n"
                f"    {teu_7d('6h')}\n"
                "  /\n"
                "    (\n"
                f"        {teu_7d('1w6h')}\n"
                f"      + {teu_7d('2w6h')}\n"
                f"      + {teu_7d('3w6h')}\n"
                "    ) * 3\n"
                ")",
                "What the last 6 hours should have carried: the same 6 hours of the week in each of the\n"
                "last 3 weeks, averaged, scaled by the trend (the 7 days before the 6 hours, against the\n"
                "same 7 days of those weeks). Absent until 3 weeks of history exist.",
            ),
            Record(
                TEU_SEASONAL6H_ZSCORE,
                f"({TEU_SUM6H} - {TEU_SEASONAL6H})\n/ sqrt({TEU_SEASONAL6H} > 0)",
                "How far the last 6 hours are from the expectation, in square roots of the expectation:\n"
                "TEU arrive in shipments at random (a compound Poisson process), so the spread of a\n"
                "volume grows with the square root of its mean, and this score has the same spread at\n"
                "night, at the weekly low and at the weekday peak.",
            ),
            Record(
                TEU_SEASONAL6H_ZSCORE_SPREAD1W,
                "(\n"
                f"    quantile_over_time(0.75, {TEU_SEASONAL6H_ZSCORE}[1w:1h])\n"
                f"  - quantile_over_time(0.25, {TEU_SEASONAL6H_ZSCORE}[1w:1h])\n"
                ") / 1.349",
                "The score's usual spread on this route over the last week, measured robustly (the\n"
                "interquartile range over 1.349 is the standard deviation of a normal distribution): a\n"
                "drop earlier in the week moves a quartile little, where it would inflate a standard\n"
                "deviation and blind the alert for a week.",
            ),
        ),
        spaced=True,
        interval=BASELINES_INTERVAL,
    )


#: How often the time rules are evaluated: windows of a day and a week move little in 15 s, and once a
#: minute keeps a sample well inside the 5-minute lookback of the alerts that read them.
TRANSIT_INTERVAL = "1m"


def _on_time_ratio(by: str, record: str, matchers: str = "") -> str:
    """The share of a recorded punctuality increase (``record``, narrowed by ``matchers``) that was on time,
    per ``by``: 0 when none was (the on-time series may not exist), absent when there was nothing."""
    every = f"{record}{{{matchers}}}" if matchers else record
    on_time_matchers = ", ".join(filter(None, [matchers, f'punctuality="{ON_TIME}"']))
    on_time = f"{record}{{{on_time_matchers}}}"
    return f"(\n  sum by ({by}) ({on_time})\nor\n  0 * sum by ({by}) ({every})\n)\n/ sum by ({by}) ({every})"


def _transit(t: Thresholds) -> RecordGroup:
    route = t.by("corridor, route, mode")
    arrived = f'milestone="{Milestone.ARRIVED}"'
    return RecordGroup(
        "corridor-transit-records",
        (
            Record(
                IN_TRANSIT_SUM,
                _window_sum(t, "corridor, route, mode", SHIPMENTS_IN_TRANSIT.name),
                "Shipments held now: each worker shows the journeys of the partitions it owns, so the sum over\n"
                "workers is the corridor's (a partition that moves may dip or lift it for a scrape).",
            ),
            Record(OVERDUE_SUM, _window_sum(t, "corridor, route, mode", SHIPMENTS_OVERDUE.name)),
            Record(
                TRANSIT_BUCKET_INCREASE1D,
                f"sum by ({t.by('corridor, route, mode, le')}) "
                f"(increase({SHIPMENT_TRANSIT.name}_bucket{{{t.workers()}}}[1d]))",
                "Arrivals at the destination in the last day by transit time (histogram buckets): their\n"
                "quantiles are the route's transit time now.",
            ),
            Record(
                TRANSIT_BUCKET_INCREASE1D_AVG1W,
                f"avg_over_time({TRANSIT_BUCKET_INCREASE1D}[1w:1h])",
                f"The day's buckets averaged over the last week, hour by hour: the route's usual transit\n"
                f"times ({TRANSIT_TIME_HIGH} compares with it a day back, so the day it watches is not in it).\n"
                "A quantile does not depend on the scale of the buckets: the average is a day's worth.",
            ),
            Record(
                LEG_BUCKET_INCREASE1D,
                f"sum by ({t.by('corridor, route, leg, le')}) "
                f"(increase({SHIPMENT_LEG.name}_bucket{{{t.workers()}}}[1d]))",
            ),
            Record(
                DWELL_BUCKET_INCREASE1D,
                f"sum by ({t.by('corridor, route, location, le')}) "
                f"(increase({SHIPMENT_DWELL.name}_bucket{{{t.workers()}}}[1d]))",
            ),
            Record(
                PUNCTUALITY_INCREASE1D,
                f"sum by ({t.by('corridor, route, mode, milestone, punctuality')}) "
                f"(increase({SHIPMENT_PUNCTUALITY.name}_total{{{t.workers()}}}[1d]))",
                "Milestones with a planned time in the last day, on time (within the mode's tolerance),\n"
                "early or late.",
            ),
            Record(
                ARRIVED_ON_TIME_RATIO1D,
                _on_time_ratio(route, PUNCTUALITY_INCREASE1D, arrived),
                f"The share of the last day's arrivals that were on time ({ON_TIME_SHARE_LOW}): 0 when none\n"
                "was, absent without arrivals.",
            ),
            Record(
                FLIGHT_PUNCTUALITY_INCREASE1W,
                f"sum by ({t.by('route, service, punctuality')}) "
                f"(increase({FLIGHT_PUNCTUALITY.name}_total{{{t.workers()}}}[1w]))",
                "Flights of the last week on time (OAG: arrived less than 15 minutes late), late or\n"
                "cancelled: about 14 a week on CKG-SIN, too few for a shorter window.",
            ),
            Record(
                FLIGHT_ON_TIME_RATIO1W,
                _on_time_ratio(t.by("route"), FLIGHT_PUNCTUALITY_INCREASE1W),
                f"The share of a flight route's flights on time in the last week, services together ({FLIGHTS_LATE}).",
            ),
        ),
        spaced=True,
        interval=TRANSIT_INTERVAL,
    )


_CORRIDOR_HEADER = """\
Recording rules of Corridor Monitor, named level:metric:operation. Dashboards and alerts
read these rather than the raw series.

The counters a worker computes from partition state carry the labels `partition` and
`owner` (one value per period a worker owns a partition; docs/semantics.md): only
sum(rate(...)) / sum(increase(...)) over them is traffic. Never sum their raw values and
never drop `owner` before rate() or increase()."""

_BASELINES_HEADER = f"""\
Seasonal baselines of the corridor's shipment volume, for {VOLUME_ANOMALY}
(streams/alerting/volume.py; tests: deploy/prometheus/tests/volume_test.yml). Named
level:metric:operation like rules/corridor.yml.

The corridor's traffic has a weekly rhythm (weekdays, nights, weekends), so "normal" is the
same hours of the week in earlier weeks. Everything is in event time: the workers' rolling
windows (`{SHIPMENT_TEU_WINDOW.name}`, gauges), summed over the workers *before* any
function over time, so a partition that moves between workers changes nothing.

Needs at least 3 weeks and 6 hours of raw history (set --storage.tsdb.retention.time to 30d or
more; Prometheus' default 15d leaves the band empty and the alert silent) and one week of
the z-score's own history before the spread exists."""

_TRANSIT_HEADER = f"""\
Time on the corridor: transit times, legs and dwell, shipments in transit and overdue, arrivals
and flights on time. What {TRANSIT_TIME_HIGH}, {OVERDUE_ALERT}, {ON_TIME_SHARE_LOW} and
{FLIGHTS_LATE} read (streams/alerting/transit.py; tests: deploy/prometheus/tests/transit_test.yml
and overdue_test.yml), and the "Transit and reliability" dashboard. Named level:metric:operation
like rules/corridor.yml.

The histograms and punctuality counters are the workers' partition series (labels `partition`,
`owner`): increase() over each, then summed. A shipment route arrives a few to ten shipments an
hour and a flight route about two flights a day, so the windows are a day and a week: shorter
ones hold too few arrivals for a quantile or a share to mean anything. The group is evaluated
every minute rather than at the global interval. The week's baseline is whole after 8 days of
history (before, it holds the days there are)."""


def files(t: Thresholds) -> dict[str, tuple[str, tuple[RecordGroup, ...]]]:
    """Each rule file: its header comment and its groups, by file name."""
    return {
        "corridor.yml": (_CORRIDOR_HEADER, (_pipeline(t), _volume(t))),
        "corridor-baselines.yml": (_BASELINES_HEADER, (_baselines(t),)),
        "corridor-transit.yml": (_TRANSIT_HEADER, (_transit(t),)),
    }


#: Every recording rule's name (the names do not depend on the thresholds).
RECORD_NAMES: frozenset[str] = frozenset(
    record.name for _, groups in files(PROFILES["default"]).values() for group in groups for record in group.records
)


def _comment(text: str, indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()] if text else []


def _text(header: str, groups: tuple[RecordGroup, ...]) -> str:
    lines = [*_comment(header, ""), "groups:"]
    for number, group in enumerate(groups):
        if number:
            lines.append("")
        lines.append(f"  - name: {group.name}")
        if group.interval:
            lines.append(f"    interval: {group.interval}")
        lines.append("    rules:")
        for position, record in enumerate(group.records):
            if group.spaced and position:
                lines.append("")
            lines += [*_comment(record.comment, "      "), f"      - record: {record.name}"]
            if group.spaced or "\n" in record.expr:
                lines += ["        expr: |", *(f"          {line}" for line in record.expr.splitlines())]
            else:
                lines.append(f"        expr: {record.expr}")
    return "\n".join(lines) + "\n"


def render(t: Thresholds) -> dict[str, str]:
    """The text of each recording-rule file, by file name."""
    return {name: _text(header, groups) for name, (header, groups) in files(t).items()}


def write(directory: Path, t: Thresholds) -> list[Path]:
    """Write the recording-rule files into ``directory`` (created if missing); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render(t).items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
