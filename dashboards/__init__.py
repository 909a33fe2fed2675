"""Grafana dashboards as code: one generator module per dashboard, rendered to ``json/``.

Each generator builds its dashboard with grafana-foundation-sdk from the same thresholds
and selectors as the alert rules (``streams.alerting.thresholds``), so a panel's red line
is the alert's threshold. ``render()`` returns every dashboard as the JSON model Grafana
imports; ``write()`` puts them in ``json/`` (committed, and tested to match the
generators); ``stale()`` names the files that no longer match.

The time zone the dashboards open in is a setting of the build (``render(timezone=...)``,
``corridor dashboards build --timezone``), China time by default: the corridor's own clock
(Chongqing and Singapore both keep UTC+8), the same for every viewer wherever their browser
is. Grafana's time picker changes it for a session.
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.alerting.thresholds import PROFILES, Thresholds

JSON_DIR = Path(__file__).resolve().parent / "json"

Model = dict[str, Any]

#: The time zone the rendered dashboards open in (the committed JSON's).
DEFAULT_TIMEZONE = "Asia/Shanghai"
#: Grafana's own time zone settings besides an IANA name.
GRAFANA_TIMEZONES = ("browser", "utc")


def _generators() -> dict[str, Callable[[Thresholds], Model]]:
    # Imported here so that importing the package (for JSON_DIR, say) needs no grafana SDK.
    from dashboards import datachannel, finance, flights, ingest, overview, pipeline, transit

    return {
        "corridor-overview": overview.build,
        "corridor-flights": flights.build,
        "corridor-finance": finance.build,
        "corridor-datachannel": datachannel.build,
        "corridor-pipeline": pipeline.build,
        "corridor-ingest": ingest.build,
        "corridor-transit": transit.build,
    }


def check_timezone(timezone: str) -> str:
    """``timezone`` if Grafana takes it (``browser``, ``utc`` or an IANA name such as ``Asia/Singapore``);
    ValueError otherwise."""
    if timezone in GRAFANA_TIMEZONES:
        return timezone
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not a time zone: {timezone!r} (use {', '.join(GRAFANA_TIMEZONES)} or an IANA name "
                         "such as Asia/Shanghai)") from None
    return timezone


def render(thresholds: Thresholds | None = None, timezone: str = DEFAULT_TIMEZONE) -> dict[str, Model]:
    """Every dashboard's JSON model, by file stem (which is also its uid), opening in ``timezone``."""
    chosen = thresholds or PROFILES["default"]
    check_timezone(timezone)
    return {name: {**build(chosen), "timezone": timezone} for name, build in _generators().items()}


def dumps(model: Model) -> str:
    """The committed form of a model: stable key order, two-space indent, final newline."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path = JSON_DIR, models: dict[str, Model] | None = None) -> list[Path]:
    """Write every dashboard as ``<uid>.json`` into ``directory``; drop files of removed dashboards."""
    models = render() if models is None else models
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in models.items():
        path = directory / f"{name}.json"
        path.write_text(dumps(model), encoding="utf-8")
        written.append(path)
    for path in directory.glob("*.json"):
        if path.stem not in models:
            path.unlink()
    return written


def load(directory: Path = JSON_DIR) -> dict[str, Model]:
    """The rendered dashboards in ``directory``, by file stem."""
    models = {}
    for path in sorted(directory.glob("*.json")):
        try:
            models[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ValueError(f"{path}: not a dashboard's JSON model ({error})") from None
    return models


def stale(directory: Path = JSON_DIR, models: dict[str, Model] | None = None) -> list[str]:
    """File names in ``directory`` that differ from the generators (missing, changed or extra)."""
    models = render() if models is None else models
    names = []
    for name, model in models.items():
        path = directory / f"{name}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != dumps(model):
            names.append(path.name)
    names.extend(path.name for path in directory.glob("*.json") if path.stem not in models)
    return sorted(names)
