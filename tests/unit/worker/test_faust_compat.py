"""The faust internals streams/worker/faust_compat.py relies on: this fails when an upgrade removes one."""

from __future__ import annotations

import inspect

import faust
from faust.streams import _current_event
from faust.transport import base as faust_transport
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_kafka

from streams.worker import faust_compat


def test_the_current_event_is_a_context_variable_of_weak_references():
    assert _current_event.get(None) is None
    assert "_current_event" in inspect.getsource(faust.streams.Stream._py_aiter)


def test_the_consumer_keeps_committed_and_read_offsets_where_the_worker_looks():
    source = inspect.getsource(faust_consumer.Consumer)
    assert "self._committed_offset = defaultdict(lambda: None)" in source
    assert "self._read_offset = defaultdict(lambda: None)" in source
    drain = inspect.getsource(faust_consumer.Consumer._drain_messages)
    # Records below the read offset are dropped, and offset jumps count as acknowledged gaps,
    # both only while a read offset is known.
    assert "get_read_offset = self._read_offset.__getitem__" in drain
    assert "if r_offset is None or offset >= r_offset:" in drain
    assert "if gap > 1 and r_offset:" in drain


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


def test_only_checkpointed_acks_count_and_no_read_offset_is_kept():
    class Message:
        acked = False

    consumer = object.__new__(faust_compat.Consumer)
    assert consumer.ack(Message()) is False
    unread = faust_compat._Unread()
    unread.update({"tp": 5})
    assert unread["tp"] is None and unread.pop("tp", None) is None and list(unread) == []
