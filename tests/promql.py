"""What a PromQL expression does with the labels that tell deployments apart, read from its
syntax tree (promql-parser, the Rust parser's Python binding): every selector of a raw
series carries a deployment's selector, every aggregation keeps the deployment labels and
every vector match matches on them."""

from __future__ import annotations

from collections.abc import Iterable

import promql_parser as promql

#: Series Prometheus makes itself; rules read them with the alert's own labels.
PROMETHEUS_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE"})


def matchers_of(selector: str) -> set[tuple[str, str, str]]:
    """The label matchers inside ``selector`` (``job="x", a=~"b"``) as (name, operator, value)."""
    parsed = promql.parse(f"selected{{{selector}}}")
    assert isinstance(parsed, promql.VectorSelector)
    return {(matcher.name, str(matcher.op), matcher.value) for matcher in parsed.matchers.matchers}


def deployment_problems(expr: str, labels: Iterable[str], selectors: Iterable[str]) -> list[str]:
    """What ``expr`` does that merges deployments: a raw series selected without one of
    ``selectors``, an aggregation that drops one of ``labels``, a vector match not on them.

    A recorded series (its name holds a colon) carries the deployment labels of the rule that
    recorded it, so it needs no selector; ``absent()`` cannot carry them and is allowed (the
    rule that uses it also needs a per-deployment form, which the promtool tests show).
    """
    labels = tuple(labels)
    wanted = [matchers_of(selector) for selector in selectors]
    problems: list[str] = []

    def visit(node: promql.Expr) -> None:
        if isinstance(node, promql.VectorSelector):
            name = node.name or ""
            if ":" not in name and name not in PROMETHEUS_SERIES:
                present = {(matcher.name, str(matcher.op), matcher.value) for matcher in node.matchers.matchers}
                if not any(selector <= present for selector in wanted):
                    problems.append(f"{name}: selected without a deployment's selector")
        elif isinstance(node, promql.AggregateExpr):
            modifier = node.modifier
            if modifier is None:
                problems.append(f"{node.op}(...): aggregates the deployments together (no by clause)")
            elif modifier.type == promql.AggModifierType.By:
                missing = [label for label in labels if label not in modifier.labels]
                if missing:
                    problems.append(f"{node.op} by ({', '.join(modifier.labels)}): drops {', '.join(missing)}")
            elif dropped := [label for label in labels if label in modifier.labels]:
                problems.append(f"{node.op} without ({', '.join(modifier.labels)}): drops {', '.join(dropped)}")
        elif isinstance(node, promql.BinaryExpr) and node.modifier is not None and node.modifier.matching:
            matching = node.modifier.matching
            if matching.type == promql.LabelModifierType.Include:
                missing = [label for label in labels if label not in matching.labels]
                if missing:
                    problems.append(f"on ({', '.join(matching.labels)}): does not match on {', '.join(missing)}")
            elif ignored := [label for label in labels if label in matching.labels]:
                problems.append(f"ignoring ({', '.join(matching.labels)}): ignores {', '.join(ignored)}")

    promql.walk(promql.parse(expr), visit, None)
    return problems
