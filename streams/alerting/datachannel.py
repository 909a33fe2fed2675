"""Alerts of the data channel's link quality: latency and packet loss above what the channel delivers.

The China-Singapore international data channel opened in September 2019 with 60-70 ms between
Chongqing and Singapore, where the public Internet path before it took up to 230 ms (DESIGN.md,
docs/runbook.md). Both read the samples the link monitors report, summed over the workers'
partition series with ``rate()`` (docs/semantics.md), by the deployment labels.
"""

from __future__ import annotations

from streams.alerting.alert import (
    DATACHANNEL_LATENCY_HIGH,
    DATACHANNEL_PACKET_LOSS_HIGH,
    Rule,
    Severity,
    alert,
    duration,
)
from streams.alerting.thresholds import Thresholds
from streams.core.families import DATACHANNEL_LATENCY, DATACHANNEL_LOSS, DATACHANNEL_LOSS_MEASURED


def rules(thresholds: Thresholds) -> list[Rule]:
    return [latency_high(thresholds), packet_loss_high(thresholds)]


def latency_quantile(t: Thresholds, matchers: str = "") -> str:
    """The links' latency quantile of the alert, per link (the dashboard adds its ``matchers``)."""
    window = duration(t.datachannel_quality_window_s)
    buckets = f"{DATACHANNEL_LATENCY.name}_bucket{{{t.workers(matchers)}}}"
    return (f"histogram_quantile({t.datachannel_latency_quantile:g}, "
            f"sum by ({t.by('link', 'le')}) (rate({buckets}[{window}])))")


def packet_loss_ratio(t: Thresholds, matchers: str = "") -> str:
    """The time-weighted packet-loss ratio of the alert, per link and direction (the dashboard adds its
    ``matchers``)."""
    window = duration(t.datachannel_quality_window_s)
    by = t.by("link", "direction")
    selector = t.workers(matchers)
    return (f"sum by ({by}) (rate({DATACHANNEL_LOSS.name}_total{{{selector}}}[{window}]))\n/\n"
            f"sum by ({by}) (rate({DATACHANNEL_LOSS_MEASURED.name}_total{{{selector}}}[{window}]))")


def latency_high(t: Thresholds) -> Rule:
    window = duration(t.datachannel_quality_window_s)
    quantile = f"p{t.datachannel_latency_quantile * 100:g}"
    return alert(
        DATACHANNEL_LATENCY_HIGH,
        f"{latency_quantile(t)}\n> {t.datachannel_latency_high_s:g}",
        for_=duration(t.datachannel_latency_for_s),
        severity=Severity.WARNING,
        summary="Data-channel link {{ $labels.link }} is slow.",
        description=(
            f"The {quantile} latency of link {{{{ $labels.link }}}} over {window} is "
            f"{{{{ $value | humanizeDuration }}}} (alerts above {t.datachannel_latency_high_s * 1000:g} ms; the "
            "channel carries 60-70 ms, the public Internet path before it up to 230 ms): traffic may be "
            "routed off the channel."
        ),
        thresholds=t,
    )


def packet_loss_high(t: Thresholds) -> Rule:
    window = duration(t.datachannel_quality_window_s)
    return alert(
        DATACHANNEL_PACKET_LOSS_HIGH,
        f"(\n{packet_loss_ratio(t)}\n)\n> {t.datachannel_loss_high_ratio:g}",
        for_=duration(t.datachannel_loss_for_s),
        severity=Severity.WARNING,
        summary="Data-channel link {{ $labels.link }} loses packets ({{ $labels.direction }}).",
        description=(
            "Link {{ $labels.link }} lost {{ $value | humanizePercentage }} of its packets "
            f"({{{{ $labels.direction }}}}) over {window}, time-weighted over the probes' samples (alerts above "
            f"{t.datachannel_loss_high_ratio:.1%}; the link usually loses a few in 100,000)."
        ),
        thresholds=t,
    )
