"""Cross-border finance: US dollars signed by instrument, in the dashboard's time range, and by
lender and borrower country pair.

What was signed in the time range is ``increase()`` over it, summed over the series: the raw
counters' sum counts a partition twice while it moves between workers (docs/semantics.md,
"Counters across partition moves"), so every deploy would show as a spike.
"""

from __future__ import annotations

from typing import Any

from dashboards.common import (
    Query,
    bars,
    below,
    deployment,
    graph,
    grid,
    label_variable,
    new_dashboard,
    per_deployment,
    row,
    runbook_links,
    single,
    to_model,
    workers,
)
from streams.alerting.alert import STREAM_SILENT, VOLUME_DROP, duration
from streams.alerting.records import FINANCE_WINDOW_SUM
from streams.alerting.thresholds import Thresholds
from streams.core.families import FINANCE_USD, FINANCE_USD_WINDOW

UID = "corridor-finance"
SELECTED = 'instrument=~"$instrument"'
ALERTS = (VOLUME_DROP, STREAM_SILENT)


def build(t: Thresholds) -> dict[str, Any]:
    period = duration(t.volume_period_s)
    window = t.volume_drop_window["finance"]
    fraction = t.volume_drop_fraction["finance"]
    recorded = deployment(t, SELECTED)
    raw = workers(t, f'{SELECTED}, lender_country=~"$lender", borrower_country=~"$borrower"')
    signed = f'increase({FINANCE_USD.name}_total{{{raw}}}[$__range])'
    pairs = f'sum by ({t.by("lender_country, borrower_country")}) ({signed})'
    board = (
        new_dashboard(UID, "Cross-border finance",
                      "Financing signed across the China-Singapore corridor, in US dollars (converted at the FX "
                      "table's rate): by instrument, in the time range, and by lender and borrower country.",
                      t, alerts=ALERTS, stream="finance")
        .with_variable(label_variable("instrument", "instrument", f"{FINANCE_USD.name}_total", workers(t)))
        .with_variable(label_variable("lender", "lender_country", f"{FINANCE_USD.name}_total", workers(t, SELECTED)))
        .with_variable(label_variable("borrower", "borrower_country", f"{FINANCE_USD.name}_total",
                                      workers(t, SELECTED)))
        .with_row(row("Volume"))
        .with_panel(single("Signed, last 7d", "US dollars signed in the rolling week (event time).",
                           [Query(f'sum({FINANCE_WINDOW_SUM}{{{recorded}, window="7d"}})')], "currencyUSD"))
        .with_panel(single("Signed in the time range", "US dollars signed in the dashboard's time range (as "
                           "processed), selected instruments and countries.",
                           [Query(f"sum({signed})", instant=True)], "currencyUSD"))
        .with_panel(single(f"{window} volume against a week earlier",
                           f"The rolling {window} against the same window {period} earlier. {VOLUME_DROP} "
                           f"watches trade finance and fires below {fraction:.0%}.",
                           [Query(f'sum({FINANCE_WINDOW_SUM}{{{recorded}, window="{window}"}}) / '
                                  f'sum({FINANCE_USD_WINDOW.name}{{{workers(t, SELECTED)}, window="{window}"}} '
                                  f'offset {period})')],
                           "percentunit", thresholds_config=below(fraction),
                           runbooks=runbook_links(t, [VOLUME_DROP])))
        .with_panel(single("Deals' countries", "Lender and borrower country pairs with financing signed in the "
                           "time range, per deployment (0 while financing is reported and none was signed).",
                           [Query(f"count by ({t.by()}) ({pairs} > 0) or 0 * count by ({t.by()}) ({pairs})",
                                  per_deployment(t), instant=True)], "none"))
        .with_panel(graph("Signed by instrument, rolling 7d", "US dollars signed in the 7 days up to each moment.",
                          [Query(f'{FINANCE_WINDOW_SUM}{{{recorded}, window="7d"}}',
                                 per_deployment(t, "{{instrument}}"))],
                          "currencyUSD", runbooks=runbook_links(t, [VOLUME_DROP])))
        .with_panel(bars("Signed in the time range by instrument",
                         "US dollars signed in the dashboard's time range (as processed), per instrument.",
                         [Query(f'sum by ({t.by("instrument")}) ({signed})', per_deployment(t, "{{instrument}}"),
                                instant=True)], "currencyUSD"))
        .with_row(row("Countries"))
        .with_panel(grid("Lender and borrower countries", "US dollars signed in the dashboard's time range per "
                         "lender and borrower country pair.",
                         [Query(pairs)],
                         "currencyUSD", width=24))
    )
    return to_model(board)
