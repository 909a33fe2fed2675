"""A partition's state as changelog records of bounded size, and back (no I/O).

A checkpoint of source partition ``p`` is a list of key/value records written in order to
partition ``p`` of the family's changelog:

1. the dedup chunks changed since the last confirmed checkpoint. A dedup bucket (one
   event-time hour) is stored as chunks of :data:`CHUNK_ENTRIES` hashes in admission order
   under ``p:dedup:<bucket>:<chunk>``; only the durable chunk that was partly filled and the
   new ones are written, so no record exceeds ``CHUNK_ENTRIES * 16`` bytes however many
   events a bucket holds, and a checkpoint costs what changed, not what the bucket holds;
2. the head record ``p:head``: offset, aggregates and the size of every live dedup bucket;
3. tombstones for the chunks of buckets that expired.

Restoring reads the newest value of each key. Within one writer's history a chunk only
ever grows (a place in a bucket never changes its hash), and a head is written after the
chunks it names, so the newest head always finds at least the entries it counts: restore
takes exactly that many from each bucket. A deleted chunk key is never written again,
since an expired bucket takes no new entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streams.core.dedup import HASH_BYTES
from streams.core.state import PartitionState

#: Hashes per dedup chunk record: 64 KiB values, far below any broker's message limit.
CHUNK_ENTRIES = 4096


class CheckpointUnreadable(ValueError):
    """The newest head record names dedup entries the store does not hold."""


def head_key(partition: int) -> bytes:
    return f"{partition}:head".encode()


def chunk_key(partition: int, bucket: int, index: int) -> bytes:
    return f"{partition}:dedup:{bucket}:{index}".encode()


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
    records.append((head_key(partition), state.head_bytes(chunk_entries)))
    for bucket in sorted(set(counts) - set(sizes)):
        records.extend((chunk_key(partition, bucket, index), None) for index in range(counts.pop(bucket)))
    return Checkpoint(partition, state.offset, tuple(records), sizes, counts)


def read_checkpoint(
    partition: int, get: Callable[[bytes], bytes | None], restore: Callable[[bytes, dict[int, bytes]], PartitionState]
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
    return restore(head, buckets)
