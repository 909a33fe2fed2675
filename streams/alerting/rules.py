"""Building blocks of alert rules, and the rule files rendered from every area."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from streams.alerting.thresholds import Thresholds

Rule = dict[str, Any]

HEADER = (
    "# Rendered by `corridor alerts render` from streams/alerting/ (thresholds: streams/alerting/thresholds.py).\n"
    "# Do not edit by hand: change the code and render again (a test checks they agree).\n"
)


def duration(seconds: int) -> str:
    """``seconds`` as a Prometheus duration in its largest exact units: 90 -> ``1m30s``, 86400 -> ``1d``."""
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def alert(
    name: str,
    expr: str,
    *,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    thresholds: Thresholds,
    labels: dict[str, str] | None = None,
) -> Rule:
    """One alerting rule with the labels and annotations every corridor alert carries."""
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **(labels or {})},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url(thresholds, name),
        },
    }


def runbook_url(thresholds: Thresholds, alert: str) -> str:
    """The runbook section of ``alert`` (docs/runbook.md has one heading per alert)."""
    return f"{thresholds.runbook_url}#{alert.lower()}"


def _areas() -> dict[str, Callable[[Thresholds], list[Rule]]]:
    from streams.alerting import pipeline, volume

    return {"volume": volume.rules, "pipeline": pipeline.rules}


def alert_rules(thresholds: Thresholds) -> list[Rule]:
    """Every alerting rule of every area (a name may repeat, once per stream)."""
    return [rule for rules in _areas().values() for rule in rules(thresholds)]


class _RuleDumper(yaml.SafeDumper):
    """Writes multi-line strings (expressions) as literal blocks, the way people write rule files."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_RuleDumper.add_representer(str, _string)


def dump(document: dict[str, Any]) -> str:
    """``document`` as YAML in the style of the rule files: keys in order, multi-line strings as literal blocks."""
    return yaml.dump(document, Dumper=_RuleDumper, sort_keys=False, width=120, allow_unicode=True)


def render(thresholds: Thresholds) -> dict[str, str]:
    """The text of each rule file, by file name (one file and one group per area)."""
    files = {}
    for area, rules in _areas().items():
        document = {"groups": [{"name": f"corridor-{area}", "rules": rules(thresholds)}]}
        files[f"{area}.yml"] = HEADER + dump(document)
    return files


def write(directory: Path, thresholds: Thresholds) -> list[Path]:
    """Write the rule files into ``directory`` (created if missing); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render(thresholds).items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
