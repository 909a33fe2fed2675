"""Dashboard queries read as PromQL syntax trees (promql-parser), and the rules they keep (the
rules' own are in tests/promql.py).

Grafana's own variables are filled in before parsing (``$__rate_interval``, ``$__interval``,
``$__range``: durations, as Grafana fills them in for a short time range); the dashboard's
variables stay as written: ``"$cluster"`` is a valid label value and regular expression, so a
rule can check that a matcher is the variable's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import promql_parser as promql

from streams.alerting.records import RECORD_NAMES
from streams.alerting.thresholds import Thresholds
from tests.promql import PROMETHEUS_SERIES, matchers_of

#: Grafana's own variables, as Grafana would fill them in for a short time range.
BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
#: The suffixes of the series a counter or a histogram exports: raw, they only make sense inside a rate.
COUNTER_SUFFIXES = ("_total", "_bucket", "_sum", "_count")
#: The functions that turn a counter's samples into traffic, across resets and partition moves.
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase"})
#: The bucket label: ``sum by (le)`` is one distribution of the whole selection (histogram_quantile, heatmaps).
BUCKET = "le"
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


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


def matchers(node: Any) -> set[tuple[str, str, str]]:
    """A selector's matchers as (label, operator, value)."""
    return {(m.name, str(m.op), m.value) for m in node.matchers.matchers}


def variable_matcher(label: str) -> tuple[str, str, str]:
    """The matcher of ``label`` that follows its dashboard variable: ``label=~"$label"``."""
    return (label, str(promql.MatchOp.Re), f"${label}")


def is_raw(node: Any) -> bool:
    """A selector of a scraped series (not a recording rule's, not Prometheus' own ``ALERTS``)."""
    return node.name not in RECORD_NAMES and node.name not in PROMETHEUS_SERIES


def deployment_problems(expression: str, t: Thresholds, chosen: Sequence[str] | None = None) -> list[str]:
    """What in ``expression`` mixes up or loses the deployments; ``[]`` when nothing does.

    The rule, for the deployment labels of ``t`` (``cluster``, ``namespace``):

    - every selector matches each label with its dashboard variable (``cluster=~"$cluster"``);
      ``chosen`` narrows the labels required (a deployment variable's own values query selects
      only the labels before it);
    - every selector of a scraped series also carries the matchers of the worker selector or of
      the ingest selector (a recorded series and ``ALERTS`` need not);
    - every ``by (...)`` either keeps all of them, so that series of two deployments stay apart,
      or groups by nothing but the bucket label ``le``: its result is one number (or one
      distribution) for the deployments the variables choose, which is what a total means;
    - no ``without (...)`` drops one, every ``on (...)`` matches on all of them and no
      ``ignoring (...)`` ignores one: a vector match never pairs two deployments' series.
    """
    labels = list(t.deployment_labels)
    required = labels if chosen is None else list(chosen)
    sources = [matchers_of(t.worker_selector), matchers_of(t.ingest_selector)]
    problems = []
    for node, _ in nodes(parse(expression)):
        if isinstance(node, promql.VectorSelector):
            found = matchers(node)
            missing = [label for label in required if variable_matcher(label) not in found]
            if missing:
                wanted = ", ".join(f'{label}=~"${label}"' for label in missing)
                problems.append(f"{node.prettify()} does not select the deployment ({wanted})")
            if is_raw(node) and not any(source <= found for source in sources):
                problems.append(f"{node.prettify()} selects neither the workers ({t.worker_selector}) nor the "
                                f"ingest ({t.ingest_selector})")
        elif isinstance(node, promql.AggregateExpr) and node.modifier is not None:
            grouped = set(node.modifier.labels)
            if node.modifier.type == promql.AggModifierType.By:
                if grouped - {BUCKET} and not set(labels) <= grouped:
                    problems.append(f"{node.op} by ({', '.join(node.modifier.labels)}) keeps series apart but "
                                    f"mixes deployments: group by {', '.join(labels)} too")
            elif grouped & set(labels):
                problems.append(f"{node.op} without ({', '.join(node.modifier.labels)}) mixes deployments")
        elif isinstance(node, promql.BinaryExpr) and node.modifier is not None and node.modifier.matching:
            matching = node.modifier.matching
            named = set(matching.labels)
            if matching.type == promql.LabelModifierType.Include and not set(labels) <= named:
                problems.append(f"on ({', '.join(matching.labels)}) pairs series of different deployments: "
                                f"match on {', '.join(labels)} too")
            elif matching.type == promql.LabelModifierType.Exclude and named & set(labels):
                problems.append(f"ignoring ({', '.join(matching.labels)}) pairs series of different deployments")
    return problems


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


def label_values(query: str) -> tuple[str, str]:
    """The selector and the label of a variable's ``label_values(selector, label)`` query."""
    match = LABEL_VALUES.match(query)
    assert match, f"not a label_values() query: {query!r}"
    return match["selector"], match["label"]
