"""Data channel: throughput per link and direction, latency percentiles and loss."""

from __future__ import annotations

from typing import Any

from dashboards.common import (
    Query,
    above,
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
from streams.alerting.alert import (
    DATACHANNEL_LATENCY_HIGH,
    DATACHANNEL_PACKET_LOSS_HIGH,
    DATACHANNEL_THROUGHPUT_DROP,
    STREAM_SILENT,
    VOLUME_DROP,
    duration,
)
from streams.alerting.datachannel import latency_quantile, packet_loss_ratio
from streams.alerting.records import BYTES_RATE5M, BYTES_WINDOW_SUM, LATENCY_BUCKET_RATE5M, PACKET_LOSS_RATIO_RATE5M
from streams.alerting.thresholds import Thresholds
from streams.core.families import DATACHANNEL_BYTES, DATACHANNEL_BYTES_WINDOW

UID = "corridor-datachannel"
SELECTED = 'link=~"$link", direction=~"$direction"'
ALERTS = (DATACHANNEL_THROUGHPUT_DROP, VOLUME_DROP, STREAM_SILENT, DATACHANNEL_LATENCY_HIGH,
          DATACHANNEL_PACKET_LOSS_HIGH)


def build(t: Thresholds) -> dict[str, Any]:
    period = duration(t.volume_period_s)
    quality = duration(t.datachannel_quality_window_s)
    runbooks = runbook_links(t, [DATACHANNEL_THROUGHPUT_DROP])
    recorded, raw, link = deployment(t, SELECTED), workers(t, SELECTED), deployment(t, 'link=~"$link"')
    board = (
        new_dashboard(UID, "China-Singapore data channel",
                      "The international data channel between Chongqing and Singapore: throughput per link and "
                      "direction, latency and loss.",
                      t, alerts=ALERTS, stream="datachannel")
        .with_variable(label_variable("link", "link", f"{DATACHANNEL_BYTES.name}_total", workers(t)))
        .with_variable(label_variable("direction", "direction", f"{DATACHANNEL_BYTES.name}_total",
                                      workers(t, 'link=~"$link"')))
        .with_row(row("Throughput"))
        .with_panel(single("Throughput now", "Bytes per second over the last 5 minutes, selected links.",
                           [Query(f'sum({BYTES_RATE5M}{{{recorded}}}) * 8')], "bps"))
        .with_panel(single("Throughput against a week earlier",
                           f"Now over {period} earlier; {DATACHANNEL_THROUGHPUT_DROP} fires per link and "
                           f"direction below {t.throughput_drop_fraction:.0%}.",
                           [Query(f'sum({BYTES_RATE5M}{{{recorded}}}) / '
                                  f'sum(rate({DATACHANNEL_BYTES.name}_total{{{raw}}}[5m] offset {period}))')],
                           "percentunit", thresholds_config=below(t.throughput_drop_fraction), runbooks=runbooks))
        .with_panel(single("Carried, last 24h", "Bytes carried in the rolling 24h (event time).",
                           [Query(f'sum({BYTES_WINDOW_SUM}'
                                  f'{{{recorded}, window="24h"}})')], "bytes"))
        .with_panel(single("Latency p99", "99th percentile of the links' latency over 5 minutes.",
                           [Query('histogram_quantile(0.99, sum by (le) '
                                  f'({LATENCY_BUCKET_RATE5M}{{{link}}}))')],
                           "s"))
        .with_panel(graph("Throughput per link and direction", "Bits per second (5-minute rate).",
                          [Query(f'{BYTES_RATE5M}{{{recorded}}} * 8', per_deployment(t, "{{link}} {{direction}}"))],
                          "bps",
                          runbooks=runbooks))
        .with_panel(graph("Rolling 1h volume: now against a week earlier",
                          f"Bytes in the hour up to each moment, and {period} earlier.",
                          [Query(f'sum by ({t.by("link, direction")}) ({BYTES_WINDOW_SUM}'
                                 f'{{{recorded}, window="1h"}})', per_deployment(t, "{{link}} {{direction}}")),
                           Query(f'sum by ({t.by("link, direction")}) ({DATACHANNEL_BYTES_WINDOW.name}'
                                 f'{{{raw}, window="1h"}} offset {period})',
                                 per_deployment(t, "{{link}} {{direction}} a week earlier"))], "bytes",
                          runbooks=runbooks))
        .with_row(row("Quality"))
        .with_panel(graph("Latency percentiles per link", "From the latency histogram (5-minute rate).",
                          [Query(f'histogram_quantile({q}, sum by ({t.by("link, le")}) '
                                 f'({LATENCY_BUCKET_RATE5M}{{{link}}}))',
                                 per_deployment(t, f"{{{{link}}}} p{round(q * 100)}")) for q in (0.5, 0.9, 0.99)],
                          "s"))
        .with_panel(graph("Packet loss per link and direction",
                          "Time-weighted packet-loss ratio the probes report (5 minutes).",
                          [Query(f'{PACKET_LOSS_RATIO_RATE5M}{{{recorded}}}',
                                 per_deployment(t, "{{link}} {{direction}}"))], "percentunit"))
        .with_panel(heatmap("Latency distribution", "Samples by latency, from the latency histogram (5-minute "
                            "rate): each cell the samples per second whose latency fell in that bucket.",
                            Query(f'sum by (le) ({LATENCY_BUCKET_RATE5M}{{{link}}})'), "short", width=24))
        .with_panel(graph("Latency against its alert",
                          f"p{t.datachannel_latency_quantile * 100:g} over {quality} per link, as "
                          f"{DATACHANNEL_LATENCY_HIGH} reads it; it fires above "
                          f"{t.datachannel_latency_high_s * 1000:g} ms (the channel: 60-70 ms, the path before it: "
                          "up to 230 ms).",
                          [Query(latency_quantile(t, deployment(t, 'link=~"$link"')), per_deployment(t, "{{link}}"))],
                          "s", thresholds_config=above(t.datachannel_latency_high_s),
                          runbooks=runbook_links(t, [DATACHANNEL_LATENCY_HIGH])))
        .with_panel(graph("Packet loss against its alert",
                          f"Time-weighted packet-loss ratio over {quality} per link and direction, as "
                          f"{DATACHANNEL_PACKET_LOSS_HIGH} reads it; it fires above "
                          f"{t.datachannel_loss_high_ratio:.1%}.",
                          [Query(packet_loss_ratio(t, deployment(t, SELECTED)),
                                 per_deployment(t, "{{link}} {{direction}}"))], "percentunit",
                          thresholds_config=above(t.datachannel_loss_high_ratio),
                          runbooks=runbook_links(t, [DATACHANNEL_PACKET_LOSS_HIGH])))
    )
    return to_model(board)
