"""The HTTP ingest: replicas up, answers by code, the shares its alerts watch (with their thresholds),
answer time percentiles, and the events accepted, rejected and undelivered by family.

Every query selects the ingest's series with ``Thresholds.ingests()`` and the deployments
chosen in the dashboard's variables, and groups by the deployment labels like the alerts; the shares are the alerts' own
expressions over the same window.
"""

from __future__ import annotations

from typing import Any

from dashboards.common import (
    Query,
    above,
    below,
    deployment,
    graph,
    label_variable,
    new_dashboard,
    row,
    runbook_links,
    single,
    to_model,
)
from streams.alerting.alert import (
    INGEST_DOWN,
    INGEST_RATE_LIMITED,
    INGEST_SERVER_ERRORS,
    INGEST_SLOW,
    INGEST_UNDELIVERED,
    duration,
)
from streams.alerting.ingest import RATE_LIMITED_CODE, SERVER_ERROR_CODES, UNDELIVERED_CODE
from streams.alerting.thresholds import Thresholds
from streams.core.series import (
    INGEST_DURATION,
    INGEST_EVENTS_ACCEPTED,
    INGEST_EVENTS_REJECTED,
    INGEST_EVENTS_UNDELIVERED,
    INGEST_REQUESTS,
)

UID = "corridor-ingest"
ALERTS = (INGEST_DOWN, INGEST_SERVER_ERRORS, INGEST_UNDELIVERED, INGEST_RATE_LIMITED, INGEST_SLOW)
FAMILY = 'family=~"$family"'


def build(t: Thresholds) -> dict[str, Any]:
    deployed = t.by()
    where = deployment(t)  # the deployments chosen in new_dashboard's variables
    legend = "/".join(f"{{{{{label}}}}}" for label in t.deployment_labels)

    def selected(*matchers: str) -> str:
        """The inside of a selector of the ingest's series of the chosen deployments, with ``matchers``."""
        return t.ingests(", ".join(part for part in (where, *matchers) if part))

    requests = f"{INGEST_REQUESTS.name}_total"
    window = duration(t.ingest_window_s)

    def share(codes: str) -> str:
        return (f"sum by ({deployed}) (rate({requests}{{{selected(codes, FAMILY)}}}[{window}])) / "
                f"sum by ({deployed}) (rate({requests}{{{selected(FAMILY)}}}[{window}]))")

    def share_panel(title: str, what: str, codes: str, fraction: float, alert: str) -> Any:
        return graph(title, f"Answers that were {what}, of every answer of the events API, over {window}; "
                     f"{alert} fires above {fraction:.0%} (with {t.ingest_min_answers} such answers or more).",
                     [Query(share(codes), legend)], "percentunit", width=8, thresholds_config=above(fraction),
                     runbooks=runbook_links(t, [alert]))

    def quantile(q: float, *by: str, over: str = "$__rate_interval") -> str:
        return (f"histogram_quantile({q:g}, sum by ({t.by(*by, 'le')}) "
                f"(rate({INGEST_DURATION.name}_bucket{{{selected(FAMILY)}}}[{over}])))")

    def per_second(name: str, *by: str) -> str:
        return f"sum by ({t.by(*by)}) (rate({name}_total{{{selected(FAMILY)}}}[$__rate_interval]))"

    up = f"up{{{selected()}}}"
    board = (
        new_dashboard(UID, "Corridor HTTP ingest",
                      "Is the HTTP ingest serving producers? Replicas up, answers by status code, the shares of "
                      "server errors, undelivered and rate-limited answers against their alert thresholds, answer "
                      "time, and what became of the events of each family.",
                      t, alerts=ALERTS)
    )
    board = (
        board
        .with_variable(label_variable("family", "family", requests, selected()))
        .with_row(row("Replicas"))
        .with_panel(single("Replicas up", f"Ingest replicas Prometheus scrapes ({t.ingest_selector}), per "
                           f"deployment; {INGEST_DOWN} pages when none answers.",
                           [Query(f"sum by ({deployed}) ({up})", legend)], "none", thresholds_config=below(1),
                           runbooks=runbook_links(t, [INGEST_DOWN])))
        .with_panel(single("Requests per second", "Answers of the events API per second (5-minute rate).",
                           [Query(f"sum by ({deployed}) (rate({requests}{{{selected(FAMILY)}}}[5m]))", legend)],
                           "reqps"))
        .with_panel(single("Events accepted per second", "Events the broker confirmed (5-minute rate).",
                           [Query(f"sum by ({deployed}) (rate({INGEST_EVENTS_ACCEPTED.name}_total{{{selected(FAMILY)}}}"
                                  "[5m]))", legend)], "ops"))
        .with_panel(single("Answer time p99", f"99th percentile over {window}; {INGEST_SLOW} fires above "
                           f"{t.ingest_slow_p99_s:g} s at {t.ingest_slow_min_rate:g} requests/s or more.",
                           [Query(quantile(0.99, over=window), legend)], "s",
                           thresholds_config=above(t.ingest_slow_p99_s), runbooks=runbook_links(t, [INGEST_SLOW])))
        .with_panel(graph("Up per replica", "1 per replica scraped; a gap or a 0 is a replica down.",
                          [Query(up, f"{legend} {{{{instance}}}}")], "none", width=24, height=6,
                          runbooks=runbook_links(t, [INGEST_DOWN])))
        .with_row(row("Answers"))
        .with_panel(graph("Requests per second by code", "Answers of the events API by HTTP status code: 202 "
                          "accepted, 4xx the producer's (401/403 tokens, 404/405 paths, 413 size, 422 nothing "
                          "valid, 429 rate limit, 499 gone before the answer), 500 the ingest's, 503 the broker's.",
                          [Query(per_second(INGEST_REQUESTS.name, "code"), f"{legend} {{{{code}}}}")], "reqps",
                          width=24, stacked=True,
                          runbooks=runbook_links(t, [INGEST_SERVER_ERRORS, INGEST_UNDELIVERED, INGEST_RATE_LIMITED])))
        .with_panel(share_panel("Server errors (5xx but 503)", "server errors other than 503 (the ingest's own "
                                "faults)", SERVER_ERROR_CODES, t.ingest_server_errors_fraction, INGEST_SERVER_ERRORS))
        .with_panel(share_panel("Undelivered (503)", "503 (the broker did not confirm)", UNDELIVERED_CODE,
                                t.ingest_undelivered_fraction, INGEST_UNDELIVERED))
        .with_panel(share_panel("Rate-limited (429)", "429 (a token over its rate limit)", RATE_LIMITED_CODE,
                                t.ingest_rate_limited_fraction, INGEST_RATE_LIMITED))
        .with_row(row("Latency"))
        .with_panel(graph("Answer time percentiles", "From a request's arrival to the end of its answer (p50, "
                          f"p90, p99); {INGEST_SLOW} watches the p99 over {window}.",
                          [Query(quantile(q), f"{legend} p{round(q * 100)}") for q in (0.5, 0.9, 0.99)], "s",
                          thresholds_config=above(t.ingest_slow_p99_s), runbooks=runbook_links(t, [INGEST_SLOW])))
        .with_panel(graph("Answer time p99 by family", "Most of an answer's time is the broker confirming the "
                          "events; one family slow points at its topic's partitions.",
                          [Query(quantile(0.99, "family"), f"{legend} {{{{family}}}}")], "s",
                          thresholds_config=above(t.ingest_slow_p99_s), runbooks=runbook_links(t, [INGEST_SLOW])))
        .with_row(row("Events"))
        .with_panel(graph("Events per second by family", "Events accepted (the broker confirmed them), rejected "
                          "(invalid, never sent) and undelivered (valid, answered 503), per family.",
                          [Query(per_second(series.name, "family"), f"{legend} {{{{family}}}} {outcome}")
                           for series, outcome in ((INGEST_EVENTS_ACCEPTED, "accepted"),
                                                   (INGEST_EVENTS_REJECTED, "rejected"),
                                                   (INGEST_EVENTS_UNDELIVERED, "undelivered"))],
                          "ops", runbooks=runbook_links(t, [INGEST_UNDELIVERED])))
        .with_panel(graph("Rejected by reason", "Invalid events per second by family and the reason a worker "
                          "would dead-letter them for: a producer sending bad events.",
                          [Query(per_second(INGEST_EVENTS_REJECTED.name, "family", "reason"),
                                 f"{legend} {{{{family}}}} {{{{reason}}}}")], "ops", stacked=True))
    )
    return to_model(board)
