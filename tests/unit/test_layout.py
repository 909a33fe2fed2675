"""The package layout the docs describe: sub-packages by layer, mirrored by the unit tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_streams_keeps_at_most_three_loose_modules():
    loose = sorted(path.name for path in (ROOT / "streams").glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "settings.py"]


def test_every_sub_package_has_its_unit_test_folder():
    packages = {path.parent.name for path in (ROOT / "streams").glob("*/__init__.py")}
    test_folders = {path.parent.name for path in (ROOT / "tests" / "unit").glob("*/__init__.py")}
    assert packages == {
        "core", "worker", "kafka", "process", "sdk", "sim", "cli", "alerting", "evaluation", "bench", "ingest"
    }
    assert packages <= test_folders
