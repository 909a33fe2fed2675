"""Checkpoint records: bounded in size, incremental, and restorable after a crash between any two."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from streams.core.checkpoint import (
    CHUNK_ENTRIES,
    CheckpointUnreadable,
    chunk_key,
    head_key,
    plan_checkpoint,
    read_checkpoint,
)
from streams.core.dedup import HASH_BYTES
from streams.core.processor import FamilyProcessor
from streams.core.registry import Registry
from streams.core.state import PartitionState
from streams.settings import Settings

NOW = datetime(2026, 11, 26, 12, 30, 7, tzinfo=UTC).timestamp()
HOUR = 3600


def sample(event_id: str, t: float) -> dict:
    return {
        "event_id": event_id, "event_time": datetime.fromtimestamp(t, UTC).isoformat(),
        "source": "cq-link-probe", "link_id": "CQ-SG-1", "direction": "cn_to_sg", "interval_seconds": 60,
        "bytes": 1000,
    }


def envelope(prefix: str, n: int, t: float = NOW - 60) -> bytes:
    return orjson.dumps([sample(f"{prefix}-{i}", t) for i in range(n)])


@pytest.fixture
def processor() -> FamilyProcessor:
    return FamilyProcessor("datachannel", Settings(), Registry.load(None))


def apply(store: dict[bytes, bytes], records) -> None:
    """What reading the changelog back leaves: the newest value per key, tombstones deleting."""
    for key, value in records:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value


def accepted(state: PartitionState) -> int:
    return state.counters.get("events_accepted", {}).get((), 0)


def test_no_record_outgrows_a_chunk_however_full_the_bucket(processor):
    state = processor.new_state()
    for offset in range(30):  # 150,000 events in one event-time hour of one partition
        processor.process(state, 0, offset, NOW, envelope(f"r{offset}", 5000))
    checkpoint = plan_checkpoint(0, state, {})
    chunks = [value for key, value in checkpoint.records if key != head_key(0)]
    assert len(chunks) == -(-150_000 // CHUNK_ENTRIES)
    assert max(map(len, chunks)) == CHUNK_ENTRIES * HASH_BYTES
    assert len(dict(checkpoint.records)[head_key(0)]) < 64 * 1024
    store: dict[bytes, bytes] = {}
    apply(store, checkpoint.records)
    restored = read_checkpoint(0, store.get, processor.restore_state)
    assert restored is not None and len(restored.dedup) == 150_000 and accepted(restored) == 150_000


def test_the_next_checkpoint_writes_what_changed_not_what_the_bucket_holds(processor):
    state = processor.new_state()
    for offset in range(4):
        processor.process(state, 0, offset, NOW, envelope(f"a{offset}", 3000))
    first = plan_checkpoint(0, state, {})
    state.dedup.mark_durable(first.dedup_sizes)
    processor.process(state, 0, 4, NOW, envelope("b", 1))
    second = plan_checkpoint(0, state, first.chunk_counts)
    bucket = int((NOW - 60) // HOUR)
    assert 12_001 // CHUNK_ENTRIES == 2
    assert [key for key, _ in second.records] == [chunk_key(0, bucket, 2), head_key(0)]
    assert len(second.records[0][1]) == (12_001 - 2 * CHUNK_ENTRIES) * HASH_BYTES


def test_expired_buckets_are_deleted_after_the_head(processor):
    state = processor.new_state()
    old = NOW - 3 * HOUR
    processor.process(state, 0, 0, old + 30, envelope("old", CHUNK_ENTRIES + 1, t=old))
    first = plan_checkpoint(0, state, {})
    state.dedup.mark_durable(first.dedup_sizes)
    old_bucket = int(old // HOUR)
    assert first.chunk_counts == {old_bucket: 2}
    # A record a week later moves the partition's clock past the dedup horizon of the old bucket.
    processor.process(state, 0, 1, NOW + 7 * 86400, envelope("new", 1, t=NOW + 7 * 86400 - 60))
    state.expire(NOW + 7 * 86400)
    second = plan_checkpoint(0, state, first.chunk_counts)
    keys = [key for key, _ in second.records]
    assert keys[-2:] == [chunk_key(0, old_bucket, 0), chunk_key(0, old_bucket, 1)]
    assert all(value is None for _, value in second.records[-2:])
    assert keys.index(head_key(0)) < len(keys) - 2
    assert old_bucket not in second.chunk_counts


def test_a_crash_between_any_two_records_restores_the_last_whole_checkpoint(processor):
    """Two writers' checkpoints, the second restored from an older head than the first wrote last."""
    chunk = 3  # tiny chunks, so every checkpoint rewrites a partial chunk and adds new ones
    stream: list[tuple[bytes, bytes | None]] = []
    heads: list[tuple[int, int]] = []  # (records written when the head landed, accepted events it holds)

    def checkpoints(state: PartitionState, counts: dict[int, int], writer: str, sizes: dict[int, int]) -> None:
        for offset, size in sizes.items():
            processor.process(state, 0, offset, NOW, envelope(f"{writer}-{offset}", size))
            checkpoint = plan_checkpoint(0, state, counts, chunk_entries=chunk)
            state.dedup.mark_durable(checkpoint.dedup_sizes)
            counts = checkpoint.chunk_counts
            stream.extend(checkpoint.records)
            heads.append((len(stream), accepted(state)))

    checkpoints(processor.new_state(), {}, "w1", {0: 4, 1: 2, 2: 5})
    # The first writer's last checkpoint never got its head out; the second writer restored
    # from the head before it and applied other records at the same places.
    del stream[-1]
    heads.pop()
    store: dict[bytes, bytes] = {}
    apply(store, stream)
    second = read_checkpoint(0, store.get, processor.restore_state)
    assert second is not None and accepted(second) == 6
    checkpoints(second, {b: -(-n // chunk) for b, n in second.dedup.bucket_sizes().items()}, "w2", {2: 3, 3: 4})

    for prefix in range(len(stream) + 1):
        store = {}
        apply(store, stream[:prefix])
        restored = read_checkpoint(0, store.get, processor.restore_state)
        whole = [events for landed, events in heads if landed <= prefix]
        if not whole:
            assert restored is None
            continue
        assert restored is not None, f"prefix {prefix}"
        assert accepted(restored) == whole[-1] == len(restored.dedup), f"prefix {prefix}"


def test_a_missing_chunk_is_named(processor):
    state = processor.new_state()
    processor.process(state, 0, 0, NOW, envelope("a", CHUNK_ENTRIES + 1))
    store: dict[bytes, bytes] = {}
    apply(store, plan_checkpoint(0, state, {}).records)
    bucket = int((NOW - 60) // HOUR)
    del store[chunk_key(0, bucket, 1)]
    with pytest.raises(CheckpointUnreadable, match=f"partition 0: dedup bucket {bucket} chunk 1 holds 0 of the 1 "):
        read_checkpoint(0, store.get, processor.restore_state)


def test_a_partition_without_checkpoint_reads_as_none(processor):
    assert read_checkpoint(3, {}.get, processor.restore_state) is None
