"""The faust internals streams/worker/faust_compat.py relies on: this fails when an upgrade removes one."""

from __future__ import annotations

import contextlib
import inspect
import uuid

import aiokafka
import faust
import mode
import pytest
from aiokafka.structs import ConsumerRecord
from faust.stores import rocksdb as faust_rocksdb
from faust.streams import _current_event
from faust.tables import manager as faust_tables
from faust.tables import recovery as faust_recovery
from faust.transport import base as faust_transport
from faust.transport import conductor as faust_conductor
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP

from streams.worker import faust_compat


def test_the_current_event_is_a_context_variable_of_weak_references():
    assert _current_event.get(None) is None
    assert "_current_event" in inspect.getsource(faust.streams.Stream._py_aiter)


def test_the_consumer_keeps_committed_offsets_where_the_worker_looks():
    source = inspect.getsource(faust_consumer.Consumer)
    assert "self._committed_offset = defaultdict(lambda: None)" in source
    # Updated by every commit attempt and by each seek to the committed offsets.
    assert "self._committed_offset.update(committable_offsets)" in inspect.getsource(
        faust_consumer.Consumer._commit_offsets)
    assert "self._committed_offset.update(committed_offsets)" in inspect.getsource(
        faust_consumer.Consumer.perform_seek)


def test_the_fetcher_runs_the_consumer_drain_loop_the_worker_replaces():
    assert "await consumer._drain_messages(self)" in inspect.getsource(faust_consumer.Fetcher._fetcher.fun)
    assert list(inspect.signature(faust_consumer.Consumer._drain_messages).parameters) == ["self", "fetcher"]
    drain = inspect.getsource(faust_consumer.Consumer._drain_messages)
    assert "callback(message)" in drain and "self.suspend_flow.wait()" in drain
    assert "set_flag(flag_consumer_fetching)" in drain and "except self.consumer_stopped_errors:" in drain
    # What the replacement does for a fetch, as faust's getmany does: one fetch as a mapping of
    # partition to records, dropped from where a new generation or a stopped flow overtakes it,
    # and a seek back to the committed offsets for a fetch that arrived while the flow was stopped.
    assert list(inspect.signature(faust_consumer.Consumer._wait_next_records).parameters) == ["self", "timeout"]
    assert "return records, active_partitions" in inspect.getsource(faust_consumer.Consumer._wait_next_records)
    getmany = inspect.getsource(faust_consumer.Consumer.getmany)
    assert "self.app.consumer_generation_id" in getmany and "if not self.flow_active:" in getmany
    assert "tp in self._buffered_partitions" in getmany and "await self.perform_seek()" in getmany
    assert "to_message(tp, record)" in getmany
    assert "timestamp / 1000.0" in inspect.getsource(faust_kafka.Consumer._to_message)
    assert "wait_until_producer_ebb = app.producer.buffer.wait_until_ebb" in inspect.getsource(
        faust_conductor.ConductorCompiler.build)


def test_commits_take_their_partitions_and_offsets_from_what_the_worker_overrides():
    assert "self._filter_tps_with_pending_acks(topics)" in inspect.getsource(faust_consumer.Consumer.force_commit)
    committable = inspect.getsource(faust_consumer.Consumer._filter_committable_offsets)
    assert "offset = self._new_offset(tp)" in committable and "self._should_commit(tp, offset)" in committable
    # The app's revocation (its wait for acknowledgements and final commit included) runs inside the
    # consumer's, which the worker's override wraps.
    revoked = inspect.getsource(faust_consumer.Consumer.on_partitions_revoked)
    assert "await T(self._on_partitions_revoked, partitions=revoked)(revoked)" in revoked
    assert "self.on_partitions_revoked," in inspect.getsource(
        faust_consumer.ThreadDelegateConsumer.threadsafe_partitions_revoked)


def test_the_fetch_wait_is_set_where_faust_builds_the_kafka_consumer_and_aiokafka_reads_it():
    assert "return AIOKafkaConsumerThread(self, loop=self.loop, beacon=self.beacon)" in inspect.getsource(
        faust_kafka.Consumer._new_consumer_thread)
    built = inspect.getsource(faust_kafka.AIOKafkaConsumerThread._create_worker_consumer)
    assert "return aiokafka.AIOKafkaConsumer(" in built and "fetch_max_wait_ms=" in built
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in inspect.getsource(aiokafka.AIOKafkaConsumer.__init__)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms," in inspect.getsource(aiokafka.AIOKafkaConsumer.start)


async def test_the_worker_consumer_asks_the_broker_to_hold_fetches_briefly():
    consumer = Drain().consumer
    thread = consumer._thread
    assert isinstance(thread, faust_compat._ConsumerThread)
    kafka_consumer = thread._create_worker_consumer(consumer.transport)
    assert kafka_consumer._fetch_max_wait_ms == faust_compat.FETCH_MAX_WAIT_MS == 100


def test_topics_added_when_the_app_starts_are_subscribed():
    # mode starts a service's children (the conductor among them) after its on_start.
    start = inspect.getsource(mode.Service._actually_start)
    assert start.index("await self.on_start()") < start.index("await child.maybe_start()")
    assert inspect.iscoroutinefunction(faust.App.on_start)
    subscriber = inspect.getsource(faust_conductor.Conductor._subscriber.fun)
    assert "await self.app.consumer.subscribe(await self._update_indices())" in subscriber
    assert "topics = list(self._topics)" in inspect.getsource(faust_conductor.Conductor._update_indices)


def test_the_rocksdb_store_writes_to_the_partition_of_the_current_event():
    source = inspect.getsource(faust_rocksdb.Store._set)
    assert "event = current_event()" in source and "partition = event.message.partition" in source
    with faust_compat.acting_for(3):
        event = faust.streams.current_event()
        assert event is not None and event.message.partition == 3
    assert faust.streams.current_event() is None


def test_streams_still_acknowledge_the_records_they_skip():
    # The reason the worker's consumer ignores faust's own acks: a stream acks records it
    # skips (flow suspended, older generation) without handing them to the agent.
    source = inspect.getsource(faust.streams.Stream._py_aiter)
    assert "value = skipped_value" in source and "do_ack or value is skipped_value" in source


def test_the_transport_builds_the_worker_consumer():
    assert faust_compat.Transport.Consumer is faust_compat.Consumer
    assert issubclass(faust_compat.Consumer, faust_kafka.Consumer)
    assert "def _new_transport" in inspect.getsource(faust.App)
    assert "async def _consumer_wait_empty" in inspect.getsource(faust.App)


def test_the_app_overrides_what_faust_calls_for_its_transport_and_drain():
    assert issubclass(faust_compat.App, faust.App)
    # The consumer transport comes from _new_transport(), built from (urls, app).
    assert list(inspect.signature(faust.App._new_transport).parameters) == ["self"]
    assert "self._new_transport()" in inspect.getsource(faust.App.transport.fget)
    assert list(inspect.signature(faust_transport.Transport.__init__).parameters)[:3] == ["self", "url", "app"]
    assert "self.conf.broker_consumer" in inspect.getsource(faust.App._new_transport)
    # Before a rebalance gives partitions up, and at shutdown, faust waits in _consumer_wait_empty.
    assert inspect.iscoroutinefunction(faust.App._consumer_wait_empty)
    assert list(inspect.signature(faust.App._consumer_wait_empty).parameters) == ["self", "consumer", "logger"]
    assert "T(self._consumer_wait_empty)(consumer" in inspect.getsource(faust.App._on_partitions_revoked)
    assert "self._consumer_wait_empty(consumer" in inspect.getsource(faust.App._stop_consumer)


def test_the_tables_recover_with_the_worker_recovery_which_notes_the_generation_it_restored():
    app = faust_compat.App(f"compat-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1", store="memory://")
    assert isinstance(app.tables, faust_compat.TableManager)
    assert isinstance(app.tables.recovery, faust_compat.Recovery) and app.tables.recovery is app.tables.recovery
    assert faust_compat.restored_generation(app) is None
    # faust builds the table manager from its TableManager setting, and the recovery it runs from _recovery.
    assert "self.conf.TableManager(" in inspect.getsource(faust.App)
    assert "self._recovery = Recovery(" in inspect.getsource(faust_tables.TableManager.recovery.fget)
    # A run ends in on_recovery_completed with the generation it restored, which calls the tables'
    # recovery callbacks (even when a newer rebalance then cancels it) before comparing generations.
    run = inspect.getsource(faust_recovery.Recovery._restart_recovery.fun)
    assert "generation_id = self._generation_id" in run
    assert "T(self.on_recovery_completed)(generation_id)" in run
    completed = inspect.getsource(faust_recovery.Recovery.on_recovery_completed)
    assert list(inspect.signature(faust_recovery.Recovery.on_recovery_completed).parameters) == [
        "self", "generation_id"]
    assert completed.index("table.on_recovery_completed(") < completed.index(
        "self.app.consumer_generation_id != generation_id")
    callbacks = inspect.getsource(faust.tables.base.Collection.on_recovery_completed)
    assert "await self.call_recover_callbacks()" in callbacks


async def test_the_worker_recovery_notes_the_generation_before_the_table_callbacks_run():
    app = faust_compat.App(f"compat-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table(f"t-{uuid.uuid4().hex[:8]}", key_type=bytes, value_type=bytes)
    seen = []

    async def restored() -> None:
        seen.append(faust_compat.restored_generation(app))

    table.on_recover(restored)
    # faust goes on to resume the partitions of the consumer, which has not started here.
    with contextlib.suppress(faust.exceptions.ConsumerNotStarted):
        await app.tables.recovery.on_recovery_completed(7)
    assert seen == [7]


def test_faust_acknowledgements_are_ignored():
    class Message:
        acked = False

    consumer = object.__new__(faust_compat.Consumer)
    assert consumer.ack(Message()) is False


def fetched(topic: str, partition: int, *offsets: int) -> list[ConsumerRecord]:
    return [ConsumerRecord(topic=topic, partition=partition, offset=offset, timestamp=1_000 * offset, timestamp_type=0,
                           key=None, value=b"{}", checksum=None, serialized_key_size=0, serialized_value_size=2,
                           headers=()) for offset in offsets]


class Drain:
    """The app's consumer, draining scripted fetches without a broker."""

    def __init__(self) -> None:
        self.app = faust_compat.App(f"compat-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1",
                                    store="memory://")
        self.consumer = self.app.consumer
        self.batches: list[tuple[int, list[int]]] = []
        self.messages: list[tuple[str, int]] = []
        self.seeks = 0
        self.consumer.batch_handlers["corridor.a"] = self.batch
        self.consumer.callback = self.callback
        self.consumer.perform_seek = self.perform_seek

    def batch(self, partition: int, records) -> None:
        self.batches.append((partition, [r.offset for r in records]))

    async def callback(self, message) -> None:
        self.messages.append((message.topic, message.offset))

    async def perform_seek(self) -> None:
        self.seeks += 1

    async def run(self, *fetches: dict) -> None:
        pending = list(fetches)
        fetcher = self.app._fetcher

        async def wait_next_records(timeout: float):
            if not pending:
                fetcher._stopped.set()
                return {}, None
            return pending.pop(0), None

        self.consumer._wait_next_records = wait_next_records
        await self.consumer._drain_messages(fetcher)


async def test_batch_topics_reach_their_handler_per_partition_and_other_topics_the_conductor():
    drain = Drain()
    await drain.run(
        {TP("corridor.a", 0): fetched("corridor.a", 0, 4, 5, 6), TP("changelog", 1): fetched("changelog", 1, 9, 10),
         TP("corridor.a", 2): fetched("corridor.a", 2, 0)},
        {TP("corridor.a", 0): fetched("corridor.a", 0, 7)},
    )
    assert drain.batches == [(0, [4, 5, 6]), (2, [0]), (0, [7])]
    assert drain.messages == [("changelog", 9), ("changelog", 10)]


async def test_a_fetch_overtaken_by_a_rebalance_is_dropped_from_there_and_one_while_stopped_seeks_back():
    drain = Drain()
    consumer = drain.consumer

    def new_generation(partition: int, records) -> None:
        Drain.batch(drain, partition, records)
        drain.app.consumer_generation_id += 1

    consumer.batch_handlers["corridor.a"] = new_generation
    await drain.run({TP("corridor.a", 0): fetched("corridor.a", 0, 1),
                     TP("corridor.a", 1): fetched("corridor.a", 1, 1)})
    assert drain.batches == [(0, [1])] and drain.seeks == 0

    drain = Drain()
    drain.consumer.stop_flow()
    await drain.run({TP("corridor.a", 0): fetched("corridor.a", 0, 1)})
    assert drain.batches == [] and drain.seeks == 1


async def test_commits_move_only_to_what_the_worker_marked_and_forget_revoked_partitions():
    consumer = Drain().consumer
    ours, other = TP("corridor.a", 0), TP("corridor.a", 1)
    consumer._acked[other].extend([0, 1, 2])  # faust's own bookkeeping is never committed
    consumer.commit_up_to(ours, 8)
    consumer.commit_up_to(ours, 5)
    assert consumer._filter_committable_offsets(consumer._filter_tps_with_pending_acks()) == {ours: 8}
    consumer._committed_offset[ours] = 8
    assert consumer._filter_committable_offsets(consumer._filter_tps_with_pending_acks()) == {}
    assert list(consumer._filter_tps_with_pending_acks({"elsewhere"})) == []

    async def revoked_by_the_app(revoked) -> None:
        pass

    consumer._on_partitions_revoked = revoked_by_the_app
    consumer.app._start_span_from_rebalancing = lambda name: contextlib.nullcontext()
    await consumer.on_partitions_revoked({ours})
    assert list(consumer._filter_tps_with_pending_acks()) == []


def test_the_web_server_and_the_before_kafka_hook_start_ahead_of_every_kafka_client():
    app = faust_compat.App(f"compat-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1", store="memory://")
    assert isinstance(app.boot_strategy, faust_compat.BootStrategy)
    # faust starts the app's children in the order its boot strategy lists them.
    assert "return self.boot_strategy.server()" in inspect.getsource(faust.App.on_init_dependencies)
    assert "for child in self._children" in inspect.getsource(mode.Service._actually_start)
    services = app.boot_strategy.server()
    kinds = [type(service) for service in services]
    first_kafka = min(services.index(app.producer), services.index(app.consumer))
    assert services.index(app.web) < kinds.index(faust_compat._BeforeKafka) < first_kafka
    assert set(map(id, services)) >= set(map(id, faust.App.BootStrategy(app).server()))


async def test_the_before_kafka_hook_runs_when_its_service_starts():
    app = faust_compat.App(f"compat-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1", store="memory://")
    seen = []

    async def hook(waiter: mode.Service) -> None:
        seen.append(waiter.should_stop)

    app.before_kafka = hook
    await faust_compat._BeforeKafka(app).on_start()
    assert seen == [False]


async def test_a_closed_connection_of_the_kafka_consumer_is_reported():
    # aiokafka hands its client's close callback to every connection it opens.
    assert "on_close=self._on_connection_closed," in inspect.getsource(aiokafka.AIOKafkaClient._get_conn)
    assert list(inspect.signature(aiokafka.AIOKafkaClient._on_connection_closed).parameters) == [
        "self", "conn", "reason"]
    consumer = Drain().consumer
    kafka_consumer = consumer._thread._create_worker_consumer(consumer.transport)
    assert not consumer.cluster_unchecked
    kafka_consumer._client._on_connection_closed(object(), aiokafka.conn.CloseReason.CONNECTION_BROKEN)
    assert consumer.cluster_unchecked and consumer.connection_closes == 1


async def test_after_a_closed_connection_nothing_is_delivered_or_committed_before_the_cluster_is_checked():
    drain = Drain()
    consumer = drain.consumer
    ours = TP("corridor.a", 0)
    consumer.commit_up_to(ours, 8)
    consumer.connection_closed()
    assert list(consumer._filter_tps_with_pending_acks()) == []
    checks = []

    async def check() -> None:
        checks.append(list(drain.batches))
        consumer.cluster_checked(consumer.connection_closes)

    drain.app.on_reconnect = check
    await drain.run({ours: fetched("corridor.a", 0, 0, 1)}, {ours: fetched("corridor.a", 0, 2)})
    assert checks == [[]] and drain.batches == [(0, [0, 1]), (0, [2])]
    assert consumer._filter_committable_offsets(consumer._filter_tps_with_pending_acks()) == {ours: 8}
    # Commits of a topic that is gone are forgotten, the group's included.
    consumer._committed_offset[ours] = 8
    consumer.forget_commits(ours)
    assert list(consumer._filter_tps_with_pending_acks()) == [] and consumer._committed_offset.get(ours) is None


async def test_a_consumer_that_does_not_watch_clusters_delivers_and_commits_after_a_closed_connection():
    drain = Drain()
    consumer = drain.consumer
    consumer.watch_clusters = False  # Apache Kafka: a reconnect is to the same cluster
    ours = TP("corridor.a", 0)
    consumer.commit_up_to(ours, 8)
    consumer.connection_closed()
    assert not consumer.cluster_unchecked

    async def check() -> None:
        raise AssertionError("no cluster check is due")

    drain.app.on_reconnect = check
    await drain.run({ours: fetched("corridor.a", 0, 0, 1)})
    assert drain.batches == [(0, [0, 1])]
    assert consumer._filter_committable_offsets(consumer._filter_tps_with_pending_acks()) == {ours: 8}


def test_the_producer_batch_size_is_read_where_faust_builds_the_kafka_producer():
    app = faust.App(f"compat-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1", producer_max_batch_size=16_384)
    producer = app.producer  # faust builds it from the settings before the worker knows the broker
    faust_compat.set_producer_batch_size(app, 1)
    assert app.conf.producer_max_batch_size == 1
    assert producer._settings_default()["max_batch_size"] == 1


async def test_the_topics_the_worker_writes_are_tracked_in_its_producer_metadata():
    # aiokafka tracks a topic only when it was missing from the metadata it has (the cause of the fix).
    assert "partitions = self.cluster.partitions_for_topic(topic)\n        if partitions is not None:\n" \
        "            return partitions" in inspect.getsource(aiokafka.AIOKafkaClient._wait_on_metadata)
    # faust's Kafka producer keeps its aiokafka producer here once started.
    assert "self._producer = self._new_producer()" in inspect.getsource(faust_kafka.Producer.on_start)
    app = faust.App(f"compat-{uuid.uuid4().hex[:8]}", broker="kafka://127.0.0.1:1")
    with pytest.raises(RuntimeError, match="has not started"):
        faust_compat.track_producer_topics(app, ["x"])
    app.producer._producer = aiokafka.AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    try:
        faust_compat.track_producer_topics(app, ["state-shipments-changelog", "corridor.deadletter.v1"])
        assert {"state-shipments-changelog", "corridor.deadletter.v1"} <= app.producer._producer.client._topics
    finally:
        await app.producer._producer.stop()
