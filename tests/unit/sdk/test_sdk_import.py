"""Importing the SDK, and using it, leaves aiokafka as it was for every other client of the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import aiokafka.producer.sender
import aiokafka.protocol.transaction
from aiokafka import AIOKafkaProducer

import streams.sdk
from streams.kafka.profile import PROFILES, BrokerFlavor
from streams.sdk import producer
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]

# Run in a fresh interpreter: in the test process the SDK may have been imported already.
ISOLATION_CHECK = textwrap.dedent(
    """
    import asyncio
    from types import ModuleType

    import aiokafka
    import aiokafka.producer.producer
    import aiokafka.producer.sender
    import aiokafka.protocol.transaction
    from aiokafka.producer.sender import InitPIDHandler, Sender

    MODULES = (aiokafka, aiokafka.producer.producer, aiokafka.producer.sender, aiokafka.protocol.transaction)
    CLASSES = (aiokafka.AIOKafkaProducer, Sender, InitPIDHandler, aiokafka.protocol.transaction.InitProducerIdRequest)


    def snapshot():
        return [dict(vars(namespace)) for namespace in (*MODULES, *CLASSES)]


    def changes(before, after):
        found = []
        for old, new in zip(before, after):
            # Counters (aiokafka numbers its producers' client ids) move on; nothing else may.
            found += [
                name for name, value in old.items() if new.get(name, object()) is not value and type(value) is not int
            ]
            # A newly imported submodule becomes an attribute of its package: that is no change.
            found += [name for name in new.keys() - old.keys() if not isinstance(new[name], ModuleType)]
        return found


    before = snapshot()
    import streams.sdk
    from streams.kafka.profile import PROFILES, BrokerFlavor
    from streams.sdk.producer import Publisher
    from streams.settings import Settings

    assert not changes(before, snapshot()), ("import", changes(before, snapshot()))


    async def main():
        sdk = Publisher(Settings(kafka_bootstrap="127.0.0.1:1"))._new_producer(PROFILES[BrokerFlavor.EMBEDDED])
        plain = aiokafka.AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", enable_idempotence=True)
        try:
            assert type(sdk._sender) is not Sender
            assert type(plain._sender) is Sender
            request = InitPIDHandler(plain._sender).create_request()
            assert type(request) is aiokafka.protocol.transaction.InitProducerIdRequest
        finally:
            await sdk.stop()
            await plain.stop()


    asyncio.run(main())
    assert not changes(before, snapshot()), ("use", changes(before, snapshot()))
    print("untouched")
    """
)


def test_importing_and_using_the_sdk_changes_nothing_in_aiokafka() -> None:
    run = subprocess.run([sys.executable, "-c", ISOLATION_CHECK], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "untouched"


async def test_aiokafka_keeps_its_own_init_producer_id_request_after_an_sdk_producer_was_made() -> None:
    sdk = producer.Publisher(Settings(kafka_bootstrap="127.0.0.1:1"))._new_producer(PROFILES[BrokerFlavor.EMBEDDED])
    plain = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", enable_idempotence=True)
    try:
        assert aiokafka.producer.sender.InitProducerIdRequest is aiokafka.protocol.transaction.InitProducerIdRequest
        assert type(plain._sender) is aiokafka.producer.sender.Sender
    finally:
        await sdk.stop()
        await plain.stop()


def test_the_package_exports_the_public_sdk() -> None:
    assert streams.sdk.__all__
    for name in streams.sdk.__all__:
        assert getattr(streams.sdk, name) is getattr(producer, name)
    public = {"Publisher", "PublishReport", "EventOutcome", "validate_events", "DELIVERED", "INVALID", "UNDELIVERED"}
    assert public <= set(streams.sdk.__all__)
    assert (Path(streams.sdk.__file__).parent / "py.typed").is_file()
