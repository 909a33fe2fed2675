"""Which broker answers, and the profile each kind gets (streams/kafka/profile.py), against fake listeners."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from aiokafka.errors import KafkaConnectionError

from streams.kafka.broker import offered_api_keys
from streams.kafka.profile import (
    OFFSET_FOR_LEADER_EPOCH,
    PROFILES,
    BrokerFlavor,
    broker_profile,
    flavor_of,
)
from streams.settings import Settings
from tests.unit.kafka.test_broker_probe import FakeBroker, closed_port

#: The API keys the embedded broker (Tansu 0.6) offers, and some of Apache Kafka 3.9's.
EMBEDDED_KEYS = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26, 28, 29, 30,
                 32, 36, 42, 44, 46, 50, 51, 60, 69, 71, 75}
KAFKA_KEYS = (EMBEDDED_KEYS - {71}) | {23, 27, 31, 33, 34, 35, 37, 55, 57, 61, 68}


class ApiVersionsServer(FakeBroker):
    """A fake broker answering each ApiVersions v0 request with ``api_keys``, in two segments."""

    def __init__(self, api_keys: set[int]) -> None:
        self.api_keys = sorted(api_keys)
        super().__init__(split=True)

    def reply(self, request: bytes) -> bytes:
        (correlation_id,) = struct.unpack(">i", request[4:8])
        body = struct.pack(">ihi", correlation_id, 0, len(self.api_keys))
        body += b"".join(struct.pack(">hhh", key, 0, 3) for key in self.api_keys)
        return struct.pack(">i", len(body)) + body


@pytest.fixture(params=[EMBEDDED_KEYS, KAFKA_KEYS], ids=["embedded", "kafka"])
def server(request: pytest.FixtureRequest) -> Iterator[ApiVersionsServer]:
    fake = ApiVersionsServer(request.param)
    yield fake
    fake.close()


def test_the_offered_api_keys_are_read_from_the_whole_answer(server: ApiVersionsServer) -> None:
    assert offered_api_keys("127.0.0.1", server.port) == set(server.api_keys)


def test_offset_for_leader_epoch_tells_apache_kafka_from_the_embedded_broker() -> None:
    assert OFFSET_FOR_LEADER_EPOCH not in EMBEDDED_KEYS
    assert flavor_of(EMBEDDED_KEYS) is BrokerFlavor.EMBEDDED
    assert flavor_of(KAFKA_KEYS) is BrokerFlavor.KAFKA


async def test_auto_asks_the_broker(server: ApiVersionsServer) -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{closed_port()},127.0.0.1:{server.port}")
    want = BrokerFlavor.KAFKA if OFFSET_FOR_LEADER_EPOCH in server.api_keys else BrokerFlavor.EMBEDDED
    assert await broker_profile(settings) is PROFILES[want]


@pytest.mark.parametrize("flavor", ["kafka", "embedded"])
async def test_a_set_flavor_is_used_without_asking(flavor: str) -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{closed_port()}", broker_flavor=flavor)
    assert await broker_profile(settings) is PROFILES[BrokerFlavor(flavor)]


@pytest.mark.parametrize("protocol", ["SSL", "SASL_PLAINTEXT", "SASL_SSL"])
async def test_a_secured_listener_is_never_the_embedded_broker(protocol: str) -> None:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{closed_port()}", kafka_security_protocol=protocol)
    assert await broker_profile(settings) is PROFILES[BrokerFlavor.KAFKA]


async def test_no_answer_is_reported_as_a_connection_error_to_retry() -> None:
    bootstrap = f"127.0.0.1:{closed_port()}"
    with pytest.raises(KafkaConnectionError, match=f"no broker at {bootstrap} answered") as raised:
        await broker_profile(Settings(kafka_bootstrap=bootstrap))
    assert isinstance(raised.value, KafkaConnectionError)  # retried, and reported, as aiokafka's own
    assert raised.value.retriable


def test_only_the_embedded_profile_carries_the_workarounds() -> None:
    kafka, embedded = PROFILES[BrokerFlavor.KAFKA], PROFILES[BrokerFlavor.EMBEDDED]
    assert (kafka.producer_max_batch_size, kafka.recovery_consistency_check, kafka.rebase_new_cluster,
            kafka.init_producer_id_v3) == (16_384, True, False, False)
    assert (embedded.producer_max_batch_size, embedded.recovery_consistency_check, embedded.rebase_new_cluster,
            embedded.init_producer_id_v3) == (1, False, True, True)


def test_an_unknown_flavor_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRIDOR_BROKER_FLAVOR", "redpanda")
    with pytest.raises(ValueError, match="broker_flavor"):
        Settings()


def test_the_family_and_dead_letter_topics_take_a_record_at_the_workers_limit() -> None:
    from streams.kafka.admin import RECORD_ROOM_BYTES, corridor_topics, topic_configs

    settings = Settings(max_record_bytes=2_000_000)
    for topic in corridor_topics():
        assert topic_configs(settings, topic) == {"max.message.bytes": str(2_000_000 + RECORD_ROOM_BYTES)}
    assert topic_configs(settings, "corridor-monitor-state-shipments-changelog",
                         compacted=["corridor-monitor-state-shipments-changelog"]) == {"cleanup.policy": "compact"}
