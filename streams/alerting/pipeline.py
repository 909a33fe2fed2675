"""Alerts of the pipeline area."""

from __future__ import annotations

from streams.alerting.rules import Rule
from streams.alerting.thresholds import Thresholds


def rules(thresholds: Thresholds) -> list[Rule]:
    return []
