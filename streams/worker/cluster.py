"""Which Kafka cluster answers: the wait for it at start, its profile, and a new cluster after a restart.

At start the worker waits, web port up, until a broker answers, then sets what differs between
brokers (``streams/kafka/profile.py``) before any Kafka client starts. A broker that keeps
nothing across a restart (the embedded one) comes back as a new cluster whose topics start
empty: after every lost connection the cluster is asked for again, and a new one has its
topics created and every partition rebased (``FamilyWorker.rebase``) before any record or
commit goes through (docs/broker.md, "Broker faults").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from aiokafka.errors import KafkaConnectionError
from mode import Service

from streams.kafka.admin import BROKER_CHECK_TIMEOUT_S, cluster_id, ensure_topics
from streams.kafka.profile import BrokerProfile, broker_profile
from streams.settings import Settings
from streams.worker.faust_compat import App, Consumer, set_producer_batch_size

log = logging.getLogger("corridor.worker")

#: Waiting for a broker: attempts back off from the first to the last delay; one log line at
#: most per interval says that the worker still waits.
BROKER_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 5.0)
BROKER_WAIT_LOG_INTERVAL_S = 30.0
#: How often the worker looks whether a lost broker connection still awaits its cluster check.
CLUSTER_CHECK_INTERVAL_S = 1.0


class ClusterWatch:
    """The cluster the worker reads from, known once a broker answered."""

    def __init__(self, settings: Settings, app: App, consumer: Callable[[], Consumer], *,
                 topics: Callable[[], Mapping[str, int]], compacted: Callable[[], Sequence[str]],
                 rebase: Callable[[str], None]) -> None:
        self.settings = settings
        self.app = app
        self._consumer = consumer
        #: The topics a new cluster needs (with their partitions), and which of them are compacted.
        self._topics = topics
        self._compacted = compacted
        #: Rebases every partition on a new cluster.
        self._rebase = rebase
        #: What the broker that answers needs (streams/kafka/profile.py); known once it answered.
        self.profile: BrokerProfile | None = None
        #: The cluster the broker is: a new one means its topics started again from nothing (``check``).
        self.cluster: str | None = None
        #: Why the worker is not ready while no broker answers: at start, and while the cluster is
        #: checked again after a lost connection.
        self.waiting: str | None = "connecting to Kafka"
        self._checking = asyncio.Lock()

    async def wait_for_broker(self, waiter: Service) -> None:
        """At start, before any Kafka client: wait until the cluster answers (the probes answer meanwhile)."""
        started = time.monotonic()
        while True:
            cluster = await self._answering_cluster(waiter)
            if waiter.should_stop:
                return
            try:
                profile = await broker_profile(self.settings)
                break
            except KafkaConnectionError as exc:  # gone again between the two questions: asked again
                log.warning("%s", exc)
                await waiter.sleep(BROKER_RETRY_DELAYS_S[0])
        self._use_profile(profile)
        if profile.rebase_new_cluster:
            self._set_cluster(cluster)
        effective = self.broker_settings()
        log.info("Kafka broker at %s answered after %.1fs (cluster %s): %s", self.settings.bootstrap,
                 time.monotonic() - started, cluster, ", ".join(f"{k} {v}" for k, v in effective.items()),
                 extra=effective)

    def broker_settings(self) -> dict[str, object]:
        """What the worker runs with for the broker that answered, read back from faust and the consumer."""
        return {
            "broker": self.profile.flavor.value if self.profile is not None else "unknown",
            "producer_max_batch_size": self.app.producer.max_batch_size,
            "recovery_consistency_check": self.app.conf.recovery_consistency_check,
            "rebase_new_cluster": self._consumer().watch_clusters,
            "group_instance_id": self.app.conf.consumer_group_instance_id,
        }

    def _use_profile(self, profile: BrokerProfile) -> None:
        """Set what differs between brokers before any Kafka client starts (streams/kafka/profile.py)."""
        self.profile = profile
        set_producer_batch_size(self.app, profile.producer_max_batch_size)
        self.app.conf.recovery_consistency_check = profile.recovery_consistency_check
        self._consumer().watch_clusters = profile.rebase_new_cluster
        # Static membership: a named worker restarted within its session gets its partitions back without a
        # rebalance, and goes on with their series (docs/metrics.md, "Series churn").
        if profile.static_membership and self.settings.worker_id is not None:
            self.app.conf.consumer_group_instance_id = self.settings.worker_id

    async def check(self) -> None:
        """After a broker connection closed: is the broker still the cluster the partitions were read from?

        A real Kafka cluster keeps its id, its topics and the group's offsets across restarts,
        and nothing changes. A new cluster (the embedded broker restarted, keeping nothing) has
        its topics created, and every partition is rebased (``FamilyWorker.rebase``).
        """
        if self.profile is None or not self.profile.rebase_new_cluster:
            return  # not answered yet, or a broker that keeps its log: a restart is the same cluster
        async with self._checking:
            consumer = self._consumer()
            closes = consumer.connection_closes
            if not consumer.cluster_unchecked:
                return
            cluster = await self._answering_cluster(self.app)
            if self.app.should_stop:
                return
            if cluster is not None and cluster != self.cluster:
                log.warning("the Kafka broker at %s came back as a new cluster (%s, was %s): its topics start "
                            "empty", self.settings.bootstrap, cluster, self.cluster)
                while True:
                    try:
                        await self._create_topics()
                        break
                    except Exception as exc:
                        log.error("creating the topics in the new cluster failed, trying again: %r", exc)
                        await self.app.sleep(BROKER_RETRY_DELAYS_S[-1])
                        if self.app.should_stop:
                            return
                self._set_cluster(cluster)
            consumer.cluster_checked(closes)

    def _set_cluster(self, cluster: str | None) -> None:
        self.cluster = cluster
        if cluster is not None:
            self._rebase(cluster)

    async def _create_topics(self) -> None:
        outcomes = await ensure_topics(self.settings, dict(self._topics()), compacted=list(self._compacted()))
        for topic, outcome in outcomes.items():
            log.info("topic %s: %s", topic, outcome)

    async def _answering_cluster(self, waiter: Service) -> str | None:
        """The id of the cluster at the bootstrap address, asked until it answers or ``waiter`` stops."""
        bootstrap = self.settings.bootstrap
        started, logged_at = time.monotonic(), float("-inf")
        attempt = 0
        while True:
            attempt += 1
            try:
                # aiokafka logs every refused connection at ERROR: one line below says it all.
                with _silenced("aiokafka"):
                    cluster = await asyncio.wait_for(cluster_id(self.settings), BROKER_CHECK_TIMEOUT_S)
                self.waiting = None
                return cluster
            except Exception as exc:
                delay = BROKER_RETRY_DELAYS_S[min(attempt, len(BROKER_RETRY_DELAYS_S)) - 1]
                reason = _describe(exc)
                self.waiting = f"waiting for a Kafka broker at {bootstrap}: attempt {attempt} failed ({reason})"
                if time.monotonic() - logged_at >= BROKER_WAIT_LOG_INTERVAL_S:
                    logged_at = time.monotonic()
                    log.warning(
                        "waiting for a Kafka broker at %s: attempt %d failed after %.0fs (%s); next attempt in "
                        "%gs, then every %gs. Check that the broker is running and reachable from this host, and "
                        "CORRIDOR_KAFKA_BOOTSTRAP and its SASL/TLS settings",
                        bootstrap, attempt, logged_at - started, reason, delay, BROKER_RETRY_DELAYS_S[-1],
                    )
                await waiter.sleep(delay)
                if waiter.should_stop:
                    return None


@contextmanager
def _silenced(logger: str) -> Iterator[None]:
    def drop(record: logging.LogRecord) -> bool:
        return False

    target = logging.getLogger(logger)
    target.addFilter(drop)
    try:
        yield
    finally:
        target.removeFilter(drop)


def _describe(error: BaseException) -> str:
    name, text = type(error).__name__, str(error)
    return text if text.startswith(name) else f"{name}: {text}" if text else name
