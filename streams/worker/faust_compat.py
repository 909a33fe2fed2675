"""The faust internals the worker relies on, in one place.

Each is checked by tests/unit/worker/test_faust_compat.py, which fails when a faust
upgrade removes or renames it.
"""

from __future__ import annotations

import asyncio
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import faust
from faust.app.base import BootStrategy as FaustBootStrategy
from faust.exceptions import AlreadyConfiguredWarning
from faust.streams import _current_event
from faust.tables import manager as faust_tables
from faust.tables import recovery as faust_recovery
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP, ConsumerT, Message, TopicT
from mode import Service, ServiceT

from streams.worker.seams import Record

#: Takes one partition's records of one fetch, in offset order.
BatchHandler = Callable[[int, Sequence[Record]], None]


#: How long the broker may hold a fetch that finds no new records (faust asks for 1.5 s). The
#: consumer fetches from one broker one request at a time, and a partition whose records the
#: worker has just taken is fetched again only once the request in flight returns, so a
#: request holding partitions at their end stalls the busy ones behind it.
FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by the fetcher it builds when it starts
        watch_connections(consumer._client, cast("Consumer", self.consumer).connection_closed)
        return consumer


def track_producer_topics(app: faust.App, topics: Iterable[str]) -> None:
    """Keep ``topics`` in the metadata of ``app``'s started producer.

    aiokafka's producer looks a topic up in the metadata it has before it tracks it; one it
    learnt from a request for every topic is never tracked, and drops out of the metadata once
    the client tracks any topic at all (its requests then name only those). A batch for such a
    topic waits for a leader the producer never learns: on Apache Kafka a changelog whose
    checkpoints were never confirmed. (The embedded broker answers every topic whatever is
    asked, which hid this.)
    """
    producer = cast(faust_kafka.Producer, app.producer)._producer
    if producer is None:
        raise RuntimeError("the app's producer has not started")
    for topic in topics:
        producer.client.add_topic(topic)


def set_producer_batch_size(app: faust.App, max_batch_size: int) -> None:
    """Set the largest produce batch (bytes) of ``app``'s producer, which faust built from the
    settings already; read when the producer starts its aiokafka producer."""
    with warnings.catch_warnings():
        # faust warns that the producer was built with the old value: it is set there too.
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.conf.producer_max_batch_size = max_batch_size
    app.producer.max_batch_size = max_batch_size


def watch_connections(client: Any, closed: Callable[[], None]) -> None:
    """Call ``closed`` whenever one of ``client``'s broker connections closes.

    aiokafka reconnects on its own and says nothing to its user; a closed connection is the
    first sign that the broker may have restarted, possibly as a new cluster.
    """
    on_connection_closed = client._on_connection_closed

    def on_close(conn: Any, reason: Any) -> None:
        closed()
        on_connection_closed(conn, reason)

    # Read by every connection the client opens from now on.
    client._on_connection_closed = on_close


class Consumer(faust_kafka.Consumer):
    """faust's Kafka consumer, handing the worker's topics over in batches and committing
    only what the worker marked as committable.

    faust's fetcher hands every record to its conductor, which decodes it into an event
    and queues it for an agent's stream, one record at a time: that per-message path holds
    even an agent that only counts to some 15,000 records/s. Here the records of the topics registered
    with :meth:`App.consume_in_batches` go straight from each fetch to their handler, one
    call per partition with the records in offset order; the other topics (the tables'
    changelogs while they recover) still go through the conductor. faust keeps the group
    membership, rebalances, table recovery and the commit timer.

    faust's own acknowledgements are ignored: it acknowledges the records its streams skip
    around a rebalance, and counts offsets it saw no record for as acknowledged, either of
    which would let the committed offset pass records no checkpoint holds. A commit moves a
    partition to the offset given to :meth:`commit_up_to` and nowhere else.

    A fetch overtaken by a rebalance (the flow stopped, or a new generation) is dropped
    from where it was overtaken, as faust drops it; the records are read again from the
    committed offsets after the rebalance, and the worker seeks back itself should any
    record be passed over (streams/core/sequence.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The handler of each topic consumed in batches, by topic name.
        self.batch_handlers: dict[str, BatchHandler] = {}
        #: Per partition, the offset a commit may move it to.
        self._committable: dict[TP, int] = {}
        #: Broker connections closed (counted from the consumer's thread), and how many of those
        #: closes the app has checked which cluster answers since. Until it has, no fetched record
        #: is handed over and nothing is committed.
        self.connection_closes = 0
        self._closes_checked = 0
        #: Whether a closed connection waits for that check; off for a broker that keeps its log across
        #: restarts (Apache Kafka), where a reconnect is never to another cluster.
        self.watch_clusters = True

    def connection_closed(self) -> None:
        if self.watch_clusters:
            self.connection_closes += 1

    @property
    def cluster_unchecked(self) -> bool:
        return self.connection_closes > self._closes_checked

    def cluster_checked(self, closes: int) -> None:
        """The app knows which cluster answered after the first ``closes`` closed connections."""
        self._closes_checked = max(self._closes_checked, closes)

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Message) -> bool:
        return False

    def commit_up_to(self, tp: TP, offset: int) -> None:
        """Let commits move ``tp`` up to ``offset``: a confirmed checkpoint holds every record before it."""
        if offset > self._committable.get(tp, -1):
            self._committable[tp] = offset

    def forget_commits(self, tp: TP) -> None:
        """Drop what ``tp`` may be committed to and was committed to: both counted in a topic that is gone."""
        self._committable.pop(tp, None)
        self._committed_offset.pop(tp, None)

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        if self.cluster_unchecked:
            # Offsets of a cluster the broker may no longer be: committed once it is known.
            return iter(())
        return (tp for tp in list(self._committable)
                if topics is None or tp in topics or tp.topic in topics)

    def _new_offset(self, tp: TP) -> int | None:
        return self._committable.get(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # faust commits what the worker checkpointed while it revokes (wait_empty); a
        # partition given back later starts again from the group's committed offset.
        await super().on_partitions_revoked(revoked)
        for tp in revoked:
            self._committable.pop(tp, None)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        """faust's fetch loop (``Consumer._drain_messages``), handing batch topics over per partition."""
        callback = self.callback
        handlers = self.batch_handlers
        app = self.app
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set  # faust runs it from its Fetcher service
        wait_until_producer_ebb = app.producer.buffer.wait_until_ebb
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                generation = app.consumer_generation_id
                # getmany may return at once, again and again: let the loop run in between.
                await self.sleep(0)
                if records and not self.should_stop:
                    if self.flow_active:
                        await self._deliver(records, active, generation, handlers, callback)
                        await wait_until_producer_ebb()
                    else:
                        # Fetched while a rebalance stops the flow: the fetch position passed
                        # records nobody handled, so it goes back to the committed offsets.
                        await self._seek_back_to_committed()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, records: Mapping[TP, Sequence[Record]], active: set[TP] | None, generation: int,
                       handlers: dict[str, BatchHandler], callback: Callable[[Message], Awaitable[Any]]) -> None:
        app = self.app
        if self.cluster_unchecked and isinstance(app, App) and app.on_reconnect is not None:
            # Records from a broker that came back must not be applied before the app knows
            # whether it is the same cluster: a new one numbers its topics from 0 again.
            await app.on_reconnect()
            if self.cluster_unchecked:
                return  # the worker is stopping
        for tp, batch in records.items():
            if not self.flow_active or app.consumer_generation_id != generation:
                return  # overtaken by a rebalance: the rest is read again after it
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue  # paused meanwhile
            handler = handlers.get(tp.topic)
            if handler is not None:
                handler(tp.partition, batch)
                await asyncio.sleep(0)
                continue
            for record in batch:
                if not self.flow_active or app.consumer_generation_id != generation:
                    return
                await self.wait_first(callback(self._to_message(tp, record)), self.suspend_flow.wait())

    async def _seek_back_to_committed(self) -> None:
        try:
            await self.perform_seek()
        except Exception as exc:
            self.log.warning("seek to the committed offsets failed: %r", exc)


class Transport(faust_kafka.Transport):
    Consumer = Consumer


class _BeforeKafka(Service):
    """Runs the app's ``before_kafka`` hook: started after the web server, before any Kafka client."""

    def __init__(self, app: App, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app

    async def on_start(self) -> None:
        if self.app.before_kafka is not None:
            await self.app.before_kafka(self)


class BootStrategy(FaustBootStrategy):
    """faust's start order with the web server moved ahead of the Kafka clients, and the app's
    ``before_kafka`` hook between them: faust starts its producer first, which fails at once when
    no broker answers, and the probes must answer while the worker waits for one."""

    app: App

    def server(self) -> list[ServiceT]:
        web = list(self.web_server())
        services = [service for service in super().server() if service not in web]
        producers = list(self.kafka_producer())
        first = services.index(producers[0]) if producers else len(services)
        return [*services[:first], *web, _BeforeKafka(self.app, loop=self.app.loop), *services[first:]]


class Recovery(faust_recovery.Recovery):
    """faust's table recovery, noting the consumer generation whose assignment each completed run restored.

    faust calls the tables' recovery callbacks from a run that a newer rebalance may already have
    overtaken: the consumer's thread takes the new assignment (the assignor's and its own) before the
    app is told, and the callbacks of a run cancelled by a rebalance run on. Such a run restored only
    the older assignment's partitions, so a callback compares ``restored_generation`` with the
    generation of the assignment it means to take.
    """

    #: The consumer generation of the assignment the last completed run restored (None before the first).
    restored_generation: int | None = None

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self.restored_generation = generation_id
        await super().on_recovery_completed(generation_id)


class TableManager(faust_tables.TableManager):
    """faust's table manager, recovering with :class:`Recovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return cast(Recovery, self._recovery)


def restored_generation(app: faust.App) -> int | None:
    """The consumer generation whose assignment ``app``'s last completed table recovery restored."""
    return cast(TableManager, app.tables).recovery.restored_generation


class App(faust.App):
    """faust's App with the worker's consumer (:class:`Consumer`), its tables' recovery (:class:`Recovery`),
    topics consumed in batches, and hooks:

    - ``before_drain`` runs whenever faust waits for every consumed record to be acknowledged:
      before a rebalance gives partitions up, and when the worker stops;
    - ``before_kafka`` runs once at start, with the web server up and no Kafka client started
      yet (it is given a service whose ``sleep`` and ``should_stop`` follow the worker's stop);
    - ``on_reconnect`` runs after a broker connection of the consumer closed, before the next
      fetch is handed over.
    """

    BootStrategy = BootStrategy
    before_drain: Callable[[], Awaitable[None]] | None = None
    before_kafka: Callable[[Service], Awaitable[None]] | None = None
    on_reconnect: Callable[[], Awaitable[None]] | None = None
    _batch_topics: dict[str, tuple[TopicT, BatchHandler]] | None = None

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, TableManager=TableManager, **options)

    def consume_in_batches(self, topic: TopicT, handler: BatchHandler) -> None:
        """Subscribe to ``topic`` and hand its records to ``handler``, bypassing faust's streams."""
        if self._batch_topics is None:
            self._batch_topics = {}
        self._batch_topics[topic.get_topic_name()] = (topic, handler)

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    async def on_start(self) -> None:
        await super().on_start()
        # Before the conductor starts: it subscribes the consumer to every topic added by then.
        consumer = self.consumer
        if not isinstance(consumer, Consumer):
            raise TypeError(f"the app's consumer is a {type(consumer).__name__}, not the worker's own Consumer")
        for name, (topic, handler) in (self._batch_topics or {}).items():
            consumer.batch_handlers[name] = handler
            self.topics.add(topic)

    async def _consumer_wait_empty(self, consumer: ConsumerT, logger: Any) -> None:
        # At shutdown faust stops its timers before it waits, so the last records would
        # wait for a checkpoint that never comes.
        if self.before_drain is not None:
            await self.before_drain()
        await super()._consumer_wait_empty(consumer, logger)


class _StandIn:
    """Stands in for the current event: the store reads the partition of its message."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, partition: int) -> None:
        self.message = _StandInMessage(partition)


class _StandInMessage:
    __slots__ = ("partition",)

    def __init__(self, partition: int) -> None:
        self.partition = partition


@contextmanager
def acting_for(partition: int) -> Iterator[None]:
    """Make a record of ``partition`` the current event, as inside stream iteration.

    faust's RocksDB store picks the partition database of a write from the current event;
    checkpoints are stored from a task, outside any stream.
    """
    stand_in = _StandIn(partition)
    token = _current_event.set(weakref.ref(stand_in))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)


def committed_offset(consumer: Consumer, tp: TP) -> int | None:
    """The committed offset faust last read or wrote for ``tp``."""
    offset = consumer._committed_offset.get(tp)
    return None if offset is None else int(offset)
