"""Alerts of the health area: a worker falling behind (consumer lag in seconds), checkpoints that
fail or leave state unpersisted, and dead letters the worker could not send.

Every series read here is the workers' own (per process: ``job``, ``instance``), selected with
the worker selector and aggregated by the deployment labels, so one deployment's trouble fires for
that deployment only. Per-process counters are read with ``increase()`` summed over the processes:
a restart reads as the reset it is.
"""

from __future__ import annotations

from schemas.families import DEADLETTER_TOPIC
from streams.alerting.alert import (
    CHECKPOINT_AGE_HIGH,
    CHECKPOINT_FAILING,
    CONSUMER_LAG_HIGH,
    DEAD_LETTERS_UNSENT,
    Rule,
    Severity,
    alert,
    counter_rose,
    duration,
)
from streams.alerting.thresholds import Thresholds
from streams.core.series import (
    CHECKPOINT_AGE,
    CHECKPOINT_FAILURES,
    CONSUMER_LAG_SECONDS,
    EVENTS_RECEIVED,
    SEND_ERRORS,
)

#: A family's topic is ``corridor.<stream>.v1`` (schemas/families.py): the lag is per topic, the
#: pipeline counters per stream.
_STREAM_OF_TOPIC = r'"stream", "$1", "topic", "corridor\\.(.+)\\.v1"'
_TOPIC_OF_STREAM = '"topic", "corridor.$1.v1", "stream", "(.+)"'


def rules(thresholds: Thresholds) -> list[Rule]:
    return [
        consumer_lag_high(thresholds),
        checkpoint_failing(thresholds),
        checkpoint_age_high(thresholds),
        dead_letters_unsent(thresholds),
    ]


def consumer_lag_high(t: Thresholds) -> Rule:
    """Processing, but falling behind: the oldest unapplied record is old, its age rose over the window,
    and records of the partition were processed in it. A silent producer leaves no lag (age 0);
    a partition with nothing processed is stalled (``PIPELINE_STALLED``)."""
    window = duration(t.consumer_lag_window_s)
    per_partition = t.by("topic", "partition")
    age = f"{CONSUMER_LAG_SECONDS.name}{{{t.workers()}}}"
    received = f"{EVENTS_RECEIVED.name}_total{{{t.workers()}}}"
    processed = f"sum by ({t.by('stream', 'partition')}) (increase({received}[{window}]))"
    return alert(
        CONSUMER_LAG_HIGH,
        f"label_replace(\n  max by ({per_partition}) ({age}) > {t.consumer_lag_high_s},\n  {_STREAM_OF_TOPIC}\n)\n"
        f"and on ({per_partition})\nmax by ({per_partition}) (delta({age}[{window}])) > 0\n"
        f"and on ({per_partition})\nlabel_replace(\n  {processed} > 0,\n  {_TOPIC_OF_STREAM}\n)",
        for_=duration(t.consumer_lag_for_s),
        severity=Severity.WARNING,
        summary="Partition {{ $labels.partition }} of {{ $labels.stream }} falls behind.",
        description=(
            "The oldest record of {{ $labels.topic }} partition {{ $labels.partition }} not yet applied has waited "
            "up to {{ $value | humanizeDuration }} (alerts above "
            f"{duration(t.consumer_lag_high_s)}), and that wait grew over the last {window} while the worker went "
            "on processing the partition: records arrive faster than it applies them. Dashboards and alerts of the "
            "stream are that much behind."
        ),
        thresholds=t,
    )


def checkpoint_failing(t: Thresholds) -> Rule:
    window = duration(t.checkpoint_failures_window_s)
    return alert(
        CHECKPOINT_FAILING,
        f"sum by ({t.by('stream')}) (increase({CHECKPOINT_FAILURES.name}_total{{{t.workers()}}}[{window}]))\n"
        f">= {t.checkpoint_failures_min}",
        for_=duration(t.checkpoint_failures_for_s),
        severity=Severity.WARNING,
        summary="The changelog refuses {{ $labels.stream }} checkpoints.",
        description=(
            "{{ $value | humanize }} checkpoint writes of {{ $labels.stream }} were refused by the changelog in the "
            f"last {window} (alerts from {t.checkpoint_failures_min}). Each is retried at the next interval and "
            "nothing is committed past an unconfirmed checkpoint, so nothing is lost yet; while they fail, the "
            "state is not persisted and the exported totals stand still."
        ),
        thresholds=t,
    )


def checkpoint_age_high(t: Thresholds) -> Rule:
    return alert(
        CHECKPOINT_AGE_HIGH,
        f"max by ({t.by('stream', 'partition')}) ({CHECKPOINT_AGE.name}{{{t.workers()}}})\n"
        f"> {t.checkpoint_age_high_s}",
        for_=duration(t.checkpoint_age_for_s),
        severity=Severity.CRITICAL,
        summary="Partition {{ $labels.partition }} of {{ $labels.stream }} is not checkpointed.",
        description=(
            "Records applied to partition {{ $labels.partition }} of {{ $labels.stream }} have waited "
            "{{ $value | humanizeDuration }} for a confirmed checkpoint (alerts above "
            f"{duration(t.checkpoint_age_high_s)}): its state is not persisted, its offsets are not committed and "
            "its exported totals stand still at the last checkpoint. A crash now replays all of it."
        ),
        thresholds=t,
    )


def dead_letters_unsent(t: Thresholds) -> Rule:
    window = duration(t.dead_letters_unsent_window_s)
    dead_letters = f'topic="{DEADLETTER_TOPIC}"'
    errors = f"{SEND_ERRORS.name}_total{{{t.workers(dead_letters)}}}"
    per_worker = t.by("instance")
    return alert(
        DEAD_LETTERS_UNSENT,
        counter_rose(t, errors, per_worker, t.dead_letters_unsent_window_s),
        for_=duration(t.dead_letters_unsent_for_s),
        severity=Severity.CRITICAL,
        summary="Worker {{ $labels.instance }} failed to send dead letters: rejected records are lost.",
        description=(
            "{{ $value | humanize }} rejected records could not be sent to "
            f"{DEADLETTER_TOPIC} by worker {{{{ $labels.instance }}}} in the last {window}. Their offsets are "
            "committed all the same: they are in no total and in no topic. The worker log names each "
            "(\"rejected record\": topic, partition, offset, reason); the source topic still holds them."
        ),
        thresholds=t,
    )
