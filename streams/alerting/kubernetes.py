"""The Prometheus rule files as one PrometheusRule for the Prometheus Operator.

Kubernetes deployments (``deploy/k8s/``) load the recording rules and the alerts through a
``monitoring.coreos.com/v1`` PrometheusRule whose ``spec.groups`` are the groups of every
rule file, in file order: ``deploy/prometheus/rules/*.yml`` (recording rules, written by
hand) then ``deploy/prometheus/alerts/*.yml`` (rendered by ``corridor alerts render``). Its
rules are therefore exactly the ones Prometheus loads from the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from streams.alerting.rules import dump

#: The rule files, relative to the repository root: recording rules first, then the alerts.
RULE_DIRECTORIES = (Path("deploy/prometheus/rules"), Path("deploy/prometheus/alerts"))

NAME = "corridor-monitor"

HEADER = (
    "# Rendered by `corridor alerts render` from deploy/prometheus/rules/*.yml and deploy/prometheus/alerts/*.yml.\n"
    "# Do not edit by hand: change the rule files (or streams/alerting/) and render again (a test checks they agree).\n"
)


def rule_groups(directories: Iterable[Path] = RULE_DIRECTORIES) -> list[dict[str, Any]]:
    """The groups of every ``*.yml`` rule file, directory by directory, files in name order."""
    groups: list[dict[str, Any]] = []
    for directory in directories:
        for path in sorted(directory.glob("*.yml")):
            groups.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["groups"])
    names = [group["name"] for group in groups]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"rule group names must be unique across the rule files: {', '.join(repeated)}")
    return groups


def prometheus_rule(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """A PrometheusRule holding ``groups``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": NAME,
            "labels": {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "alerting"},
        },
        "spec": {"groups": groups},
    }


def render(directories: Iterable[Path] = RULE_DIRECTORIES) -> str:
    """The text of the PrometheusRule built from the rule files in ``directories``."""
    return HEADER + dump(prometheus_rule(rule_groups(directories)))


def write(path: Path, directories: Iterable[Path] = RULE_DIRECTORIES) -> Path:
    """Write the PrometheusRule to ``path``; return it."""
    path.write_text(render(directories), encoding="utf-8")
    return path
