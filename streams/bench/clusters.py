"""Where the bench's stages run: fresh, empty corridor topics for each group of stages.

The worker's topic names are fixed, so the envelopes, the single events and each routes run
cannot share topics. :class:`EmbeddedBrokers` starts a broker of its own for each group
(free loopback ports, empty at its start) and stops it afterwards. :class:`SharedCluster`
runs every group on one existing cluster (``corridor bench --bootstrap``): before each group
it deletes the corridor topics and every topic of the bench's own apps (:data:`APP_PREFIX`:
the workers' changelogs, an interrupted run's included), waits until the cluster no longer
lists them, and creates the corridor topics again; after the run it does the same once more,
so the cluster is left with empty corridor topics and none of the bench's. The workers and
the faust agent take app ids (consumer groups, changelog names) under :data:`APP_PREFIX`
that are new in every run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiokafka.errors import KafkaError

from streams.bench.report import BrokerKind
from streams.kafka.admin import KafkaTopicAdmin, TopicsNotRecreated, corridor_topics, create_topics, recreate_topics
from streams.kafka.broker import BrokerError, EmbeddedBroker
from streams.kafka.profile import broker_profile
from streams.process import free_port
from streams.settings import Settings

#: App ids of the bench's workers and faust agent begin so; so do the topics their apps create.
APP_PREFIX = "corridor-bench-"


class ClusterError(RuntimeError):
    """No fresh topics: a broker that did not start, a cluster that did not answer or recreate them."""


class Clusters(Protocol):
    """Fresh corridor topics for one group of stages at a time."""

    def fresh(self) -> contextlib.AbstractAsyncContextManager[str]:
        """Empty corridor topics for the group; the bootstrap address where they are."""
        ...

    async def close(self) -> None:
        """Leave the cluster as the run found it, or tidier."""
        ...


def is_bench_topic(name: str) -> bool:
    """A topic of one of the bench's apps (a worker's changelog, say)."""
    return name.startswith(APP_PREFIX)


class EmbeddedBrokers:
    """A fresh embedded broker for each group of stages, stopped after it."""

    def __init__(self, settings: Settings, announce: Callable[[str], None]) -> None:
        self.settings = settings
        self.announce = announce

    @contextlib.asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        self.announce("starting an embedded broker")
        broker = EmbeddedBroker(port=free_port())
        try:
            await asyncio.to_thread(broker.start)
        except BrokerError as exc:
            raise ClusterError(f"cannot start the embedded broker: {exc}") from None
        try:
            await create_topics(self.settings.model_copy(update={"kafka_bootstrap": broker.bootstrap}))
            yield broker.bootstrap
        finally:
            await asyncio.to_thread(broker.stop)

    async def close(self) -> None:
        pass


class SharedCluster:
    """One existing cluster for every group of stages: the corridor topics deleted and created again before each."""

    def __init__(self, settings: Settings, bootstrap: str, announce: Callable[[str], None]) -> None:
        self.settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
        self.bootstrap = bootstrap
        self.announce = announce

    @contextlib.asynccontextmanager
    async def fresh(self) -> AsyncIterator[str]:
        await self.recreate()
        yield self.bootstrap

    async def close(self) -> None:
        await self.recreate()

    async def recreate(self) -> list[str]:
        """Delete the corridor topics and the bench's, then create the corridor topics empty; the topics deleted."""
        self.announce(f"recreating the corridor topics at {self.bootstrap}")
        topics = dict.fromkeys(corridor_topics(), self.settings.topic_partitions)
        try:
            async with KafkaTopicAdmin(self.settings) as admin:
                return await recreate_topics(admin, topics, also_delete=is_bench_topic)
        except (KafkaError, OSError, TopicsNotRecreated) as exc:
            raise ClusterError(f"cannot recreate the corridor topics at {self.bootstrap}: {exc}") from None


async def broker_kind(settings: Settings, shared: bool) -> BrokerKind:
    """What answers at ``settings.bootstrap``: its kind as the worker tells it, and its nodes."""
    try:
        profile = await broker_profile(settings)
        async with KafkaTopicAdmin(settings) as admin:
            nodes = await admin.nodes()
    except KafkaError as exc:
        raise ClusterError(f"the broker at {settings.bootstrap} did not say what it is: {exc}") from None
    return BrokerKind(profile.flavor.value, nodes, settings.bootstrap if shared else None, settings.topic_partitions)
