"""Logging setup shared by the CLI verbs: JSON lines or text on stderr."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from streams.cli.logs import configure_logging
from streams.settings import Settings


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("aiokafka", "kafka")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, quiet_level in quiet.items():
        logging.getLogger(name).setLevel(quiet_level)


def test_json_format_writes_one_object_per_line_with_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json", log_level="INFO"))
    logging.getLogger("corridor.test").info("sent %d events", 3, extra={"topic": "corridor.flights.v1"})
    logging.getLogger("corridor.test").debug("not shown at INFO")
    (entry,) = [json.loads(text) for text in capsys.readouterr().err.splitlines()]
    assert entry["level"] == "INFO"
    assert entry["logger"] == "corridor.test"
    assert entry["message"] == "sent 3 events"
    assert entry["topic"] == "corridor.flights.v1"
    assert entry["ts"].endswith("+00:00")


def test_json_format_carries_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json"))
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("corridor.test").exception("failed")
    entry = json.loads(capsys.readouterr().err)
    assert "ValueError: boom" in entry["exception"]


def test_text_format_and_quiet_client_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="text", log_level="INFO"))
    logging.getLogger("aiokafka").info("connected to node 111")
    logging.getLogger("aiokafka").warning("metadata refresh failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING aiokafka: metadata refresh failed")
