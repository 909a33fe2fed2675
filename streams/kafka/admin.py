"""Topic administration: create the corridor topics explicitly and list what the cluster holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.families import DEADLETTER_TOPIC, FAMILIES
from streams.kafka.client import client_options
from streams.settings import Settings

CREATED = "created"
EXISTS = "exists"


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


async def ensure_topics(settings: Settings, topics: Mapping[str, int]) -> dict[str, str]:
    """Create each missing topic with its partition count; report ``created``, ``exists`` or a mismatch.

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
                [NewTopic(name, topics[name], settings.topic_replication) for name in missing]
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
