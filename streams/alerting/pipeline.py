"""Alerts of the pipeline area: silent streams, dead letters, stalls, workers, state gaps, restores.

The counters a worker computes from partition state carry ``partition`` and ``owner``
(docs/semantics.md, "Counters across partition moves"): every expression sums
``increase()`` over them, so a rebalance, a crash or a restart neither fires nor hides an
alert. The worker's own series (``up``, lag, restore progress, state gaps) are per process.
"""

from __future__ import annotations

from streams.alerting.alert import (
    DEAD_LETTERS_RISING,
    PIPELINE_STALLED,
    RESTORE_SLOW,
    STATE_GAP,
    STREAM_SILENT,
    WORKER_DOWN,
    Rule,
    Severity,
    alert,
    counter_rose,
    deployment_arguments,
    duration,
    this_deployment,
)
from streams.alerting.records import KEY_LAST_EVENT_MAX, PARTITION_LAG_MAX
from streams.alerting.thresholds import Thresholds
from streams.core.series import EVENTS_RECEIVED, EVENTS_REJECTED, PARTITIONS_RESTORING, RESTORE_SECONDS, STATE_GAPS


def rules(thresholds: Thresholds) -> list[Rule]:
    return [
        *stream_silent(thresholds),
        dead_letters_rising(thresholds),
        pipeline_stalled(thresholds),
        worker_down(thresholds),
        state_gap(thresholds),
        restore_slow(thresholds),
    ]


def stream_silent(t: Thresholds) -> list[Rule]:
    """One rule per stream (each has its own limits): the whole stream, or else each of its keys.

    A stream is watched from its limit on, for as long as it stays silent: a stream does not
    retire, and a dead one must not send on-call a "resolved". A key is watched from its limit
    until ``silent_lookback_s`` past it: one whose last event is older (quiet the whole day
    before, or retired) does not page. Keys of a stream that is silent as a whole are left
    out, so one outage is one alert.
    """
    rules = []
    lookback = t.silent_lookback_s
    for stream, limit in t.stream_silent_s.items():
        stream_age = f'time() - max by ({t.by("stream")}) ({KEY_LAST_EVENT_MAX}{{stream="{stream}"}})'
        expr = f"{stream_age} > {limit}"
        limits = f"{duration(limit)} for the stream"
        key_limit = t.key_silent_s.get(stream)
        if key_limit is not None:
            key_age = f'time() - {KEY_LAST_EVENT_MAX}{{stream="{stream}"}}'
            expr = (
                f"({expr})\nor\n(\n  {key_age} > {key_limit} < {key_limit + lookback}\n"
                f"  unless on ({t.by('stream')})\n  {stream_age} > {limit}\n)"
            )
            limits += f", {duration(key_limit)} for a key, watched for {duration(lookback)} after"
        rules.append(alert(
            STREAM_SILENT,
            expr,
            for_=duration(t.silent_for_s),
            severity=Severity.CRITICAL,
            summary="The {{ $labels.stream }} stream has no events{{ with $labels.key }} for {{ . }}{{ end }}.",
            description=(
                "No {{ $labels.stream }} event{{ with $labels.key }} for {{ . }}{{ end }} for "
                "{{ $value | humanizeDuration }} (event time of the newest accepted event; silent after "
                f"{limits}). Producers stopped, or "
                "their events are rejected or not processed: see the runbook."
            ),
            thresholds=t,
            labels={"stream": stream},  # one rule per stream: promtool wants their labels to differ
        ))
    return rules


def dead_letters_rising(t: Thresholds) -> Rule:
    window = duration(t.dead_letters_window_s)
    rejected = f"sum by ({t.by('stream')}) (increase({EVENTS_REJECTED.name}_total{{{t.workers()}}}[{window}]))"
    received = f"sum by ({t.by('stream')}) (increase({EVENTS_RECEIVED.name}_total{{{t.workers()}}}[{window}]))"
    this = this_deployment(t, 'stream="%s"')
    arguments = deployment_arguments(t, "$labels.stream")
    count = (
        f"{{{{ with printf `sum(increase({EVENTS_REJECTED.name}_total{{{this}}}[{window}]))` {arguments}"
        ' | query }}{{ . | first | value | printf "%.0f" }}{{ end }}'
    )
    top_reason = (
        f"{{{{ with printf `topk(1, sum by (reason) (increase({EVENTS_REJECTED.name}_total"
        f"{{{this}}}[{window}])))` {arguments}"
        ' | query }}{{ . | first | label "reason" }}{{ end }}'
    )
    return alert(
        DEAD_LETTERS_RISING,
        f"(\n  {rejected}\n  /\n  {received}\n  > {t.dead_letters_fraction:g}\n)\n"
        f"and on ({t.by('stream')})\n{rejected} >= {t.dead_letters_min_events}",
        for_=duration(t.dead_letters_for_s),
        severity=Severity.WARNING,
        summary="Many {{ $labels.stream }} events go to the dead-letter topic.",
        description=(
            "{{ $value | humanizePercentage }} of the {{ $labels.stream }} events received in the last "
            f"{window} were rejected ({count} events, most for {top_reason}); alerts above "
            f"{t.dead_letters_fraction:.0%} and {t.dead_letters_min_events} events. They are in "
            "corridor.deadletter.v1 with their reason and field errors."
        ),
        thresholds=t,
    )


def pipeline_stalled(t: Thresholds) -> Rule:
    window = duration(t.stalled_window_s)
    by = t.by("stream, partition")
    return alert(
        PIPELINE_STALLED,
        f"(\n  {PARTITION_LAG_MAX} >= {t.stalled_min_lag}\n  and on ({by})\n"
        f"  delta({PARTITION_LAG_MAX}[{window}]) >= 0\n)\n"
        f"unless on ({by})\n"
        f"sum by ({by}) (increase({EVENTS_RECEIVED.name}_total{{{t.workers()}}}[{window}])) > 0",
        for_=duration(t.stalled_for_s),
        severity=Severity.CRITICAL,
        summary="Partition {{ $labels.partition }} of {{ $labels.stream }} is not processed.",
        description=(
            "{{ $value }} records wait in partition {{ $labels.partition }} of {{ $labels.stream }}: its lag "
            f"did not fall and none of its records was processed in {window}."
        ),
        thresholds=t,
    )


def worker_down(t: Thresholds) -> Rule:
    up, by = t.workers(), t.by("job")
    return alert(
        WORKER_DOWN,
        f"up{{{up}}} == 0\nor\nabsent(up{{{up}}})\nor\n"
        # A deployment whose every target is gone (absent() cannot tell deployments apart).
        f"(\n  group by ({by}) (max_over_time(up{{{up}}}[{duration(t.worker_gone_lookback_s)}]))\n"
        f"  unless on ({by})\n  group by ({by}) (up{{{up}}})\n)",
        for_=duration(t.worker_down_for_s),
        severity=Severity.CRITICAL,
        summary="{{ with $labels.instance }}Worker {{ . }} is down{{ else }}No corridor worker is scraped{{ end }}.",
        description=(
            "{{ with $labels.instance }}Prometheus has not scraped worker {{ . }} (job {{ $labels.job }})"
            "{{ else }}Prometheus has no target in job {{ $labels.job }}{{ end }} for "
            f"{duration(t.worker_down_for_s)}. Its partitions move to the other workers of the group after the "
            "session timeout; with no worker left nothing is processed."
        ),
        thresholds=t,
    )


def state_gap(t: Thresholds) -> Rule:
    window = duration(t.state_gap_window_s)
    return alert(
        STATE_GAP,
        # The counter is per process: a gap found while restoring, before the first scrape, shows
        # as a series that starts above zero, which increase() cannot see.
        counter_rose(t, f"{STATE_GAPS.name}_total{{{t.workers()}}}", t.by("stream"), t.state_gap_window_s),
        for_=duration(t.state_gap_for_s),
        severity=Severity.WARNING,
        summary="The {{ $labels.stream }} totals miss records (state gap).",
        description=(
            "{{ $value | humanize }} committed offset ranges of {{ $labels.stream }} were found in the last "
            f"{window} that no checkpoint holds and the topic no longer has: those records are missing from the "
            "totals. The worker log names topic, partition and offsets (\"state gap\")."
        ),
        thresholds=t,
    )


def restore_slow(t: Thresholds) -> Rule:
    limit = duration(t.restore_slow_s)
    by = t.by("job, instance")
    this = this_deployment(t, 'job="%s", instance="%s"')
    arguments = deployment_arguments(t, "$labels.job $labels.instance")
    running = (
        f"{{{{ with printf `max({RESTORE_SECONDS.name}{{{this}}})` {arguments} | query }}}}"
        "{{ . | first | value | humanizeDuration }}{{ end }}"
    )
    partitions = (
        f"{{{{ with printf `sum({PARTITIONS_RESTORING.name}{{{this}}})` {arguments} | query }}}}"
        "{{ . | first | value }}{{ end }}"
    )
    return alert(
        RESTORE_SLOW,
        f"max by ({by}) ({RESTORE_SECONDS.name}{{{t.workers()}}}) > {t.restore_slow_s}\nor\n"
        # Restoring all along (a rebalance restarts the running restore, and its clock).
        f"max by ({by}) (\n  min_over_time({PARTITIONS_RESTORING.name}{{{t.workers()}}}[{limit}]) > 0\n"
        f"  and\n  {PARTITIONS_RESTORING.name}{{{t.workers()}}} offset {limit} > 0\n)",
        for_=duration(t.restore_slow_for_s),
        severity=Severity.CRITICAL,
        summary="Worker {{ $labels.instance }} restores partition state for too long.",
        description=(
            f"Worker {{{{ $labels.instance }}}} has been restoring partition state for more than {limit} "
            f"(running restore: {running}; partitions restoring now: {partitions}). Partitions are neither "
            "processed nor exported until restored."
        ),
        thresholds=t,
    )
