"""The embedded broker runs from the environment it is installed in, never from a copy in the home directory."""

from __future__ import annotations

import sys
from pathlib import Path

from streams.kafka import broker


def test_the_broker_binary_is_the_installed_one_in_place(monkeypatch):
    monkeypatch.delenv("CALF_TANSU_BIN", raising=False)
    binary = Path(broker._broker_binary())
    assert binary.is_relative_to(Path(sys.prefix).resolve()) or binary.is_relative_to(Path(sys.prefix)), binary
    assert not binary.is_relative_to(Path.home() / ".calfkit")


def test_an_explicit_binary_wins(monkeypatch, tmp_path):
    tansu = tmp_path / "tansu"
    tansu.write_text("#!/bin/sh\n", encoding="utf-8")
    tansu.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(tansu))
    assert broker._broker_binary() == str(tansu)
