"""Dashboard queries read as PromQL syntax trees (promql-parser), and the rules they keep.

Grafana's own variables are filled in before parsing (``$__rate_interval``, ``$__interval``,
``$__range``: durations, as Grafana fills them in for a short time range); the dashboard's
variables stay as written: ``"$instrument"`` is a valid label value and regular expression.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import promql_parser as promql

from streams.alerting.records import RECORD_NAMES

#: Grafana's own variables, as Grafana would fill them in for a short time range.
BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
#: Prometheus' own series of the alerts' state (``ALERTS{alertname, alertstate, ...}``).
ALERTS = "ALERTS"
#: The suffixes of the series a counter or a histogram exports: raw, they only make sense inside a rate.
COUNTER_SUFFIXES = ("_total", "_bucket", "_sum", "_count")
#: The functions that turn a counter's samples into traffic, across resets and partition moves.
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase"})


def parse(expression: str) -> Any:
    """The syntax tree of a dashboard query, Grafana's own variables filled in."""
    for builtin, value in BUILTINS.items():
        expression = expression.replace(builtin, value)
    return promql.parse(expression)


def children(node: Any) -> list[Any]:
    if isinstance(node, promql.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, promql.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql.Call):
        return list(node.args)
    if isinstance(node, promql.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql.SubqueryExpr | promql.ParenExpr | promql.UnaryExpr):
        return [node.expr]
    return []


def nodes(node: Any, parents: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """Every node of the tree with its ancestors (the nearest last), depth first."""
    yield node, parents
    for child in children(node):
        yield from nodes(child, (*parents, node))


def is_raw(node: Any) -> bool:
    """A selector of a scraped series (not a recording rule's, not Prometheus' own ``ALERTS``)."""
    return node.name not in RECORD_NAMES and node.name != ALERTS


def raw_counter_problems(expression: str) -> list[str]:
    """The counters and histograms ``expression`` reads other than through ``rate``, ``irate`` or
    ``increase`` (or a recording rule); ``[]`` when none.

    A worker exports a counter as one series per partition and period of ownership, and a moving
    partition shows on both owners for a while (docs/semantics.md, "Counters across partition
    moves"): summed raw, every deploy is a spike. Only ``rate(x[w])``, ``irate(x[w])`` and
    ``increase(x[w])`` of the selector itself read it right (a subquery of an aggregation inside
    them would stitch the series back together).
    """
    problems = []
    for node, parents in nodes(parse(expression)):
        if not isinstance(node, promql.VectorSelector) or not is_raw(node):
            continue
        if not (node.name or "").endswith(COUNTER_SUFFIXES):
            continue
        through = (len(parents) >= 2 and isinstance(parents[-1], promql.MatrixSelector)
                   and isinstance(parents[-2], promql.Call) and parents[-2].func.name in COUNTER_FUNCTIONS)
        if not through:
            problems.append(f"{node.prettify()} is read raw: use rate(), irate() or increase() over it, "
                            "or a recording rule")
    return problems
