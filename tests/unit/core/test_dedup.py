"""Event-id deduplication: batches, buckets, expiry, persistence and memory per event."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.core.dedup as dedup_module
from streams.core.dedup import HASH_BYTES, PENDING_LIMIT, SMALL_BATCH, DedupIndex, event_hashes

HOUR = 3600
WEEK = 7 * 86400
T0 = 1_700_006_400  # a whole number of hours since the epoch


def ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


@pytest.mark.parametrize("size", [3, 40])  # the one-by-one path and the vectorised path
def test_duplicates_within_a_batch_keep_only_the_first(size):
    index = DedupIndex(WEEK)
    batch = ids("a", size)
    batch[1] = batch[0]
    batch[-1] = batch[0]
    admitted = index.admit(batch, [T0] * size)
    assert admitted.tolist() == [True, False] + [True] * (size - 3) + [False]
    assert len(index) == size - 2


@pytest.mark.parametrize("size", [2, 50])
def test_duplicates_across_batches_and_buckets(size):
    index = DedupIndex(WEEK)
    first = ids("e", size)
    assert index.admit(first, [T0 + 10] * size).all()
    # Re-sent with another event time, in another bucket: still a duplicate.
    again = index.admit(first, [T0 + 5 * HOUR] * size)
    assert not again.any()
    mixed = [first[0], "new-1", first[-1], "new-2"]
    assert index.admit(mixed, [T0 - 2 * HOUR] * 4).tolist() == [False, True, False, True]
    assert index.bucket_sizes() == {T0 // HOUR: size, T0 // HOUR - 2: 2}


def test_small_and_large_batches_see_each_other():
    index = DedupIndex(WEEK)
    index.admit(["x"], [T0])
    big = ["x", *ids("b", 30)]
    assert index.admit(big, [T0] * len(big)).tolist() == [False] + [True] * 30
    assert index.admit(["b-7", "y"], [T0, T0]).tolist() == [False, True]


def test_mismatched_or_non_finite_input_is_refused_before_anything_is_recorded():
    index = DedupIndex(WEEK)
    with pytest.raises(ValueError, match="2 event ids but 1"):
        index.admit(["a", "b"], [T0])
    for size in (2, 20):
        for bad in (float("nan"), float("inf"), 1e300, -1e12):
            with pytest.raises(ValueError, match="within years 1 to 9999"):
                index.admit(ids("n", size), [T0] * (size - 1) + [bad])
    assert len(index) == 0
    assert index.admit(["n-0"], [T0]).tolist() == [True]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="horizon"):
        DedupIndex(0)
    with pytest.raises(ValueError, match="bucket width"):
        DedupIndex(WEEK, 0)


def test_expire_forgets_whole_buckets_past_the_horizon():
    index = DedupIndex(WEEK)
    index.admit(ids("old", 20), [T0 + 0.5] * 20)
    index.admit(ids("new", 3), [T0 + HOUR] * 3)
    # The first bucket [T0, T0+1h) is all older than the watermark - horizon only from T0+1h+WEEK on.
    assert index.expire(T0 + WEEK + HOUR - 0.001) == 0
    assert index.expire(T0 + WEEK + HOUR) == 20
    assert len(index) == 3
    assert index.bucket_sizes() == {T0 // HOUR + 1: 3}
    # A forgotten id is new again; a remembered one is still a duplicate.
    assert index.admit(["old-4", "new-2"], [T0 + WEEK, T0 + WEEK]).tolist() == [True, False]
    assert index.expire(T0 + 3 * WEEK) == 4
    assert len(index) == 0 and index.nbytes() < 1000


def test_persisted_buckets_round_trip_in_admission_order():
    index = DedupIndex(WEEK)
    index.admit(ids("a", 30), [T0 + i * 600 for i in range(30)])  # spread over 5 hours
    index.admit(["late"], [T0 + 60])
    buckets = {bucket: index.hashes(bucket) for bucket in index.bucket_sizes()}
    assert sorted(buckets) == [T0 // HOUR + h for h in range(5)]
    first_bucket = np.frombuffer(buckets[T0 // HOUR], dtype="S16")
    expected = [event_hashes([i]).tobytes() for i in (*ids("a", 6), "late")]
    assert [h.ljust(HASH_BYTES, b"\0") for h in first_bucket.tolist()] == expected
    restored = DedupIndex.restore(WEEK, HOUR, buckets, index.bucket_sizes())
    assert len(restored) == 31
    assert not restored.admit(ids("a", 30), [T0] * 30).any()
    assert restored.changed_chunks(4096) == []  # what was restored counts as durable


def test_restore_truncates_to_the_head_record_and_ignores_unlisted_buckets():
    index = DedupIndex(WEEK)
    index.admit(ids("a", 10), [T0] * 10)
    sizes = index.bucket_sizes()
    index.admit(ids("b", 10), [T0] * 10)  # written after the head record
    index.admit(["other-bucket"], [T0 + 3 * HOUR])
    buckets = {bucket: index.hashes(bucket) for bucket in index.bucket_sizes()}
    restored = DedupIndex.restore(WEEK, HOUR, buckets, sizes)
    assert restored.bucket_sizes() == {T0 // HOUR: 10}
    assert not restored.admit(ids("a", 10), [T0] * 10).any()
    assert restored.admit([*ids("b", 10), "other-bucket"], [T0] * 11).all()


def test_restore_names_a_bucket_shorter_than_its_head_record():
    with pytest.raises(ValueError, match="bucket 7: the head record counts 3 entries but only 2"):
        DedupIndex.restore(WEEK, HOUR, {7: b"\1" * 32}, {7: 3})
    with pytest.raises(ValueError, match="same event hash twice"):
        DedupIndex.restore(WEEK, HOUR, {7: b"\1" * 16, 8: b"\1" * 16}, {7: 1, 8: 1})


def test_changed_chunks_hold_only_what_is_not_durable_yet():
    index = DedupIndex(WEEK)
    index.admit(ids("a", 12), [T0] * 12)
    index.mark_durable(index.bucket_sizes())
    assert index.changed_chunks(5) == []
    index.admit(["b", "c"], [T0 + 1, T0 + HOUR])
    full = index.hashes(T0 // HOUR)
    changed = index.changed_chunks(5)
    # Bucket T0: 13 entries, 12 durable: chunk 2 (places 10-12) is rewritten, chunks 0-1 are not.
    assert [(bucket, chunk) for bucket, chunk, _ in changed] == [(T0 // HOUR, 2), (T0 // HOUR + 1, 0)]
    assert changed[0][2] == full[10 * HASH_BYTES :]
    assert full[12 * HASH_BYTES :] == event_hashes(["b"]).tobytes()
    assert changed[1][2] == event_hashes(["c"]).tobytes()
    index.mark_durable({T0 // HOUR: 13})
    assert [(bucket, chunk) for bucket, chunk, _ in index.changed_chunks(5)] == [(T0 // HOUR + 1, 0)]


def test_a_changed_bucket_costs_its_new_entries_not_its_size():
    index = DedupIndex(WEEK)
    index.admit(ids("a", 10_000), [T0] * 10_000)
    index.mark_durable(index.bucket_sizes())
    index.admit(["b"], [T0])
    ((bucket, chunk, hashes),) = index.changed_chunks(4096)
    assert (bucket, chunk) == (T0 // HOUR, 2)
    assert len(hashes) == (10_001 - 2 * 4096) * HASH_BYTES


def test_hashes_sharing_their_first_half_are_told_apart(monkeypatch):
    """Two ids whose 16-byte hashes differ only in the second half are not duplicates."""
    crafted = {f"id{i}": np.array([[7, i]], dtype=np.uint64) for i in range(40)}
    monkeypatch.setattr(dedup_module, "event_hashes", lambda batch: np.concatenate([crafted[e] for e in batch]))
    index = DedupIndex(WEEK)
    order = [f"id{i}" for i in (5, 1, 9, 3, 30, 31, 32, 33, 34, 35)]
    assert index.admit(order, [T0] * len(order)).all()
    assert index.admit(["id5", "id2", "id35", "id4", "id9", "id36", "id0", "id1", "id37"], [T0] * 9).tolist() == [
        False, True, False, True, False, True, True, False, True
    ]


def test_memory_stays_within_32_bytes_per_event():
    index = DedupIndex(WEEK)
    batch = 1000
    for start in range(0, 1_000_000, batch):
        index.admit([f"evt-{i}" for i in range(start, start + batch)], [T0 + start / 100] * batch)
    assert len(index) == 1_000_000
    assert index.nbytes() / len(index) <= 32
    assert not index.admit(["evt-0", "evt-999999"], [T0, T0]).any()


def test_pending_buffer_memory_is_counted_and_bounded():
    index = DedupIndex(WEEK)
    for i in range(PENDING_LIMIT - 1):
        index.admit([f"p{i}"], [T0])
    assert index.nbytes() > 0 and index.nbytes() / len(index) < 400
    index.admit(["last"], [T0])
    tails = sum(sys.getsizeof(tail.hashes) for tail in index._tails.values())
    assert 0 < tails < 2 * HASH_BYTES * PENDING_LIMIT  # the new bucket's tail, kept for its first checkpoint
    assert index.nbytes() == 28 * PENDING_LIMIT + sys.getsizeof({}) + tails


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 60), st.integers(0, 10)), max_size=3 * SMALL_BATCH),
        max_size=12,
    ),
    expire_after=st.integers(0, 12),
    persist_after=st.integers(0, 12),
)
def test_admit_agrees_with_a_set(batches, expire_after, persist_after):
    """ids are small ints with a few event-time hours; the reference is a set per live hour."""
    index = DedupIndex(WEEK)
    seen: dict[str, int] = {}  # id -> hour it was first admitted in
    for n, batch in enumerate(batches):
        names = [f"ev{i}" for i, _ in batch]
        times = [T0 + hour * HOUR + 1.5 for _, hour in batch]
        expected = []
        for name, (_, hour) in zip(names, batch):
            expected.append(name not in seen)
            seen.setdefault(name, hour)
        assert index.admit(names, times).tolist() == expected
        if n == persist_after:
            persisted = {bucket: index.hashes(bucket) for bucket in index.bucket_sizes()}
            index = DedupIndex.restore(WEEK, HOUR, persisted, index.bucket_sizes())
        if n == expire_after:
            dropped = index.expire(T0 + WEEK + 5 * HOUR)
            assert dropped == sum(1 for hour in seen.values() if hour < 5)
            seen = {name: hour for name, hour in seen.items() if hour >= 5}
    assert len(index) == len(seen)
    sizes: dict[int, int] = {}
    for hour in seen.values():
        sizes[T0 // HOUR + hour] = sizes.get(T0 // HOUR + hour, 0) + 1
    assert index.bucket_sizes() == sizes


def test_lookups_search_a_logarithmic_number_of_runs():
    index = DedupIndex(WEEK)
    for i in range(3000):
        index.admit([f"s{i}"], [T0])
    for start in range(0, 20_000, 40):
        index.admit(ids(f"b{start}", 40), [T0] * 40)
    sizes = [len(run) for run in index._runs]
    assert all(newer * dedup_module.FANOUT <= older for older, newer in zip(sizes, sizes[1:]))
    assert len(sizes) <= 5


def test_a_busy_bucket_is_checkpointed_from_its_tail_without_searching_the_index(monkeypatch):
    index = DedupIndex(WEEK)
    index.admit(ids("a", 10_000), [T0] * 10_000)
    index.mark_durable({bucket: size for bucket, _, size in _planned(index, 4096)})
    for round_ in range(3):
        monkeypatch.setattr(index, "hashes", None)  # any search through the runs would fail
        index.admit(ids(f"b{round_}", 500), [T0 + 1] * 500)
        index.admit([f"single-{round_}"], [T0 + 2])
        ((bucket, chunk, hashes), *_) = index.changed_chunks(4096)
        size = 10_000 + 501 * (round_ + 1)
        assert (bucket, chunk) == (T0 // HOUR, 2) and len(hashes) == (size - 2 * 4096) * HASH_BYTES
        monkeypatch.undo()
        assert hashes == index.hashes(T0 // HOUR, 2 * 4096)
        index.mark_durable(index.bucket_sizes())
    # A bucket idle for a whole checkpoint gives its tail up, and is read back from the runs when it changes again.
    index.admit(["other"], [T0 + HOUR])
    index.mark_durable(index.bucket_sizes())
    assert T0 // HOUR not in index._tails
    index.admit(["late"], [T0])
    ((bucket, chunk, hashes), *_) = index.changed_chunks(4096)
    assert (bucket, chunk) == (T0 // HOUR, 2) and hashes == index.hashes(T0 // HOUR, 2 * 4096)
    assert len(hashes) == (10_000 + 3 * 501 + 1 - 2 * 4096) * HASH_BYTES


def _planned(index: DedupIndex, chunk: int) -> list[tuple[int, int, int]]:
    """(bucket, chunks written, entries) of a checkpoint of ``index``."""
    sizes = index.bucket_sizes()
    written: dict[int, int] = {}
    for bucket, number, _ in index.changed_chunks(chunk):
        written[bucket] = number + 1
    return [(bucket, written.get(bucket, 0), size) for bucket, size in sizes.items()]


@pytest.mark.parametrize("budget", [0, 10**9])  # tails dropped as soon as possible, or never
@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("admit"), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 3)), max_size=20)),
            st.tuples(st.just("plan"), st.integers(1, 5)),
            st.tuples(st.just("confirm"), st.just(0)),
            st.tuples(st.just("expire"), st.integers(0, 3)),
        ),
        max_size=25,
    )
)
def test_changed_chunks_agree_with_the_bucket_contents(budget, steps):
    """Whatever tails are kept or dropped, a checkpoint holds exactly the bucket's hashes from its partial chunk on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dedup_module, "TAIL_BUDGET_MIN_BYTES", budget)
        patch.setattr(dedup_module, "TAIL_BUDGET_PER_ENTRY", 0 if budget == 0 else 10**6)
        _checkpoint_steps(steps)


def _checkpoint_steps(steps: list[tuple[str, object]]) -> None:
    index = DedupIndex(WEEK)
    durable: dict[int, int] = {}
    planned: dict[int, int] | None = None
    expired: set[int] = set()  # since the plan: a bucket admitted to again after expiring starts afresh
    for kind, arg in steps:
        if kind == "admit":
            index.admit([f"ev{i}" for i, _ in arg], [T0 + hour * HOUR + 1.5 for _, hour in arg])
        elif kind == "plan":
            sizes = index.bucket_sizes()
            changed = index.changed_chunks(arg)
            expected = []
            for bucket, size in sorted(sizes.items()):
                first = durable.get(bucket, 0) // arg
                if size == durable.get(bucket, 0):
                    continue
                contents = index.hashes(bucket, first * arg)
                step = arg * HASH_BYTES
                expected += [(bucket, first + n, contents[at : at + step])
                             for n, at in enumerate(range(0, len(contents), step))]
            assert changed == expected
            planned, expired = sizes, set()
        elif kind == "confirm" and planned is not None:
            index.mark_durable(planned)
            durable = {bucket: size for bucket, size in planned.items()
                       if bucket in index.bucket_sizes() and bucket not in expired}
            planned = None
        elif kind == "expire":
            before = index.bucket_sizes()
            index.expire(T0 + WEEK + arg * HOUR)
            expired |= set(before) - set(index.bucket_sizes())
            durable = {bucket: size for bucket, size in durable.items() if bucket in index.bucket_sizes()}
