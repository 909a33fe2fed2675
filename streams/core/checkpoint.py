"""A partition's state as changelog records of bounded size, and back (no I/O).

A checkpoint of source partition ``p`` is a list of key/value records written in order to
partition ``p`` of the family's changelog:

1. the dedup chunks changed since the last confirmed checkpoint. A dedup bucket (one
   event-time hour) is stored as chunks of :data:`CHUNK_ENTRIES` hashes in admission order
   under ``p:dedup:<bucket>:<chunk>``; only the durable chunk that was partly filled and the
   new ones are written, so no record exceeds ``CHUNK_ENTRIES * 16`` bytes however many
   events a bucket holds, and a checkpoint costs what changed, not what the bucket holds;
2. for the shipments family, the piece of its journey book (streams/core/journeys.py): the
   journeys changed since the last confirmed checkpoint, or the whole book when the pieces
   have grown past it, as chunks of bounded size under ``p:journeys:<piece>:<chunk>``;
3. the head record ``p:head``: offset, aggregates, the size of every live dedup bucket and
   the journey pieces that rebuild the book;
4. tombstones for the chunks of buckets that expired, and for the journey pieces a whole
   book replaced.

Restoring reads the newest value of each key. Within one writer's history a chunk only
ever grows (a place in a bucket never changes its hash), and a head is written after the
chunks it names, so the newest head always finds at least the entries it counts: restore
takes exactly that many from each bucket. A deleted chunk key is never written again,
since an expired bucket takes no new entries. A journey piece is never written again under a
number a head may name: every plan takes a new number, and a whole book written by a plan
not confirmed is written whole again by the next, so no head names pieces another removed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streams.core.dedup import HASH_BYTES
from streams.core.journeys import JourneyPlan
from streams.core.state import PartitionState

#: Hashes per dedup chunk record: 64 KiB values, far below any broker's message limit.
CHUNK_ENTRIES = 4096


class CheckpointUnreadable(ValueError):
    """The newest head record names dedup entries the store does not hold."""


def head_key(partition: int) -> bytes:
    return f"{partition}:head".encode()


def chunk_key(partition: int, bucket: int, index: int) -> bytes:
    return f"{partition}:dedup:{bucket}:{index}".encode()


def journey_key(partition: int, piece: int, index: int) -> bytes:
    return f"{partition}:journeys:{piece}:{index}".encode()


def chunks_for(entries: int, chunk_entries: int = CHUNK_ENTRIES) -> int:
    """How many chunks hold ``entries`` hashes."""
    return -(-entries // chunk_entries)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The records of one checkpoint, in the order they must reach the changelog."""

    partition: int
    offset: int
    records: tuple[tuple[bytes, bytes | None], ...]
    #: Entries per dedup bucket this checkpoint makes durable.
    dedup_sizes: dict[int, int]
    #: Chunks per bucket that may exist in the changelog once it is written.
    chunk_counts: dict[int, int]
    #: The journey book's piece it writes (the shipments family), to mark durable once confirmed.
    journeys: JourneyPlan | None = None


def plan_checkpoint(
    partition: int, state: PartitionState, chunk_counts: Mapping[int, int], *, chunk_entries: int = CHUNK_ENTRIES
) -> Checkpoint:
    """The records that make ``state`` durable, given the chunks earlier checkpoints wrote."""
    sizes = state.dedup.bucket_sizes()
    records: list[tuple[bytes, bytes | None]] = []
    counts = dict(chunk_counts)
    for bucket, index, hashes in state.dedup.changed_chunks(chunk_entries):
        records.append((chunk_key(partition, bucket, index), hashes))
        counts[bucket] = max(counts.get(bucket, 0), index + 1)
    journeys = None if state.journeys is None else state.journeys.plan()
    if journeys is not None:
        records.extend((journey_key(partition, piece, index), value) for piece, index, value in journeys.records)
    records.append((head_key(partition), state.head_bytes(chunk_entries, journeys)))
    for bucket in sorted(set(counts) - set(sizes)):
        records.extend((chunk_key(partition, bucket, index), None) for index in range(counts.pop(bucket)))
    if journeys is not None:
        for piece, chunks in journeys.removed:
            records.extend((journey_key(partition, piece, index), None) for index in range(chunks))
    return Checkpoint(partition, state.offset, tuple(records), sizes, counts, journeys)


def read_checkpoint(
    partition: int,
    get: Callable[[bytes], bytes | None],
    restore: Callable[[bytes, dict[int, bytes], dict[tuple[int, int], bytes]], PartitionState],
) -> PartitionState | None:
    """The partition's state from the newest head and its chunks; None when it has no checkpoint."""
    head = get(head_key(partition))
    if head is None:
        return None
    sizes, chunk_entries = PartitionState.dedup_layout_of(head)
    buckets: dict[int, bytes] = {}
    for bucket, size in sizes.items():
        parts = []
        for index in range(chunks_for(size, chunk_entries)):
            wanted = min(chunk_entries, size - index * chunk_entries) * HASH_BYTES
            data = get(chunk_key(partition, bucket, index))
            if data is None or len(data) < wanted:
                held = 0 if data is None else len(data) // HASH_BYTES
                raise CheckpointUnreadable(
                    f"partition {partition}: dedup bucket {bucket} chunk {index} holds {held} of the "
                    f"{wanted // HASH_BYTES} entries the head record counts"
                )
            parts.append(data[:wanted])
        buckets[bucket] = b"".join(parts)
    journeys: dict[tuple[int, int], bytes] = {}
    for piece, index in PartitionState.journey_chunks_of(head):
        data = get(journey_key(partition, piece, index))
        if data is None:
            raise CheckpointUnreadable(f"partition {partition}: journey piece {piece} chunk {index} is missing")
        journeys[(piece, index)] = data
    return restore(head, buckets, journeys)
