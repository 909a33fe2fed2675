"""What the worker needs from Kafka and faust, as typed protocols.

The record path and the checkpoint protocol (``streams/worker/checkpoint.py``) see only
these; ``streams/worker/adapters.py`` implements them over faust's consumer, table and
topics, and the unit tests over memory (``tests/unit/worker/memory.py``). Each one is about
the partitions of one family topic, numbered as in that topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streams.core.checkpoint import Checkpoint


class Record(Protocol):
    """A fetched Kafka record, as aiokafka's ``ConsumerRecord`` holds it."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch."""

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class OffsetGate(Protocol):
    """The group's offsets of a family topic's partitions, and the consumer's position in them."""

    def committed(self, partition: int) -> int | None:
        """The offset the group last committed (None: none known)."""

    def commit_up_to(self, partition: int, offset: int) -> None:
        """Let commits move the partition up to ``offset`` (never back)."""

    def forget_commits(self, partition: int) -> None:
        """Drop what the partition may be and was committed to: both counted in a topic that is gone."""

    async def seek(self, partition: int, offset: int) -> None:
        """Read the partition on from ``offset``; returns once the consumer's position moved."""


class ChangelogWriter(Protocol):
    """A family's changelog (one partition per source partition) and the local store behind it."""

    async def write(self, checkpoint: Checkpoint) -> int:
        """Send the checkpoint's records in order; returns the changelog offset of the last once the
        broker confirmed them all, and raises when it refused any."""

    def store(self, checkpoint: Checkpoint, changelog_offset: int) -> None:
        """Apply confirmed records to the local store, then record ``changelog_offset`` as held locally."""

    def get(self, key: bytes) -> bytes | None:
        """The newest value of ``key`` in the local store."""


class DeadLetterSink(Protocol):
    """The dead-letter topic."""

    def send(self, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        """Queue one dead letter (sent in the background)."""

