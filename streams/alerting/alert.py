"""One alerting rule with the labels and annotations every corridor alert carries, and its durations.

The areas (``pipeline``, ``volume``, ``ingest``) build their rules from these; ``rules`` renders the areas.
Every alert's name is a constant here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from streams.alerting.thresholds import Thresholds

Rule = dict[str, Any]

# The alert names (a contract: docs/runbook.md has one section each). The rules and the
# dashboards import them; nothing else spells one.
STREAM_SILENT = "CorridorStreamSilent"
DEAD_LETTERS_RISING = "CorridorDeadLettersRising"
PIPELINE_STALLED = "CorridorPipelineStalled"
WORKER_DOWN = "CorridorWorkerDown"
STATE_GAP = "CorridorStateGap"
RESTORE_SLOW = "CorridorRestoreSlow"
VOLUME_DROP = "CorridorVolumeDrop"
VOLUME_ANOMALY = "CorridorVolumeAnomaly"
ROUTE_VANISHED = "CorridorRouteVanished"
BOOKINGS_CANCELLED = "CorridorBookingsCancelled"
WEEKLY_FLIGHTS_BELOW_SCHEDULE = "CorridorWeeklyFlightsBelowSchedule"
DATACHANNEL_THROUGHPUT_DROP = "CorridorDataChannelThroughputDrop"
INGEST_DOWN = "CorridorIngestDown"
INGEST_SERVER_ERRORS = "CorridorIngestServerErrors"
INGEST_UNDELIVERED = "CorridorIngestUndelivered"
INGEST_RATE_LIMITED = "CorridorIngestRateLimited"
INGEST_SLOW = "CorridorIngestSlow"
CONSUMER_LAG_HIGH = "CorridorConsumerLagHigh"
CHECKPOINT_FAILING = "CorridorCheckpointFailing"
CHECKPOINT_AGE_HIGH = "CorridorCheckpointAgeHigh"
DEAD_LETTERS_UNSENT = "CorridorDeadLettersUnsent"
DATACHANNEL_LATENCY_HIGH = "CorridorDataChannelLatencyHigh"
DATACHANNEL_PACKET_LOSS_HIGH = "CorridorDataChannelPacketLossHigh"
TRANSIT_TIME_HIGH = "CorridorTransitTimeHigh"
SHIPMENTS_OVERDUE = "CorridorShipmentsOverdue"
ON_TIME_SHARE_LOW = "CorridorOnTimeShareLow"
FLIGHTS_LATE = "CorridorFlightsLate"


def duration(seconds: int) -> str:
    """``seconds`` as a Prometheus duration in its largest exact units: 90 -> ``1m30s``, 86400 -> ``1d``."""
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


class Severity(StrEnum):
    """How urgent an alert is, in the values kube-prometheus-stack and the monitoring mixins
    route on: ``critical`` pages on-call at once, ``warning`` goes to the ops queue,
    ``info`` is for the record (deploy/alertmanager/alertmanager.yml)."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


def alert(
    name: str,
    expr: str,
    *,
    for_: str,
    severity: Severity,
    summary: str,
    description: str,
    thresholds: Thresholds,
    labels: dict[str, str] | None = None,
) -> Rule:
    """One alerting rule with the labels and annotations every corridor alert carries."""
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity.value, **(labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url(thresholds, name),
        },
    }


def runbook_url(thresholds: Thresholds, alert: str) -> str:
    """The runbook section of ``alert`` (docs/runbook.md has one heading per alert)."""
    return f"{thresholds.runbook_url}#{alert.lower()}"


def this_deployment(t: Thresholds, matchers: str) -> str:
    """The inside of a selector, for a query in an annotation template, of the alert's own deployment:
    one ``label="%s"`` per deployment label, then ``matchers`` (filled by :func:`deployment_arguments`)."""
    return ", ".join([*(f'{label}="%s"' for label in t.deployment_labels), matchers])


def deployment_arguments(t: Thresholds, arguments: str) -> str:
    """The ``printf`` arguments of :func:`this_deployment`'s selector: the alert's deployment labels (empty
    where a label is absent, which matches the absent label), then ``arguments``."""
    return " ".join([*(f"$labels.{label}" for label in t.deployment_labels), arguments])


def labels_here(t: Thresholds, labels: tuple[str, ...]) -> str:
    """Label matchers of the alert's deployment and its ``labels`` in a description's query (see
    :func:`queried`)."""
    return this_deployment(t, ",".join(f'{label}="%s"' for label in labels))


def queried(t: Thresholds, expression: str, labels: tuple[str, ...], times: int = 1, shown: str = "humanize") -> str:
    """A description template printing ``expression``'s value for the alert's deployment and ``labels``
    (``expression`` holds ``labels_here(t, labels)`` ``times`` times), through the template function ``shown``."""
    arguments = " ".join([deployment_arguments(t, " ".join(f"$labels.{label}" for label in labels))] * times)
    return (f"{{{{ with printf `{expression}` {arguments} | query }}}}"
            f"{{{{ . | first | value | {shown} }}}}{{{{ end }}}}")


def counter_rose(t: Thresholds, counter: str, by: str, window_s: int) -> str:
    """An expression of a per-process counter (``counter``, a whole selector) that rose within ``window_s``,
    summed ``by``: its increase() over the window, or, for a process younger than the window, any value
    above zero (a count made before the process's first scrape shows as a series that starts above zero,
    which increase() cannot see)."""
    return (
        f"sum by ({by}) (increase({counter}[{duration(window_s)}])) > 0\nor\n"
        f"sum by ({by}) (\n  {counter} > 0\n  and on ({t.by('job', 'instance')})\n"
        f"  time() - process_start_time_seconds{{{t.workers()}}} < {window_s}\n)"
    )
