"""Event-id deduplication within a horizon, at 28 bytes per remembered event.

Each admitted event is remembered as the 16-byte BLAKE2b hash of its ``event_id`` (two
uint64 halves), the event-time bucket it was filed under (int64) and its place in that
bucket (uint32). Entries live in a few immutable runs sorted by the hash's first half, a
small log-structured merge tree: new entries wait in a bounded pending buffer (a dict, so
single-event records stay cheap), a full buffer or a large batch becomes a new run, and a
run is merged into the older one before it reaches 1/FANOUT of its size. An insert costs
O(log n) amortised copies and a lookup one binary search per run. Expiry and persistence
work on whole event-time buckets.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

HASH_BYTES = 16
#: A newer run is merged into the older one before it reaches 1/FANOUT of its size.
FANOUT = 8
#: Batches up to this size are admitted one event at a time through the pending buffer.
SMALL_BATCH = 8
#: The pending buffer becomes a run when it holds this many entries.
PENDING_LIMIT = 256
_MAX_BUCKET_ENTRIES = 2**32
#: Event times must lie in datetime's range, years 1 to 9999 (epoch seconds).
EARLIEST_TIME, LATEST_TIME = -62135596800.0, 253402300800.0


def event_hashes(event_ids: Sequence[str]) -> np.ndarray:
    """16-byte BLAKE2b digests of the UTF-8 event ids, as rows of two native uint64 halves."""
    blake2b = hashlib.blake2b  # inlined rather than _digest: this loop is the hot path
    digests = b"".join([blake2b(event_id.encode(), digest_size=HASH_BYTES).digest() for event_id in event_ids])
    return np.frombuffer(digests, dtype=np.uint64).reshape(-1, 2)


def _digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=HASH_BYTES).digest()


@dataclass(frozen=True, slots=True)
class _Run:
    """Entries sorted by ``hi``: hash halves, event-time bucket and place in that bucket."""

    hi: np.ndarray  # uint64, sorted; distinct hashes sharing it (rare) sit side by side
    lo: np.ndarray  # uint64
    buckets: np.ndarray  # int64 bucket id = floor(event_time / bucket_seconds)
    positions: np.ndarray  # uint32 admission order within the bucket

    def __len__(self) -> int:
        return len(self.hi)

    def contains(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """For each hash (hi[i], lo[i]): is it in this run?"""
        size = len(self.hi)
        at = np.searchsorted(self.hi, hi)
        near = np.minimum(at, size - 1)
        same_hi = (self.hi[near] == hi) & (at < size)
        found: np.ndarray = same_hi & (self.lo[near] == lo)
        unsure = same_hi & ~found
        if unsure.any():
            for i in np.flatnonzero(unsure).tolist():
                found[i] = self._scan(int(at[i]) + 1, hi[i], lo[i])
        return found

    def has(self, hi: np.uint64, lo: np.uint64) -> bool:
        """Is the hash (hi, lo) in this run?"""
        return self._scan(int(self.hi.searchsorted(hi)), hi, lo)

    def _scan(self, start: int, hi: np.uint64, lo: np.uint64) -> bool:
        for i in range(start, len(self.hi)):
            if self.hi[i] != hi:
                return False
            if self.lo[i] == lo:
                return True
        return False

    def merged(self, newer: _Run) -> _Run:
        at = np.searchsorted(self.hi, newer.hi)
        return _Run(
            np.insert(self.hi, at, newer.hi),
            np.insert(self.lo, at, newer.lo),
            np.insert(self.buckets, at, newer.buckets),
            np.insert(self.positions, at, newer.positions),
        )

    def select(self, keep: np.ndarray) -> _Run:
        return _Run(self.hi[keep], self.lo[keep], self.buckets[keep], self.positions[keep])

    @property
    def nbytes(self) -> int:
        return self.hi.nbytes + self.lo.nbytes + self.buckets.nbytes + self.positions.nbytes


class DedupIndex:
    """Remembers event ids for ``horizon_seconds`` of event time, in buckets of ``bucket_seconds``."""

    def __init__(self, horizon_seconds: float, bucket_seconds: int = 3600) -> None:
        if not horizon_seconds > 0:
            raise ValueError(f"dedup horizon must be > 0 seconds, got {horizon_seconds!r}")
        if not (isinstance(bucket_seconds, int) and bucket_seconds >= 1):
            raise ValueError(f"dedup bucket width must be a whole number of seconds >= 1, got {bucket_seconds!r}")
        self.horizon_seconds = float(horizon_seconds)
        self.bucket_seconds = bucket_seconds
        self._runs: list[_Run] = []
        self._pending: dict[bytes, tuple[int, int]] = {}  # digest -> (bucket, place), in arrival order
        self._sizes: dict[int, int] = {}
        self._durable_sizes: dict[int, int] = {}

    def __len__(self) -> int:
        return sum(self._sizes.values())

    def nbytes(self) -> int:
        """Bytes held by the runs' arrays and the pending buffer."""
        pending = sys.getsizeof(self._pending) + sum(
            sys.getsizeof(digest) + sys.getsizeof(entry) + sys.getsizeof(entry[0]) + sys.getsizeof(entry[1])
            for digest, entry in self._pending.items()
        )
        return pending + sum(run.nbytes for run in self._runs)

    def admit(self, event_ids: Sequence[str], event_times: Sequence[float]) -> np.ndarray:
        """True for each first sighting (now remembered), False for a duplicate, also within the batch."""
        if len(event_ids) != len(event_times):
            raise ValueError(f"{len(event_ids)} event ids but {len(event_times)} event times")
        if len(event_ids) <= SMALL_BATCH:
            return self._admit_few(event_ids, event_times)
        self._flush()
        return self._admit_many(event_ids, event_times)

    def _admit_few(self, event_ids: Sequence[str], event_times: Sequence[float]) -> np.ndarray:
        if not all(EARLIEST_TIME <= t < LATEST_TIME for t in event_times):
            raise ValueError("event times must be epoch seconds within years 1 to 9999")
        admitted = np.zeros(len(event_ids), dtype=bool)
        pending, sizes, width = self._pending, self._sizes, self.bucket_seconds
        for i, (event_id, event_time) in enumerate(zip(event_ids, event_times, strict=True)):
            digest = _digest(event_id)
            if digest in pending:
                continue
            # numpy scalars: a plain int below 2**63 would make searchsorted copy the run as float64
            hi = np.uint64(int.from_bytes(digest[:8], sys.byteorder))
            lo = np.uint64(int.from_bytes(digest[8:], sys.byteorder))
            if any(run.has(hi, lo) for run in self._runs):
                continue
            bucket = int(event_time // width)
            place = sizes.get(bucket, 0)
            if place >= _MAX_BUCKET_ENTRIES:
                raise OverflowError("a dedup bucket is limited to 2**32 entries: use narrower buckets")
            sizes[bucket] = place + 1
            pending[digest] = (bucket, place)
            admitted[i] = True
        if len(pending) >= PENDING_LIMIT:
            self._flush()
        return admitted

    def _admit_many(self, event_ids: Sequence[str], event_times: Sequence[float]) -> np.ndarray:
        hashes = event_hashes(event_ids)
        times = np.asarray(event_times, dtype=np.float64)
        if not ((times >= EARLIEST_TIME) & (times < LATEST_TIME)).all():
            raise ValueError("event times must be epoch seconds within years 1 to 9999")
        admitted = np.zeros(len(hashes), dtype=bool)
        # lexsort is stable, so the first of equal hashes is the first to arrive.
        order = np.lexsort((hashes[:, 1], hashes[:, 0]))
        hi, lo = hashes[order, 0], hashes[order, 1]
        fresh = np.ones(len(order), dtype=bool)
        fresh[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        for run in self._runs:
            fresh &= ~run.contains(hi, lo)
        if not fresh.any():
            return admitted
        arrivals = order[fresh]
        admitted[arrivals] = True
        buckets = np.floor_divide(times[arrivals], self.bucket_seconds).astype(np.int64)
        self._runs.append(_Run(hi[fresh], lo[fresh], buckets, self._file(buckets, arrivals)))
        self._settle()
        return admitted

    def _file(self, buckets: np.ndarray, arrivals: np.ndarray) -> np.ndarray:
        """Give new entries the next places in their buckets, in order of arrival."""
        order = np.lexsort((arrivals, buckets))
        ids, starts, counts = np.unique(buckets[order], return_index=True, return_counts=True)
        ids_list = ids.tolist()
        before = np.array([self._sizes.get(b, 0) for b in ids_list], dtype=np.int64)
        after = (before + counts).tolist()
        if max(after) > _MAX_BUCKET_ENTRIES:
            raise OverflowError("a dedup bucket is limited to 2**32 entries: use narrower buckets")
        places = np.empty(len(order), dtype=np.uint32)
        places[order] = np.arange(len(order)) + np.repeat(before - starts, counts)
        for bucket, size in zip(ids_list, after, strict=True):
            self._sizes[bucket] = size
        return places

    def _flush(self) -> None:
        """Turn the pending buffer into a run."""
        if not self._pending:
            return
        hashes = np.frombuffer(b"".join(self._pending), dtype=np.uint64).reshape(-1, 2)
        entries = np.array(list(self._pending.values()), dtype=np.int64)
        order = np.argsort(hashes[:, 0], kind="stable")
        self._runs.append(
            _Run(hashes[order, 0], hashes[order, 1], entries[order, 0], entries[order, 1].astype(np.uint32))
        )
        self._pending = {}
        self._settle()

    def _settle(self) -> None:
        """Merge adjacent runs until each is at least FANOUT times the size of the next."""
        runs = self._runs
        for i in range(len(runs) - 1, 0, -1):
            if len(runs[i]) * FANOUT > len(runs[i - 1]):
                runs[i - 1 : i + 1] = [runs[i - 1].merged(runs[i])]

    def expire(self, watermark: float) -> int:
        """Forget buckets whose events are all older than ``watermark - horizon``; returns entries dropped."""
        first_kept = int((watermark - self.horizon_seconds) // self.bucket_seconds)
        stale = [bucket for bucket in self._sizes if bucket < first_kept]
        if not stale:
            return 0
        self._flush()
        dropped = 0
        for bucket in stale:
            dropped += self._sizes.pop(bucket)
        runs = []
        for run in self._runs:
            keep = run.buckets >= first_kept
            if keep.all():
                runs.append(run)
            elif keep.any():
                runs.append(run.select(keep))
        self._runs = runs
        self._settle()
        return dropped

    def bucket_sizes(self) -> dict[int, int]:
        """Bucket id -> entries it holds (bucket id = floor(event_time / bucket_seconds))."""
        return dict(self._sizes)

    def changed_chunks(self, chunk_entries: int) -> list[tuple[int, int, bytes]]:
        """``(bucket, chunk index, hashes)`` of every chunk holding entries admitted since ``mark_durable``.

        A bucket is stored as chunks of ``chunk_entries`` hashes in admission order (chunk i
        holds places ``i * chunk_entries`` onwards), so a changed bucket costs its partly
        filled last durable chunk plus the new ones, never the whole bucket.
        """
        self._flush()
        changed = []
        for bucket, size in sorted(self._sizes.items()):
            durable = self._durable_sizes.get(bucket, 0)
            if size == durable:
                continue
            first = durable // chunk_entries
            hashes = self.hashes(bucket, first * chunk_entries)
            step = chunk_entries * HASH_BYTES
            for index, start in enumerate(range(0, len(hashes), step), start=first):
                changed.append((bucket, index, hashes[start : start + step]))
        return changed

    def hashes(self, bucket: int, start: int = 0) -> bytes:
        """The bucket's hashes from place ``start`` on, in admission order."""
        self._flush()
        out = np.empty((self._sizes[bucket] - start, 2), dtype=np.uint64)
        for run in self._runs:
            mask = run.buckets == bucket
            if start:
                mask &= run.positions >= start
            places = run.positions[mask] - start
            out[places, 0] = run.hi[mask]
            out[places, 1] = run.lo[mask]
        return out.tobytes()

    def mark_durable(self, sizes: Mapping[int, int]) -> None:
        """Record that a confirmed checkpoint holds the first ``sizes[id]`` entries of each bucket."""
        self._durable_sizes = {bucket: size for bucket, size in sizes.items() if bucket in self._sizes}

    @classmethod
    def restore(
        cls,
        horizon_seconds: float,
        bucket_seconds: int,
        buckets: Mapping[int, bytes],
        sizes: Mapping[int, int],
    ) -> DedupIndex:
        """Rebuild from persisted buckets, keeping the first ``sizes[id]`` entries of each listed bucket."""
        index = cls(horizon_seconds, bucket_seconds)
        hashes, ids, places = [], [], []
        for bucket, size in sizes.items():
            bucket, size = int(bucket), int(size)
            if size <= 0:
                continue
            data = buckets.get(bucket, b"")
            if len(data) < size * HASH_BYTES:
                raise ValueError(
                    f"dedup bucket {bucket}: the head record counts {size} entries "
                    f"but only {len(data) // HASH_BYTES} are stored"
                )
            hashes.append(np.frombuffer(data, dtype=np.uint64, count=2 * size).reshape(-1, 2))
            ids.append(np.full(size, bucket, dtype=np.int64))
            places.append(np.arange(size, dtype=np.uint32))
            index._sizes[bucket] = size
        if hashes:
            all_hashes = np.concatenate(hashes)
            order = np.lexsort((all_hashes[:, 1], all_hashes[:, 0]))
            hi, lo = all_hashes[order, 0], all_hashes[order, 1]
            if ((hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1])).any():
                raise ValueError("dedup buckets hold the same event hash twice: the checkpoint is corrupt")
            index._runs = [_Run(hi, lo, np.concatenate(ids)[order], np.concatenate(places)[order])]
        index._durable_sizes = dict(index._sizes)
        return index
