"""Pipeline health: accepted, rejected, duplicate and late rates, rejects by reason, event
delay, freshness, consumer lag, restores and rebalances, and the workers that are up."""

from __future__ import annotations

from typing import Any

from dashboards.common import (
    Query,
    above,
    bars,
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
from schemas.families import DEADLETTER_TOPIC
from streams.alerting.alert import (
    CHECKPOINT_AGE_HIGH,
    CHECKPOINT_FAILING,
    CONSUMER_LAG_HIGH,
    DEAD_LETTERS_RISING,
    DEAD_LETTERS_UNSENT,
    PIPELINE_STALLED,
    RESTORE_SLOW,
    STATE_GAP,
    STREAM_SILENT,
    WORKER_DOWN,
    duration,
)
from streams.alerting.records import (
    ACCEPTED_RATE5M,
    CHECKPOINT_AGE_MAX,
    DUPLICATE_RATE5M,
    EVENT_DELAY_BUCKET_RATE5M,
    KEY_LAST_EVENT_MAX,
    LATE_RATE5M,
    PARTITION_LAG_MAX,
    RECEIVED_RATE5M,
    REJECTED_RATE5M,
    RESTORING_SUM,
    STATE_GAPS_INCREASE1H,
)
from streams.alerting.thresholds import Thresholds
from streams.core.series import (
    BUILD,
    CHECKPOINT_FAILURES,
    COMMIT_LATENCY,
    CONSUMER_LAG_SECONDS,
    EVENTS_RECEIVED,
    EVENTS_REJECTED,
    REBALANCES,
    RESTORE_SECONDS,
    SEND_ERRORS,
)

UID = "corridor-pipeline"
STREAM = 'stream=~"$stream"'
ALERTS = (WORKER_DOWN, PIPELINE_STALLED, DEAD_LETTERS_RISING, STREAM_SILENT, STATE_GAP, RESTORE_SLOW,
          CONSUMER_LAG_HIGH, CHECKPOINT_FAILING, CHECKPOINT_AGE_HIGH, DEAD_LETTERS_UNSENT)
#: The source topics of the selected streams (a family's topic is corridor.<stream>.v1).
STREAM_TOPICS = r'topic=~"corridor\\.($stream)\\.v1"'


def build(t: Thresholds) -> dict[str, Any]:
    up = f'up{{{workers(t)}}}'
    instance = workers(t, 'instance=~"$instance"')
    stream = deployment(t, STREAM)
    unsent = workers(t, f'topic="{DEADLETTER_TOPIC}", instance=~"$instance"')
    silent = ", ".join(f"{stream} {duration(seconds)}" for stream, seconds in t.stream_silent_s.items())
    board = (
        new_dashboard(UID, "Corridor pipeline health",
                      "Is the pipeline healthy? Events in and out of validation, dead letters, how far behind event "
                      "time and the topics the workers are, state restores, and the workers themselves.",
                      t, alerts=ALERTS)
        .with_variable(label_variable("stream", "stream", f"{EVENTS_RECEIVED.name}_total", workers(t)))
        .with_variable(label_variable("instance", "instance", "up", workers(t)))
        .with_row(row("Workers"))
        .with_panel(single("Workers up", f"Workers Prometheus scrapes ({t.worker_selector}); "
                           f"{WORKER_DOWN} fires when one is down (or none is scraped).",
                           [Query(f'sum({up})')], "none", thresholds_config=below(1),
                           runbooks=runbook_links(t, [WORKER_DOWN])))
        .with_panel(single("Partitions restoring", "Assigned partitions whose state is not restored yet; "
                           f"{RESTORE_SLOW} fires when a restore runs over {duration(t.restore_slow_s)}.",
                           [Query(f'sum({RESTORING_SUM}{{{stream}}})')], "none",
                           thresholds_config=above(1), runbooks=runbook_links(t, [RESTORE_SLOW])))
        .with_panel(single("State gaps, last hour", "Committed offsets no checkpoint holds and the topic no longer "
                           f"has: records missing from the totals. {STATE_GAP} fires on any.",
                           [Query(f'sum({STATE_GAPS_INCREASE1H}{{{stream}}})')], "none",
                           thresholds_config=above(1), runbooks=runbook_links(t, [STATE_GAP])))
        .with_panel(single("Build", "Version each worker runs.",
                           [Query(f'count by ({t.by("version")}) ({BUILD.name}_info{{{instance}}})',
                                  per_deployment(t, "{{version}}"))],
                           "none"))
        .with_panel(graph("Workers up", "1 per worker scraped; a gap is a worker down.",
                          [Query(f'up{{{instance}}}', per_deployment(t, "{{instance}}"))], "none",
                          runbooks=runbook_links(t, [WORKER_DOWN])))
        .with_panel(graph("Rebalances per hour", "Consumer group rebalances each worker took part in.",
                          [Query(f'sum by ({t.by("instance")}) (increase({REBALANCES.name}_total{{{instance}}}[1h]))',
                                 per_deployment(t, "{{instance}}"))], "none", width=6))
        .with_panel(graph("Restore time", "How long each worker's running state restore has taken (0: none runs).",
                          [Query(f'max by ({t.by("instance")}) ({RESTORE_SECONDS.name}{{{instance}}})',
                                 per_deployment(t, "{{instance}}"))],
                          "s", width=6, thresholds_config=above(t.restore_slow_s),
                          runbooks=runbook_links(t, [RESTORE_SLOW])))
        .with_row(row("Events"))
        .with_panel(graph("Events per second by outcome", "Received, accepted, duplicate and late events "
                          "(5-minute rates), per stream.",
                          [Query(f'{RECEIVED_RATE5M}{{{stream}}}', per_deployment(t, "{{stream}} received")),
                           Query(f'{ACCEPTED_RATE5M}{{{stream}}}', per_deployment(t, "{{stream}} accepted")),
                           Query(f'{DUPLICATE_RATE5M}{{{stream}}}', per_deployment(t, "{{stream}} duplicate")),
                           Query(f'{LATE_RATE5M}{{{stream}}}', per_deployment(t, "{{stream}} late"))],
                          "ops"))
        .with_panel(graph("Rejected by reason", "Events sent to the dead-letter topic per second, by reason.",
                          [Query(f'{REJECTED_RATE5M}{{{stream}}}',
                                 per_deployment(t, "{{stream}} {{reason}}"))], "ops", stacked=True,
                          runbooks=runbook_links(t, [DEAD_LETTERS_RISING])))
        .with_panel(graph("Share rejected", f"Rejected over received in {duration(t.dead_letters_window_s)}; "
                          f"{DEAD_LETTERS_RISING} fires above {t.dead_letters_fraction:.0%} "
                          f"(with {t.dead_letters_min_events} rejections or more).",
                          [Query(f'sum by ({t.by("stream")}) (increase({EVENTS_REJECTED.name}_total'
                                 f'{{{workers(t, STREAM)}}}[{duration(t.dead_letters_window_s)}])) / sum by '
                                 f'({t.by("stream")}) (increase({EVENTS_RECEIVED.name}_total{{{workers(t, STREAM)}}}'
                                 f'[{duration(t.dead_letters_window_s)}]))', per_deployment(t, "{{stream}}"))],
                          "percentunit", thresholds_config=above(t.dead_letters_fraction),
                          runbooks=runbook_links(t, [DEAD_LETTERS_RISING])))
        .with_panel(graph("Event delay", "Processing time minus event time of accepted events (p50, p99).",
                          [Query(f'histogram_quantile({q}, sum by ({t.by("stream, le")}) '
                                 f'({EVENT_DELAY_BUCKET_RATE5M}{{{stream}}}))',
                                 per_deployment(t, f"{{{{stream}}}} p{round(q * 100)}")) for q in (0.5, 0.99)], "s"))
        .with_panel(heatmap("Event delay distribution", "Accepted events by processing time minus event time, "
                            "from the event delay histogram (5-minute rate): each cell the events per second "
                            "whose delay fell in that bucket.",
                            Query(f'sum by (le) ({EVENT_DELAY_BUCKET_RATE5M}{{{stream}}})'), "short", width=24))
        .with_panel(bars("Since the newest event", f"Event time of each stream's newest event, now. Silent after: "
                         f"{silent} ({STREAM_SILENT}).",
                         [Query(f'time() - max by ({t.by("stream")}) ({KEY_LAST_EVENT_MAX}'
                                f'{{{stream}}})', per_deployment(t, "{{stream}}"))], "s",
                         per_series={stream: above(seconds) for stream, seconds in t.stream_silent_s.items()},
                         runbooks=runbook_links(t, [STREAM_SILENT])))
        .with_row(row("Kafka"))
        .with_panel(graph("Consumer lag per partition", "Records not yet applied, per stream and partition; "
                          f"{PIPELINE_STALLED} fires when it does not fall while nothing is processed.",
                          [Query(f'{PARTITION_LAG_MAX}{{{stream}}}',
                                 per_deployment(t, "{{stream}}/{{partition}}"))], "none",
                          runbooks=runbook_links(t, [PIPELINE_STALLED])))
        .with_panel(graph("Checkpoint age", "How long the oldest applied record has waited for a confirmed "
                          f"checkpoint, per stream; {CHECKPOINT_AGE_HIGH} fires above "
                          f"{duration(t.checkpoint_age_high_s)}.",
                          [Query(f'{CHECKPOINT_AGE_MAX}{{{stream}}}', per_deployment(t, "{{stream}}"))], "s",
                          thresholds_config=above(t.checkpoint_age_high_s),
                          runbooks=runbook_links(t, [CHECKPOINT_AGE_HIGH])))
        .with_panel(graph("Commit latency p99", "Time to commit consumer offsets, per worker.",
                          [Query(f'histogram_quantile(0.99, sum by ({t.by("instance, le")}) '
                                 f'(rate({COMMIT_LATENCY.name}_bucket{{{instance}}}[$__rate_interval])))',
                                 per_deployment(t, "{{instance}}"))], "s", width=6))
        .with_panel(graph("Send errors per hour", "Records the worker's producer failed to send (dead letters, "
                          "changelog).",
                          [Query(f'sum by ({t.by("instance")}) (increase({SEND_ERRORS.name}_total{{{instance}}}[1h]))',
                                 per_deployment(t, "{{instance}}"))], "none", width=6))
        .with_panel(graph("Worker memory", "Resident memory per worker.",
                          [Query(f'process_resident_memory_bytes{{{instance}}}', per_deployment(t, "{{instance}}"))],
                          "bytes", width=6))
        .with_panel(graph("Worker CPU", "CPU seconds per second per worker.",
                          [Query(f'rate(process_cpu_seconds_total{{{instance}}}[$__rate_interval])',
                                 per_deployment(t, "{{instance}}"))],
                          "percentunit", width=6))
        .with_row(row("Falling behind and durability"))
        .with_panel(graph("Consumer lag in seconds", "How long the oldest record not yet applied has waited (at most), "
                          f"per topic and partition; {CONSUMER_LAG_HIGH} fires above "
                          f"{duration(t.consumer_lag_high_s)} while it rises and the partition is processed "
                          f"({PIPELINE_STALLED} when nothing is).",
                          [Query(f'max by ({t.by("topic, partition")}) ({CONSUMER_LAG_SECONDS.name}'
                                 f'{{{workers(t, STREAM_TOPICS)}}})', per_deployment(t, "{{topic}}/{{partition}}"))],
                          "s",
                          thresholds_config=above(t.consumer_lag_high_s),
                          runbooks=runbook_links(t, [CONSUMER_LAG_HIGH, PIPELINE_STALLED])))
        .with_panel(graph("Checkpoint failures", f"Checkpoint writes the changelog refused in "
                          f"{duration(t.checkpoint_failures_window_s)}, per stream (each retried); "
                          f"{CHECKPOINT_FAILING} fires from {t.checkpoint_failures_min}.",
                          [Query(f'sum by ({t.by("stream")}) (increase({CHECKPOINT_FAILURES.name}_total'
                                 f'{{{workers(t, STREAM)}}}[{duration(t.checkpoint_failures_window_s)}]))',
                                 per_deployment(t, "{{stream}}"))], "none", width=6,
                          thresholds_config=above(t.checkpoint_failures_min),
                          runbooks=runbook_links(t, [CHECKPOINT_FAILING])))
        .with_panel(graph("Dead letters unsent", f"Rejected records the worker failed to send to {DEADLETTER_TOPIC} "
                          f"in {duration(t.dead_letters_unsent_window_s)}, per worker: each is lost, and "
                          f"{DEAD_LETTERS_UNSENT} fires on the first (the line).",
                          [Query(f'sum by ({t.by("instance")}) (increase({SEND_ERRORS.name}_total{{{unsent}}}'
                                 f'[{duration(t.dead_letters_unsent_window_s)}]))', per_deployment(t, "{{instance}}"))],
                          "none", width=6,
                          thresholds_config=above(1), runbooks=runbook_links(t, [DEAD_LETTERS_UNSENT])))
    )
    return to_model(board)
