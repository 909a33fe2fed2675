"""The protocols of ``streams/worker/seams.py`` over faust's consumer, table and topics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import cast

import faust
from faust.types import TP, StoreT, TableT

from streams.core.checkpoint import Checkpoint
from streams.worker.faust_compat import Consumer, acting_for, committed_offset


class ConsumerOffsets:
    """The offset gate of one topic: the worker's own consumer (``faust_compat.Consumer``)."""

    def __init__(self, topic: str, consumer: Callable[[], Consumer]) -> None:
        self.topic = topic
        #: The app's consumer, looked up at each use: faust builds it when the app starts.
        self._consumer = consumer

    def committed(self, partition: int) -> int | None:
        return committed_offset(self._consumer(), TP(self.topic, partition))

    def commit_up_to(self, partition: int, offset: int) -> None:
        self._consumer().commit_up_to(TP(self.topic, partition), offset)

    def forget_commits(self, partition: int) -> None:
        self._consumer().forget_commits(TP(self.topic, partition))

    async def seek(self, partition: int, offset: int) -> None:
        # seek_wait moves the position from the consumer's own thread and waits until it moved.
        await self._consumer().seek_wait({TP(self.topic, partition): offset})


class TableChangelog:
    """Writes checkpoints to a table's changelog and, once the broker confirmed them, to its store."""

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self.table = table

    @property
    def topic(self) -> str:
        return self.table.changelog_topic.get_topic_name()

    async def write(self, checkpoint: Checkpoint) -> int:
        """Send the records in order; returns the changelog offset of the last once all are confirmed."""
        topic = self.table.changelog_topic
        sent = [
            await topic.send(key=key, value=value, partition=checkpoint.partition,
                             key_serializer="raw", value_serializer="raw", force=True)
            for key, value in checkpoint.records
        ]
        confirmed = await asyncio.gather(*sent)
        return confirmed[-1].offset

    def store(self, checkpoint: Checkpoint, changelog_offset: int) -> None:
        """Apply confirmed records to the local store, then remember how far the changelog is held.

        The store never holds what the changelog lacks, so faust's recovery, which reads
        the changelog from the stored offset on, always ends with the changelog's state.
        """
        data = cast(StoreT[bytes, bytes], self.table.data)  # TableT types its store as a plain mapping
        with acting_for(checkpoint.partition):
            for key, value in checkpoint.records:
                if value is not None:
                    data[key] = value
                elif key in data:
                    del data[key]
            data.set_persisted_offset(TP(self.topic, checkpoint.partition), changelog_offset)

    def get(self, key: bytes) -> bytes | None:
        return self.table.data.get(key)


class DeadLetterTopic:
    """The dead-letter topic, sent to from faust's producer in the background."""

    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic

    def send(self, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        self.topic.send_soon(key=key, value=value, headers=list(headers))

