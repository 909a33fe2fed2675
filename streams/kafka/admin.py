"""Topic administration: create the corridor topics explicitly and list what the cluster holds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.families import DEADLETTER_TOPIC, FAMILIES
from streams.kafka.client import client_options
from streams.settings import Settings

CREATED = "created"
EXISTS = "exists"
#: How long a readiness answer about the broker is reused (probes come every few seconds).
BROKER_CHECK_TTL_S = 5.0
BROKER_CHECK_TIMEOUT_S = 2.0

log = logging.getLogger("corridor.kafka")


def corridor_topics() -> list[str]:
    """The four family topics and the dead-letter topic."""
    return [*(family.topic for family in FAMILIES.values()), DEADLETTER_TOPIC]


async def list_topics(settings: Settings) -> dict[str, int]:
    """Every topic of the cluster with its partition count."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return await _partition_counts(admin)
    finally:
        await admin.close()


class BrokerProbe:
    """Whether the cluster answers a metadata request (with the configured SASL/TLS), cached for a few seconds.

    What /readyz of the workers and of the ingest asks: an answer is reused for
    BROKER_CHECK_TTL_S, so frequent probes do not each open a connection.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._checked: tuple[float, bool] = (float("-inf"), False)

    async def __call__(self) -> bool:
        checked_at, answered = self._checked
        if time.monotonic() - checked_at < BROKER_CHECK_TTL_S:
            return answered
        try:
            await asyncio.wait_for(list_topics(self.settings), BROKER_CHECK_TIMEOUT_S)
            answered = True
        except Exception as exc:  # any failure to get an answer means: not ready
            log.warning("readiness: the broker did not answer: %r", exc)
            answered = False
        self._checked = (time.monotonic(), answered)
        return answered


async def cluster_id(settings: Settings) -> str | None:
    """The id of the cluster at the bootstrap address (None from a broker too old to say).

    A real Kafka cluster keeps its id across restarts; the embedded broker takes a new one
    at every start, because it starts empty.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        cluster = (await admin.describe_cluster()).get("cluster_id")
        return None if cluster is None else str(cluster)
    finally:
        await admin.close()


async def ensure_topics(
    settings: Settings, topics: Mapping[str, int], compacted: Collection[str] = ()
) -> dict[str, str]:
    """Create each missing topic with its partition count; report ``created``, ``exists`` or a mismatch.

    Topics named in ``compacted`` are created with ``cleanup.policy=compact`` (changelogs).
    A mismatch reads ``exists with N partitions, expected M``: it is reported, never
    repaired, because changing partitions moves keys and breaks faust's table/changelog
    pairing.
    """
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = await _partition_counts(admin)
        missing = [name for name in topics if name not in existing]
        outcome: dict[str, str] = {}
        if missing:
            # Explicit, not auto-created: the broker's default partition count would
            # differ from the one faust tables need.
            response = await admin.create_topics(
                [
                    NewTopic(name, topics[name], settings.topic_replication,
                             topic_configs={"cleanup.policy": "compact"} if name in compacted else {})
                    for name in missing
                ]
            )
            for name, error_code, error_message in _topic_errors(response):
                if error_code == 0:
                    outcome[name] = CREATED
                elif error_code != TopicAlreadyExistsError.errno:
                    raise RuntimeError(f"creating {name} failed: error {error_code} {error_message or ''}".strip())
            existing = await _partition_counts(admin)
        for name, wanted in topics.items():
            if name in outcome:
                continue
            have = existing.get(name)
            outcome[name] = EXISTS if have == wanted else f"{EXISTS} with {have} partitions, expected {wanted}"
        return outcome
    finally:
        await admin.close()


async def create_topics(settings: Settings, partitions: int | None = None) -> dict[str, str]:
    """Create the corridor topics (idempotent); ``partitions`` defaults to ``settings.topic_partitions``."""
    count = partitions or settings.topic_partitions
    return await ensure_topics(settings, dict.fromkeys(corridor_topics(), count))


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    # All topics at once: naming missing topics in a metadata request can auto-create them.
    return {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics()}


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    errors = []
    for entry in response.topic_errors:  # a CreateTopicsResponse of any version
        name, error_code, *rest = entry
        errors.append((name, error_code, rest[0] if rest else None))
    return errors
