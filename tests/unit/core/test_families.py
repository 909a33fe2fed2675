"""The family declarations: every contract family is measured, and every series is declared once."""

from __future__ import annotations

import re

from schemas.families import FAMILIES, FAMILY_NAMES
from streams.core.families import HISTOGRAM_BOUNDS_MS, MEASURED
from streams.core.series import EVENTS_REJECTED, PIPELINE_COUNTERS

METRIC_NAME = re.compile(r"^corridor_[a-z0-9_]+$")


def test_every_contract_family_is_measured_in_the_contract_order():
    assert tuple(MEASURED) == FAMILY_NAMES
    assert all(MEASURED[name].event is FAMILIES[name] for name in FAMILY_NAMES)


def test_every_exported_name_is_declared_once_and_follows_the_conventions():
    series = [*PIPELINE_COUNTERS, EVENTS_REJECTED]
    for family in MEASURED.values():
        series += [*family.counters, *family.windows, *family.histograms]
    names = [s.name for s in series]
    assert len(names) == len(set(names)), names
    assert all(METRIC_NAME.match(name) and not name.endswith("_total") for name in names)
    assert all(s.name.endswith("_seconds") for f in MEASURED.values() for s in f.histograms)


def test_state_keys_are_unique_within_each_kind_and_histogram_bounds_follow_their_buckets():
    for kind in ("counters", "windows", "histograms"):
        keys = [s.key for f in MEASURED.values() for s in getattr(f, kind)]
        keys += [s.key for s in PIPELINE_COUNTERS] if kind == "counters" else []
        assert len(keys) == len(set(keys)), (kind, keys)
    for family in MEASURED.values():
        for histogram in family.histograms:
            assert HISTOGRAM_BOUNDS_MS[histogram.key] == tuple(round(b * 1000) for b in histogram.buckets)
            assert list(histogram.buckets) == sorted(histogram.buckets)
