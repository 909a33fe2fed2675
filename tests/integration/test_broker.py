"""The embedded broker: start, answer, stop without leftovers, refuse a taken port, validate schemas."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.export import export_schemas
from schemas.samples import sample_event
from streams.kafka.admin import create_topics
from streams.kafka.broker import BrokerError, EmbeddedBroker, broker_answers, wait_until_ready
from tests.integration.conftest import CORRIDOR, broker_settings_for, free_port

pytestmark = pytest.mark.integration


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child any more: already reaped
    return False


async def test_broker_answers_then_stops_leaving_no_process_and_a_free_port() -> None:
    broker = EmbeddedBroker(port=free_port())
    with broker:
        pid = broker.pid
        assert broker.running
        assert await broker_answers(broker.bootstrap)
    assert pid is not None and _reaped(pid)
    assert not os.path.exists(f"/proc/{pid}")
    assert not await broker_answers(broker.bootstrap)
    with EmbeddedBroker(port=broker.port):  # the port is free again
        pass


async def test_starting_on_a_taken_port_fails_fast_with_one_line(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerError) as raised:
        EmbeddedBroker(port=broker.port).start()
    assert str(raised.value) == f"port {broker.port} on 127.0.0.1 is already in use"


def test_corridor_broker_on_a_taken_port_exits_non_zero_with_one_line(broker: EmbeddedBroker) -> None:
    run = subprocess.run([*CORRIDOR, "broker", "--port", str(broker.port)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"Error: port {broker.port} on 127.0.0.1 is already in use"]


async def test_corridor_broker_serves_until_sigterm_then_stops_its_broker() -> None:
    port = free_port()
    command = subprocess.Popen(
        [*CORRIDOR, "broker", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        banner = command.stdout.readline()  # type: ignore[union-attr]
        assert banner.startswith(f"broker listening on 127.0.0.1:{port} ")
        broker_pid = int(banner.split("pid ")[1].split(")")[0])
        assert await broker_answers(f"127.0.0.1:{port}")
        command.send_signal(signal.SIGTERM)
        assert command.wait(timeout=30) == 0
    finally:
        command.kill()
        command.wait()
    assert command.stdout.read().strip() == "broker stopped"  # type: ignore[union-attr]
    assert not os.path.exists(f"/proc/{broker_pid}")
    assert not await broker_answers(f"127.0.0.1:{port}")


async def test_wait_until_ready_gives_up_after_its_timeout() -> None:
    with pytest.raises(BrokerError, match="no Kafka broker answered"):
        await wait_until_ready(f"127.0.0.1:{free_port()}", timeout=0.3)


def test_a_schema_directory_without_tansu_layout_is_refused(tmp_path: Path) -> None:
    (tmp_path / "corridor.flights.v1.json").write_text('{"type": "object", "properties": {"route": {}}}')
    with pytest.raises(BrokerError, match="no properties.value"):
        EmbeddedBroker(port=free_port(), schema_dir=tmp_path).start()


async def test_schema_validation_refuses_records_that_fail_the_exported_schema(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    with EmbeddedBroker(port=free_port(), schema_dir=tmp_path) as broker:
        await create_topics(broker_settings_for(broker.bootstrap))
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:

            async def accepted(value: object) -> bool:
                try:
                    await producer.send_and_wait("corridor.shipments.v1", orjson.dumps(value), key=b"CNCKG-SGSIN")
                except KafkaError:
                    return False
                return True

            assert await accepted(sample_event("shipments"))
            assert await accepted([sample_event("shipments"), sample_event("shipments")])
            assert not await accepted(sample_event("shipments", teu=-1))
            assert not await accepted([sample_event("shipments"), sample_event("shipments", unknown=1)])
            assert not await accepted(sample_event("flights"))
            assert not await accepted([])
        finally:
            await producer.stop()
