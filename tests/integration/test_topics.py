"""Topic creation on a fresh broker: explicit partition counts, idempotent, mismatches reported."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from streams.cli import cli
from streams.kafka.admin import corridor_topics, ensure_topics, list_topics
from streams.kafka.broker import EmbeddedBroker
from streams.settings import get_settings
from tests.integration.conftest import broker_settings_for, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedBroker]:
    """A broker of its own, with no topics, that the CLI's settings point at."""
    with EmbeddedBroker(port=free_port()) as broker:
        monkeypatch.setenv("CORRIDOR_KAFKA_BOOTSTRAP", broker.bootstrap)
        get_settings.cache_clear()
        yield broker
    get_settings.cache_clear()


def test_topics_create_then_again_changes_nothing(empty_broker: EmbeddedBroker) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["topics", "create", "--partitions", "3"])
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [f"{topic}: created" for topic in corridor_topics()]

    second = runner.invoke(cli, ["topics", "create", "--partitions", "3"])
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines() == [f"{topic}: exists" for topic in corridor_topics()]

    listed = runner.invoke(cli, ["topics", "list"])
    assert listed.stdout.splitlines() == [f"{topic}\t3" for topic in sorted(corridor_topics())]


def test_topics_create_reports_a_partition_mismatch_and_exits_1(empty_broker: EmbeddedBroker) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["topics", "create"]).exit_code == 0
    result = runner.invoke(cli, ["topics", "create", "--partitions", "8"])
    assert result.exit_code == 1
    assert "corridor.flights.v1: exists with 4 partitions, expected 8" in result.stdout
    assert "another partition count" in result.stderr


async def test_ensure_topics_creates_only_what_is_missing(empty_broker: EmbeddedBroker) -> None:
    settings = broker_settings_for(empty_broker.bootstrap)
    assert await ensure_topics(settings, {"a.v1": 2}) == {"a.v1": "created"}
    assert await ensure_topics(settings, {"a.v1": 2, "b.v1": 1}) == {"a.v1": "exists", "b.v1": "created"}
    assert await list_topics(settings) == {"a.v1": 2, "b.v1": 1}


def test_topics_create_without_a_broker_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRIDOR_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["topics", "create"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "no Kafka broker answered at 127.0.0.1:" in result.stderr
