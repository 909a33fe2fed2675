"""The dashboards as a Kubernetes ConfigMap, for the dashboard sidecar of Grafana's Helm chart.

The sidecar loads every ConfigMap labelled ``grafana_dashboard: "1"``: one key per dashboard,
``<uid>.json``, holding exactly the committed JSON (``dashboards.dumps``). ``corridor
dashboards build`` writes it to ``deploy/k8s/base/grafana-dashboards.yaml``, which
kustomize cannot build from files outside its folder.
"""

from __future__ import annotations

from typing import Any

from dashboards import Model, dumps
from streams.alerting.rules import dump

NAME = "corridor-dashboards"

HEADER = (
    "# Rendered by `corridor dashboards build` from dashboards/ (the same JSON as dashboards/json/).\n"
    "# Do not edit by hand: change the generators and build again (a test checks they agree).\n"
)


def configmap(models: dict[str, Model]) -> dict[str, Any]:
    """The ConfigMap object: ``<name>.json`` -> the dashboard's committed JSON, keys sorted."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": NAME,
            "labels": {
                "app.kubernetes.io/name": "corridor-monitor",
                "app.kubernetes.io/component": "dashboards",
                "grafana_dashboard": "1",
            },
        },
        "data": {f"{name}.json": dumps(models[name]) for name in sorted(models)},
    }


def render_configmap(models: dict[str, dict]) -> str:
    """The ConfigMap carrying ``models`` (dashboard name -> JSON model) as YAML text; the JSON as literal blocks."""
    return HEADER + dump(configmap(models))
