"""The faust internals the worker relies on, in one place.

Each is checked by tests/unit/worker/test_faust_compat.py, which fails when a faust
upgrade removes or renames it.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP, EventT, Message


class _Unread(MutableMapping[TP, int | None]):
    """A read-offset table that remembers nothing."""

    def __getitem__(self, tp: TP) -> None:
        return None

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        pass

    def __delitem__(self, tp: TP) -> None:
        pass

    def __iter__(self) -> Iterator[TP]:
        return iter(())

    def __len__(self) -> int:
        return 0


class Consumer(faust_kafka.Consumer):
    """faust's Kafka consumer, committing only offsets the worker acknowledged itself.

    faust acknowledges on its own every record its streams skip (those fetched while flow
    is suspended during a rebalance, and those of an older consumer generation), and counts
    offsets it saw no record for as acknowledged: either lets the committed offset pass
    records no checkpoint holds. Here only :meth:`ack_checkpointed` counts.

    faust also drops every fetched record below the last offset it read, so a record
    fetched before a seek and read after it hides the records the seek fetches again. The
    read offsets are not kept: every fetched record reaches the worker, which skips the
    ones its state holds and seeks back when one is missing (streams/core/sequence.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _Unread()

    def ack(self, message: Message) -> bool:
        return False

    def ack_checkpointed(self, message: Message) -> bool:
        """Mark a record that a confirmed checkpoint holds as safe to commit."""
        return bool(super().ack(message))


class Transport(faust_kafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """faust's App with the worker's consumer (:class:`Consumer`), and a hook that runs
    whenever faust waits for every consumed record to be acknowledged: before a rebalance
    gives partitions up, and when the worker stops."""

    before_drain: Callable[[], Awaitable[None]] | None = None

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        # At shutdown faust stops its timers before it waits, so the last records would
        # wait for a checkpoint that never comes.
        if self.before_drain is not None:
            await self.before_drain()
        await super()._consumer_wait_empty(consumer, logger)


@contextmanager
def acting_for(event: EventT[Any]) -> Iterator[None]:
    """Make ``event`` the current one, as inside stream iteration.

    faust's RocksDB store picks the partition database of a write from the current event;
    checkpoints are stored from a task, so the partition's last record stands in for it.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def committed_offset(consumer: Any, tp: TP) -> int | None:
    """The committed offset faust last read or wrote for ``tp``."""
    offset = consumer._committed_offset.get(tp)
    return None if offset is None else int(offset)
