"""Alerts of the ingest area: the HTTP ingest down, and its answers going wrong (server errors,
undelivered events, rate limits, latency).

Every series is selected with ``Thresholds.ingest_selector`` and every aggregation keeps the
deployment labels, so one deployment's broken ingest fires for that deployment only. The shares
are of every answer of the events API (``streams/ingest/metrics.py`` counts each once, an
unexpected exception as 500), guarded by a minimum count of the answers watched so that a few
failures of a quiet ingest do not alert; the latency is watched only above a minimum request
rate, so an idle ingest (a quantile of nothing) does not fire.
"""

from __future__ import annotations

from streams.alerting.alert import (
    INGEST_DOWN,
    INGEST_RATE_LIMITED,
    INGEST_SERVER_ERRORS,
    INGEST_SLOW,
    INGEST_UNDELIVERED,
    Rule,
    Severity,
    alert,
    duration,
)
from streams.alerting.thresholds import Thresholds
from streams.core.series import INGEST_DURATION, INGEST_REQUESTS

#: The answers that are the ingest's own faults: 5xx, less the 503 of a broker that did not confirm.
SERVER_ERROR_CODES = 'code=~"5..", code!="503"'
UNDELIVERED_CODE = 'code="503"'
RATE_LIMITED_CODE = 'code="429"'


def rules(thresholds: Thresholds) -> list[Rule]:
    return [
        *ingest_down(thresholds),
        server_errors(thresholds),
        undelivered(thresholds),
        rate_limited(thresholds),
        slow(thresholds),
    ]


def deployment(t: Thresholds) -> str:
    """A description template naming the alert's deployment, `` in cluster a namespace b``, by the labels
    it carries (nothing when it carries none)."""
    present = " ".join(f"$labels.{label}" for label in t.deployment_labels)
    if not present:
        return ""
    condition = f"or {present}" if len(t.deployment_labels) > 1 else present
    named = "".join(f"{{{{ with $labels.{label} }}}} {label} {{{{ . }}}}{{{{ end }}}}" for label in t.deployment_labels)
    return f"{{{{ if {condition} }}}} in{named}{{{{ end }}}}"


def ingest_down(t: Thresholds) -> list[Rule]:
    """Critical when no ingest of a deployment answers (all down, none left in service discovery, or
    none at all); a warning for one replica down while others of its deployment answer."""
    up = f"up{{{t.ingests()}}}"
    deployed = t.by()
    lookback = duration(t.ingest_gone_lookback_s)
    nothing_answers = (
        f"sum by ({deployed}) ({up}) == 0\nor\nabsent({up})\nor\n"
        # A deployment whose every target is gone (absent() cannot tell deployments apart).
        f"(\n  group by ({deployed}) (max_over_time({up}[{lookback}]))\n  unless on ({deployed})\n"
        f"  group by ({deployed}) ({up})\n)"
    )
    where = deployment(t)
    for_ = duration(t.ingest_down_for_s)
    return [
        alert(
            INGEST_DOWN,
            nothing_answers,
            for_=for_,
            severity=Severity.CRITICAL,
            summary=f"No HTTP ingest answers{where}.",
            description=(
                f"Prometheus has scraped no HTTP ingest{where} for {for_} (every replica down, or none left in "
                f"service discovery for up to {lookback}; selector {t.ingest_selector}). "
                "Producers that publish over HTTP cannot deliver anything: their events wait on their side, "
                "or are lost if they do not retry."
            ),
            thresholds=t,
        ),
        alert(
            INGEST_DOWN,
            f"{up} == 0\nunless on ({deployed})\nsum by ({deployed}) ({up}) == 0",
            for_=for_,
            severity=Severity.WARNING,
            summary="HTTP ingest {{ $labels.instance }} is down.",
            description=(
                f"Prometheus has not scraped HTTP ingest {{{{ $labels.instance }}}}{where} for {for_}; the other "
                "replicas of the deployment answer, so producers behind a load balancer are served by them."
            ),
            thresholds=t,
        ),
    ]


def share(t: Thresholds, codes: str, fraction: float) -> str:
    """Answers with ``codes`` over every answer in the window above ``fraction``, with at least
    ``ingest_min_answers`` of them, per deployment."""
    deployed = t.by()
    window = duration(t.ingest_window_s)
    requests = f"{INGEST_REQUESTS.name}_total"
    picked = f"{requests}{{{t.ingests(codes)}}}"
    return (
        f"(\n  sum by ({deployed}) (rate({picked}[{window}]))\n  /\n"
        f"  sum by ({deployed}) (rate({requests}{{{t.ingests()}}}[{window}]))\n  > {fraction:g}\n)\n"
        f"and on ({deployed})\nsum by ({deployed}) (increase({picked}[{window}])) >= {t.ingest_min_answers}"
    )


def _share_description(t: Thresholds, what: str, fraction: float) -> str:
    return (
        f"{{{{ $value | humanizePercentage }}}} of the answers of the HTTP ingest{deployment(t)} in the last "
        f"{duration(t.ingest_window_s)} were {what} (alerts above {fraction:.0%} and "
        f"{t.ingest_min_answers} answers)."
    )


def server_errors(t: Thresholds) -> Rule:
    fraction = t.ingest_server_errors_fraction
    return alert(
        INGEST_SERVER_ERRORS,
        share(t, SERVER_ERROR_CODES, fraction),
        for_=duration(t.ingest_server_errors_for_s),
        severity=Severity.CRITICAL,
        summary=f"The HTTP ingest{deployment(t)} fails requests with server errors.",
        description=_share_description(t, "server errors, 5xx other than 503", fraction)
        + " An exception the ingest did not expect: its log has the traceback. Producers get no report of "
        "their events and must send them again.",
        thresholds=t,
    )


def undelivered(t: Thresholds) -> Rule:
    fraction = t.ingest_undelivered_fraction
    return alert(
        INGEST_UNDELIVERED,
        share(t, UNDELIVERED_CODE, fraction),
        for_=duration(t.ingest_undelivered_for_s),
        severity=Severity.CRITICAL,
        summary=f"The HTTP ingest{deployment(t)} cannot deliver events to Kafka (503).",
        description=_share_description(t, "503: the broker did not confirm their valid events in time", fraction)
        + " Those events are not in Kafka; producers that retry deliver them once the broker answers.",
        thresholds=t,
    )


def rate_limited(t: Thresholds) -> Rule:
    fraction = t.ingest_rate_limited_fraction
    return alert(
        INGEST_RATE_LIMITED,
        share(t, RATE_LIMITED_CODE, fraction),
        for_=duration(t.ingest_rate_limited_for_s),
        severity=Severity.WARNING,
        summary=f"Producers of the HTTP ingest{deployment(t)} are over their rate limits (429).",
        description=_share_description(t, "429: a token over its rate limit", fraction)
        + " A producer sends too many small requests, or the limit is too low for its traffic.",
        thresholds=t,
    )


def slow(t: Thresholds) -> Rule:
    deployed = t.by()
    window = duration(t.ingest_window_s)
    return alert(
        INGEST_SLOW,
        f"histogram_quantile(\n  0.99,\n  sum by ({t.by('le')}) "
        f"(rate({INGEST_DURATION.name}_bucket{{{t.ingests()}}}[{window}]))\n) > {t.ingest_slow_p99_s:g}\n"
        f"and on ({deployed})\n"
        f"sum by ({deployed}) (rate({INGEST_DURATION.name}_count{{{t.ingests()}}}[{window}])) "
        f">= {t.ingest_slow_min_rate:g}",
        for_=duration(t.ingest_slow_for_s),
        severity=Severity.WARNING,
        summary=f"The HTTP ingest{deployment(t)} answers slowly.",
        description=(
            f"The 99th percentile of the HTTP ingest's answer time{deployment(t)} over the last {window} is "
            f"{{{{ $value | humanizeDuration }}}} (alerts above {t.ingest_slow_p99_s:g}s, at "
            f"{t.ingest_slow_min_rate:g} requests/s or more). Most of it is waiting for the broker to confirm."
        ),
        thresholds=t,
    )
