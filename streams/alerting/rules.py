"""The alert rule files, rendered from every area's rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from streams.alerting import datachannel, health, ingest, pipeline, transit, volume
from streams.alerting.alert import Rule
from streams.alerting.thresholds import Thresholds

HEADER = (
    "# Rendered by `corridor alerts render` from streams/alerting/ (thresholds: streams/alerting/thresholds.py).\n"
    "# Do not edit by hand: change the code and render again (a test checks they agree).\n"
)


#: Each area's rules, by area: one file and one group each.
AREAS: dict[str, Callable[[Thresholds], list[Rule]]] = {
    "volume": volume.rules, "pipeline": pipeline.rules, "ingest": ingest.rules, "health": health.rules,
    "datachannel": datachannel.rules, "transit": transit.rules,
}


def alert_rules(thresholds: Thresholds) -> list[Rule]:
    """Every alerting rule of every area (a name may repeat, once per stream)."""
    return [rule for rules in AREAS.values() for rule in rules(thresholds)]


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
    for area, rules in AREAS.items():
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
