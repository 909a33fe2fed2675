"""Every alert threshold, in one place (the defaults and a short test profile)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.families import FAMILY_NAMES

_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'
#: Label matchers as inside a PromQL selector's braces: ``job="corridor-worker", env=~"prod|staging"``.
_SELECTOR = re.compile(f"{_MATCHER}(?:,{_MATCHER})*")

RUNBOOK_URL = "https://github.com/corridor-monitor/corridor-monitor/blob/main/docs/runbook.md"


class Thresholds(BaseModel):
    """What the alert rules compare with; every field is documented in docs/runbook.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runbook_url: str = Field(RUNBOOK_URL, description="docs/runbook.md as operators read it; alerts link #<alert name>")
    # Each area adds its own thresholds below, with a one-line description.

    # deployment: which series are this deployment's, and the labels that tell deployments apart
    worker_selector: str = Field(
        'job="corridor-worker"',
        description="label matchers selecting the workers' series (the scrape job of deploy/prometheus/prometheus.yml)",
    )
    ingest_selector: str = Field(
        'job="corridor-ingest"', description="label matchers selecting the HTTP ingest's series"
    )
    deployment_labels: tuple[str, ...] = Field(
        ("cluster", "namespace"),
        description="labels that tell deployments apart on one Prometheus: every rule keeps them when it "
                    "aggregates and matches on them, every dashboard has a variable for each",
    )

    # pipeline
    stream_silent_s: dict[str, int] = Field(
        default_factory=lambda: {"shipments": 1800, "flights": 172800, "finance": 86400, "datachannel": 300},
        description="per stream: seconds since its newest event (event time) before the stream is silent",
    )
    key_silent_s: dict[str, int] = Field(
        default_factory=lambda: {"shipments": 7200, "flights": 172800, "finance": 604800, "datachannel": 300},
        description="per stream: seconds since a key's (route, instrument, link) newest event before it is silent",
    )
    silent_lookback_s: int = Field(
        86400, gt=0,
        description="a key's silence is watched only while its newest event is at most this much past its limit "
                    "(a whole stream's for as long as it lasts)",
    )
    silent_for_s: int = Field(300, gt=0, description="for: of CorridorStreamSilent")
    dead_letters_window_s: int = Field(1800, gt=0, description="window over which rejected and received are counted")
    dead_letters_fraction: float = Field(0.05, gt=0, le=1, description="share of received events rejected that alerts")
    dead_letters_min_events: int = Field(20, ge=1, description="fewest rejections in the window that may alert")
    dead_letters_for_s: int = Field(600, gt=0, description="for: of CorridorDeadLettersRising")
    stalled_window_s: int = Field(
        600, gt=0, description="window in which a partition's lag did not fall and none of its records was processed"
    )
    stalled_min_lag: int = Field(1, ge=1, description="fewest records waiting in a partition that count as a stall")
    stalled_for_s: int = Field(300, gt=0, description="for: of CorridorPipelineStalled")
    worker_down_for_s: int = Field(300, gt=0, description="for: of CorridorWorkerDown (a restart takes less)")
    worker_gone_lookback_s: int = Field(
        86400, gt=0,
        description="a deployment whose workers were all scraped within this long, and none is now, is down "
                    "(after it, the deployment counts as removed)",
    )
    state_gap_window_s: int = Field(3600, gt=0, description="window in which a new state gap alerts")
    state_gap_for_s: int = Field(60, gt=0, description="for: of CorridorStateGap")
    restore_slow_s: int = Field(900, gt=0, description="seconds a worker may restore partition state")
    restore_slow_for_s: int = Field(120, gt=0, description="for: of CorridorRestoreSlow")

    # volume
    volume_period_s: int = Field(
        604800, gt=0, description="the corridor's rhythm: volumes are compared with the same window this long earlier"
    )
    volume_drop_window: dict[str, str] = Field(
        default_factory=lambda: {"shipments": "24h", "flights": "7d", "finance": "7d", "datachannel": "1h"},
        description="per stream: the rolling window (a worker `window` label) CorridorVolumeDrop compares",
    )
    volume_drop_fraction: dict[str, float] = Field(
        default_factory=lambda: {"shipments": 0.5, "flights": 0.5, "finance": 0.2, "datachannel": 0.8},
        description="per stream: CorridorVolumeDrop fires below this fraction of the window one period earlier",
    )
    volume_drop_min_baseline: dict[str, float] = Field(
        default_factory=lambda: {"shipments": 100, "flights": 4, "finance": 5e6, "datachannel": 1e11},
        description="per stream: baselines below this (TEU, flights, USD, bytes) are too small to compare",
    )
    volume_drop_matchers: dict[str, str] = Field(
        default_factory=lambda: {"finance": 'instrument="trade_finance"'},
        description="per stream: label matchers of the series watched (other instruments sign a few deals a week)",
    )
    volume_drop_for_s: int = Field(1800, gt=0, description="for: of CorridorVolumeDrop")
    volume_anomaly_deviations: float = Field(
        4.0, gt=0, description="CorridorVolumeAnomaly fires below the seasonal expectation minus this many deviations"
    )
    volume_anomaly_min_expected: float = Field(
        20, ge=0, description="TEU a route must be expected to carry in the 6h window to be watched"
    )
    volume_anomaly_for_s: int = Field(900, gt=0, description="for: of CorridorVolumeAnomaly")
    route_vanished_window: str = Field("1h", description="the rolling window (`window` label) that must stay at zero")
    route_vanished_silent_s: int = Field(
        21600, gt=0, description="how long (event time, window included) a route carries nothing before it vanished"
    )
    route_vanished_previous_window: str = Field(
        "24h", description="the rolling window (`window` label) a route had traffic in, before the silence"
    )
    route_vanished_min_previous: float = Field(
        50, gt=0, description="TEU the route carried in that window for its silence to count"
    )
    route_vanished_for_s: int = Field(900, gt=0, description="for: of CorridorRouteVanished")
    cancellations_window_s: int = Field(
        3600, gt=0, description="window over which a route's cancelled and booked shipments are counted"
    )
    cancellations_min: int = Field(10, ge=1, description="fewest cancelled bookings in the window that may alert")
    cancellations_per_booking: float = Field(
        1.0, gt=0, description="CorridorBookingsCancelled fires when the cancellations exceed this many per booking"
    )
    cancellations_for_s: int = Field(300, gt=0, description="for: of CorridorBookingsCancelled")
    weekly_flights_schedule: dict[str, int] = Field(
        default_factory=lambda: {"CKG-SIN": 14},
        description="per flight route: flights a week the timetable operates (14 before 2020; 2 in 2020)",
    )
    weekly_flights_for_s: int = Field(
        14400, gt=0, description="for: of CorridorWeeklyFlightsBelowSchedule (longer than the longest delay)"
    )
    throughput_drop_fraction: float = Field(
        0.5, gt=0, le=1, description="CorridorDataChannelThroughputDrop fires below this fraction of a period earlier"
    )
    throughput_min_baseline_bytes_per_s: float = Field(
        1e6, ge=0, description="a link direction carrying less a period earlier is not watched"
    )
    throughput_drop_for_s: int = Field(600, gt=0, description="for: of CorridorDataChannelThroughputDrop")

    # ingest
    ingest_window_s: int = Field(
        300, gt=0, description="window over which the ingest's answers and latency are counted"
    )
    ingest_min_answers: int = Field(
        5, ge=1, description="fewest answers of the kind an ingest share alert watches (5xx, 503, 429) in the window"
    )
    ingest_down_for_s: int = Field(180, gt=0, description="for: of CorridorIngestDown (a restart takes seconds)")
    ingest_gone_lookback_s: int = Field(
        3600, gt=0, description="a deployment that had ingest targets this recently and has none now is down"
    )
    ingest_server_errors_fraction: float = Field(
        0.05, gt=0, le=1, description="share of the answers that are 5xx other than 503 (the ingest's own faults)"
    )
    ingest_server_errors_for_s: int = Field(300, gt=0, description="for: of CorridorIngestServerErrors")
    ingest_undelivered_fraction: float = Field(
        0.1, gt=0, le=1, description="share of the answers that are 503 (the broker did not confirm)"
    )
    ingest_undelivered_for_s: int = Field(300, gt=0, description="for: of CorridorIngestUndelivered")
    ingest_rate_limited_fraction: float = Field(
        0.1, gt=0, le=1, description="share of the answers that are 429 (a token over its rate limit)"
    )
    ingest_rate_limited_for_s: int = Field(900, gt=0, description="for: of CorridorIngestRateLimited")
    ingest_slow_p99_s: float = Field(2.5, gt=0, description="seconds the ingest's p99 latency may reach")
    ingest_slow_min_rate: float = Field(
        0.1, gt=0, description="requests per second an ingest must answer for its latency to be watched"
    )
    ingest_slow_for_s: int = Field(600, gt=0, description="for: of CorridorIngestSlow")
    # health: the workers' consumer lag in seconds, checkpoints, dead letters unsent
    consumer_lag_high_s: int = Field(
        300, gt=0, description="age (seconds) of a partition's oldest unapplied record above which it falls behind"
    )
    consumer_lag_window_s: int = Field(
        600, gt=0, description="window in which that age rose and records of the partition were processed"
    )
    consumer_lag_for_s: int = Field(300, gt=0, description="for: of CorridorConsumerLagHigh")
    checkpoint_failures_window_s: int = Field(900, gt=0, description="window over which failed checkpoints count")
    checkpoint_failures_min: int = Field(
        3, ge=1, description="fewest checkpoint writes the changelog refused in the window that alert"
    )
    checkpoint_failures_for_s: int = Field(300, gt=0, description="for: of CorridorCheckpointFailing")
    checkpoint_age_high_s: int = Field(
        120, gt=0, description="seconds an applied record may wait for a confirmed checkpoint"
    )
    checkpoint_age_for_s: int = Field(60, gt=0, description="for: of CorridorCheckpointAgeHigh")
    dead_letters_unsent_window_s: int = Field(
        3600, gt=0, description="window in which a dead letter the producer failed to send alerts"
    )
    dead_letters_unsent_for_s: int = Field(60, gt=0, description="for: of CorridorDeadLettersUnsent")

    # data channel: link quality
    datachannel_quality_window_s: int = Field(
        600, gt=0, description="window over which the links' latency and packet loss are measured"
    )
    datachannel_latency_quantile: float = Field(
        0.9, gt=0, lt=1, description="the latency quantile compared with datachannel_latency_high_s"
    )
    datachannel_latency_high_s: float = Field(
        0.15, gt=0, description="latency (seconds) above which a link is slow (60-70 ms normal, 230 ms before it)"
    )
    datachannel_latency_for_s: int = Field(600, gt=0, description="for: of CorridorDataChannelLatencyHigh")
    datachannel_loss_high_ratio: float = Field(
        0.01, gt=0, le=1, description="time-weighted packet-loss ratio above which a link direction is lossy"
    )
    datachannel_loss_for_s: int = Field(600, gt=0, description="for: of CorridorDataChannelPacketLossHigh")

    # time: transit time, overdue shipments, on-time arrivals, late flights (windows of
    # deploy/prometheus/rules/corridor-transit.yml: a day for shipments, a week for flights)
    transit_time_quantile: float = Field(
        0.5, gt=0, lt=1, description="the quantile of a route's transit times compared (0.5: the median)"
    )
    transit_time_factor: float = Field(
        1.15, gt=1,
        description="CorridorTransitTimeHigh fires when the quantile of the last day's arrivals exceeds this many "
                    "times the same quantile of the 7 days before",
    )
    transit_time_min_arrivals: int = Field(
        20, ge=1,
        description="fewest arrivals at the destination in the last day, and in the first day of the week before, "
                    "for a route's transit time to be compared",
    )
    transit_time_for_s: int = Field(3600, gt=0, description="for: of CorridorTransitTimeHigh")
    overdue_min_shipments: int = Field(
        10, ge=1, description="fewest overdue shipments on a route that may alert"
    )
    overdue_fraction: float = Field(
        0.1, gt=0,
        description="CorridorShipmentsOverdue fires when a route's overdue shipments exceed this many per shipment "
                    "in transit",
    )
    overdue_for_s: int = Field(3600, gt=0, description="for: of CorridorShipmentsOverdue")
    on_time_target: float = Field(
        0.6, gt=0, le=1,
        description="CorridorOnTimeShareLow fires when a route's share of arrivals on time (within the mode's "
                    "tolerance) in the last day is below this",
    )
    on_time_min_arrivals: int = Field(
        20, ge=1, description="fewest arrivals with a planned time in the last day for a route's on-time share to count"
    )
    on_time_for_s: int = Field(3600, gt=0, description="for: of CorridorOnTimeShareLow")
    flights_late_target: float = Field(
        0.4, gt=0, le=1,
        description="CorridorFlightsLate fires when a flight route's share of flights on time (OAG: arrived less "
                    "than 15 minutes late; a cancelled flight is not on time) in the last 7 days is below this",
    )
    flights_late_min_flights: int = Field(
        7, ge=1,
        description="fewest flights arrived or cancelled in the last 7 days for a route's on-time share to count",
    )
    flights_late_for_s: int = Field(3600, gt=0, description="for: of CorridorFlightsLate")

    @field_validator("worker_selector", "ingest_selector")
    @classmethod
    def _matchers(cls, selector: str) -> str:
        if not _SELECTOR.fullmatch(selector):
            raise ValueError(
                f"{selector!r} is not a list of label matchers: write them as inside a PromQL selector's braces, "
                'e.g. job="corridor-worker", env=~"prod|staging"'
            )
        return selector

    @field_validator("deployment_labels")
    @classmethod
    def _label_names(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        bad = [label for label in labels if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label)]
        if bad:
            raise ValueError(f"not a Prometheus label name: {', '.join(map(repr, bad))}")
        return labels

    def by(self, *labels: str) -> str:
        """The grouping labels of an aggregation or a vector match: the deployment labels, then ``labels``
        (``sum by ({t.by("stream")}) (...)``)."""
        return ", ".join([*self.deployment_labels, *labels])

    def workers(self, matchers: str = "") -> str:
        """The inside of a selector of the workers' series: the worker selector, then ``matchers``
        (``metric{{{t.workers('stream="shipments"')}}}``)."""
        return ", ".join(part for part in (self.worker_selector, matchers) if part)

    def ingests(self, matchers: str = "") -> str:
        """The inside of a selector of the HTTP ingest's series, like ``workers``."""
        return ", ".join(part for part in (self.ingest_selector, matchers) if part)

    @field_validator(
        "stream_silent_s", "key_silent_s", "volume_drop_window", "volume_drop_fraction", "volume_drop_min_baseline",
        "volume_drop_matchers",
    )
    @classmethod
    def _keyed_by_family(cls, by_stream: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(by_stream) - set(FAMILY_NAMES))
        if unknown:
            raise ValueError(f"not an event family: {', '.join(unknown)} (the families: {', '.join(FAMILY_NAMES)})")
        return by_stream


#: Named sets of thresholds: ``default`` for production, ``test`` with short durations for live tests.
PROFILES: dict[str, Thresholds] = {
    "default": Thresholds(),
    "test": Thresholds(
        # pipeline
        stream_silent_s={"shipments": 8, "flights": 8, "finance": 8, "datachannel": 8},
        key_silent_s={"shipments": 8, "flights": 8, "finance": 8, "datachannel": 8},
        silent_lookback_s=600,
        silent_for_s=2,
        dead_letters_window_s=60,
        dead_letters_min_events=5,
        dead_letters_for_s=5,
        stalled_window_s=30,
        stalled_for_s=5,
        worker_down_for_s=5,
        worker_gone_lookback_s=600,
        state_gap_window_s=60,
        state_gap_for_s=1,
        restore_slow_s=30,
        restore_slow_for_s=5,
        # volume: "a period earlier" is 10 minutes ago; the 5m windows are compared
        volume_period_s=600,
        volume_drop_window={"shipments": "5m", "flights": "5m", "finance": "5m", "datachannel": "5m"},
        volume_drop_min_baseline={"shipments": 1, "flights": 1, "finance": 1, "datachannel": 1},
        volume_drop_matchers={},
        volume_drop_for_s=5,
        volume_anomaly_min_expected=1,
        volume_anomaly_for_s=5,
        route_vanished_window="5m",
        route_vanished_silent_s=420,
        route_vanished_previous_window="1h",
        route_vanished_min_previous=1,
        route_vanished_for_s=5,
        cancellations_window_s=300,
        cancellations_min=1,
        cancellations_for_s=5,
        weekly_flights_for_s=5,
        throughput_min_baseline_bytes_per_s=1,
        throughput_drop_for_s=5,
        # ingest: a 20-second window, three answers
        ingest_window_s=20,
        ingest_min_answers=3,
        ingest_down_for_s=2,
        ingest_gone_lookback_s=60,
        ingest_server_errors_for_s=2,
        ingest_undelivered_for_s=2,
        ingest_rate_limited_for_s=2,
        ingest_slow_for_s=2,
        # health: a backlog a slow worker takes more than half a minute over ages past 5 s within seconds
        consumer_lag_high_s=5,
        consumer_lag_window_s=10,
        consumer_lag_for_s=2,
        checkpoint_failures_window_s=60,
        checkpoint_failures_min=1,
        checkpoint_failures_for_s=5,
        checkpoint_age_high_s=10,
        checkpoint_age_for_s=5,
        dead_letters_unsent_window_s=60,
        dead_letters_unsent_for_s=1,
        # data channel
        datachannel_quality_window_s=60,
        datachannel_latency_for_s=5,
        datachannel_loss_for_s=5,
        # time
        transit_time_min_arrivals=1,
        transit_time_for_s=5,
        overdue_min_shipments=1,
        overdue_for_s=5,
        on_time_min_arrivals=1,
        on_time_for_s=5,
        flights_late_min_flights=1,
        flights_late_for_s=5,
    ),
}
