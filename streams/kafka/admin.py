"""Topic administration: create the corridor topics explicitly, list what the cluster holds, and recreate
topics empty (delete them, wait until the cluster no longer lists them, create them again)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any, Protocol

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import RequestTimedOutError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from schemas.families import DEADLETTER_TOPIC, FAMILIES
from streams.kafka.client import client_options
from streams.settings import Settings

CREATED = "created"
EXISTS = "exists"
#: How long a readiness answer about the broker is reused (probes come every few seconds).
BROKER_CHECK_TTL_S = 5.0
BROKER_CHECK_TIMEOUT_S = 2.0
#: How long recreating topics waits for the deletion, then for every new partition's leader.
RECREATE_TIMEOUT_S = 60.0
RECREATE_POLL_S = 0.2

log = logging.getLogger("corridor.kafka")


#: Room in a topic's largest record batch beyond the largest accepted value: the batch and record
#: headers, the key and the dead-letter headers (Apache Kafka counts the whole batch).
RECORD_ROOM_BYTES = 64 * 1024


def topic_configs(settings: Settings, name: str, compacted: Collection[str] = ()) -> dict[str, str]:
    """The configs a topic is created with: changelogs compacted; the family and dead-letter topics take
    a record of ``max_record_bytes`` (Apache Kafka's default, 1 MiB per batch, would refuse one at the
    workers' limit before a worker could say why), so the workers' limit is the one producers meet."""
    configs = {"cleanup.policy": "compact"} if name in compacted else {}
    if name in corridor_topics():
        configs["max.message.bytes"] = str(settings.max_record_bytes + RECORD_ROOM_BYTES)
    return configs


def corridor_topics() -> list[str]:
    """The four family topics and the dead-letter topic."""
    return [*(family.topic for family in FAMILIES.values()), DEADLETTER_TOPIC]


def state_table(family: str) -> str:
    """The name of a family's state table in the worker, which faust names its changelog topic after."""
    return f"state-{family}"


def changelog_topic(app_id: str, family: str) -> str:
    """The changelog topic of a family's state in the worker of ``app_id``, as faust names it."""
    return f"{app_id}-{state_table(family)}-changelog"


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
                             topic_configs=topic_configs(settings, name, compacted))
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


class TopicsNotRecreated(RuntimeError):
    """The cluster refused to delete or create a topic, or did not finish within the time allowed."""


class TopicAdmin(Protocol):
    """What recreating topics asks of a cluster: :class:`KafkaTopicAdmin`, or an in-memory cluster in the tests."""

    async def led_partitions(self) -> dict[str, int]:
        """Every topic the cluster lists, with how many of its partitions have a leader."""
        ...

    async def delete(self, topics: Collection[str]) -> dict[str, int]:
        """Ask for the deletion of ``topics``: an error code per topic (0: accepted)."""
        ...

    async def create(self, topics: Mapping[str, int]) -> dict[str, int]:
        """Ask for ``topics`` with their partition counts: an error code per topic (0: accepted)."""
        ...


async def recreate_topics(
    admin: TopicAdmin, topics: Mapping[str, int], also_delete: Callable[[str], bool] = lambda name: False,
    timeout_s: float = RECREATE_TIMEOUT_S, poll_s: float = RECREATE_POLL_S,
) -> list[str]:
    """Make ``topics`` (name: partitions) empty and new: delete those that exist, and every topic
    ``also_delete`` names, wait until the cluster lists none of them, create ``topics``, and wait until
    each of their partitions has a leader. The topics deleted, sorted.

    Kafka deletes a topic in the background: until its metadata is gone a create of the same name
    fails with "already exists" (the topic is marked for deletion), and a new partition takes a
    moment to get its leader. :class:`TopicsNotRecreated` when the cluster refuses (topic deletion
    disabled, say) or a step takes longer than ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    listed = await admin.led_partitions()
    doomed = sorted(name for name in listed if name in topics or also_delete(name))
    if doomed:
        _refused("deleting", await admin.delete(doomed), ok={RequestTimedOutError.errno,
                                                              UnknownTopicOrPartitionError.errno})
        while remaining := sorted(set(doomed) & set(listed)):
            _check_deadline(deadline, timeout_s, f"{', '.join(remaining)} still listed after deletion")
            await asyncio.sleep(poll_s)
            listed = await admin.led_partitions()
    missing = dict(topics)
    while missing:
        # "Already exists" until the brokers have let go of the deleted topic: asked again.
        errors = await admin.create(missing)
        _refused("creating", errors, ok={TopicAlreadyExistsError.errno})
        missing = {name: count for name, count in missing.items() if errors.get(name, 0) != 0}
        if missing:
            _check_deadline(deadline, timeout_s, f"{', '.join(missing)} not created (still being deleted)")
            await asyncio.sleep(poll_s)
    while True:
        listed = await admin.led_partitions()
        if not (unled := sorted(name for name, count in topics.items() if listed.get(name) != count)):
            return doomed
        _check_deadline(deadline, timeout_s, f"{', '.join(unled)} without a leader for every partition")
        await asyncio.sleep(poll_s)


def _refused(doing: str, errors: Mapping[str, int], ok: Collection[int]) -> None:
    refused = {name: code for name, code in errors.items() if code not in (0, *ok)}
    if refused:
        raise TopicsNotRecreated(f"the cluster refused {doing} "
                                 + ", ".join(f"{name} (error {code})" for name, code in sorted(refused.items())))


def _check_deadline(deadline: float, timeout_s: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise TopicsNotRecreated(f"{what} after {timeout_s:g}s")


class KafkaTopicAdmin:
    """:class:`TopicAdmin` over an aiokafka admin client; ``async with`` connects and closes it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.admin = AIOKafkaAdminClient(**client_options(settings))

    async def __aenter__(self) -> KafkaTopicAdmin:
        await self.admin.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.admin.close()

    async def led_partitions(self) -> dict[str, int]:
        return {topic["topic"]: sum(1 for partition in topic["partitions"]
                                    if partition["error_code"] == 0 and partition["leader"] >= 0)
                for topic in await self.admin.describe_topics()}

    async def delete(self, topics: Collection[str]) -> dict[str, int]:
        response = await self.admin.delete_topics(list(topics))
        return {name: error_code for name, error_code, *_ in response.topic_error_codes}

    async def create(self, topics: Mapping[str, int]) -> dict[str, int]:
        """With the configs :func:`ensure_topics` gives them (:func:`topic_configs`)."""
        response = await self.admin.create_topics(
            [NewTopic(name, partitions, self.settings.topic_replication,
                      topic_configs=topic_configs(self.settings, name))
             for name, partitions in topics.items()])
        return {name: error_code for name, error_code, _ in _topic_errors(response)}

    async def nodes(self) -> int:
        """How many brokers the cluster lists."""
        return len((await self.admin.describe_cluster())["brokers"])


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    # All topics at once: naming missing topics in a metadata request can auto-create them.
    return {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics()}


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    errors = []
    for entry in response.topic_errors:  # a CreateTopicsResponse of any version
        name, error_code, *rest = entry
        errors.append((name, error_code, rest[0] if rest else None))
    return errors
